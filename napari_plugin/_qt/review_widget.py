"""Review dock widget: a thin Qt face over :class:`medseg_napari._review.ReviewList`.

**Check** computes the review of the segmentation widget's current session in a worker
(napari's progress bar; the segmentation widget waits meanwhile): one table row per flag,
worst first, and the confidence per structure ("lv 0.95, myo 0.88, rv 0.72"). Clicking a row
moves the viewer to its frame and slice and selects its structure in the segmentation widget;
**Mark reviewed** records the row in the session's provenance (saved with the labels) and
greys it; **Save sheet** writes the review sheet PNG (every labelled slice with contours,
confidence and the flagged slices framed in thick black; the same as ``medseg segment --review-png``).

The session is found through the segmentation widget docked in the same viewer (or the one
given to the constructor): its ``controller.session``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStyledItemDelegate,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medseg.errors import MedsegError

from .._controller import OperationCancelled, run_with_progress
from .._messages import error_line
from .._review import ReviewList, ReviewRow
from .._view import unwrapped
from .._view_axes import slice_note
from ._docking import join_medseg_docks
from ._keyboard import error_style

if TYPE_CHECKING:
    import napari

    from .segment_widget import SegmentWidget

COLUMNS = ("✓", "Flag", "Structure", "Frame", "Slice", "Conf.", "Message")
REVIEWED_COLOUR = "#808080"


class _BreakAfterUnderscores(QStyledItemDelegate):
    """Draws a flag code with a line break allowed after each underscore ("myo_not_" /
    "enclosing_lv"); the item's text stays the code."""

    def displayText(self, value: Any, locale: Any) -> str:  # noqa: N802 (Qt API)
        return super().displayText(value, locale).replace("_", "_\u200b")


def message_cell(row: ReviewRow) -> str:
    """The row's message without its leading "frame 9, slice 2: ", which the Frame and Slice
    columns say: the dock's narrow Message column wrapped it over a line of its own (the tooltip
    and the status line keep the whole message)."""
    where = ", ".join(f"{k} {v}" for k, v in (("frame", row.frame), ("slice", row.slice)) if v is not None)
    return row.message.removeprefix(f"{where}: ") if where else row.message


def find_segment_widget(viewer: Any) -> SegmentWidget | None:
    """The segmentation widget docked in ``viewer`` (one with a session first), or None."""
    from .segment_widget import SegmentWidget

    window = getattr(viewer, "window", None)
    docked = list(getattr(window, "dock_widgets", {}).values()) if window is not None else []
    found = [w for w in docked if isinstance(w, SegmentWidget)]
    return next((w for w in found if w.controller is not None), found[0] if found else None)


def show_slice(viewer: Any, image: Any, frame: int | None, slice_: int | None) -> None:
    """Move the viewer's sliders to ``frame`` and ``slice_`` of ``image`` (a (T, Z, Y, X),
    (Z, Y, X) or (Y, X) layer; None keeps that slider), through the layer's scale/translate."""
    nd = int(image.ndim)
    wanted = {nd - 4: frame, nd - 3: slice_}  # data axes of t and z (negative: the layer has none)
    data = list(image.world_to_data(tuple(viewer.dims.point)[-nd:]))
    changed = [ax for ax, v in wanted.items() if ax >= 0 and v is not None]
    for ax in changed:
        data[ax] = float(min(max(int(wanted[ax]), 0), image.data.shape[ax] - 1))
    world = image.data_to_world(data)
    lead = viewer.dims.ndim - nd
    for ax in changed:
        viewer.dims.set_point(lead + ax, float(world[ax]))


class ReviewWidget(QWidget):
    """Dock widget: the flags of the current segmentation, to look at one by one."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, segment_widget: SegmentWidget | None = None) -> None:
        super().__init__()
        self.viewer = unwrapped(napari_viewer)  # Plugins menu: napari's proxy (see medseg_napari._view.unwrapped)
        self._segment = segment_widget
        self.review: ReviewList | None = None
        self._image: Any = None  # the image layer the review was computed on
        self._followed: Any = None  # the segmentation widget whose Image choice the list follows
        self._hidden = False  # the list is of another image than the one chosen there: not shown
        self._build()
        # the hint follows the session: "Start a segmentation session, then Check." stayed up
        # over a session already started
        self.viewer.layers.events.inserted.connect(self._hint_later)
        self.viewer.layers.events.removed.connect(self._hint_later)
        self._refresh_hint()

    def idle_hint(self) -> str:
        """What to do next, before any check: open the segmentation dock, start a session, or Check."""
        seg = self.segment_widget
        if seg is None:
            return "Open Plugins > medseg > Segmentation, start a session there, then Check."
        b = seg.binding
        if b is None:
            image = seg.ui.image.currentText()
            return (f"Start a session on '{image}' in the Segmentation tab, then Check." if image
                    else "Open an image and start a session in the Segmentation tab, then Check.")
        return f"Check to list what needs review in '{b.image.name}'."

    def _hint_later(self, *_: Any) -> None:
        QTimer.singleShot(0, self._refresh_hint)  # once the segmentation widget has bound the new layers

    def _refresh_hint(self, *_: Any) -> None:
        try:
            self._follow_segment()
            if self.review is not None and not self._review_alive():
                self._clear_review()  # a restarted session: the last check's list was of the old one
            if self.review is not None:
                self._show_review(self._review_is_current())
            if self.review is None:
                self.summary.setText(self.idle_hint())
        except RuntimeError:  # the dock was closed: its Qt objects are gone
            pass

    def _follow_segment(self) -> None:
        """Follow the segmentation widget's Image choice (its session is the one reviewed): the
        list of another image's session stayed up, Save sheet writing it."""
        seg = self.segment_widget
        if seg is not None and seg is not self._followed:
            seg.ui.image.currentIndexChanged.connect(self._refresh_hint)
            self._followed = seg

    def _review_alive(self) -> bool:
        """The checked session is still one of the segmentation widget's (not restarted, not closed)."""
        seg = self.segment_widget
        return seg is not None and any(b.controller.session is self.review.session for b in seg.bindings.values())

    def _review_is_current(self) -> bool:
        """The checked session is the one of the image chosen in the segmentation widget."""
        seg = self.segment_widget
        return seg is not None and seg.controller is not None and seg.controller.session is self.review.session

    def _show_review(self, current: bool) -> None:
        """The list and Save sheet while its image is the one chosen; hidden (kept) while another is."""
        if current == (not self._hidden):
            return
        self._hidden = not current
        self.sheet_btn.setEnabled(current)
        if current:
            self._fill()
            self._say("")
            return
        self.table.setRowCount(0)
        self._update_mark()
        chosen = self.segment_widget.ui.image.currentText() if self.segment_widget is not None else ""
        self.summary.setText(f"The list is of '{self._image.name}': choose it under Image in the Segmentation tab to see it again"
                             + (f", or Check '{chosen}'." if chosen and self.segment_widget.binding is not None else "."))
        self._say("")

    def _clear_review(self) -> None:
        self.review, self._image, self._hidden = None, None, False
        self.table.setRowCount(0)
        self.sheet_btn.setEnabled(False)
        self._update_mark()
        self._say("")

    def showEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        """Shown the first time: opened from the Plugins menu beside another medseg dock, join it
        as a tab (:func:`medseg_napari._qt._docking.join_medseg_docks`), not stacked under it."""
        super().showEvent(event)
        self._refresh_hint()
        if not getattr(self, "_docked", False):
            self._docked = True
            QTimer.singleShot(0, lambda: join_medseg_docks(self))

    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        self.check_btn, self.mark_btn = QPushButton("Check"), QPushButton("Mark reviewed")
        self.sheet_btn = QPushButton("Save sheet…")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("stop the running check at its next slice: the list stays as it was")
        self.cancel_btn.setEnabled(False)
        self.check_btn.setToolTip("confidence per slice and structure, anatomy and measurement checks")
        self.mark_btn.setToolTip("record in the session's provenance that you looked at this flag")
        self.sheet_btn.setToolTip("PNG of every labelled slice with contours, confidence and the flagged slices framed in thick black")
        self.mark_btn.setEnabled(False)
        self.sheet_btn.setEnabled(False)
        row.addWidget(self.check_btn)
        row.addWidget(self.mark_btn)
        row.addWidget(self.sheet_btn)
        row.addWidget(self.cancel_btn)
        root.addLayout(row)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        root.addWidget(self.summary)
        t = self.table = QTableWidget(0, len(COLUMNS))
        t.setHorizontalHeaderLabels(list(COLUMNS))
        t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        t.verticalHeader().setVisible(False)
        t.verticalHeader().setDefaultSectionSize(22)
        t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # the Flag and the Message share the dock's width, wrapped over the row's lines (the flag
        # code after its underscores): sized to their text the Message was cut at the dock's edge
        # (readable only in the status line)
        for c in (1, len(COLUMNS) - 1):
            t.horizontalHeader().setSectionResizeMode(c, QHeaderView.ResizeMode.Stretch)
        t.setItemDelegateForColumn(1, _BreakAfterUnderscores(t))
        t.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        t.setWordWrap(True)
        t.setAccessibleName("Review flags")
        t.setToolTip("Arrow keys or a click go to a flag's slice; Enter goes back to it")
        root.addWidget(t, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        root.addWidget(self.status)
        self.check_btn.clicked.connect(self.check)
        self.mark_btn.clicked.connect(self.mark_reviewed)
        self.sheet_btn.clicked.connect(lambda: self.save_sheet())
        self.cancel_btn.clicked.connect(self.cancel)
        t.cellClicked.connect(lambda r, _c: self.show_row(r))
        t.activated.connect(lambda index: self._activate(index.row()))  # Enter (and double click)
        t.itemSelectionChanged.connect(self._on_selection)

    # -- helpers -----------------------------------------------------------------------
    @property
    def segment_widget(self) -> SegmentWidget | None:
        return self._segment if self._segment is not None else find_segment_widget(self.viewer)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(error_style(self.viewer, error))  # readable on the light theme too

    def selected_row(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    # -- check -------------------------------------------------------------------------
    def check(self) -> None:
        """Compute the review of the current session in a worker; the table fills when done."""
        seg = self.segment_widget
        if seg is None or seg.controller is None:
            self._say("Open Plugins > medseg > Segmentation and start a session first.", error=True)
            return
        review, image = ReviewList(seg.controller.session), seg.binding.image

        def job(progress: Any) -> tuple[Any, Exception | None]:
            # (rows, error): an error (a cancel too) is shown here; raised, or returned bare (the
            # worker raises a returned exception), it reached only the other dock, and Check
            # stayed greyed out
            try:
                return review.check(progress), None
            except Exception as e:
                return None, e

        total = 0 if seg.busy else review.slices_to_score()  # napari's bar counts the slices scored
        if not seg.run_job(run_with_progress, job, desc="medseg: checking the segmentation", total=total, cancel="The check",
                           on_done=lambda res: self._checked(review, image, res)):
            self._say("The segmentation widget is busy: Check again when it is done.", error=True)
            return
        from_button = self.window().focusWidget() is self.check_btn
        self.cancel_btn.setEnabled(True)
        self.check_btn.setEnabled(False)
        if from_button:  # the keyboard focus on the greyed Check went to whatever came next: Cancel
            self.cancel_btn.setFocus(Qt.FocusReason.OtherFocusReason)
        self._say("Checking…")

    def cancel(self) -> None:
        """Stop the running check at its next slice (scoring only reads the session: nothing to
        put back; the list of the last check stays)."""
        seg = self.segment_widget
        if seg is not None and self.cancel_btn.isEnabled():
            seg.cancel()
            self.cancel_btn.setEnabled(False)
            self._say("Cancelling the check…")

    def _checked(self, review: ReviewList, image: Any, outcome: tuple[Any, Exception | None]) -> None:
        focus_here = self.window().focusWidget() in (None, self.cancel_btn, self.check_btn) or self.isAncestorOf(self.window().focusWidget())
        self.check_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
        result = outcome[1]
        if isinstance(result, OperationCancelled):
            text = "Check cancelled: the list is as it was."
            self._say(text)
            seg = self.segment_widget
            if seg is not None:
                seg.status(text)
            return
        if isinstance(result, Exception):
            self._say(error_line(result), error=True)  # as the CLI says it: no exception class names
            return
        self.review, self._image, self._hidden = review, image, False
        self.sheet_btn.setEnabled(True)
        self._fill()
        self._refresh_hint()  # another image chosen while it ran: kept, not shown
        self._say("Click a row (or use the arrow keys and Enter) to go to it." if review.rows else "Nothing to review.")
        if focus_here and review.rows:  # keyboard: into the list, its first flag current (Enter goes there, then arrow keys)
            self.table.setFocus(Qt.FocusReason.OtherFocusReason)
            self.table.setCurrentCell(0, 1, self.table.selectionModel().SelectionFlag.NoUpdate)

    def _fill(self) -> None:
        rows = self.review.rows if self.review else []
        t = self.table
        t.blockSignals(True)
        t.setRowCount(len(rows))
        for r, row in enumerate(rows):
            self._set_row(r, row)
        t.blockSignals(False)
        self.summary.setText(self.review.summary if self.review else "")
        self._update_mark()

    def _set_row(self, r: int, row: ReviewRow) -> None:
        cells = ["✓" if row.reviewed else "", *row.cells()]
        cells[-1] = message_cell(row)
        for c, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setToolTip(row.message)
            if c in (0, 3, 4, 5):
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            if row.reviewed:
                item.setForeground(QColor(REVIEWED_COLOUR))
            self.table.setItem(r, c, item)

    # -- rows --------------------------------------------------------------------------
    def _on_selection(self) -> None:
        r = self.selected_row()
        if r is not None:
            self.show_row(r)
        self._update_mark()

    def _activate(self, index: int) -> None:
        """Enter on a row: select it (which goes there) or, selected already, go there again."""
        if self.selected_row() == index:
            self.show_row(index)
        else:
            self.table.selectRow(index)

    def _update_mark(self) -> None:
        r = self.selected_row()
        self.mark_btn.setEnabled(self.review is not None and not self._hidden and r is not None and not self.review.row(r).reviewed)

    def show_row(self, index: int) -> None:
        """Move the viewer to the row's frame and slice and select its structure."""
        if self.review is None or self._hidden or not 0 <= index < len(self.review.rows):
            return
        row = self.review.row(index)
        if self._image is None or self._image not in self.viewer.layers:
            self._say("The image of this review was closed: Check again.", error=True)
            return
        frame, slice_ = self.review.target(row)
        show_slice(self.viewer, self._image, frame, slice_)
        seg = self.segment_widget
        if row.structure and seg is not None and seg.controller is not None and seg.controller.session is self.review.session:
            seg.select_structure(row.structure)
        unseen = slice_note(self.viewer, self._image)  # a side or 3-D view: the sliders moved, the slice is not shown
        unseen = f" ({unseen})" if unseen else ""
        if self.review.stale:
            self._say(f"{row.code}: {row.message} (the segmentation changed since the check: Check again){unseen}", error=True)
        else:
            self._say(f"{row.code}: {row.message}{unseen}")

    def mark_reviewed(self) -> None:
        """Record the selected row as reviewed in the session's provenance and grey it."""
        r, seg = self.selected_row(), self.segment_widget
        if self.review is None or r is None:
            return
        if seg is None or seg.controller is None or seg.controller.session is not self.review.session:
            self._say("The session changed since the check: Check again.", error=True)
            return
        if seg.busy:
            self._say("The segmentation widget is busy: try again when it is done.", error=True)
            return
        if self.review.stale:
            self._say("The segmentation changed since the check: Check again, then mark what it flags.", error=True)
            return
        row = self.review.row(r)
        seg.run_now(lambda _c: self.review.mark_reviewed(row), sync=False)  # refreshes the saved provenance
        self._fill()
        self.table.blockSignals(True)
        self.table.selectRow(r)
        self.table.blockSignals(False)
        self._update_mark()
        self._say(f"Marked reviewed: {row.code} ({row.where}).")

    def save_sheet(self, path: str | None = None) -> None:
        """Write the review sheet of the last check to ``path`` (asked for when None), while its
        image is the one chosen in the segmentation widget."""
        if self.review is None:
            return
        if self._hidden or not self._review_is_current():
            self._say(f"The list is of '{self._image.name}', not of the image chosen: choose it under Image, or Check again.", error=True)
            return
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getSaveFileName(self, "Save review sheet", "review_sheet.png", "PNG image (*.png)")
            if not path:
                return
        try:
            written = self.review.save_sheet(path)
        except (OSError, MedsegError) as e:
            self._say(f"Could not save the review sheet: {error_line(e)}", error=True)  # not "[Errno 13] ...: '/x'"
            return
        self._say(f"Review sheet saved: {written}")
