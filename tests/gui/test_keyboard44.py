"""What a keyboard-first or low-vision user found in the three medseg docks: Auto pressed with
Space threw the focus onto the dock's "hide this panel" button, Ctrl+Z did nothing in the dock
the Undo button names it in, 1-9 did nothing in the structures table, Accept (lock) said nothing,
Enter in the review list did not go back to a flag, the error red was unreadable on the light
theme, unnamed controls, and structure rows cut at a 16-point font."""

from __future__ import annotations

import numpy as np
import pytest
from napari_helpers import gui_ready, start_widget

T_OUT = 60_000  # ms
pytestmark = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))


def _focus(w):
    """The widget holding the keyboard focus in ``w``'s window (also while Xvfb leaves it inactive)."""
    return w.window().focusWidget()


def _press(qtbot, widget, key, modifier=None):
    from qtpy.QtCore import Qt

    widget.setFocus()
    qtbot.keyClick(widget, key, modifier or Qt.KeyboardModifier.NoModifier)


def _session(make_napari_viewer, qtbot, model_provider, small_cine):
    from medseg_napari._layers import image_layer_kwargs

    viewer = make_napari_viewer(show=True)
    viewer.add_image(small_cine[0].array, **image_layer_kwargs(small_cine[0], "cine"))
    return viewer, start_widget(viewer, qtbot, model_provider, "cine")


def _contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two #rrggbb colours."""
    def lum(h: str) -> float:
        c = np.array([int(h[i:i + 2], 16) for i in (1, 3, 5)]) / 255
        return float(np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4) @ [0.2126, 0.7152, 0.0722])

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_auto_from_the_keyboard_keeps_the_focus_in_the_dock(make_napari_viewer, qtbot, model_provider, small_cine):
    """Space on Auto: while it runs the focus is on Cancel, then back on Auto (it went to the
    dock title's "hide this panel" button, so the next Space hid the dock)."""
    from qtpy.QtCore import Qt

    _viewer, w = _session(make_napari_viewer, qtbot, model_provider, small_cine)
    _press(qtbot, w.ui.auto, Qt.Key.Key_Space)
    assert w.busy and _focus(w) is w.ui.cancel
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    assert _focus(w) is w.ui.auto
    assert "Automatic pass" in w.ui.status.text()


def test_saving_from_the_keyboard_keeps_the_focus_in_the_dock(make_napari_viewer, qtbot, model_provider, small_cine, tmp_path):
    """Save labels… (no Cancel for it): while it saves the focus waits on the structures table,
    then goes back to Save labels… (Qt passed it on past the greyed buttons, out of the dock)."""
    from medseg.types import Box

    _viewer, w = _session(make_napari_viewer, qtbot, model_provider, small_cine)
    w.controller.prompt("lv", 0, 3, box=Box.from_mask(small_cine[1][0, 3] == 1))
    w.ui.save.setFocus()
    w.save_in_background(tmp_path / "cine_labels.nii.gz")  # what the file dialog does when it closes
    assert w.busy and _focus(w) is w.ui.structures
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    assert _focus(w) is w.ui.save and (tmp_path / "cine_labels.nii.gz").is_file()


def test_start_and_lock_leave_the_focus_on_the_structures_and_say_what_happened(make_napari_viewer, qtbot, model_provider, small_cine):
    """After Start session the focus is on the structures table (not on "Restart session (clears
    labels)"); Accept (lock) says so in words and the focus goes there too (it stayed on the button,
    which now unlocks, and the status line kept "ready: prompt away")."""
    from qtpy.QtCore import Qt

    viewer, w = _session(make_napari_viewer, qtbot, model_provider, small_cine)
    _press(qtbot, w.ui.start, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: not w.busy and w.controller is not None, timeout=T_OUT)
    assert _focus(w) is w.ui.structures
    _press(qtbot, w.ui.lock, Qt.Key.Key_Space)
    assert w.controller.is_locked("lv")
    assert "LV accepted (locked)" in w.ui.status.text()
    assert _focus(w) is w.ui.structures
    _press(qtbot, w.ui.lock, Qt.Key.Key_Space)
    assert not w.controller.is_locked("lv") and "LV unlocked" in w.ui.status.text()


def test_number_keys_and_undo_work_inside_the_dock(make_napari_viewer, qtbot, model_provider, small_cine):
    """1-9 in the structures table choose the structure, as on the canvas; Ctrl+Z and Ctrl+Y
    (the Undo button's own label) undo and redo with the focus in the dock."""
    from qtpy.QtCore import Qt

    _viewer, w = _session(make_napari_viewer, qtbot, model_provider, small_cine)
    _press(qtbot, w.ui.structures, Qt.Key.Key_3)
    assert w.controller.active == "rv"
    _press(qtbot, w.ui.structures, Qt.Key.Key_1)
    assert w.controller.active == "lv"
    w.toggle_lock()
    assert w.controller.is_locked("lv")
    _press(qtbot, w.ui.structures, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not w.controller.is_locked("lv") and w.ui.status.text().startswith("Undid the last step")
    _press(qtbot, w.ui.propagate, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert w.controller.is_locked("lv") and w.ui.status.text().startswith("Redid the step")
    w.ui.custom_name.setText("scar")
    _press(qtbot, w.ui.custom_name, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # the text field's own undo
    assert w.controller.is_locked("lv")


def test_review_list_by_keyboard(make_napari_viewer, qtbot, model_provider, small_cine):
    """Check from the keyboard: the list takes the focus, Enter goes to the first flag, and
    Enter goes back to the selected flag after the sliders were moved elsewhere."""
    from medseg_napari._qt.review_widget import ReviewWidget
    from qtpy.QtCore import Qt

    viewer, seg = _session(make_napari_viewer, qtbot, model_provider, small_cine)
    truth = small_cine[1]
    from medseg.types import Box

    for name, value in (("lv", 1), ("myo", 2), ("rv", 3)):  # frame 0 boxed from the truth...
        for z in range(truth.shape[1]):
            if (truth[0, z] == value).sum() > 3:
                seg.controller.prompt(name, 0, z, box=Box.from_mask(truth[0, z] == value))
    sl = seg.controller.labels[0, 3]  # ...and the myocardium above the LV erased on slice 3
    sl[(sl == 2) & (np.arange(sl.shape[0])[:, None] < np.nonzero(sl == 2)[0].mean())] = 0
    w = ReviewWidget(viewer, seg)
    viewer.window.add_dock_widget(w, name="medseg: review")
    _press(qtbot, w.check_btn, Qt.Key.Key_Space)
    assert _focus(w) is w.cancel_btn
    qtbot.waitUntil(lambda: w.review is not None and not seg.busy, timeout=T_OUT)
    assert w.review.rows, "the check should flag the broken myocardium"
    assert _focus(w) is w.table and "arrow keys" in w.status.text()
    qtbot.keyClick(w.table, Qt.Key.Key_Return)
    assert w.selected_row() == 0
    image = seg.binding.image
    where = lambda: tuple(int(round(v)) for v in image.world_to_data(viewer.dims.point)[:2])  # noqa: E731  (frame, slice)
    at = where()
    frame, slice_ = w.review.target(w.review.row(0))
    assert slice_ is None or at[1] == slice_
    elsewhere = ((at[0] + 2) % 4, (at[1] + 3) % 7)
    for axis in range(2):  # the user looks elsewhere
        viewer.dims.set_point(axis, float(image.data_to_world([*elsewhere, 0, 0])[axis]))
    assert where() == elsewhere
    qtbot.keyClick(w.table, Qt.Key.Key_Return)  # the row is selected already: Enter goes back to it
    assert where() == at
    qtbot.waitUntil(lambda: not seg.busy, timeout=T_OUT)  # the embedding of the slice shown


def test_error_lines_are_readable_on_the_light_theme(make_napari_viewer, qtbot, model_provider):
    """The error red of the three docks' status lines has a contrast of at least 4.5:1 on the
    theme's background (the dark theme's #ff6b6b had 2.3:1 on the light theme)."""
    from medseg_napari._qt.measure_widget import MeasureWidget
    from medseg_napari._qt.review_widget import ReviewWidget
    from medseg_napari._qt.segment_widget import SegmentWidget
    from napari.utils.theme import get_theme

    viewer = make_napari_viewer()
    seg, meas = SegmentWidget(viewer, models=model_provider), MeasureWidget(viewer)
    rev = ReviewWidget(viewer, seg)
    for theme in ("light", "dark"):
        viewer.theme = theme
        bg = get_theme(theme).background.as_hex()
        seg.status("Something failed.", error=True)
        meas._say("Something failed.", error=True)
        rev._say("Something failed.", error=True)
        for label in (seg.ui.status, meas.status, rev.status):
            colour = label.styleSheet().split("color:")[1].strip(" ;")
            assert _contrast(colour, bg) >= 4.5, (theme, colour, bg)


def test_controls_are_named(make_napari_viewer, model_provider):
    """Every button of the segmentation dock says what it does (tooltip), and the controls outside
    the labelled form have names a screen reader reads ("…" is "Browse for an adapter folder")."""
    from medseg_napari._qt.segment_widget import SegmentWidget
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QAbstractButton

    seg = SegmentWidget(make_napari_viewer(), models=model_provider)
    buttons = [b for b in seg.findChildren(QAbstractButton) if b.focusPolicy() & Qt.FocusPolicy.TabFocus and not b.toolTip()]
    assert not [b.text() for b in buttons], "buttons without a tooltip"
    u = seg.ui
    assert u.adapter_browse.accessibleName() == "Browse for an adapter folder"
    for w in (u.structures, u.custom_name, u.custom_value, u.auto_frames):
        assert w.accessibleName(), w


def test_structure_rows_follow_a_large_font(make_napari_viewer, model_provider):
    """The structure rows grow with a 16-point font (napari's font size setting): 22 px cut the
    names' letters; at napari's default size they stay 22 px."""
    from medseg_napari._qt.segment_widget import SegmentWidget
    from qtpy.QtGui import QFont

    seg = SegmentWidget(make_napari_viewer(), models=model_provider)
    table = seg.ui.structures
    small = table.rowHeight(0)
    font = QFont(table.font())
    font.setPointSize(16)
    table.setFont(font)
    assert table.rowHeight(0) >= table.fontMetrics().height() + 4 and table.rowHeight(0) > small
    assert table.sizeHint().height() >= table.rowCount() * table.rowHeight(0)  # the table grows with its rows


def test_adding_a_structure_says_so(make_napari_viewer, model_provider):
    """Add: the status line says which structure was added, with which label (nothing was said,
    a screen reader had only the new table row)."""
    from medseg_napari._qt.segment_widget import SegmentWidget

    seg = SegmentWidget(make_napari_viewer(), models=model_provider)
    seg.ui.custom_name.setText("scar")
    seg.ui.add_structure.click()
    assert seg.ui.status.text().startswith("Added SCAR with label 6")
    assert seg.ui.structures.item(seg.ui.structures.rowCount() - 1, 0).text() == "scar"
