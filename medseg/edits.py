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
    for start, length, value in check_runs(runs, plane.shape, np.iinfo(plane.dtype).max):
        flat[start:start + length] = value


def check_runs(runs: Any, shape_yx: tuple[int, ...], top: int) -> list[tuple[int, int, int]]:
    """``runs`` as (start, length, value) whole numbers, each run inside a slice of ``shape_yx``
    and each value a label in 0..``top``; PromptError naming the first that is not."""
    if not isinstance(runs, (list, tuple)):
        raise PromptError(f"an edit's 'runs' must be a list of [start, length, value], got {runs!r}")
    size, out = int(np.prod(shape_yx)), []
    for run in runs:
        if not (isinstance(run, (list, tuple)) and len(run) == 3):
            raise PromptError(f"an edit run must be [start, length, value], got {run!r}")
        if not all(_whole(v) for v in run):
            raise PromptError(f"an edit run must be [start, length, value] of whole numbers, got {run!r}")
        start, length, value = (int(v) for v in run)
        if start < 0 or length < 1 or start + length > size or not 0 <= value <= top:
            raise PromptError(f"edit run {run!r} does not fit a {shape_yx[0]}x{shape_yx[1]} slice of labels 0..{top}")
        out.append((start, length, value))
    return out


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


def edited_by_hand(provenance: Any) -> bool:
    """Whether labels with this sidecar provenance were changed or reviewed by a person after the
    model (an ``edit`` action: napari's brush, eraser or fill; or a review mark): their scores
    and measurements are not the model's alone."""
    if not isinstance(provenance, dict):
        return False
    actions = [a for a in provenance.get("actions") or [] if isinstance(a, dict)]
    return any(a.get("op") in ("edit", "review") for a in actions)


def _whole(v: Any) -> bool:
    """A whole number (2 or 2.0; not True, 2.5, inf or "2")."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        return False
    return bool(np.isfinite(v)) and v == int(v) if isinstance(v, (float, np.floating)) else True


def check_edit(action: dict[str, Any], shape: tuple[int, ...], top: int) -> list[tuple[int, int, list[tuple[int, int, int]]]]:
    """An ``edit`` action's slices as (frame, slice, runs) for labels of (T, Z, Y, X) ``shape``
    holding values up to ``top``; PromptError naming the first part that is malformed."""
    from .types import index

    items = action.get("slices")
    if not isinstance(items, list) or not items:
        raise PromptError(f"an edit action needs a 'slices' list, got {items!r}")
    n_t, n_z = shape[:2]
    out = []
    for item in items:
        if not isinstance(item, dict) or not {"frame", "slice", "runs"} <= item.keys():
            raise PromptError(f"each of an edit's slices must be {{frame, slice, runs}}, got {item!r}")
        t, z = index(item["frame"], "frame"), index(item["slice"], "slice")
        if not (t < n_t and z < n_z):
            raise PromptError(f"edit on frame {t}, slice {z} lies outside the image's {n_t} frames x {n_z} slices")
        out.append((t, z, check_runs(item["runs"], shape[2:], top)))
    return out


def replay_edit(session: Any, action: dict[str, Any]) -> Any:
    """Re-apply one ``edit`` action (one undo step)."""
    items = check_edit(action, session.labels.shape, int(np.iinfo(session.labels.dtype).max))
    with session._operation("edit", None) as (step, change):
        for t, z, runs in items:
            before = step.slices.get((t, z), session.labels[t, z].copy())
            apply_runs(session.labels[t, z], runs)
            step.slices[(t, z)] = before
            session._record_change(change, t, z, before, session.labels[t, z])
    session.log.append({"op": "edit", "slices": action["slices"]})
    return change
