"""Layout of the segmentation widget (Qt widgets only, no behaviour)."""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from qtpy.QtCore import QEvent, QSize, Qt
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .._controller import THROUGH
from .._layers import MODALITY_CHOICES


def build_segment_ui(parent: QWidget, adapters: list[str]) -> SimpleNamespace:
    """Create the widget's controls inside ``parent``; returns them by name."""
    u = SimpleNamespace()
    root = QVBoxLayout(parent)
    root.setContentsMargins(4, 4, 4, 4)
    root.addWidget(_image_box(u, adapters))
    root.addWidget(_structures_box(u))
    root.addWidget(_prompt_box(u))
    root.addWidget(_session_box(u))

    u.status = StatusLabel("Open an image, then Start session.")
    root.addWidget(u.status)
    parent.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)  # leave height to other docks
    return u


class StatusLabel(QLabel):
    """The word-wrapped status line, as tall as its lines at its width.

    The widget's height is capped at its size hint (vertical policy Maximum) and a dock does
    not ask a wrapped label its height for its width: a second or third line squeezed the
    controls above onto each other (the structures table under the custom-structure row).
    The label's minimum height follows its text and width instead, so the dock grows.
    """

    def __init__(self, text: str = "") -> None:
        super().__init__(text)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt API)
        super().setText(text)
        self._fit()

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        height = self.heightForWidth(self.width()) if self.width() > 0 else -1
        if height > 0 and height != self.minimumHeight():
            self.setMinimumHeight(height)


class StructureTable(QTableWidget):
    """The structures table, as tall as its rows: no scroll bar hides the last one.

    The height is asked when the layout needs it, once the table is styled; a height fixed when
    the rows were filled used the header's placeholder height of a table not yet shown, and the
    last row (RA) sat under a scroll bar.
    """

    def __init__(self, rows: int, columns: int) -> None:
        super().__init__(rows, columns)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._fit_rows()

    def changeEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._fit_rows()

    def _fit_rows(self) -> None:
        """Rows of 22 px, taller for a large font (napari's font size 16 cut the names' letters)."""
        self.verticalHeader().setDefaultSectionSize(max(22, self.fontMetrics().height() + 6))
        self.updateGeometry()

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        """``1``-``9`` select the structure of that row here too, as on the canvas (the group box
        says "1-9 select"; with the table focused they did nothing)."""
        key = _int(event.key()) - _int(Qt.Key.Key_0)
        mods = Qt.KeyboardModifier
        if 1 <= key <= 9 and not event.modifiers() & (mods.ControlModifier | mods.AltModifier | mods.MetaModifier | mods.ShiftModifier):
            if key <= self.rowCount():
                self.selectRow(key - 1)
            event.accept()
            return
        super().keyPressEvent(event)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        header = self.horizontalHeader()
        rows = sum(self.rowHeight(r) for r in range(self.rowCount()))
        height = max(header.height(), header.sizeHint().height()) + rows + 2 * self.frameWidth()
        return QSize(super().sizeHint().width(), height)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(super().minimumSizeHint().width(), self.sizeHint().height())


def _int(value: Any) -> int:
    """A Qt key as an int (PyQt6 and PySide6 give enums, PyQt5 ints)."""
    return int(getattr(value, "value", value))


def _image_box(u: SimpleNamespace, adapters: list[str]) -> QGroupBox:
    """Image, model, adapter (with its folder picker), device and the start button."""
    box = QGroupBox("Image and model")
    form = QFormLayout(box)
    u.image = QComboBox()
    u.model = QComboBox()
    u.model.setEditable(True)
    u.model.addItem("default")
    from medseg.models.own import own_model_names

    u.model.addItems(own_model_names())  # a lab's medseg train folders in $MEDSEG_HOME/models, by name
    u.model.setToolTip("'default', a model of yours in $MEDSEG_HOME/models (by name), a .safetensors checkpoint path, "
                       "or sam_vit_b=/path/to/weights.pth")
    u.adapter = QComboBox()
    u.adapter.setEditable(True)  # an adapter folder `medseg adapt -o` wrote, anywhere
    u.adapter.addItems(["none", *adapters])
    u.adapter.setToolTip("none, a shipped adapter, or the folder `medseg adapt -o` wrote (… to pick it)")
    u.adapter_browse = QPushButton("…")
    u.adapter_browse.setToolTip("Pick an adapter folder (written by medseg adapt)")
    u.adapter_browse.setMaximumWidth(32)
    u.adapter_browse.setAccessibleName("Browse for an adapter folder")  # read out as "…" otherwise
    adapter_row = QHBoxLayout()
    adapter_row.addWidget(u.adapter, 1)
    adapter_row.addWidget(u.adapter_browse)
    u.device = QComboBox()
    u.device.addItems(["cpu", "cuda"])
    u.image.setToolTip("The image layer to segment: choosing one moves the sliders and camera to it")
    u.device.setToolTip("Where the model runs: cpu, or cuda (an NVIDIA GPU)")
    u.modality = QComboBox()
    u.modality.addItems(MODALITY_CHOICES)
    u.modality.setToolTip("The image's modality, as --modality on the command line: what a PNG or NIfTI does not record "
                          "(an echo saved as PNG: US, so Auto segments LV, MYO and LA). Takes effect at Start session.")
    u.start = QPushButton("Start session")
    u.start.setToolTip("Load the model and add the labels, clicks and boxes layers; a restart clears the labels")
    form.addRow("Image", u.image)
    form.addRow("Modality", u.modality)
    form.addRow("Model", u.model)
    form.addRow("Adapter", adapter_row)
    form.addRow("Device", u.device)
    form.addRow(u.start)
    return box


def _structures_box(u: SimpleNamespace) -> QGroupBox:
    """The structure table, the custom structure row and the lock button."""
    box = QGroupBox("Structures (1-9 select)")
    lay = QVBoxLayout(box)
    u.structures = StructureTable(0, 3)
    u.structures.setHorizontalHeaderLabels(["Structure", "Label", "Locked"])
    u.structures.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    u.structures.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    u.structures.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    u.structures.verticalHeader().setVisible(False)
    u.structures.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    u.structures.setAccessibleName("Structures")
    u.structures.setToolTip("The structure your prompts segment: arrow keys or 1-9 choose it")
    lay.addWidget(u.structures)
    row = QHBoxLayout()
    u.custom_name = QLineEdit()
    u.custom_name.setPlaceholderText("custom name")
    u.custom_name.setAccessibleName("Custom structure name")
    u.custom_value = QSpinBox()
    u.custom_value.setRange(0, 65535)
    u.custom_value.setSpecialValueText("auto")
    u.custom_value.setAccessibleName("Custom structure label value")
    u.custom_value.setToolTip("Label value of the custom structure (auto: the next free one)")
    u.add_structure = QPushButton("Add")
    u.add_structure.setToolTip("Add the custom structure to the list")
    for w in (u.custom_name, u.custom_value, u.add_structure):
        row.addWidget(w)
    lay.addLayout(row)
    u.lock = QPushButton("Accept (lock)")
    u.lock.setToolTip("Lock the selected structure: other structures' prompts never overwrite it (press again to unlock)")
    lay.addWidget(u.lock)
    return box


def _prompt_box(u: SimpleNamespace) -> QGroupBox:
    """Click and box tools, negative toggle, propagate (and cancel), auto, undo and redo."""
    box = QGroupBox("Prompt")
    grid = QGridLayout(box)
    u.click_tool = QPushButton("Clicks")
    u.click_tool.setToolTip("click = positive, Shift+click = negative")
    u.box_tool = QPushButton("Box")
    u.box_tool.setToolTip("drag a rectangle around the structure")
    u.negative = QCheckBox("negative clicks (N)")
    u.negative.setToolTip("New clicks are negative (Shift+click: the other kind); N toggles it with the clicks or boxes layer selected")
    grid.addWidget(u.click_tool, 0, 0)
    grid.addWidget(u.box_tool, 0, 1)
    grid.addWidget(u.negative, 1, 0, 1, 2)
    u.through = QComboBox()
    u.through.addItems(list(THROUGH))
    u.through.setToolTip("Propagate through the slices, the frames, or both")
    u.propagate = QPushButton("Propagate")
    u.propagate.setToolTip("Carry the selected structure from this slice to the next ones until it ends")
    through = QLabel("through")
    through.setBuddy(u.through)  # the combo box's name for a screen reader
    grid.addWidget(through, 2, 0)
    grid.addWidget(u.through, 2, 1)
    grid.addWidget(u.propagate, 3, 0)
    u.cancel = QPushButton("Cancel")
    u.cancel.setToolTip("Stop the running propagation, automatic pass, session replay or review check: "
                        "the labels stay as they were before it")
    u.cancel.setEnabled(False)
    grid.addWidget(u.cancel, 3, 1)
    u.auto_frames = QComboBox()
    u.auto_frames.addItems(["this frame", "all frames"])
    u.auto_frames.setAccessibleName("Auto on")
    u.auto_frames.setToolTip("Auto on the frame shown or on every frame")
    u.auto = QPushButton("Auto")
    u.auto.setToolTip("Zero-click pass: the structures `medseg segment --auto` picks for the modality "
                      "(MR: LV, MYO, RV; ultrasound: LV, MYO, LA; CT: LV, MYO, RV, LA), plus those you prompted; "
                      "locked ones are left as they are")
    grid.addWidget(u.auto_frames, 4, 0)
    grid.addWidget(u.auto, 4, 1)
    u.undo = QPushButton("Undo (Ctrl+Z)")
    u.redo = QPushButton("Redo (Ctrl+Shift+Z)")
    u.undo.setToolTip("Undo the last prompt, propagation, auto, lock or brush stroke (Ctrl+Z, also in this panel)")
    u.redo.setToolTip("Redo the step undone (Ctrl+Shift+Z or Ctrl+Y, also in this panel)")
    grid.addWidget(u.undo, 5, 0)
    grid.addWidget(u.redo, 5, 1)
    return box


def _session_box(u: SimpleNamespace) -> QGroupBox:
    """Save labels and load session."""
    box = QGroupBox("Session")
    row = QHBoxLayout(box)
    u.save = QPushButton("Save labels…")
    u.load = QPushButton("Load session…")
    u.save.setToolTip("Save the labels (NIfTI or DICOM SEG) with a sidecar that replays the session")
    u.load.setToolTip("Replay a saved session's sidecar (.json) onto this image's empty labels")
    row.addWidget(u.save)
    row.addWidget(u.load)
    return box


def fill_structure_table(table: QTableWidget, specs: Iterable[Any], locked: set[str], active: str | None) -> None:
    """One row per structure: name (in its colour), label value, lock state."""
    specs = list(specs)
    table.blockSignals(True)
    table.setRowCount(len(specs))
    select = 0
    for r, s in enumerate(specs):
        pix = QPixmap(14, 14)
        pix.fill(QColor(s.colour))
        table.setItem(r, 0, QTableWidgetItem(QIcon(pix), s.name))
        table.setItem(r, 1, QTableWidgetItem(str(s.value)))
        table.setItem(r, 2, QTableWidgetItem("yes" if s.name in locked else ""))
        if s.name == active:
            select = r
    table.blockSignals(False)
    table.updateGeometry()  # its height follows the rows (StructureTable.sizeHint)
    if specs:
        table.selectRow(select)


def set_choices(combo: QComboBox, allowed: Iterable[str], current: str | None) -> None:
    """Grey the combo box's items not in ``allowed`` and show ``current`` (None: leave it)."""
    allowed = set(allowed)
    model = combo.model()
    for i in range(combo.count()):
        item = model.item(i) if hasattr(model, "item") else None
        if item is not None:
            item.setEnabled(combo.itemText(i) in allowed)
    if current is not None and combo.currentText() != current:
        combo.setCurrentText(current)
