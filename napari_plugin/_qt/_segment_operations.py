"""Operations of the segmentation widget: quick controller calls, undo/redo, and the propagation
and automatic pass run in workers (a mixin of :class:`medseg_napari._qt.segment_widget.SegmentWidget`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .. import _view_axes as vx
from .._controller import OperationCancelled, SegmentController, run_with_progress
from .._messages import error_line
from .._propagation_choices import propagation_choices


class OperationsMixin:
    """Run now (main thread), undo, redo, propagate and auto on the shown study's session."""

    def run_now(self, op: Callable[[SegmentController], Any], sync: bool = True) -> None:
        """Run a quick controller operation on the main thread, then refresh."""
        if self._busy or self._live_binding() is None:
            return
        c = self.controller
        try:
            op(c)
        except ValueError as e:
            self.status(str(e), error=True)
        if sync:
            self._sync_prompts()
        self._after_change()
        self._show_structures()
        self._on_structure_selected()

    def toggle_lock(self) -> None:
        """Accept (lock) or unlock the active structure and say so (the status line kept "ready:
        prompt away"); the keyboard focus goes to the structures table, where the next one is
        chosen (arrow keys or 1-9), not left on the button that now undoes the accept."""
        c = self.controller
        if c is None or self._busy:
            return
        name, was = c.active, c.is_locked(c.active)
        self.run_now(lambda c: c.toggle_lock(), sync=False)
        if self.controller is c and c.is_locked(name) != was:
            self.status(f"{name.upper()} accepted (locked): prompts, propagation and Auto of other structures leave it as it is."
                        if not was else f"{name.upper()} unlocked: prompts can change it again.")
        self.ui.structures.setFocus()

    def undo(self) -> None:
        self.run_now(lambda c: self._step(c, "undo"))

    def redo(self) -> None:
        self.run_now(lambda c: self._step(c, "redo"))

    def _step(self, c: SegmentController, which: str) -> None:
        """Undo or redo one step and say what happened: the status line kept naming the
        operation just undone ("Propagated LV ...") as if it still stood."""
        n = len(c.session.log)
        change = c.undo() if which == "undo" else c.redo()
        self.status(step_text(which, change, any(a.get("op") == which for a in c.session.log[n:]), getattr(c.session, "undo_dropped", 0)))

    def propagate(self) -> None:
        if self._busy:
            return
        b = self._live_binding()
        if b is None:
            return
        refused = vx.slider_refusal(self.viewer, b.image, "Propagate")  # the slice axis shown: no current slice
        if refused:
            self.status(refused, error=True)
            return
        t, z = b.current_index(self.viewer)
        through = self.ui.through.currentText()
        c = b.controller
        if through not in propagation_choices(c.volume.n_frames, c.volume.n_slices):
            what = "frame" if through == "frames" else "slice" if through == "slices" else "frame or slice"
            self.status(f"'{b.image.name}' has one {what}: nothing to propagate {through}.", error=True)
            return
        total = {"slices": c.volume.n_slices, "frames": c.volume.n_frames}.get(through, c.volume.n_slices * c.volume.n_frames)
        name = c.active.upper()
        self._run_job(run_with_progress, c.propagate, t, z, through, cancel=self._cancellable(f"Propagation of {name}"),
                      desc=f"medseg: propagating {name}",
                      total=total, on_done=lambda ch: self._job_done(f"Propagated {name} through {through}: {_count(ch, through)} changed."
                                                                      + _removed(ch), b, "propagation"))

    def auto(self) -> None:
        if self._busy:
            return
        b = self._live_binding()
        if b is None:
            return
        c = b.controller
        this_frame = self.ui.auto_frames.currentText() != "all frames"
        refused = vx.slider_refusal(self.viewer, b.image, "Auto on this frame", ("frame",)) if this_frame else None
        if refused:  # the frame axis shown: no current frame
            self.status(refused, error=True)
            return
        frames = [b.current_index(self.viewer)[0]] if this_frame else None
        total = (len(frames) if frames else c.volume.n_frames) * c.volume.n_slices
        try:
            names = c.auto_structures()
        except ValueError as e:
            self.status(str(e), error=True)
            return
        self._run_job(run_with_progress, c.auto, frames, names, cancel=self._cancellable("The automatic pass"),
                      desc="medseg: automatic segmentation", total=total,
                      on_done=lambda ch: self._job_done(f"Automatic pass ({', '.join(names)}): {len(ch.regions)} slices changed."
                                                        + _removed(ch), b, "automatic pass"))

    def _cancellable(self, what: str, unit: str = "slice") -> threading.Event:
        """A cancel flag for the job about to start (``what`` names it, ``unit`` is the step it
        reports progress by), set by the Cancel button (:meth:`cancel`)."""
        self._cancel, self._cancel_what, self._cancel_unit = threading.Event(), what, unit
        self._cancel_binding = self.binding  # the session it runs on
        return self._cancel

    def _close_binding(self, key: int) -> None:
        """Forget a study's session (its image or labels layer was removed); a cancellable job
        running on it stops at its next step: a long propagation of a closed study kept the dock
        busy (no session on the next study) until it ended, then its result was discarded."""
        b = self.bindings.pop(key)
        if self._busy and self._cancel is not None and getattr(self, "_cancel_binding", None) is b:
            self._cancel.set()

    def cancel(self) -> None:
        """Stop the running propagation, automatic pass, replay or review check at its next step
        (slice or action); the session puts back what it wrote (the status line says so when
        the worker ends)."""
        if self._busy and self._cancel is not None:
            self._cancel.set()
            self.ui.cancel.setEnabled(False)
            self.status(f"Cancelling: {self._cancel_what.lower()} stops at the next {self._cancel_unit}…")

    def _job_failed(self, e: BaseException) -> None:
        b = getattr(self, "_cancel_binding", None)
        if isinstance(e, OperationCancelled) and b is not None and not any(x is b for x in self.bindings.values()):
            what = self._cancel_what
            if self._status_error:  # the close's warning (labels lost unsaved) stays, in red
                self._append_status(f"{what} stopped and discarded.")
            else:
                self.status(f"Session on {b.image.name} closed: {what[:1].lower() + what[1:]} stopped and discarded.")
        elif isinstance(e, OperationCancelled):
            self.status(f"{self._cancel_what} cancelled: the labels and the undo history are as they were.")
        else:
            self.status(error_line(e), error=True)  # as the CLI says it: no exception class names


def step_text(which: str, change: Any, done: bool, dropped: int = 0) -> str:
    """Status line after an undo or redo (``which``): what it changed, or that nothing was left
    (and, for undo, that the ``dropped`` oldest steps were let go to keep within the undo budget)."""
    if not done:
        if which == "undo" and dropped:
            from medseg._session_undo import undo_budget_bytes

            return (f"Nothing more to undo: the {dropped} oldest step{'s were' if dropped != 1 else ' was'} let go to keep the undo "
                    f"history under {undo_budget_bytes() / 2**20:.0f} MB (MEDSEG_UNDO_MB).")
        return f"Nothing to {which}."
    slices = len(change.regions)
    what = f"{slices} slice{'s' if slices != 1 else ''}" if slices else "a lock change"
    if which == "undo":  # "Redone: 135 slices restored" read as if the redo had put something back
        return f"Undid the last step ({what}). Redo (Ctrl+Shift+Z) brings it back."
    return f"Redid the step ({what}). Undo (Ctrl+Z) takes it back."


def _removed(change: Any) -> str:
    """Status-line suffix naming the slices the LV rule / RV end check removed in this step."""
    text = change.removed_text()
    return f" {text}." if text else ""


def _count(change: Any, through: str) -> str:
    """How many images a propagation changed, by what it went through: "15 frames" on an echo clip
    (it read "15 slices changed" on a clip of one slice), "9 slices", "135 slices" over both."""
    n, unit = len(change.regions), "frame" if through == "frames" else "slice"
    return f"{n} {unit}{'' if n == 1 else 's'}"
