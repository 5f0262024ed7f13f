"""Prompt events of the segmentation widget: clicks and boxes drawn on a session's prompt layers
become controller prompts (a mixin of :class:`medseg_napari._qt.segment_widget.SegmentWidget`)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from qtpy.QtCore import QTimer

from .. import _view_axes as vx
from . import _prompt_layers as pl


class PromptEventsMixin:
    """The widget's handlers for the data events of the clicks and boxes layers; the pending
    prompts are applied at once, or when the running operation ends."""

    def _on_points_data(self, event: Any) -> None:
        if self._refused_here(event, vx.click_refusal):  # 3-D: a click has no depth (see _segment_view)
            return
        # a click dragged in a view showing the slice axis can change slice: its old slice is prompted again too
        self._on_prompt_event(event, pl.keys_of_moved_points if str(event.action) == "changed" else pl.keys_of_points)

    def _on_shapes_data(self, event: Any) -> None:
        if self._refused_here(event, vx.box_refusal):  # no slice shown: a box would span slices
            return
        if not self._syncing and str(event.action) == "added" and pl.added_non_rectangles(event.source, event.data_indices):
            # an ellipse, polygon or line is no box prompt: removed (and said so), not applied as "no box"
            QTimer.singleShot(0, lambda layer=event.source: self._drop_non_rectangles(layer))
            n = len(event.source.data)
            rects = tuple(i for i in event.data_indices if str(event.source.shape_type[int(i) % n]) == "rectangle")
            if not rects:
                return
            event = SimpleNamespace(source=event.source, action=event.action, data_indices=rects)
        self._on_prompt_event(event, pl.keys_of_shapes)
        if str(event.action) == "added" and not self._syncing:
            QTimer.singleShot(0, self._sync_prompts)  # one box per structure and slice

    def _drop_non_rectangles(self, layer: Any) -> None:
        self._syncing = True  # no prompt event: the session never saw these shapes
        try:
            kinds = pl.drop_non_rectangles(layer)
            if kinds and str(layer.mode).startswith("add_"):
                layer.mode = "add_rectangle"
        finally:
            self._syncing = False
        if kinds:
            self.status(f"Only rectangles are box prompts: the {' and '.join(dict.fromkeys(kinds))} drawn on '{layer.name}' "
                        "was removed, no prompt applied. Draw a box with the rectangle tool (R).", error=True)

    def _owner(self, layer: Any) -> pl.Binding | None:
        """The session whose clicks or boxes layer this is (None: not a session's)."""
        return next((b for b in self.bindings.values() if layer is b.points or layer is b.shapes), None)

    def _pending_of(self, b: pl.Binding) -> set[tuple[str, int, int]]:
        """The (structure, t, z) of ``b``'s prompts placed while an operation runs, not yet applied:
        a redraw of its layers from the session (which does not hold them yet) keeps them."""
        return set(self._pending) if self._pending_owner is b else set()

    def _follow_prompt_layer(self, b: pl.Binding | None) -> None:
        """Another study chosen under Image: when a session's clicks or boxes layer is the active
        layer, this study's (in the same mode) becomes the active one; the next click went to the
        study chosen before (and was refused as outside its slice)."""
        active = self.viewer.layers.selection.active
        other = self._owner(active)
        if b is None or other is None or other is b:
            return
        layer = b.points if active is other.points else b.shapes
        self.viewer.layers.selection.active = layer
        layer.mode = str(active.mode)

    def _on_prompt_event(self, event: Any, keys: Callable[[pl.Binding, Any], set]) -> None:
        if self._syncing:
            return
        b = self._owner(getattr(event, "source", None)) or self.binding
        if b is None:
            return
        action = str(event.action)
        if b is not self.binding and self._busy:  # a prompt on another study's layer: not while an operation runs
            if action in ("added", "changed", "removed"):
                self.status(f"The prompt on '{b.image.name}' was not applied: wait for the running operation "
                            f"on '{self.ui.image.currentText()}' to finish.", error=True)
                QTimer.singleShot(0, lambda b=b: self._resync(b))
            return
        if action == "removing":
            self._removing |= keys(b, event.data_indices)
            return
        if action == "removed":
            affected, self._removing = self._removing, set()
        elif action in ("added", "changed"):
            affected = keys(b, event.data_indices)
        else:
            return
        if b is not self.binding:  # another study's layer: that study's session takes it, the widget follows it
            if self._refused_elsewhere(b, event.source, affected):
                return
            self.ui.image.setCurrentText(b.image.name)
        if self._pending and self._pending_owner is not b:  # another study's prompts wait: this one is not mixed in
            self.status(f"The prompt on '{b.image.name}' was not applied: wait for the running operation to finish.", error=True)
            QTimer.singleShot(0, self._sync_prompts)
            return
        self._pending |= affected
        self._pending_owner = b
        if not self._busy:
            self._apply_pending()
        elif affected:  # (the line said "prompt applied" of the prompt before)
            where = "; ".join(f"{n.upper()} on frame {t}, slice {z}" for n, t, z in sorted(affected))
            self.status(f"{where}: waits for the running operation, applied when it ends.")

    def _refused_elsewhere(self, b: pl.Binding, layer: Any, keys: set[tuple[str, int, int]]) -> bool:
        """A prompt on the layer of study ``b``, not the one chosen under Image, that ``b``'s
        session cannot take (a click outside its slice: likely meant for the study shown): said
        so, and removed, before the widget switches to ``b``; True then."""
        from medseg.errors import PromptError

        try:
            for key in keys:
                pl.layer_prompts(b, *key)
        except PromptError as e:
            shown = self.ui.image.currentText()
            self.status(f"Not applied: {e} of '{b.image.name}' (its layer '{layer.name}' was selected"
                        + (f", not one of '{shown}')." if shown else ")."), error=True)
            QTimer.singleShot(0, lambda: self._resync(b))
            return True
        return False

    def _apply_pending(self, after_job: bool = False) -> None:
        """Apply the prompts placed meanwhile; ``after_job``: an operation with a status line of
        its own just ended, and the line says they followed it."""
        pending, self._pending = self._pending, set()
        owner, self._pending_owner = self._pending_owner, None
        if pending and owner is not self.binding:  # placed before another study was chosen: applied to theirs
            if not any(x is owner for x in self.bindings.values()):
                return  # their study was closed meanwhile
            self.ui.image.setCurrentText(owner.image.name)  # the widget follows the study prompted
        b = self._live_binding() if pending else None
        if b is None or not pending:
            return
        c = b.controller
        done: list[str] = []
        try:
            for name, t, z in sorted(pending):
                if c.is_locked(name):
                    raise ValueError(f"{name.upper()} is locked (accepted): unlock it to change it")
                box, points = pl.layer_prompts(b, name, t, z)
                c.prompt(name, t, z, box, points)
                done.append(f"{name.upper()} on frame {t}, slice {z}")
            if after_job:
                self._append_status(f"Then the prompts placed meanwhile were applied: {'; '.join(done)}.")
            else:  # an earlier error line is stale now
                self.status(f"{'; '.join(done)}: prompt{'s' if len(done) > 1 else ''} applied.")
        except ValueError as e:  # MedsegError is a ValueError
            self.status((f"{'; '.join(done)}: applied. " if done else "") + str(e), error=True)
            self._sync_prompts()
        self._after_change()

    def _append_status(self, text: str) -> None:
        """``text`` after the status line's (a warning stays one, not notified again)."""
        before = self.ui.status.text()
        line = f"{before} {text}" if before else text
        if self._status_error:
            self.ui.status.setText(line)
            self._ready_at = None
        else:
            self.status(line)
