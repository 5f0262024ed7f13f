"""Undo and redo of a :class:`medseg.session.Session`: the :class:`Change` an operation made
and the undo history (one step per operation: a whole propagation or auto run is one step).

A mixin of Session: it reads and writes the session's ``labels``, ``results``, ``structures``
and ``log``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .enclosure import removed_text

if TYPE_CHECKING:
    from .session import SliceResult


@dataclass
class Change:
    """The region one operation changed: per (frame, slice) the pixel bounding box
    (y0, x0, y1, x1) exclusive end; ``scores`` per (structure, frame, slice)."""

    op: str
    structure: str | None = None
    regions: dict[tuple[int, int], tuple[int, int, int, int]] = field(default_factory=dict)
    scores: dict[tuple[str, int, int], float] = field(default_factory=dict)
    removed: list[dict[str, Any]] = field(default_factory=list)  # slices a rule took out (LV rule, RV end check)

    @property
    def empty(self) -> bool:
        return not self.regions

    def removed_text(self) -> str:
        """The slices a rule took out, for a status line (:func:`removed_text`)."""
        return removed_text(self.removed)


#: the memory (MB) the undo history of a session keeps at most, beyond its latest step; the
#: oldest steps are dropped past it (``MEDSEG_UNDO_MB`` sets another; a step propagated through
#: every slice and frame of a 30-frame cine keeps some 15-25 MB)
UNDO_BUDGET_MB = 1024


def undo_budget_bytes() -> int:
    """:data:`UNDO_BUDGET_MB` or ``MEDSEG_UNDO_MB`` (a number of MB; another value is ignored), in bytes."""
    try:
        mb = float(os.environ.get("MEDSEG_UNDO_MB", UNDO_BUDGET_MB))
    except ValueError:
        mb = UNDO_BUDGET_MB
    return int(max(mb, 0.0) * 2**20) if mb == mb else UNDO_BUDGET_MB * 2**20


@dataclass
class _UndoStep:
    op: str
    slices: dict[tuple[int, int], np.ndarray]  # (t, z) -> labels before
    results: dict[tuple[str, int, int], SliceResult | None]  # before
    after_slices: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    after_results: dict[tuple[str, int, int], SliceResult | None] = field(default_factory=dict)
    locks: dict[str, bool] | None = None
    after_locks: dict[str, bool] | None = None
    size: int = 0  # nbytes(), when pushed

    def nbytes(self) -> int:
        """The memory its copies hold (an array two steps share is counted in both)."""
        arrays = {id(a): a.nbytes for d in (self.slices, self.after_slices) for a in d.values()}
        logits = {id(r): r.logits.nbytes for d in (self.results, self.after_results) for r in d.values() if r is not None}
        return sum(arrays.values()) + sum(logits.values())


class UndoHistory:
    """Multi-level undo/redo for Session (its ``_undo``, ``_redo``, ``_last_after``, ``_keep_undo``)."""

    @staticmethod
    def _record_change(change: Change, t: int, z: int, before: np.ndarray, after: np.ndarray) -> None:
        diff = before != after
        if not diff.any():
            return
        ys, xs = np.nonzero(diff)
        box = (int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1)
        old = change.regions.get((t, z))
        if old is not None:
            box = (min(old[0], box[0]), min(old[1], box[1]), max(old[2], box[2]), max(old[3], box[3]))
        change.regions[(t, z)] = box

    @contextlib.contextmanager
    def _operation(self, op: str, structure: str | None) -> Iterator[tuple[_UndoStep, Change]]:
        """Collect one undoable operation; pushed on the undo stack when it changed anything."""
        step, change = _UndoStep(op, {}, {}), Change(op, structure)
        try:
            yield step, change
        except BaseException:
            self._restore(step.slices, step.results, step.locks, op)  # all or nothing: no half-done operation
            raise
        if (step.slices or step.results) and self._keep_undo:
            step.after_slices = {tz: self.labels[tz].copy() for tz in step.slices}
            self._last_after.update(step.after_slices)
            step.after_results = {key: self.results.get(key) for key in step.results}
            self._push(step)

    def _undo_copy(self, t: int, z: int) -> np.ndarray:
        """The undo copy of labels[t, z] before an operation changes it: the latest copy an
        earlier operation kept of it after it, when the slice still equals that (one array for
        both steps: undo copies are never written to), else a new one (BENCHMARKS.md)."""
        prev = self._last_after.get((t, z))
        if prev is not None and np.array_equal(prev, self.labels[t, z]):
            return prev
        return self.labels[t, z].copy()

    def _push(self, step: _UndoStep) -> None:
        step.size = step.nbytes()
        self._undo.append(step)
        self._redo.clear()
        if getattr(self, "_replaying", False):  # a replayed log's undos found their steps when recorded: all are kept
            return
        budget, sizes = undo_budget_bytes(), [st.size for st in self._undo]
        total, drop = sum(sizes), 0
        while drop < len(sizes) - 1 and total > budget:  # the oldest steps go; the latest is always undoable
            total -= sizes[drop]
            drop += 1
        if drop:
            del self._undo[:drop]
            self.undo_dropped = getattr(self, "undo_dropped", 0) + drop

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> Change:
        """Revert the last operation (a whole propagation or auto run is one step)."""
        if not self._undo:
            return Change("undo")
        step = self._undo.pop()
        change = self._restore(step.slices, step.results, step.locks, "undo")
        self._redo.append(step)
        self.log.append({"op": "undo"})
        return change

    def redo(self) -> Change:
        if not self._redo:
            return Change("redo")
        step = self._redo.pop()
        change = self._restore(step.after_slices, step.after_results, step.after_locks, "redo")
        self._undo.append(step)
        self.log.append({"op": "redo"})
        return change

    def _restore(self, slices, results, locks, op: str) -> Change:
        change = Change(op)
        for (t, z), arr in slices.items():
            before = self.labels[t, z].copy()
            self.labels[t, z] = arr
            self._record_change(change, t, z, before, self.labels[t, z])
        for key, res in results.items():
            if res is None:
                self.results.pop(key, None)
            else:
                self.results[key] = res
        for name, val in (locks or {}).items():
            self.structures[name].locked = val
        return change
