"""What a scripted napari session (ACDC, Sunnybrook, CAMUS; under xvfb) found in the
segmentation dock: controls drawn over each other, a study "shown" on a black canvas, a
status line that kept naming an operation after it was undone. Headless (``xvfb-run -a``)."""

from __future__ import annotations

import numpy as np
import pytest
from napari_helpers import gui_ready

if gui_ready():
    pytest.skip(gui_ready(), allow_module_level=True)

pytestmark = pytest.mark.gui
T_OUT = 60_000  # ms
LONG = ("Session on patient081_frame01 closed: the result of its propagation was discarded, and this line "
        "is long enough to wrap onto a third line in a dock of the usual width.")


def _dock(viewer):
    from medseg_napari._qt.segment_widget import SegmentWidget

    w = SegmentWidget(viewer)  # no session, no model: the layout needs neither
    viewer.window.add_dock_widget(w, name="medseg: segmentation")
    return w


def _bottom(w, child) -> int:
    return child.mapTo(w, child.rect().bottomLeft()).y()


def _top(w, child) -> int:
    return child.mapTo(w, child.rect().topLeft()).y()


def test_a_wrapped_status_line_squeezes_no_control(make_napari_viewer, qtbot):
    """A two- or three-line status ("Showing ... choose one under Image to go back") left the
    dock at its one-line height: the custom-structure row was drawn over the RA row."""
    viewer = make_napari_viewer(show=True)
    w = _dock(viewer)
    qtbot.wait(50)
    w.status(LONG)
    qtbot.wait(200)
    u = w.ui
    assert w.height() >= w.layout().heightForWidth(w.width())
    assert _bottom(w, u.structures) < _top(w, u.custom_name)
    assert _bottom(w, u.undo) < _top(w, u.save)


def test_the_structures_table_shows_every_row(make_napari_viewer, qtbot):
    """Filled before the dock was shown, the table took the header's placeholder height: RA sat
    under a scroll bar."""
    viewer = make_napari_viewer(show=True)
    w = _dock(viewer)
    qtbot.wait(100)
    t = w.ui.structures
    rows = sum(t.rowHeight(r) for r in range(t.rowCount()))
    assert t.rowCount() == 5 and not t.verticalScrollBar().isVisible()
    assert t.viewport().height() >= rows


def test_a_one_slice_study_apart_from_a_series_is_shown_on_its_slice(make_napari_viewer):
    """A CAMUS PNG (one slice, 1 mm) chosen beside a Sunnybrook series (10 mm slices, far off)
    was "shown" one slider step beside its only slice: a black canvas, prompts on nothing."""
    from medseg_napari import _view

    viewer = make_napari_viewer()
    series = np.zeros((2, 9, 64, 64), np.float32)
    viewer.add_image(series, name="sunnybrook", scale=(1.0, 10.00004671, 1.367188, 1.367188),
                     translate=(0.0, -138.90516573, -166.33785228, -139.34821421))
    w = _dock(viewer)
    echo = viewer.add_image(np.ones((1, 1, 96, 96), np.float32), name="camus")
    assert not _view.in_view(viewer, echo)
    w.ui.image.setCurrentText("camus")
    assert _view.in_view(viewer, echo) and "Showing 'camus'" in w.ui.status.text()


def test_undo_and_redo_say_what_they_did(make_napari_viewer, qtbot, model_provider, small_cine):
    """After Undo the status line still read "Propagated LV through slices: ..."."""
    from medseg_napari._controller import box_rectangle
    from napari_helpers import start_widget

    from medseg.types import Box

    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    viewer.add_image(vol.array, name="cine", scale=(1.0, *vol.spacing))
    w = start_widget(viewer, qtbot, model_provider, "cine", T_OUT)
    assert not w.ui.undo.isEnabled()
    w.undo()  # Ctrl+Z
    assert w.ui.status.text() == "Nothing to undo."
    viewer.dims.current_step = (0, 3, *viewer.dims.current_step[2:])
    qtbot.waitUntil(lambda: not w.busy and not w.controller.needs_embedding(0, 3), timeout=T_OUT)
    w.binding.shapes.add_rectangles(box_rectangle(Box.from_mask(truth[0, 3] == 1), 0, 3, 4))
    assert w.ui.status.text().startswith("LV on frame 0, slice 3")
    w.ui.undo.click()
    assert w.ui.status.text().startswith("Undid the last step (1 slice).") and not (w.binding.labels.data == 1).any()
    w.ui.redo.click()
    assert w.ui.status.text().startswith("Redid the step (1 slice).") and (w.binding.labels.data[0, 3] == 1).any()
    w.redo()  # Ctrl+Shift+Z
    assert w.ui.status.text() == "Nothing to redo."


def test_an_image_drawn_under_another_is_said(make_napari_viewer, qtbot, model_provider, small_cine):
    """ACDC's ED and ES frames opened together: the ED session took the prompts while the ES
    frame, opened last, was the image on screen; nothing said so."""
    from napari_helpers import start_widget

    vol, _, _ = small_cine
    viewer = make_napari_viewer()
    scale = (1.0, *vol.spacing)
    viewer.add_image(vol.array, name="ed", scale=scale)
    es = viewer.add_image(vol.array[::-1], name="es", scale=scale)
    w = start_widget(viewer, qtbot, model_provider, "ed", T_OUT)
    assert "'ed' is drawn under 'es', which hides it" in w.ui.status.text()
    w.ui.image.setCurrentText("es")
    assert "drawn under" not in w.ui.status.text()
    es.visible = False
    w.ui.image.setCurrentText("ed")
    assert "drawn under" not in w.ui.status.text()
    es.visible, es.blending = True, "additive"  # drawn over, but not hiding it
    w.ui.image.setCurrentText("es")
    w.ui.image.setCurrentText("ed")
    assert "drawn under" not in w.ui.status.text()


@pytest.mark.parametrize("shape, allowed", [((1, 7), ["slices"]), ((4, 1), ["frames"]), ((4, 7), ["slices", "frames", "slices + frames"]),
                                            ((1, 1), [])])
def test_propagation_choices_reach_another_image(shape, allowed):
    from medseg_napari._propagation_choices import choice_after, propagation_choices

    assert propagation_choices(*shape) == allowed
    assert choice_after("frames", allowed) == ("frames" if "frames" in allowed else (allowed[0] if allowed else None))


def test_a_one_frame_study_offers_no_propagation_through_frames(make_napari_viewer, qtbot, model_provider, small_cine):
    """On ACDC's 3-D ED volume (or a one-slice long-axis cine) "frames" ("slices") propagated
    nowhere and said "0 slices changed"."""
    from napari_helpers import start_widget

    vol, _, _ = small_cine
    viewer = make_napari_viewer()
    viewer.add_image(vol.array[:1], name="ed", scale=(1.0, *vol.spacing))
    w = start_widget(viewer, qtbot, model_provider, "ed", T_OUT)
    combo = w.ui.through
    enabled = [combo.itemText(i) for i in range(combo.count()) if combo.model().item(i).isEnabled()]
    assert enabled == ["slices"] and combo.currentText() == "slices" and w.ui.propagate.isEnabled()
    combo.setCurrentText("frames")  # from code: refused with a reason, not run
    w.propagate()
    assert not w.busy and "has one frame: nothing to propagate frames" in w.ui.status.text()


def test_opening_an_image_replaces_the_open_an_image_first_error(make_napari_viewer, small_cine):
    """Start session pressed with no image said, in red, "Open an image first"; it still did
    after the image was opened."""
    vol, _, _ = small_cine
    viewer = make_napari_viewer()
    w = _dock(viewer)
    w.start_session()
    assert w.ui.status.text().startswith("Open an image first")
    viewer.add_image(vol.array, name="cine", scale=(1.0, *vol.spacing))
    assert w.ui.status.text() == "'cine': Start session to segment it." and "ff6b6b" not in w.ui.status.styleSheet()
    viewer.add_image(vol.array, name="other", scale=(1.0, *vol.spacing))
    assert w.ui.status.text() == "'other' opened: choose it under Image, then Start session."


def test_replaying_a_session_shows_its_progress(make_napari_viewer, qtbot, model_provider, small_cine, tmp_path, monkeypatch):
    """Load session ran with an indeterminate bar ("0it") for the many seconds a long session
    takes: the bar now counts its actions."""
    import napari.qt.threading as nqt
    from medseg_napari._session_files import replay_length
    from napari_helpers import start_widget

    from medseg.types import Box

    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    viewer.add_image(vol.array, name="cine", scale=(1.0, *vol.spacing))
    w = start_widget(viewer, qtbot, model_provider, "cine", T_OUT)
    w.controller.prompt("lv", 0, 3, box=Box.from_mask(truth[0, 3] == 1))
    w.controller.toggle_lock("lv")
    w.save(tmp_path / "s.nii.gz")
    n = len(w.controller.session.log)
    assert n >= 2 and replay_length(tmp_path / "s.json") == n
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert replay_length(tmp_path / "bad.json") == 0 and replay_length(tmp_path / "missing.json") == 0
    seen = []
    real = nqt.create_worker
    monkeypatch.setattr(nqt, "create_worker", lambda *a, **k: seen.append(k.get("_progress")) or real(*a, **k))
    w.load_session(tmp_path / "s.json")
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    assert seen == [{"desc": "medseg: replaying session", "total": n}] and w.ui.status.text() == "Session replayed."


def test_undo_and_redo_stay_off_when_a_layer_is_added(make_napari_viewer, qtbot, model_provider, small_cine):
    """Opening another study (or renaming a layer) turned Undo and Redo on with nothing to undo
    or redo."""
    from napari_helpers import start_widget

    vol, _, _ = small_cine
    viewer = make_napari_viewer()
    image = viewer.add_image(vol.array, name="cine", scale=(1.0, *vol.spacing))
    w = start_widget(viewer, qtbot, model_provider, "cine", T_OUT)
    assert not w.ui.undo.isEnabled() and not w.ui.redo.isEnabled()
    viewer.add_image(vol.array, name="another", scale=(1.0, *vol.spacing), translate=(0, 500.0, 0, 0))
    image.name = "cine renamed"
    assert w.ui.image.currentText() == "cine renamed" and w.ui.propagate.isEnabled()
    assert not w.ui.undo.isEnabled() and not w.ui.redo.isEnabled()


def test_the_lock_button_names_the_structure_from_the_start(make_napari_viewer, qtbot, model_provider, small_cine):
    from napari_helpers import start_widget

    vol, _, _ = small_cine
    viewer = make_napari_viewer()
    viewer.add_image(vol.array, name="cine", scale=(1.0, *vol.spacing))
    w = start_widget(viewer, qtbot, model_provider, "cine", T_OUT)
    assert w.ui.lock.text() == "Accept (lock) LV"
    w.ui.lock.click()
    assert w.ui.lock.text() == "Unlock LV"
