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
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QWidget

from medseg.errors import MedsegError

from .. import _view
from .._controller import ModelProvider, SegmentController, adapter_names, default_structures, default_threads, new_structure
from .._layers import META_PROVENANCE, META_SOURCE, META_WRITES, MODALITY_CHOICES, MODALITY_FROM_IMAGE, layer_modality, volume_for_layer, with_modality
from .._propagation_choices import choice_after, propagation_choices
from . import _prompt_layers as pl
from ._keyboard import FocusKeeper, add_undo_shortcuts, error_style
from ._segment_close import close_line, restarting
from ._segment_files import SessionFilesMixin
from ._segment_operations import OperationsMixin
from ._segment_prompts import PromptEventsMixin
from ._segment_ui import build_segment_ui, fill_structure_table, set_choices
from ._segment_view import SliceViewMixin
from ._workers import start_worker

if TYPE_CHECKING:
    import napari


class SegmentWidget(PromptEventsMixin, SliceViewMixin, OperationsMixin, SessionFilesMixin, QWidget):
    """Dock widget: image, model, structures, prompts, propagate, auto, lock, undo, save/load."""

    # prompt events, the slice shown (and views showing none), operations (propagate, auto, undo)
    # and save/load come from the mixins: _segment_prompts, _segment_view, _segment_operations, _segment_files

    def __init__(self, napari_viewer: napari.viewer.Viewer, models: ModelProvider | None = None) -> None:
        super().__init__()
        self.viewer = _view.unwrapped(napari_viewer)  # Plugins menu: napari's proxy, whose layers are new objects at each look-up
        self.models = models or ModelProvider(threads=default_threads())
        self.bindings: dict[int, pl.Binding] = {}
        self._specs = default_structures()  # before a session starts
        self._default_rows = True  # _specs untouched: a save cuts their map to what was segmented
        self._busy = False
        self._pending: set[tuple[str, int, int]] = set()
        self._pending_owner: pl.Binding | None = None  # the session those prompts were placed on
        self._removing: set[tuple[str, int, int]] = set()
        self._syncing = False
        self._selected: Any = None  # the image layer chosen (followed through renames)
        self._status_error = False  # the status line is a warning (red)
        self._ready_at: tuple[int, int] | None = None  # the (t, z) the status line calls ready
        self._cancel: Any = None  # the running job's cancel flag (threading.Event), if it can be cancelled
        self._cancel_what = ""
        self._cancel_unit = "slice"
        self.ui = build_segment_ui(self, adapter_names())
        self._focus = FocusKeeper(self, self.ui.cancel, {self.ui.start: self.ui.structures}, rest=self.ui.structures)  # see _keyboard
        self._connect()
        for layer in self.viewer.layers:
            layer.events.name.connect(self._refresh_images)
        self._refresh_images()
        self._show_structures()
        if self._images():  # opened after File > Open Sample: "Open an image, then Start session" was wrong
            self.status(f"'{self.ui.image.currentText()}': Start session to segment it.")

    # -- wiring ------------------------------------------------------------------------
    def _connect(self) -> None:
        u = self.ui
        u.start.clicked.connect(self.start_session)
        u.adapter_browse.clicked.connect(self._browse_adapter)
        u.image.currentIndexChanged.connect(lambda *_: self._on_image_changed())
        u.structures.itemSelectionChanged.connect(self._on_structure_selected)
        u.add_structure.clicked.connect(self._on_add_structure)
        u.lock.clicked.connect(self.toggle_lock)
        u.negative.toggled.connect(lambda *_: self._update_prompt_defaults())
        u.click_tool.clicked.connect(lambda: self._select_tool("points"))
        u.box_tool.clicked.connect(lambda: self._select_tool("shapes"))
        u.propagate.clicked.connect(self.propagate)
        u.cancel.clicked.connect(self.cancel)
        u.auto.clicked.connect(self.auto)
        u.undo.clicked.connect(self.undo)
        u.redo.clicked.connect(self.redo)
        add_undo_shortcuts(self, self.undo, self.redo)  # in the dock too, not only on the canvas
        u.save.clicked.connect(lambda: self._ask_path(save=True))
        u.load.clicked.connect(lambda: self._ask_path(save=False))
        self.viewer.layers.events.inserted.connect(self._on_layer_inserted)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self._connect_view()  # the sliders and the displayed axes
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
        self._ready_at, self._status_error = None, error
        self.ui.status.setText(text)
        self.ui.status.setStyleSheet(error_style(self.viewer, error))  # readable on the light theme too
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
            elif self.binding is None:  # an earlier "Open an image first" (in red) is stale now
                shown = self.ui.image.currentText()
                self.status(f"'{shown}': Start session to segment it." if shown == event.value.name else
                            f"'{event.value.name}' opened: choose it under Image, then Start session.")

    def _images(self) -> list[Any]:
        from napari.layers import Image

        return [ly for ly in self.viewer.layers if isinstance(ly, Image) and not ly.rgb and 2 <= ly.ndim <= 4]

    def _on_layer_removed(self, event: Any) -> None:
        gone = event.value
        for key, b in list(self.bindings.items()):
            if gone is b.image or gone is b.labels:
                self._close_binding(key)  # (its running propagation, pass or replay stops)
                for layer in (b.points, b.shapes, b.labels):  # the session's other layers go with it
                    if layer is not gone and layer in self.viewer.layers:
                        self.viewer.layers.remove(layer)
                self.status(*close_line(b, gone))  # a warning (red, notified) only for labels lost unsaved
        pl.flush_canvas(self.viewer)
        self._refresh_images()

    def _on_image_changed(self) -> None:
        before, self._selected = self._selected, self._image_layer()
        b = self.binding
        if self._selected is not None and before is not None and self._selected is not before:
            self._bring_into_view(self._selected, chosen=before in self.viewer.layers)
            self._follow_prompt_layer(b)  # the next click goes to the study chosen
        own = layer_modality(self._selected.metadata) if self._selected is not None else "OT"
        self.ui.modality.setItemText(0, f"{MODALITY_FROM_IMAGE} ({own})")  # what "the image's" is, for this image
        self.ui.start.setText("Restart session (clears labels)" if b else "Start session")
        self._show_structures()
        self._set_enabled()
        if b is not None:
            self._update_prompt_defaults()

    def _bring_into_view(self, image: Any, chosen: bool = True) -> None:
        """The study chosen lies apart from what the viewer shows: move the sliders and camera to
        it; one drawn under another image: say so. ``chosen``: picked by the user (not left
        selected by a removal, whose status line stays)."""
        notes = []
        if not _view.in_view(self.viewer, image):
            _view.show_layer(self.viewer, image)
            notes.append(f"Showing '{image.name}', which lies apart from the other studies: the view moved to it.")
        notes.append(self._covered_note(image))
        if any(notes):
            self.status(" ".join(n for n in notes if n))
        elif chosen:  # the line about the study chosen before is stale now
            b = self.bindings.get(id(image))
            self.status(f"'{image.name}': {'its session goes on' if b else 'Start session to segment it'}.")

    def _covered_note(self, image: Any) -> str:
        """A line when other images drawn over ``image`` hide it (ACDC's ED and ES frames opened
        together: the ES frame showed while the ED session took the prompts), else ""."""
        layers = list(self.viewer.layers)
        above = [ly for ly in self._images() if layers.index(ly) > layers.index(image)] if image in layers else []
        return _view.covered_note(image, above) or ""

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
        volume = with_modality(volume_for_layer(image.data, image.scale, image.translate, image.metadata), MODALITY_CHOICES[self.ui.modality.currentIndex()])
        buffer = _zeros_like_labels(volume.shape, max(s.value for s in specs))
        try:
            ctl = SegmentController(volume, buffer, loaded, specs, source=image.metadata.get(META_SOURCE),
                                    default_rows=old.controller.default_rows if old else self._default_rows)
        except MedsegError as e:  # e.g. an image without signal: say so, keep what was there
            self.status(str(e), error=True)
            return
        self.bindings.pop(id(image), None)
        for layer in restarting(old) if old else ():  # (a measurement of its labels running says it restarted)
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        colours = {s.name: s.colour for s in specs}
        labels = pl.add_label_layer(self.viewer, image, volume, buffer, colours, ctl.label_map)
        ctl.mark_rows(labels.metadata)
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
        self._update_lock_text()

    def _update_lock_text(self) -> None:
        """The lock button names the active structure (it read a bare "Accept (lock)" until a row was clicked)."""
        c = self.controller
        if c is None:
            self.ui.lock.setText("Accept (lock)")
        else:
            self.ui.lock.setText(f"{'Unlock' if c.is_locked(c.active) else 'Accept (lock)'} {c.active.upper()}")

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
        self._update_lock_text()

    def _on_add_structure(self) -> None:
        name, value = self.ui.custom_name.text(), self.ui.custom_value.value() or None
        try:
            c = self.controller
            if c is not None:
                spec = c.add_structure(name, value)
                pl.set_label_colours(self.binding.labels, c.label_map, {s.name: s.colour for s in c.structures.values()})
                c.mark_rows(self.binding.labels.metadata)
            else:
                self._specs.append(spec := new_structure(self._specs, name, value))
                self._default_rows = False
        except ValueError as e:
            self.status(str(e), error=True)
            return
        self.ui.custom_name.clear()
        self._show_structures()
        self.status(f"Added {spec.name.upper()} with label {spec.value}: choose it in the structures table to segment it.")  # said in words

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

    # -- slices and embeddings: _segment_view (SliceViewMixin)

    # -- workers -------------------------------------------------------------------------
    def run_job(self, fn: Callable, *args: Any, desc: str, on_done: Callable[[Any], None], total: int = 0,
                cancel: str | None = None) -> bool:
        """Run ``fn(*args)`` in a worker as one of this widget's operations (for another dock
        working on the session, e.g. the review): prompts wait until it ends, the layers are
        refreshed after it. False (nothing started) while another operation runs. ``cancel``
        (the job's name, e.g. "The check"): ``fn`` also gets ``cancel=`` the flag the Cancel
        button sets (:func:`medseg_napari._controller.run_with_progress` takes it)."""
        if self._busy or self.controller is None:
            return False
        extra = {"cancel": self._cancellable(cancel)} if cancel else {}
        self._run_job(fn, *args, desc=desc, on_done=on_done, total=total, **extra)
        return True

    def _run_job(self, fn: Callable, *args: Any, desc: str, on_done: Callable[[Any], None], total: int = 0, **kwargs: Any) -> None:
        self._set_busy(True)
        progress: Any = {"desc": desc, "total": total} if total else {"desc": desc}
        # napari keeps every worker for the viewer's life: this one forgets its job (the session) when done
        self._worker = start_worker(fn, *args, progress=progress, on_done=on_done, on_error=self._job_failed,
                                    on_finished=self._job_finished, **kwargs)

    def _job_finished(self) -> None:
        told = self._cancel is not None  # an operation with a line of its own (not an embedding or a model load)
        self._worker = None
        self._cancel = None
        self._set_busy(False)
        self._after_change()
        self._apply_pending(after_job=told)  # the prompts placed meanwhile (their layers kept them: _pending_of)
        self._on_step()  # the slice may have changed meanwhile

    def _job_done(self, message: str, binding: pl.Binding | None = None, what: str = "operation") -> None:
        """A worker's result is in: say so, unless the session it ran on was closed meanwhile
        (its image or labels layer removed): then its result is discarded, and said so."""
        if binding is not None and not any(b is binding for b in self.bindings.values()):
            if self._status_error:  # the close's warning (labels lost unsaved) stays
                self._append_status(f"The result of its {what} was discarded.")
            else:
                self.status(f"Session on {binding.image.name} closed: the result of its {what} was discarded.", error=True)
            return
        self._sync_prompts()
        self.status(message)

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        for b in self.bindings.values():  # no painting while a worker writes; every study's (the one shown may change meanwhile)
            b.labels.editable = not busy
        self._focus.around(busy, self._set_enabled)  # a greyed button's focus: onto Cancel, and back

    def _set_enabled(self) -> None:
        on = self.binding is not None and not self._busy
        u = self.ui
        for w in (u.propagate, u.auto, u.lock, u.save, u.load, u.click_tool, u.box_tool):
            w.setEnabled(on)
        c = self.controller
        # as the session's history allows (a layer added or renamed turned Redo on with nothing to redo)
        u.undo.setEnabled(on and c.session.can_undo)
        u.redo.setEnabled(on and c.session.can_redo)
        if c is not None:  # directions with nothing to reach greyed (one 2-D image: none, Propagate off)
            allowed = propagation_choices(c.volume.n_frames, c.volume.n_slices)
            set_choices(u.through, allowed, choice_after(u.through.currentText(), allowed))
            u.propagate.setEnabled(on and bool(allowed))
        u.start.setEnabled(not self._busy)
        u.cancel.setEnabled(self._busy and self._cancel is not None and not self._cancel.is_set())

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
        b.labels.metadata[META_WRITES] = b.labels.metadata.get(META_WRITES, 0) + 1  # (before the refresh's set_data)
        b.labels.refresh(extent=False)
        b.labels.metadata[META_PROVENANCE] = b.controller.provenance()
        b.controller.mark_rows(b.labels.metadata)  # cleared once rows are added or a session loaded
        self._set_enabled()

    def _resync(self, b: pl.Binding) -> None:
        """Redraw a (not shown) session's prompt layers from its session."""
        if any(x is b for x in self.bindings.values()) and b is not self.binding:
            self._syncing = True
            try:
                pl.sync_prompt_layers(b, b.controller.prompt_records(), {s.name: s.colour for s in b.controller.structures.values()},
                                      self._pending_of(b))
            finally:
                self._syncing = False

    def _sync_prompts(self) -> None:
        b = self.binding
        if b is None:
            return
        self._syncing = True
        try:
            colours = {s.name: s.colour for s in b.controller.structures.values()}
            pl.sync_prompt_layers(b, b.controller.prompt_records(), colours, self._pending_of(b))  # prompts waiting stay
        finally:
            self._syncing = False
        self._update_prompt_defaults()


def _notify(text: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(text)


def _zeros_like_labels(shape: tuple[int, ...], max_value: int) -> Any:
    return np.zeros(shape, dtype=np.uint8 if max_value < 256 else np.uint16)
