"""The review list: Qt-free rows from a real Session (a phantom with one corrupted slice), the
provenance record of "mark reviewed", and the dock widget jumping to a flagged slice."""

from __future__ import annotations

import numpy as np
import pytest
from medseg_napari._review import ReviewList, ReviewRow, confidence_summary, review_rows
from napari_helpers import gui_ready

BAD_SLICE = 3  # mid-ventricular: the myocardium ring is half erased there


@pytest.fixture(scope="module")
def phantom():
    from medseg.phantoms import cine_sax_phantom

    return cine_sax_phantom(n_frames=1, n_slices=6, shape=(112, 112), seed=3)


def _prompt_all(prompt, truth: np.ndarray) -> None:
    """One box per structure and slice, from the phantom's labels."""
    from medseg.types import Box

    for name, value in (("lv", 1), ("myo", 2), ("rv", 3)):
        for z in range(truth.shape[1]):
            mask = truth[0, z] == value
            if mask.sum() > 3:
                prompt(name, 0, z, Box.from_mask(mask))


def _corrupt(labels: np.ndarray) -> None:
    """Erase the myocardium above the LV centre on BAD_SLICE (the ring no longer encloses the LV)."""
    sl = labels[0, BAD_SLICE]
    cy = np.nonzero(sl == 2)[0].mean()
    sl[(sl == 2) & (np.arange(sl.shape[0])[:, None] < cy)] = 0


@pytest.fixture
def session(phantom, loaded_model):
    from medseg.session import Session
    from medseg.types import SlicePrompt

    s = Session(phantom.image, loaded_model)
    _prompt_all(lambda n, t, z, box: s.apply_prompt(SlicePrompt(n, t, z, box=box)), phantom.labels)
    _corrupt(s.labels)
    return s


def test_review_rows_from_a_session(session):
    review = ReviewList(session)
    rows = review.check()
    bad = [r for r in rows if r.code == "myo_not_enclosing_lv"]
    assert len(bad) == 1 and review.needs_review
    row = bad[0]
    assert (row.structure, row.frame, row.slice, row.reviewed) == ("myo", 0, BAD_SLICE, False)
    assert row.confidence is not None and 0.0 <= row.confidence <= 1.0  # myo's confidence on that slice
    assert review.target(row) == (0, BAD_SLICE)
    assert set(review.volume_confidence) == {"lv", "myo", "rv"}
    # the corrupted slice may also be flagged for its low confidence, and only there
    assert all((r.structure, r.slice) == ("myo", BAD_SLICE) for r in rows if r.level == "slice"), rows
    assert "lv 0." in review.summary and f"{len(rows)} of {len(rows)} flags" in review.summary
    assert rows == sorted(rows, key=lambda r: (r.code == "needs_review", -1 if r.confidence is None else r.confidence, r.structure or "",
                                               -1 if r.frame is None else r.frame, -1 if r.slice is None else r.slice))


def test_mark_reviewed_is_in_the_provenance(session):
    review = ReviewList(session)
    rows = review.check()
    i = next(i for i, r in enumerate(rows) if r.code == "myo_not_enclosing_lv")
    done = review.mark_reviewed(i)
    assert done.reviewed and review.rows[i].reviewed
    actions = [a for a in session.provenance()["actions"] if a["op"] == "review"]
    assert len(actions) == 1
    assert (actions[0]["structure"], actions[0]["frame"], actions[0]["slice"]) == ("myo", 0, BAD_SLICE)
    assert actions[0]["note"] == "myo_not_enclosing_lv"
    again = ReviewList(session)
    assert [r.reviewed for r in again.check() if r.code == "myo_not_enclosing_lv"] == [True]  # from the log
    assert f"{len(rows) - 1} of {len(rows)} flags" in again.summary  # the reviewed one no longer counts
    with pytest.raises(IndexError):
        review.mark_reviewed(len(rows))



def test_review_sheet_from_the_checked_review(session, tmp_path):
    from PIL import Image

    from medseg.errors import MedsegError
    from medseg.measure.sheets import review_panels

    review = ReviewList(session)
    with pytest.raises(MedsegError, match="check"):
        review.save_sheet(tmp_path / "early.png")
    review.check()
    path = review.save_sheet(tmp_path / "sheet")  # the extension is added
    assert path == tmp_path / "sheet.png"
    with Image.open(path) as im:
        assert im.format == "PNG"
    panels = review_panels(session.labels, session.label_map, review._review, review._review["confidence"])
    assert (0, BAD_SLICE) in [(p["frame"], p["slice"]) for p in panels if p["flags"]]


def test_a_review_of_other_labels_is_stale(session, tmp_path):
    """An edit after the check (here: a pixel, as a brush stroke on the layer would) makes the
    review stale: its sheet would draw the new contours with the old confidences and flags."""
    from medseg.errors import MedsegError

    review = ReviewList(session)
    rows = review.check()
    assert not review.stale
    review.mark_reviewed(0)  # marking records in the log; the labels are the same
    assert not review.stale
    z, y, x = (int(v[0]) for v in np.nonzero(session.labels[0] == 1))
    session.labels[0, z, y, x] = 0
    assert review.stale
    with pytest.raises(MedsegError, match="changed since the check"):
        review.save_sheet(tmp_path / "sheet.png")
    with pytest.raises(MedsegError, match="changed since the check"):
        review.mark_reviewed(len(rows) - 1)
    assert not (tmp_path / "sheet.png").exists()
    review.check()
    assert not review.stale and review.save_sheet(tmp_path / "sheet.png").is_file()


def test_review_rows_order_and_fields():
    review = {
        "needs_review": True,
        "flags": [
            {"code": "needs_review", "level": "volume", "structure": "rv", "confidence": 0.8, "message": "rv volume"},
            {"code": "needs_review", "level": "slice", "structure": "lv", "frame": 0, "slice": 4, "confidence": 0.6, "message": "lv s4"},
            {"code": "missing_slice", "level": "measurement", "structure": "myo", "slice": 2, "message": "gap"},
            {"code": "rv_not_adjacent_septum", "level": "volume", "frame": 0, "message": "rv apart"},
        ],
        "confidence": {"volume": {"lv": 0.9, "myo": 0.93, "rv": 0.8},
                       "slices": [{"structure": "myo", "frame": 0, "slice": 2, "confidence": 0.7}]},
        "reviewed": [{"op": "review", "structure": "lv", "frame": 0, "slice": 4, "note": ""}],
    }
    rows = review_rows(review, n_frames=1)
    assert [r.code for r in rows] == ["rv_not_adjacent_septum", "missing_slice", "needs_review", "needs_review"]
    assert rows[0] == ReviewRow("rv_not_adjacent_septum", "volume", "rv apart", "rv", 0, None, None)  # structure from the code
    assert (rows[1].frame, rows[1].slice, rows[1].confidence) == (0, 2, 0.7)  # one-frame study: frame 0; slice confidence
    assert [(r.structure, r.reviewed) for r in rows[2:]] == [("lv", True), ("rv", False)]
    assert rows[2].cells() == ("needs_review", "lv", "0", "4", "0.60", "lv s4")
    assert rows[3].where == "volume" and rows[2].where == "frame 0, slice 4"
    assert confidence_summary(review["confidence"]["volume"]) == "lv 0.90, myo 0.93, rv 0.80"
    assert review_rows({"flags": []}) == []
    # a confidence just under its threshold is shown with the digits that keep it under (0.92 read as the threshold)
    (low,) = review_rows({"flags": [{"code": "needs_review", "level": "volume", "structure": "myo", "confidence": 0.9196,
                                     "threshold": 0.92, "message": "myo: volume confidence 0.9196 < 0.9200"}]})
    assert low.cells()[4] == "0.9196"


# -- the dock widget -----------------------------------------------------------------------------
@pytest.mark.gui
@pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
def test_review_widget_jumps_and_marks(make_napari_viewer, qtbot, model_provider, phantom, tmp_path):
    from medseg_napari._layers import META_PROVENANCE, image_layer_kwargs
    from medseg_napari._qt.review_widget import REVIEWED_COLOUR, ReviewWidget, find_segment_widget
    from medseg_napari._qt.segment_widget import SegmentWidget
    from qtpy.QtCore import Qt

    viewer = make_napari_viewer()
    image = viewer.add_image(phantom.image.array, **image_layer_kwargs(phantom.image, "phantom"))
    seg = SegmentWidget(viewer, models=model_provider)
    viewer.window.add_dock_widget(seg, name="medseg: segmentation")
    seg.ui.image.setCurrentText(image.name)
    seg.start_session()
    qtbot.waitUntil(lambda: seg.controller is not None and not seg.busy, timeout=60_000)
    _prompt_all(lambda n, t, z, box: seg.controller.prompt(n, t, z, box=box), phantom.labels)
    _corrupt(seg.controller.labels)
    seg.binding.labels.refresh()

    w = ReviewWidget(viewer)
    viewer.window.add_dock_widget(w, name="medseg: review")
    assert find_segment_widget(viewer) is seg and w.segment_widget is seg
    qtbot.waitUntil(lambda: not seg.busy, timeout=60_000)
    w.check_btn.click()
    qtbot.waitUntil(lambda: w.review is not None and not seg.busy, timeout=60_000)
    assert "lv 0." in w.summary.text() and "myo" in w.summary.text()
    r = next(i for i, row in enumerate(w.review.rows) if row.code == "myo_not_enclosing_lv")
    assert w.table.item(r, 1).text() == "myo_not_enclosing_lv" and w.table.item(r, 4).text() == str(BAD_SLICE)

    viewer.dims.set_current_step(1, 0)
    seg.select_structure("lv")
    qtbot.waitUntil(lambda: not seg.busy, timeout=60_000)
    rect = w.table.visualItemRect(w.table.item(r, 1))
    qtbot.mouseClick(w.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert viewer.dims.current_step[1] == BAD_SLICE and viewer.dims.current_step[0] == 0
    assert seg.controller.active == "myo"

    qtbot.waitUntil(lambda: not seg.busy and w.mark_btn.isEnabled(), timeout=60_000)
    w.mark_btn.click()
    reviews = [a for a in seg.controller.provenance()["actions"] if a["op"] == "review"]
    assert [(a["structure"], a["frame"], a["slice"]) for a in reviews] == [("myo", 0, BAD_SLICE)]
    assert any(a["op"] == "review" for a in seg.binding.labels.metadata[META_PROVENANCE]["actions"])  # what the writer saves
    assert w.table.item(r, 0).text() == "✓" and w.table.item(r, 1).foreground().color().name() == REVIEWED_COLOUR
    assert not w.mark_btn.isEnabled()
    sheet = tmp_path / "sheet.png"
    w.save_sheet(str(sheet))
    assert sheet.is_file() and "Review sheet saved" in w.status.text()
    seg.controller.labels[0, BAD_SLICE][seg.controller.labels[0, BAD_SLICE] == 1] = 0  # an edit after the check
    other = next(i for i, row in enumerate(w.review.rows) if not row.reviewed)
    w.table.selectRow(other)
    assert "changed since the check" in w.status.text()
    w.mark_btn.click()
    assert "changed since the check" in w.status.text() and not w.review.rows[other].reviewed
