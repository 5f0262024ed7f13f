"""The slice shown, and views that show none (a mixin of
:class:`medseg_napari._qt.segment_widget.SegmentWidget`).

The slice's embedding is computed when the sliders move to it and the status line says it is
ready. napari's roll button, axis order and 2D/3D button show other planes of the study (a
long-axis look at a short-axis stack, or 3-D): the status line says what works there
(:func:`medseg_napari._view_axes.view_note`), and clicks, boxes and operations that cannot be
made there are refused with a hint (:mod:`medseg_napari._view_axes`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtCore import QTimer

from .. import _view_axes as vx
from . import _prompt_layers as pl


class SliceViewMixin:
    """The widget's handlers for the sliders and the displayed axes of the viewer."""

    def _connect_view(self) -> None:
        dims = self.viewer.dims
        dims.events.current_step.connect(self._on_step)
        dims.events.order.connect(self._on_view_axes)
        dims.events.ndisplay.connect(self._on_view_axes)

    def _on_view_axes(self, *_: Any) -> None:
        """The displayed axes changed: say what works in that view, or, back on the slice
        plane, that the slice is ready (its embedding computed first where it is missing)."""
        b = self.binding
        if b is None:
            return
        shown, was = vx.shown_plane(self.viewer, b.image), getattr(self, "_plane_was", None)
        self._plane_was = shown
        if shown == was or self._busy:  # the same plane (a layer added, hidden axes reordered): the line stays
            return
        note = vx.view_note(self.viewer, b.image)
        if note:
            self.status(note)
            return
        t, z = b.current_index(self.viewer)
        if b.controller.needs_embedding(t, z):
            self._on_step()
        else:
            self._say_ready(t, z)

    def _on_step(self, *_: Any) -> None:
        b = self.binding
        if b is None or self._busy:
            return
        t, z = b.current_index(self.viewer)
        if vx.shown_plane(self.viewer, b.image) is not None:
            return  # the (t, z) on the sliders is not shown: no embedding for it, no "ready" line
        if b.controller.needs_embedding(t, z):
            self._run_job(b.controller.embed, t, z, desc=f"medseg: embedding frame {t}, slice {z}",
                          on_done=lambda tz, b=b: self._embedded(b, tz))
        elif self._ready_at is not None and self._ready_at != (t, z):  # "ready" follows the slice shown
            self._say_ready(t, z)

    def _embedded(self, b: pl.Binding, tz: tuple[int, int]) -> None:
        """An embedding is in: "ready" when the viewer still shows that slice; else the slice
        shown is dealt with when the job ends (:meth:`_job_finished` calls :meth:`_on_step`)."""
        if b is self.binding and b.current_index(self.viewer) == tuple(tz) and vx.shown_plane(self.viewer, b.image) is None:
            self._say_ready(*tz)

    def _say_ready(self, t: int, z: int) -> None:
        note = self._covered_note(self.binding.image) if self.binding is not None else ""
        self.status(f"Frame {t}, slice {z} ready: prompt away." + (f" {note}" if note else ""))
        self._ready_at = (t, z)

    def _refused_here(self, event: Any, refusal: Any) -> bool:
        """A click or box added or moved on a session's layer in a view where it is no prompt
        (``refusal(viewer, image)`` gives the status line, or None): an added one is removed, a
        moved one put back where the session has it, and the status line says why; True then."""
        action = str(event.action)
        if self._syncing or action not in ("added", "changed"):
            return False
        b = self._owner(getattr(event, "source", None))
        line = refusal(self.viewer, b.image) if b is not None else None
        if line is None:
            return False
        self.status(line, error=True)
        layer = event.source
        if action == "added":
            n = len(layer.data)
            items = [np.array(layer.data[int(i) % n], copy=True) for i in event.data_indices if n]
            QTimer.singleShot(0, lambda: self._remove_items(layer, items))
        else:
            QTimer.singleShot(0, lambda: self._sync_prompts() if b is self.binding else self._resync(b))
        return True

    def _remove_items(self, layer: Any, items: list[Any]) -> None:
        self._syncing = True  # no prompt event: the session never saw them
        try:
            pl.remove_items(layer, items)
        finally:
            self._syncing = False
