"""Review guards: slice and volume confidence flags, measurement flags of unsegmented
structures, the ``fragmented`` review code, RV adjacency (each test kills a mutant the rest of
the suite let through)."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.confidence import calibration, score_session
from medseg.labels import LabelMap
from medseg.review import anatomy_flags, measurement_flags, needs_review, review_summary
from medseg.session import Session
from medseg.types import Box, SlicePrompt

LM = LabelMap.parse("lv=1,myo=2,rv=3")


@pytest.fixture()
def shifted(model, phantom):
    """LV prompted on slices 2 and 3 of frame 0, the mask on slice 3 then moved 16 px aside
    (a mask that no longer lies on the LV)."""
    s = Session(phantom.image, model, LM)
    for z in (2, 3):
        s.apply_prompt(SlicePrompt("lv", 0, z, box=Box.from_mask(phantom.labels[0, z] == 1)))
    sl = s.labels[0, 3]
    m = sl == 1
    sl[m] = 0
    sl[np.roll(m, 16, axis=1)] = 1
    return s


def _slice_flags(rep):
    return {(f["structure"], f["frame"], f["slice"]) for f in rep.flags if f["code"] == "needs_review" and f["level"] == "slice"}


def _volume_flags(rep):
    return {f["structure"] for f in rep.flags if f["code"] == "needs_review" and f["level"] == "volume"}


def test_a_misplaced_mask_is_flagged_on_its_slice(shifted):
    """With the shipped calibration, a slice whose mask sits beside the LV gets a slice-level
    ``needs_review`` at that frame and slice, and the good slice none (a slice threshold 0.5 too low
    would flag no slice at all)."""
    rep = score_session(shifted, ["lv"])
    conf = {(s.frame, s.slice): s.confidence for s in rep.slices}
    th = calibration()["slice_threshold"]
    assert conf[(0, 3)] < th <= conf[(0, 2)]
    assert _slice_flags(rep) == {("lv", 0, 3)}
    flag = next(f for f in rep.flags if f["level"] == "slice")
    assert flag["threshold"] == th and flag["confidence"] == pytest.approx(conf[(0, 3)], abs=1e-4)
    assert rep.needs_review and rep.to_json()["needs_review"]


def test_volume_confidence_is_the_slice_mean_and_flagged_by_the_volume_threshold(shifted):
    """A volume's confidence is the mean of its slices' (not the best slice's, which hid a failed
    slice behind a good one), and it is compared with the volume threshold, not the slice one:
    thresholds chosen so the two give different answers."""
    base = score_session(shifted, ["lv"])
    confs = [s.confidence for s in base.slices]
    assert len(confs) == 2 and max(confs) - min(confs) > 0.3  # one good slice, one misplaced
    mean, lo, hi = float(np.mean(confs)), min(confs), max(confs)
    assert base.volume["lv"] == pytest.approx(mean, abs=1e-12)

    # no slice below the slice threshold; the mean below the volume threshold, the best slice not
    cal = {**calibration(), "slice_threshold": lo / 2, "volume_threshold": (mean + hi) / 2}
    rep = score_session(shifted, ["lv"], cal=cal)
    assert rep.volume["lv"] == pytest.approx(mean, abs=1e-12)
    assert _slice_flags(rep) == set() and _volume_flags(rep) == {"lv"}
    assert rep.thresholds == {"slice": cal["slice_threshold"], "volume": cal["volume_threshold"]}

    # the mean below the slice threshold but above the volume threshold: slice flag only
    cal = {**calibration(), "slice_threshold": (mean + hi) / 2, "volume_threshold": lo / 2}
    rep = score_session(shifted, ["lv"], cal=cal)
    assert _slice_flags(rep) == {("lv", 0, 3)} and _volume_flags(rep) == set()


def test_measurement_flags_of_unsegmented_structures_are_dropped():
    """A measurement QC flag about a structure that was not segmented at all (an RV nobody
    prompted) is dropped, so it does not send a segmentation to review; flags of segmented
    structures and flags about no structure are kept."""
    report = {"flags": [{"code": "missing_slice", "structure": "rv", "slice": 2},
                        {"code": "missing_slice", "structure": "lv", "slice": 4},
                        {"code": "esv_exceeds_edv"}]}
    kept = measurement_flags(report, segmented={"lv", "myo"})
    assert [(f["code"], f.get("structure")) for f in kept] == [("missing_slice", "lv"), ("esv_exceeds_edv", None)]
    assert all(f["level"] == "measurement" for f in kept)
    only_rv = measurement_flags({"flags": [{"code": "missing_slice", "structure": "rv", "slice": 2}]}, segmented={"lv", "myo"})
    assert only_rv == [] and not needs_review(only_rv)
    assert len(measurement_flags(report)) == 3  # without ``segmented`` every flag is kept


def test_a_fragmented_structure_needs_review():
    """A ``fragmented`` measurement flag (a structure in separate pieces) is a review code: it is
    kept and triggers review (dropped as information only, a structure in pieces would pass)."""
    flags = measurement_flags({"flags": [{"code": "fragmented", "structure": "myo", "n_components": 2}]}, segmented={"lv", "myo"})
    assert [f["code"] for f in flags] == ["fragmented"] and needs_review(flags)
    assert needs_review([{"code": "fragmented"}])
    assert review_summary(flags) == "fragmented"


def _ring_with_rv(gap: int | None) -> np.ndarray:
    """LV inside a myocardium ring on 5 slices; an RV block to its left whose right edge is
    ``gap`` background pixels from the ring (0: touching), none when ``gap`` is None."""
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 40)
    lab = np.zeros((5, 64, 64), np.uint8)
    lab[:, r < 16] = 2
    lab[:, r < 10] = 1
    left = int(np.flatnonzero(lab[0, 32] == 2)[0])  # the ring's leftmost column on its middle row
    assert left == 25
    if gap is not None:
        lab[:, 28:37, 4:left - gap] = 3
    return lab


@pytest.mark.parametrize("gap, flagged", [(None, False), (0, False), (1, False), (4, True), (5, True), (12, True)])
def test_an_rv_away_from_the_myocardium_is_flagged(gap, flagged):
    """An RV that never touches the myocardium is flagged ``rv_not_adjacent_septum``; one that
    touches it, or is one pixel short of it (separately predicted structures), is not. A check
    reaching 25 px would let an RV drawn well away from the heart pass."""
    lab = _ring_with_rv(gap)
    if gap is not None:
        rv_right = int(np.flatnonzero((lab[0] == 3).any(axis=0))[-1])
        assert 25 - rv_right - 1 == gap
    codes = [f["code"] for f in anatomy_flags(lab, LM, frame=2)]
    assert ("rv_not_adjacent_septum" in codes) == flagged
    assert "myo_not_enclosing_lv" not in codes
    if flagged:
        f = next(f for f in anatomy_flags(lab, LM, frame=2) if f["code"] == "rv_not_adjacent_septum")
        assert f["frame"] == 2 and needs_review([f])
