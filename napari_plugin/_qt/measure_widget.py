"""Measurement dock widget: a thin Qt face over :mod:`medseg_napari._measure`.

Pick the label layer (a cine, or the ED phase) and optionally an ES label layer, enter
height / weight / heart rate for BSA-indexed values and cardiac output, press Measure. The
table shows EDV, ESV, SV, EF, LV mass (+ indices), wall thickness per AHA segment and the QC
flags; the plots are the volume curve and the AHA bullseye. Export writes CSV or JSON; Save study
page the one-page A4 PDF of ``medseg measure --pdf`` (:mod:`medseg_napari._qt._measure_pdf`).
Labels whose image records no pixel size (PNG, video) take one in *Pixel size*
(:mod:`medseg_napari._pixel_size`): volumes in mL, kept by labels saved afterwards.
The measurement runs in a worker on a copy of the labels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from medseg.errors import MedsegError
from medseg.io.volume import GIVEN_SPACING, Volume
from medseg.labels import LabelMap

from .. import _measure as m
from .. import _pixel_size as px
from .._layers import META_LABEL_MAP, META_VOLUME, as_4d, in_layer_map, label_colour_dict, label_features, label_map_for_layer, volume_for_layer
from .._messages import error_line
from .._view import unwrapped
from . import _measure_drop as drop
from ._docking import join_medseg_docks
from ._keyboard import error_style
from ._measure_export import ExportMixin
from ._measure_fields import unit_spin
from ._measure_pdf import StudyPageMixin
from ._measure_stale import StaleMixin

if TYPE_CHECKING:
    import napari

NONE = "(none)"
EMPTY_PLOT_PX = 120  # the canvas height before anything is measured
#: What was measured, for the status line (:func:`medseg_napari._measure.measure_labels`'s modes).
MODES = {"cine": "cine (ED/ES from the volume curve)", "ed_es": "ED + ES layers", "phase": "one phase",
         "echo": "apical view, ED + ES layers (method of disks)", "echo_clip": "apical view over the cycle (method of disks, single plane)"}


BASAL_TIP = ("Untick for labels that are not a short-axis stack (axial CT): every LV slice counts, "
             "as medseg measure --no-basal-rule (flagged basal_rule_off)")
BASAL_OFF_TIP = "Short-axis stacks only: these labels are one 2-D view (apical echo, long axis), measured by the method of disks"


class MeasureWidget(ExportMixin, StudyPageMixin, StaleMixin, QWidget):
    """Dock widget: clinical measurements of the current labels."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = unwrapped(napari_viewer)  # Plugins menu: napari's proxy (see medseg_napari._view.unwrapped)
        self.report: dict[str, Any] | None = None
        self._run = 0  # the measurement whose result may be shown (a later one, or a cleared panel, drops it)
        self._inflight: set[int] = set()  # the measurements whose workers have not finished
        self._note = ""  # what the status line adds to "Measured: ..."
        self._unlabelled: list[str] = []  # the label map's structures on no frame: their flags folded
        self._axial = False  # the labels measured lie on an axial stack (m.axial_note)
        self._size_for: Any = None  # the label layer the Pixel size field was set for
        self._chosen: str | None = None  # the label layer the user chose under Labels: never replaced by the automatic pick
        self._build()
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()
        for combo, cause in ((self.labels_combo, drop.LABELS), (self.es_combo, drop.ES)):  # another choice: the shown numbers are no longer its
            combo.currentTextChanged.connect(lambda *_, cause=cause: self.clear_report(cause=cause))
        self.basal_rule.toggled.connect(lambda *_: self.clear_report(cause=drop.BASAL_RULE))
        self.labels_combo.currentTextChanged.connect(lambda name: setattr(self, "_chosen", name))  # not _refresh_layers' own (blocked)
        self.labels_combo.activated.connect(lambda i: setattr(self, "_chosen", self.labels_combo.itemText(i)))  # the one shown, picked
        self.labels_combo.currentTextChanged.connect(self._show_pixel_size)
        self.pixel_size.textEdited.connect(lambda *_: self.clear_report(cause=drop.PIXEL_SIZE))
        self.labels_combo.currentTextChanged.connect(self._show_basal_rule)
        self._show_pixel_size()
        self._show_basal_rule()

    # -- layout ------------------------------------------------------------------------
    def _build(self) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        form = QFormLayout()
        self.labels_combo, self.es_combo = QComboBox(), QComboBox()
        self.height_cm, self.weight_kg, self.heart_rate = (unit_spin(0, 250, " cm"), unit_spin(0, 350, " kg"), unit_spin(0, 300, " bpm"))
        self.sex = QComboBox()
        self.sex.addItems(["–", "F", "M"])
        self.label_map = QLineEdit()
        self.label_map.setPlaceholderText("the layer's own (medseg: lv=1,myo=2,rv=3); ACDC files: lv=3,myo=2,rv=1")
        self.label_map.setToolTip("Which label value is which structure, for label layers that do not name their "
                                  "structures (opened from another tool's files)")
        form.addRow("Labels (cine or ED)", self.labels_combo)
        form.addRow("ES labels (optional)", self.es_combo)
        form.addRow("Label map", self.label_map)
        self.pixel_size = QLineEdit()  # shown for labels whose image records no pixel size (_show_pixel_size)
        self.pixel_size.setPlaceholderText("mm, row[,column]: e.g. 0.3 or 0.7,0.5 (empty: EF only)")
        self.pixel_size.setToolTip("The pixel size you know from the scanner, for an image that records none (PNG, video), "
                                   "as medseg --pixel-spacing: volumes in mL follow, and labels saved afterwards keep it")
        form.addRow("Pixel size", self.pixel_size)
        self._form = form
        for label, pair in (("Height, weight", (self.height_cm, self.weight_kg)), ("Heart rate, sex", (self.heart_rate, self.sex))):
            hw = QHBoxLayout()  # two a row: four in one squeezed the spin boxes to "172 c"
            for w in pair:
                hw.addWidget(w)
            hw.addStretch(1)
            form.addRow(label, hw)
        self.basal_rule = QCheckBox("SCMR 50% rule at the base (short axis)")
        self.basal_rule.setChecked(True)
        self.basal_rule.setToolTip(BASAL_TIP)
        form.addRow("Basal rule", self.basal_rule)
        root.addLayout(form)
        row = QHBoxLayout()
        self.measure_btn, self.export_btn = QPushButton("Measure"), QPushButton("Export CSV / JSON…")
        self.export_btn.setEnabled(False)
        self.measure_btn.setToolTip("Measure the chosen labels (ED + ES, a cine, or one phase)")
        self.export_btn.setToolTip("Write the report as JSON (all keys) or a one-row CSV")
        row.addWidget(self.measure_btn)
        row.addWidget(self.export_btn)
        row.addWidget(self._pdf_button())
        root.addLayout(row)
        self.tabs = QTabWidget()
        self.table = self._table(["Quantity", "Value", "Unit"], stretch=1)
        self.segments = self._table(["Seg", "AHA segment", "Mean mm", "Max mm", "Thickening %"], stretch=1)
        self.flags = QListWidget()
        self.flags.setWordWrap(True)
        self.flags.setSpacing(3)  # wrapped flags ran into one another
        self.tabs.addTab(self.table, "Summary")
        self.tabs.addTab(self.segments, "Wall thickness")
        self.tabs.addTab(self.flags, "Flags")
        self.figure = Figure(figsize=(5.2, 2.4), dpi=100)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(EMPTY_PLOT_PX)
        # the plots keep a readable size (plot_layout) and scroll when the dock is shorter
        self.plots = QScrollArea()
        self.plots.setWidgetResizable(True)
        self.plots.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.plots.setWidget(self.canvas)
        self.plots.installEventFilter(self)
        self._columns = 0  # plots per row of the drawn figure
        self.split = QSplitter(Qt.Orientation.Vertical)  # the user can trade table rows for plot size
        self.split.addWidget(self.tabs)
        self.split.addWidget(self.plots)
        self.split.setSizes([260, 230])
        root.addWidget(self.split, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        root.addWidget(self.status)
        self.measure_btn.clicked.connect(self.measure)
        self.export_btn.clicked.connect(self._ask_export)

    def showEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        """Shown the first time: opened from the Plugins menu beside another medseg dock, join it
        as a tab (:func:`medseg_napari._qt._docking.join_medseg_docks`), not stacked under it."""
        super().showEvent(event)
        if not getattr(self, "_docked", False):
            self._docked = True
            QTimer.singleShot(0, lambda: join_medseg_docks(self))
        self._labels_touched()  # changed while the dock was hidden behind another (a hidden layer says nothing)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        """Table beside the plots when docked wide (bottom area), above them when narrow."""
        wide = self.width() > 1.6 * self.height()
        want = Qt.Orientation.Horizontal if wide else Qt.Orientation.Vertical
        if self.split.orientation() != want:
            self.split.setOrientation(want)
            total = self.width() if wide else self.height()
            self.split.setSizes([int(total * 0.45), int(total * 0.55)])
        super().resizeEvent(event)

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 (Qt API)
        if obj is self.plots and event.type() == QEvent.Type.Resize:
            self._fit_plots()
        return super().eventFilter(obj, event)

    def _plot_width(self) -> int:
        """The canvas width, a vertical scroll bar's room kept (the layout does not flip with it)."""
        return max(1, self.plots.width() - 2 * self.plots.frameWidth() - self.plots.verticalScrollBar().sizeHint().width())

    def _fit_plots(self) -> None:
        """Size the canvas for the report's plots at the dock's width (:func:`plot_layout`) and
        redraw them when their arrangement changes (side by side, or stacked)."""
        if self.report is None:
            self.canvas.setMinimumHeight(EMPTY_PLOT_PX)
            return
        columns, height = m.plot_layout(self.report, self._plot_width())
        self.canvas.setMinimumHeight(height)
        if columns != self._columns:
            self._columns = columns
            m.draw_report(self.figure, self.report, columns)
            self.canvas.draw_idle()

    def _share_split(self) -> None:
        """Table above plots: give the plots up to 60 % of the height for a new report (never
        less than the user gave them), the table keeping the rest."""
        if self.split.orientation() != Qt.Orientation.Vertical:
            return
        table, plots = self.split.sizes()
        want = min(self.canvas.minimumHeight() + 2 * self.plots.frameWidth(), int(0.6 * (table + plots)))
        if want > plots:
            self.split.setSizes([table + plots - want, want])

    @staticmethod
    def _table(headers: list[str], stretch: int) -> QTableWidget:
        """Columns fitted to their text but column ``stretch``, which takes the width left and
        wraps a long value (an echo clip's method pushed the Unit column out of view)."""
        t = QTableWidget(0, len(headers))
        t.setHorizontalHeaderLabels(headers)
        t.verticalHeader().setVisible(False)
        t.verticalHeader().setMinimumSectionSize(20)
        t.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        t.setWordWrap(True)
        header = t.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        return t

    def _refresh_layers(self, event: Any = None) -> None:
        from napari.layers import Labels

        names = [ly.name for ly in self.viewer.layers if isinstance(ly, Labels)]
        before = (self.labels_combo.currentText(), self.es_combo.currentText())
        for combo, extra in ((self.labels_combo, []), (self.es_combo, [NONE])):
            cur = combo.currentText()
            combo.blockSignals(True)  # a rebuild with the same choice keeps the report
            combo.clear()
            combo.addItems(extra + names)
            if cur in extra + names:
                combo.setCurrentText(cur)
            combo.blockSignals(False)
        # default: the newest medseg label layer (not a hidden ground-truth layer), unless the user chose one still open
        mine = [n for n in names if n.endswith(" labels")]
        self._chosen = self._chosen if self._chosen in names else None
        picked = mine[-1] if mine and self.labels_combo.currentText() not in (*mine, self._chosen) else None
        if picked is not None:  # said below as chosen for the user (not "the labels chosen changed"); its rows shown there too
            self.labels_combo.blockSignals(True)
            self.labels_combo.setCurrentText(picked)
            self.labels_combo.blockSignals(False)
        if (self.labels_combo.currentText(), self.es_combo.currentText()) != before and hasattr(self, "table"):
            opened = getattr(event, "type", None) == "inserted" and getattr(event.value, "name", None) == picked
            self.clear_report(cause=drop.LAYERS, picked=picked, opened=opened)
        if hasattr(self, "_form"):
            self._show_pixel_size()
            self._show_basal_rule()

    # -- measuring ---------------------------------------------------------------------
    def _inputs(self) -> tuple[Any, ...]:
        name = self.labels_combo.currentText()
        if name not in self.viewer.layers:
            raise ValueError("choose a label layer to measure" if self.labels_combo.count() else  # none open: say how to make one
                             "no label layer to measure: segment an image first (Plugins > medseg > Segmentation), or open a label file")
        layer = self.viewer.layers[name]
        data = np.array(as_4d(np.asarray(layer.data)))  # a copy: the worker never sees the live buffer
        like = volume_for_layer(layer.data, layer.scale, layer.translate, layer.metadata)  # geometry only
        es = None
        es_name = self.es_combo.currentText()
        if es_name not in (NONE, "") and es_name in self.viewer.layers:
            es_layer = self.viewer.layers[es_name]
            if not np.allclose(np.asarray(es_layer.scale)[-2:], np.asarray(layer.scale)[-2:], rtol=1e-3):
                raise ValueError(f"the ES layer {es_name!r} has another pixel size than {name!r} ({_mm(es_layer.scale)} vs "
                                 f"{_mm(layer.scale)} mm): not one study's grid")
            problem = m.echo_names_problem(name, es_name)
            if problem:
                raise ValueError(problem)
            es = np.array(as_4d(np.asarray(es_layer.data)))
            if not es.any():
                raise ValueError(f"the ES label layer {es_name!r} is empty: segment end-systole first, or choose (none)")
        digest_of = {"labels": data} if es is None else {"ed": data, "es": es}  # as the layers hold them (es not re-encoded)
        given = self.label_map.text().strip()
        try:
            chosen = LabelMap.parse(given) if given else None
        except MedsegError as e:
            raise ValueError(f"label map: {e}") from None
        if es is not None:  # an ES layer keeping another label map: matched by structure name
            es = in_layer_map(es, self.viewer.layers[es_name].metadata, chosen or label_map_for_layer(layer.metadata))
        values = np.unique(data) if es is None else np.union1d(np.unique(data), np.unique(es))
        lmap = chosen or m.in_use(label_map_for_layer(layer.metadata, values), values, layer.metadata)
        like = self._give_pixel_size([layer] + ([self.viewer.layers[es_name]] if es is not None else []), like)
        opts = {"height_cm": self.height_cm.value(), "weight_kg": self.weight_kg.value(), "heart_rate": self.heart_rate.value(),
                "sex": None if self.sex.currentText() == "–" else self.sex.currentText(), "basal_rule": self.basal_rule.isChecked() or not self.basal_rule.isEnabled(),
                "digest_of": digest_of}
        return data, like, lmap, es, opts

    def _show_pixel_size(self, *_: Any) -> None:
        """The Pixel size row, shown only for labels whose image records no pixel size (a PNG, a
        video clip), with the size given before; hidden for images that record their own."""
        name = self.labels_combo.currentText()
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        if layer is self._size_for and layer is not None:  # the same layer: what the user typed stays
            return
        self._size_for = layer
        kept = layer.metadata.get(META_VOLUME) if layer is not None else None
        text = px.size_text(kept) if isinstance(kept, Volume) else None
        self.pixel_size.setText(text or "")
        for w in (self.pixel_size, self._form.labelForField(self.pixel_size)):
            w.setVisible(text is not None)

    def _show_basal_rule(self, *_: Any) -> None:
        """The basal rule greyed (with why) for labels of one slice: an apical echo or long-axis
        view is measured by disks (:func:`medseg_napari._measure.measure_labels`), with no base to apply it to."""
        name = self.labels_combo.currentText()
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        shape = (1, 1, *layer.data.shape)[-4:] if layer is not None and 2 <= layer.ndim <= 4 else (1, 2)  # as as_4d sees it
        one_view = shape[1] < 2
        self.basal_rule.setEnabled(not one_view)
        self.basal_rule.setToolTip(BASAL_OFF_TIP if one_view else BASAL_TIP)

    def _give_pixel_size(self, layers: list[Any], like: Any) -> Any:
        """The Pixel size field, when shown, given to the label layers measured, the images they
        were drawn on and their segmentation sessions (so saved labels keep it); ``like`` with
        it. Raises ValueError (a bad value, a file recording another size), changing nothing."""
        if self.pixel_size.isHidden():
            return like
        size = px.parse_pixel_size(self.pixel_size.text())
        from .review_widget import find_segment_widget

        seg = find_segment_widget(self.viewer)
        bound = [b for b in (seg.bindings.values() if seg is not None else ()) if any(b.labels is ly for ly in layers)]
        owners = layers + [b.image for b in bound]
        new = {id(ly): px.with_size(ly.metadata[META_VOLUME], size, repr(ly.name)) for ly in owners
               if isinstance(ly.metadata.get(META_VOLUME), Volume)}
        sessions = [(b.controller, px.with_size(b.controller.volume, size, repr(b.image.name))) for b in bound]
        for controller, volume in sessions:  # checked first: nothing changes unless all take it
            controller.session.volume = volume
        for ly in owners:
            if id(ly) in new:
                ly.metadata[META_VOLUME] = new[id(ly)]
        return px.with_size(like, size, repr(layers[0].name))

    def measure(self) -> None:
        """Run the measurement in a worker; the table and plots update when it returns."""
        from ._workers import start_worker

        try:
            data, like, lmap, es, opts = self._inputs()
        except ValueError as e:
            self.clear_report()
            self._say(str(e), error=True)
            return
        named = self._show_map(lmap)
        held = set(np.unique(data).tolist()) | (set(np.unique(es).tolist()) if es is not None else set())
        self._unlabelled = [n for n in lmap.names if lmap[n] not in held]
        self._note = m.default_map_note(lmap, np.unique(data)) if named and not self.label_map.text().strip() else ""
        axial = m.axial_note(like, opts["basal_rule"])  # a CT's axial slices: in-plane numbers, not AHA segments
        self._note, self._axial = f"{self._note} {axial}".strip(), bool(axial)
        if px.spacing_from(like) == GIVEN_SPACING:  # said, with what it changes
            self._note = f"{self._note} Pixel size {_mm(like.spacing)} mm given: volumes in mL; labels saved now keep it.".strip()
        self._keep_measured(data, es, lmap, like, opts)
        self.measure_btn.setEnabled(False)
        self.export_btn.setEnabled(False)  # the report shown is of the labels before: no export of it now
        self._say("Measuring…")
        self._run += 1
        run = self._run
        self._inflight.add(run)
        self._worker = start_worker(m.measure_labels, data, like, lmap, es, progress={"desc": "medseg: measuring"}, **opts,
                                    on_done=lambda report: self.show_report(report) if run == self._run else None,
                                    on_error=lambda e: self._failed(e) if run == self._run else None,
                                    on_finished=lambda: self._finished(run))

    @property
    def _measuring(self) -> bool:
        """A measurement's worker is running (the report shown, if any, is of an earlier one)."""
        return bool(self._inflight)

    def _finished(self, run: int) -> None:
        self._inflight.discard(run)
        self.measure_btn.setEnabled(not self._inflight)
        if not self._inflight:
            self._worker = None  # a finished worker: nothing to hold on to

    def _show_map(self, lmap: LabelMap) -> list[str]:
        """Colour the chosen label layers that keep no label map of their own (another tool's
        files, ACDC's ``_gt``) with the structures of the map they are measured with, and name
        them (napari's status bar: "structure: lv"); returns their names."""
        from napari.utils.colormaps import DirectLabelColormap

        named = []
        for name in dict.fromkeys((self.labels_combo.currentText(), self.es_combo.currentText())):
            layer = self.viewer.layers[name] if name in self.viewer.layers else None
            if layer is not None and META_LABEL_MAP not in layer.metadata:
                layer.colormap = DirectLabelColormap(color_dict=label_colour_dict(lmap))
                layer.features = label_features(lmap)
                named.append(name)
        return named

    def show_report(self, report: dict[str, Any]) -> None:
        self._inflight.discard(self._run)  # its worker's last signal may still be on its way: exportable now
        self.report = report
        self._fill(self.table, m.summary_rows(report))
        self._fill(self.segments, m.segment_rows(report))
        self.flags.clear()
        lines, listed = m.flag_lines(report, self._unlabelled)
        self.flags.addItems(lines or ["no flags"])
        self.tabs.setTabText(2, f"Flags ({listed})")
        self.tabs.setTabText(1, "Wall thickness (in-plane)" if self._axial else "Wall thickness")
        self._columns = 0  # drawn by _fit_plots, for the dock's width
        self._fit_plots()
        self._share_split()
        self.export_btn.setEnabled(True)
        self._pdf_shown()
        self._watch_measured()  # its labels changed since: said, Export greyed (_measure_stale)
        self._say(self._measured_line())

    def _measured_line(self) -> str:
        mode = MODES.get(self.report.get("mode", ""), str(self.report.get("mode", ""))) if self.report else ""
        return f"Measured: {mode}. {self._note}".strip()

    def _say(self, text: str, error: bool = False) -> None:
        """The status line; an error in red, as the segmentation and review docks show theirs."""
        self.status.setText(text)
        self.status.setStyleSheet(error_style(self.viewer, error))  # readable on the light theme too

    def _failed(self, e: BaseException) -> None:
        self._inflight.discard(self._run)  # its own failure: said below, not as a change of layers
        self.clear_report()
        self._say(error_line(e), error=True)  # as the CLI says it: no exception class names

    def clear_report(self, *_: Any, cause: str | None = None, **why: Any) -> None:
        """Empty the table, plots and export: what they showed belongs to another measurement
        (one still running is dropped when it returns: it measured what is no longer chosen; the
        status line says why, by ``cause`` and ``why``: :func:`medseg_napari._qt._measure_drop.dropped_line`)."""
        if self._run in self._inflight:
            self._run += 1
            self._say(drop.dropped_line(self, cause, **why))
        elif self.report is not None:  # its "Measured: ..." no longer over an emptied table: why it is empty
            self._say(drop.cleared_line(self, cause, **why))
        self.report = None
        self._unwatch_measured()
        for table in (self.table, self.segments):
            table.setRowCount(0)
        self.flags.clear()
        self.tabs.setTabText(2, "Flags")
        self.tabs.setTabText(1, "Wall thickness")
        self.figure.clear()
        self._columns = 0
        self._fit_plots()
        self.canvas.draw_idle()
        self.export_btn.setEnabled(False)
        self._measured = None  # the labels kept for the study page go with their report
        self._pdf_ready()

    @staticmethod
    def _fill(table: QTableWidget, rows: list[tuple[str, ...]]) -> None:
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                table.setItem(r, c, QTableWidgetItem(text))


def _mm(scale: Any) -> str:
    """A layer's pixel size as "1.484 x 1.484" (rows x columns; numpy's repr wrote np.float64(1.484))."""
    return " x ".join(f"{float(v):.3f}".rstrip("0").rstrip(".") for v in np.asarray(scale, dtype=float)[-2:])
