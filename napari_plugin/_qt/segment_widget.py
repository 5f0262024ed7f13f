"""Segmentation dock widget: a thin Qt face over :class:`medseg_napari._controller.SegmentController`.

Mouse and keys (with the clicks or boxes layer selected):

* click = positive point, Shift+click (or the "negative" toggle, key ``N``) = negative point;
* drag a rectangle on the boxes layer = box prompt (one per structure and slice);
* ``Ctrl+Z`` / ``Ctrl+Shift+Z`` (also ``Ctrl+Y``) = undo / redo (prompts, propagation, auto);
* ``1``-``9`` select the structure of that row.

The mask of the active structure updates on every prompt event (no button). Slow work (model
loading, the slice embedding when the slice changes, propagation, auto, replay) runs in
``napari.qt.threading`` workers with napari's progress bar; layers are refreshed only here,
on the main thread, when a worker returns. One operation runs at a time; prompts placed
meanwhile are applied when it ends.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFileDialog, QWidget

from medseg.errors import MedsegError

from .. import _view
from .._controller import ModelProvider, SegmentController, adapter_names, default_structures, default_threads, new_structure, run_with_progress
from .._layers import META_PROVENANCE, META_SOURCE, volume_for_layer
from . import _prompt_layers as pl
from ._segment_ui import build_segment_ui, fill_structure_table

if TYPE_CHECKING:
    import napari


class SegmentWidget(QWidget):
    """Dock widget: image, model, structures, prompts, propagate, auto, lock, undo, save/load."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, models: ModelProvider | None = None) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.models = models or ModelProvider(threads=default_threads())
        self.bindings: dict[int, pl.Binding] = {}
        self._specs = default_structures()  # before a session starts
        self._busy = False
        self._pending: set[tuple[str, int, int]] = set()
        self._removing: set[tuple[str, int, int]] = set()
        self._syncing = False
        self._selected: Any = None  # the image layer chosen (followed through renames)
        self._ready_at: tuple[int, int] | None = None  # the (t, z) the status line calls ready
        self.ui = build_segment_ui(self, adapter_names())
        self._connect()
        for layer in self.viewer.layers:
            layer.events.name.connect(self._refresh_images)
        self._refresh_images()
        self._show_structures()

    # -- wiring ------------------------------------------------------------------------
    def _connect(self) -> None:
        u = self.ui
        u.start.clicked.connect(self.start_session)
        u.adapter_browse.clicked.connect(self._browse_adapter)
        u.image.currentIndexChanged.connect(lambda *_: self._on_image_changed())
        u.structures.itemSelectionChanged.connect(self._on_structure_selected)
        u.add_structure.clicked.connect(self._on_add_structure)
        u.lock.clicked.connect(lambda: self.run_now(lambda c: c.toggle_lock(), sync=False))
        u.negative.toggled.connect(lambda *_: self._update_prompt_defaults())
        u.click_tool.clicked.connect(lambda: self._select_tool("points"))
        u.box_tool.clicked.connect(lambda: self._select_tool("shapes"))
        u.propagate.clicked.connect(self.propagate)
        u.auto.clicked.connect(self.auto)
        u.undo.clicked.connect(self.undo)
        u.redo.clicked.connect(self.redo)
        u.save.clicked.connect(lambda: self._ask_path(save=True))
        u.load.clicked.connect(lambda: self._ask_path(save=False))
        self.viewer.layers.events.inserted.connect(self._on_layer_inserted)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self.viewer.dims.events.current_step.connect(self._on_step)
        for key, fn in (("Control-z", self.undo), ("Control-Shift-z", self.redo), ("Control-y", self.redo)):
            self.viewer.bind_key(key, lambda _v, f=fn: f(), overwrite=True)

    # -- properties --------------------------------------------------------------------
    @property
    def binding(self) -> pl.Binding | None:
        layer = self._image_layer()
        return self.bindings.get(id(layer)) if layer is not None else None

    @property
    def controller(self) -> SegmentController | None:
        b = self.binding
        return b.controller if b is not None else None

    @property
    def busy(self) -> bool:
        return self._busy

    def _live_binding(self) -> pl.Binding | None:
        """The binding, when its label layer still holds the session's buffer; else None and a
        status line (its data was replaced, e.g. from the console: the session no longer sees it)."""
        b = self.binding
        if b is None:
            return None
        data = b.labels.data
        if not (isinstance(data, np.ndarray) and np.may_share_memory(data, b.controller.labels) and data.size == b.controller.labels.size):
            self.status(f"The data of '{b.labels.name}' was replaced (not painted into): the session no longer sees it. "
                        "Restart the session to segment this image again.", error=True)
            return None
        return b

    def _image_layer(self) -> Any:
        name = self.ui.image.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def status(self, text: str, error: bool = False) -> None:
        self._ready_at = None
        self.ui.status.setText(text)
        self.ui.status.setStyleSheet("color: #ff6b6b;" if error else "")
        if error:  # also a napari notification: seen with the dock scrolled away or closed
            # raised once the current event is over: a toast raised inside napari's layer events
            # (a layer being removed) repaints the canvas while the layer's visual is torn down,
            # which crashed the process in vispy
            QTimer.singleShot(0, lambda: _notify(f"medseg: {text}"))

    # -- images and sessions -------------------------------------------------------------
    def _refresh_images(self, *_: Any) -> None:
        names = [ly.name for ly in self._images()]
        current = self.ui.image.currentText()
        if self._selected is not None and self._selected in self.viewer.layers:
            current = self._selected.name  # renamed: still the image being segmented
        self.ui.image.blockSignals(True)
        self.ui.image.clear()
        self.ui.image.addItems(names)
        if current in names:
            self.ui.image.setCurrentText(current)
        self.ui.image.blockSignals(False)
        self._on_image_changed()

    def _on_layer_inserted(self, event: Any) -> None:
        event.value.events.name.connect(self._refresh_images)
        self._refresh_images()
        images = self._images()
        if event.value in images:  # a study placed apart from the others is drawn nowhere near them: say so
            note = _view.outside_note(event.value, images)
            if note:
                self.status(note, error=True)

    def _images(self) -> list[Any]:
        from napari.layers import Image

        return [ly for ly in self.viewer.layers if isinstance(ly, Image) and not ly.rgb and 2 <= ly.ndim <= 4]

    def _on_layer_removed(self, event: Any) -> None:
        gone = event.value
        for key, b in list(self.bindings.items()):
            if gone is b.image or gone is b.labels:
                del self.bindings[key]
                for layer in (b.points, b.shapes, b.labels):  # the session's other layers go with it
                    if layer is not gone and layer in self.viewer.layers:
                        self.viewer.layers.remove(layer)
                what = "image" if gone is b.image else "labels"
                self.status(f"Session on {b.image.name} closed: its {what} layer was removed.", error=True)
        pl.flush_canvas(self.viewer)
        self._refresh_images()

    def _on_image_changed(self) -> None:
        before, self._selected = self._selected, self._image_layer()
        if self._selected is not None and before is not None and self._selected is not before:
            self._bring_into_view(self._selected)
        b = self.binding
        self.ui.start.setText("Restart session (clears labels)" if b else "Start session")
        self._show_structures()
        self._set_enabled()
        if b is not None:
            self._update_prompt_defaults()

    def _bring_into_view(self, image: Any) -> None:
        """The study chosen lies apart from what the viewer shows: move the sliders and camera to it."""
        if _view.in_view(self.viewer, image):
            return
        _view.show_layer(self.viewer, image)
        self.status(f"Showing '{image.name}', which lies apart from the other studies: choose one under Image to go back.")

    def _browse_adapter(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self, "Adapter folder (written by medseg adapt)")
        if folder:
            self.set_adapter(folder)

    def set_adapter(self, name_or_folder: str) -> None:
        """Use this adapter (a shipped name or an adapter folder) at the next session start."""
        self.ui.adapter.setEditText(str(name_or_folder))

    def start_session(self) -> None:
        """Load the model (worker), then add the label + prompt layers and start a session."""
        image = self._image_layer()
        if image is None:
            self.status("Open an image first (File > Open, or File > Open Sample > medseg).", error=True)
            return
        model, device = self.ui.model.currentText().strip() or "default", self.ui.device.currentText()
        adapter = self.ui.adapter.currentText().strip()
        adapter = None if adapter in ("", "none") else adapter
        self.status(f"Loading model {model} on {device}…")
        self._run_job(lambda: self.models.get(model, device, adapter), desc="medseg: loading model",
                      on_done=lambda loaded: self._bind(image, loaded))

    def _bind(self, image: Any, loaded: Any) -> None:
        old = self.bindings.get(id(image))
        specs = list(old.controller.structures.values()) if old else list(self._specs)
        volume = volume_for_layer(image.data, image.scale, image.translate, image.metadata)
        buffer = _zeros_like_labels(volume.shape, max(s.value for s in specs))
        try:
            ctl = SegmentController(volume, buffer, loaded, specs, source=image.metadata.get(META_SOURCE))
        except MedsegError as e:  # e.g. an image without signal: say so, keep what was there
            self.status(str(e), error=True)
            return
        self.bindings.pop(id(image), None)
        for layer in (old.labels, old.points, old.shapes) if old else ():
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        colours = {s.name: s.colour for s in specs}
        labels = pl.add_label_layer(self.viewer, image, volume, buffer, colours, ctl.label_map)
        points, shapes = pl.add_prompt_layers(self.viewer, image)
        b = pl.Binding(image, labels, points, shapes, ctl)
        self.bindings[id(image)] = b
        points.events.data.connect(self._on_points_data)
        shapes.events.data.connect(self._on_shapes_data)
        labels.events.paint.connect(self._on_paint)
        points.mouse_drag_callbacks.insert(0, self._on_point_press)
        for layer in (points, shapes):
            layer.bind_key("n", lambda _l: self.ui.negative.toggle(), overwrite=True)
        for i in range(1, 10):
            for layer in (points, shapes, labels):
                layer.bind_key(str(i), lambda _l, i=i: self._select_row(i - 1), overwrite=True)
        if image.ndim == self.viewer.dims.ndim:
            self.viewer.dims.axis_labels = ("frame", "slice", "y", "x")[4 - image.ndim:]
        self._on_image_changed()
        self._select_tool("points")
        self.status(f"Session started on '{image.name}' with {loaded.model_id}"
                    f"{' + ' + loaded.adapter_id if loaded.adapter_id else ''}: click or draw a box.")
        self._on_step()

    # -- structures ----------------------------------------------------------------------
    def _specs_now(self) -> list[Any]:
        c = self.controller
        return list(c.structures.values()) if c else self._specs

    def _show_structures(self) -> None:
        c = self.controller
        locked = {n for n in c.structures if c.is_locked(n)} if c else set()
        active = c.active if c else None
        fill_structure_table(self.ui.structures, self._specs_now(), locked, active)

    def _select_row(self, row: int) -> None:
        if 0 <= row < self.ui.structures.rowCount():
            self.ui.structures.selectRow(row)

    def select_structure(self, name: str) -> bool:
        """Make ``name`` the active structure (its row selected); False if it is not listed."""
        table = self.ui.structures
        rows = [r for r in range(table.rowCount()) if table.item(r, 0) is not None and table.item(r, 0).text() == name]
        if rows:
            table.selectRow(rows[0])
        return bool(rows)

    def _on_structure_selected(self) -> None:
        rows = self.ui.structures.selectionModel().selectedRows()
        c = self.controller
        if not rows or c is None:
            return
        name = self.ui.structures.item(rows[0].row(), 0).text()
        c.set_active(name)
        self._update_prompt_defaults()
        self.ui.lock.setText(f"Unlock {name.upper()}" if c.is_locked(name) else f"Accept (lock) {name.upper()}")

    def _on_add_structure(self) -> None:
        name, value = self.ui.custom_name.text(), self.ui.custom_value.value() or None
        try:
            c = self.controller
            if c is not None:
                c.add_structure(name, value)
                b = self.binding
                pl.set_label_colours(b.labels, c.label_map, {s.name: s.colour for s in c.structures.values()})
            else:
                self._specs.append(new_structure(self._specs, name, value))
        except ValueError as e:
            self.status(str(e), error=True)
            return
        self.ui.custom_name.clear()
        self._show_structures()

    def _update_prompt_defaults(self) -> None:
        b = self.binding
        if b is None:
            return
        c = b.controller
        pl.set_prompt_defaults(b, c.active, not self.ui.negative.isChecked(), c.spec().colour)
        b.labels.selected_label = c.spec().value

    def _select_tool(self, which: str) -> None:
        b = self.binding
        if b is None:
            return
        layer = b.points if which == "points" else b.shapes
        self.viewer.layers.selection.active = layer
        layer.mode = "add" if which == "points" else "add_rectangle"

    def _on_point_press(self, layer: Any, event: Any) -> None:
        """Shift+click = negative (the toggle inverts it); set before napari adds the point."""
        if layer.mode == "add":
            negative = ("Shift" in event.modifiers) != self.ui.negative.isChecked()
            feats = layer.feature_defaults
            feats["positive"] = not negative
            layer.feature_defaults = feats

    # -- prompt events -------------------------------------------------------------------
    def _on_points_data(self, event: Any) -> None:
        self._on_prompt_event(event, pl.keys_of_points)

    def _on_shapes_data(self, event: Any) -> None:
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

    def _on_prompt_event(self, event: Any, keys: Callable[[pl.Binding, Any], set]) -> None:
        if self._syncing:
            return
        b = self._owner(getattr(event, "source", None)) or self.binding
        if b is None:
            return
        if b is not self.binding:  # a prompt on another study's layer: that study's session takes it
            if self._busy:
                if str(event.action) in ("added", "changed", "removed"):
                    self.status(f"The prompt on '{b.image.name}' was not applied: wait for the running operation "
                                f"on '{self.ui.image.currentText()}' to finish.", error=True)
                    QTimer.singleShot(0, lambda b=b: self._resync(b))
                return
            self.ui.image.setCurrentText(b.image.name)  # the widget follows the study prompted
        action = str(event.action)
        if action == "removing":
            self._removing |= keys(b, event.data_indices)
            return
        if action == "removed":
            affected, self._removing = self._removing, set()
        elif action in ("added", "changed"):
            affected = keys(b, event.data_indices)
        else:
            return
        self._pending |= affected
        if not self._busy:
            self._apply_pending()

    def _apply_pending(self) -> None:
        pending, self._pending = self._pending, set()
        b = self._live_binding() if pending else None
        if b is None or not pending:
            return
        c = b.controller
        try:
            for name, t, z in sorted(pending):
                if c.is_locked(name):
                    raise ValueError(f"{name.upper()} is locked (accepted): unlock it to change it")
                box, points = pl.layer_prompts(b, name, t, z)
                c.prompt(name, t, z, box, points)
            self.status(f"{name.upper()} on frame {t}, slice {z}: prompt applied.")  # an earlier error line is stale now
        except ValueError as e:  # MedsegError is a ValueError
            self.status(str(e), error=True)
            self._sync_prompts()
        self._after_change()

    # -- operations ----------------------------------------------------------------------
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

    def undo(self) -> None:
        self.run_now(lambda c: c.undo())

    def redo(self) -> None:
        self.run_now(lambda c: c.redo())

    def propagate(self) -> None:
        if self._busy:
            return
        b = self._live_binding()
        if b is None:
            return
        t, z = b.current_index(self.viewer)
        through = self.ui.through.currentText()
        c = b.controller
        total = {"slices": c.volume.n_slices, "frames": c.volume.n_frames}.get(through, c.volume.n_slices * c.volume.n_frames)
        name = c.active.upper()
        self._run_job(run_with_progress, c.propagate, t, z, through, desc=f"medseg: propagating {name}",
                      total=total, on_done=lambda ch: self._job_done(f"Propagated {name} through {through}: "
                                                                      f"{len(ch.regions)} slices changed." + _removed(ch), b, "propagation"))

    def auto(self) -> None:
        if self._busy:
            return
        b = self._live_binding()
        if b is None:
            return
        c = b.controller
        frames = None if self.ui.auto_frames.currentText() == "all frames" else [b.current_index(self.viewer)[0]]
        total = (len(frames) if frames else c.volume.n_frames) * c.volume.n_slices
        try:
            names = c.auto_structures()
        except ValueError as e:
            self.status(str(e), error=True)
            return
        self._run_job(run_with_progress, c.auto, frames, names, desc="medseg: automatic segmentation", total=total,
                      on_done=lambda ch: self._job_done(f"Automatic pass ({', '.join(names)}): {len(ch.regions)} slices changed."
                                                        + _removed(ch), b, "automatic pass"))

    def save(self, path: str | Path) -> list[Path]:
        c = self.controller
        if c is None:
            raise RuntimeError("no session to save")
        if self._live_binding() is None:
            raise ValueError(self.ui.status.text())
        if not c.labels.any():
            raise ValueError("nothing to save yet: no structure is labelled")
        files = c.save(path)
        self.status("Saved " + ", ".join(p.name for p in files))
        return files

    def load_session(self, path: str | Path) -> None:
        c = self.controller
        if c is None:
            self.status("Start a session on the image first, then load the saved session.", error=True)
            return
        b = self.binding
        self._run_job(run_with_progress, c.load_session, path, desc="medseg: replaying session", total=0,
                      on_done=lambda warns: self._loaded(warns, b))

    def _loaded(self, warns: list[str], b: pl.Binding) -> None:
        if not any(x is b for x in self.bindings.values()):
            self._job_done("", b, "replay")
            return
        pl.set_label_colours(b.labels, b.controller.label_map, {s.name: s.colour for s in b.controller.structures.values()})
        self._job_done("Session replayed." + (" " + " ".join(warns) if warns else ""), b, "replay")
        self._show_structures()

    def _ask_path(self, save: bool) -> None:
        if self.controller is None:
            self.status("Start a session first.", error=True)
            return
        if save:
            path, _ = QFileDialog.getSaveFileName(self, "Save labels", "labels.nii.gz", "NIfTI (*.nii.gz *.nii);;DICOM SEG (*.dcm)")
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Load session", "", "medseg session (*.json)")
        if not path:
            return
        try:
            self.save(path) if save else self.load_session(path)
        except ValueError as e:
            self.status(str(e), error=True)

    # -- slices and embeddings -----------------------------------------------------------
    def _on_step(self, *_: Any) -> None:
        b = self.binding
        if b is None or self._busy:
            return
        t, z = b.current_index(self.viewer)
        if b.controller.needs_embedding(t, z):
            self._run_job(b.controller.embed, t, z, desc=f"medseg: embedding frame {t}, slice {z}",
                          on_done=lambda tz, b=b: self._embedded(b, tz))
        elif self._ready_at is not None and self._ready_at != (t, z):  # "ready" follows the slice shown
            self._say_ready(t, z)

    def _embedded(self, b: pl.Binding, tz: tuple[int, int]) -> None:
        """An embedding is in: "ready" when the viewer still shows that slice; else the slice
        shown is dealt with when the job ends (:meth:`_job_finished` calls :meth:`_on_step`)."""
        if b is self.binding and b.current_index(self.viewer) == tuple(tz):
            self._say_ready(*tz)

    def _say_ready(self, t: int, z: int) -> None:
        self.status(f"Frame {t}, slice {z} ready: prompt away.")
        self._ready_at = (t, z)

    # -- workers -------------------------------------------------------------------------
    def run_job(self, fn: Callable, *args: Any, desc: str, on_done: Callable[[Any], None], total: int = 0) -> bool:
        """Run ``fn(*args)`` in a worker as one of this widget's operations (for another dock
        working on the session, e.g. the review): prompts wait until it ends, the layers are
        refreshed after it. False (nothing started) while another operation runs."""
        if self._busy or self.controller is None:
            return False
        self._run_job(fn, *args, desc=desc, on_done=on_done, total=total)
        return True

    def _run_job(self, fn: Callable, *args: Any, desc: str, on_done: Callable[[Any], None], total: int = 0) -> None:
        from napari.qt.threading import create_worker

        self._set_busy(True)
        progress: Any = {"desc": desc, "total": total} if total else {"desc": desc}
        worker = create_worker(fn, *args, _progress=progress, _ignore_errors=True)
        worker.returned.connect(on_done)
        worker.errored.connect(lambda e: self.status(f"{type(e).__name__}: {e}", error=True))
        worker.finished.connect(self._job_finished)
        self._worker = worker
        worker.start()

    def _job_finished(self) -> None:
        self._worker = None
        self._set_busy(False)
        self._after_change()
        self._apply_pending()
        self._on_step()  # the slice may have changed meanwhile

    def _job_done(self, message: str, binding: pl.Binding | None = None, what: str = "operation") -> None:
        """A worker's result is in: say so, unless the session it ran on was closed meanwhile
        (its image or labels layer removed): then its result is discarded, and said so."""
        if binding is not None and not any(b is binding for b in self.bindings.values()):
            self.status(f"Session on {binding.image.name} closed: the result of its {what} was discarded.", error=True)
            return
        self._sync_prompts()
        self.status(message)

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        b = self.binding
        if b is not None:
            b.labels.editable = not busy  # no painting while a worker writes the buffer
        self._set_enabled()

    def _set_enabled(self) -> None:
        on = self.binding is not None and not self._busy
        u = self.ui
        for w in (u.propagate, u.auto, u.undo, u.redo, u.lock, u.save, u.load, u.click_tool, u.box_tool):
            w.setEnabled(on)
        c = self.controller
        if on and c is not None and c.volume.n_slices * c.volume.n_frames == 1:  # one 2-D image: nothing to propagate to
            u.propagate.setEnabled(False)
        u.start.setEnabled(not self._busy)

    def _on_paint(self, *_: Any) -> None:
        """A brush stroke, eraser or fill on the label layer: into the provenance (an ``edit``
        action; :meth:`SegmentController.record_edits`), so a save has it. napari announces the
        stroke before it writes the pixels: recorded once this event is over."""
        if self.controller is not None:
            self.controller.mark_painted()
        QTimer.singleShot(0, self._record_paint)

    def _record_paint(self) -> None:
        if not self._busy and self.binding is not None:
            self._after_change()

    # -- refresh (main thread only) ------------------------------------------------------
    def _after_change(self) -> None:
        b = self.binding
        if b is None:
            return
        b.labels.refresh(extent=False)
        b.labels.metadata[META_PROVENANCE] = b.controller.provenance()
        c = b.controller
        self.ui.undo.setEnabled(c.session.can_undo and not self._busy)
        self.ui.redo.setEnabled(c.session.can_redo and not self._busy)

    def _resync(self, b: pl.Binding) -> None:
        """Redraw a (not shown) session's prompt layers from its session."""
        if any(x is b for x in self.bindings.values()) and b is not self.binding:
            self._syncing = True
            try:
                pl.sync_prompt_layers(b, b.controller.prompt_records(), {s.name: s.colour for s in b.controller.structures.values()})
            finally:
                self._syncing = False

    def _sync_prompts(self) -> None:
        b = self.binding
        if b is None:
            return
        self._syncing = True
        try:
            colours = {s.name: s.colour for s in b.controller.structures.values()}
            pl.sync_prompt_layers(b, b.controller.prompt_records(), colours)
        finally:
            self._syncing = False
        self._update_prompt_defaults()


def _notify(text: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(text)


def _zeros_like_labels(shape: tuple[int, ...], max_value: int) -> Any:
    import numpy as np

    return np.zeros(shape, dtype=np.uint8 if max_value < 256 else np.uint16)


def _removed(change: Any) -> str:
    """Status-line suffix naming the slices the LV rule / RV end check removed in this step."""
    text = change.removed_text()
    return f" {text}." if text else ""
