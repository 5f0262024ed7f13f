"""Edits made to a session's labels by hand (napari's brush, eraser, fill, or any code writing the
buffer), as provenance: the edits found at once become one ``edit`` action holding each changed
slice's pixels as runs, so :meth:`medseg.session.Session.replay` reproduces the labels bit for
bit and undo takes the edit back in one step, like any other operation.

Action format: ``{"op": "edit", "slices": [{"frame": t, "slice": z, "runs": [[start, length,
value], ...]}, ...]}``, ``start`` a flat (row-major) pixel index of the slice, ``value`` the
label written there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import PromptError


def runs_of(before: np.ndarray, after: np.ndarray) -> list[list[int]]:
    """The changes from ``before`` to ``after`` (one slice) as [start, length, value] runs of
    consecutive flat pixel indices with one new value."""
    a, b = np.ravel(before), np.ravel(after)
    idx = np.flatnonzero(a != b)
    if idx.size == 0:
        return []
    vals = b[idx]
    # a run ends where the next index is not consecutive or the value changes
    breaks = np.flatnonzero((np.diff(idx) != 1) | (np.diff(vals) != 0)) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [idx.size]])
    return [[int(idx[s]), int(e - s), int(vals[s])] for s, e in zip(starts, ends, strict=True)]


def apply_runs(plane: np.ndarray, runs: list[list[int]]) -> None:
    """Write ``runs`` into the 2-D ``plane`` in place (:func:`runs_of`'s inverse)."""
    flat = plane.reshape(-1)
    for run in runs:
        if not (isinstance(run, (list, tuple)) and len(run) == 3):
            raise PromptError(f"an edit run must be [start, length, value], got {run!r}")
        start, length, value = (int(v) for v in run)
        if start < 0 or length < 1 or start + length > flat.size or not 0 <= value <= np.iinfo(plane.dtype).max:
            raise PromptError(f"edit run {run!r} does not fit a {plane.shape[0]}x{plane.shape[1]} slice of {plane.dtype} labels")
        flat[start:start + length] = value


def record_edits(session: Any, before: np.ndarray) -> Any:
    """Log what differs between ``before`` (the labels as the session last left them, (T, Z, Y,
    X)) and the session's labels now as one ``edit`` action and one undo step; returns the
    :class:`~medseg.session.Change` (empty, and nothing logged, when nothing differs)."""
    labels = session.labels
    if before.shape != labels.shape:
        raise PromptError(f"the labels changed shape ({before.shape} -> {labels.shape}): edits cannot be recorded")
    changed = [tuple(int(i) for i in tz) for tz in np.argwhere((before != labels).any(axis=(2, 3)))]
    slices = []
    with session._operation("edit", None) as (step, change):
        for t, z in changed:
            slices.append({"frame": t, "slice": z, "runs": runs_of(before[t, z], labels[t, z])})
            step.slices[(t, z)] = before[t, z].copy()  # undo takes the edit back
            session._record_change(change, t, z, before[t, z], labels[t, z])
    if slices:
        session.log.append({"op": "edit", "slices": slices})
    return change


def replay_edit(session: Any, action: dict[str, Any]) -> Any:
    """Re-apply one ``edit`` action (one undo step)."""
    items = action.get("slices")
    if not isinstance(items, list) or not items:
        raise PromptError(f"an edit action needs a 'slices' list, got {items!r}")
    n_t, n_z = session.labels.shape[:2]
    with session._operation("edit", None) as (step, change):
        for item in items:
            t, z = int(item["frame"]), int(item["slice"])
            if not (0 <= t < n_t and 0 <= z < n_z):
                raise PromptError(f"edit on frame {t}, slice {z} lies outside the image's {n_t} frames x {n_z} slices")
            before = step.slices.get((t, z), session.labels[t, z].copy())
            apply_runs(session.labels[t, z], item["runs"])
            step.slices[(t, z)] = before
            session._record_change(change, t, z, before, session.labels[t, z])
    session.log.append({"op": "edit", "slices": items})
    return change
