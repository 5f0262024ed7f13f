"""Confidence scores, review flags and abstention."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.confidence import calibration, combine, score_session, slice_signals
from medseg.labels import LabelMap
from medseg.prompt_file import prompts_from_labels
from medseg.review import anatomy_flags, measurement_flags, needs_review
from medseg.segment import segment_volume
from medseg.session import Session
from medseg.types import Box, SlicePrompt

LM = LabelMap.parse("lv=1,myo=2,rv=3")


def test_calibration_is_fitted_and_monotone():
    cal = calibration()
    assert "ACDC" in cal["fitted_on"] and cal["w_iou"] > 0 and cal["w_agreement"] > 0
    assert combine(0.95, 0.95) > combine(0.8, 0.8) > combine(0.5, 0.5)
    assert 0.0 <= combine(0.0, 0.0) < combine(1.0, 1.0) <= 1.0


def test_corrupted_mask_gets_lower_confidence(model, phantom):
    s = Session(phantom.image, model, LM)
    lab = phantom.labels[0, 3]
    s.apply_prompt(SlicePrompt("lv", 0, 3, box=Box.from_mask(lab == 1)))
    good = score_session(s, ["lv"]).slices[0]
    assert good.confidence > 0.8 and good.agreement > 0.85
    sl = s.labels[0, 3]
    m = sl == 1
    sl[m] = 0
    sl[np.roll(m, 12, axis=1)] = 1  # the written mask now sits beside the LV
    bad = score_session(s, ["lv"]).slices[0]
    assert bad.confidence < good.confidence - 0.2


def test_review_reports_progress_per_slice_scored(model, phantom):
    """napari's Check showed a bar with no count: Session.review takes a progress callback."""
    s = Session(phantom.image, model, LM)
    for z in (2, 3):
        s.apply_prompt(SlicePrompt("lv", 0, z, box=Box.from_mask(phantom.labels[0, z] == 1)))
    calls = []
    review = s.review(progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)] and len(review["confidence"]["slices"]) == 2


def test_predicted_iou_follows_the_written_mask(model, phantom):
    """The decoder's predicted IoU describes the mask it drew: kept as is while the slice holds
    that mask, scaled down once the mask is edited (no stale score for a painted slice)."""
    s = Session(phantom.image, model, LM)
    s.apply_prompt(SlicePrompt("lv", 0, 3, box=Box.from_mask(phantom.labels[0, 3] == 1)))
    score = s.results[("lv", 0, 3)].score
    iou, _, _ = slice_signals(s, "lv", 0, 3)
    assert iou == pytest.approx(score, abs=0.02)
    sl = s.labels[0, 3]
    ys, _ = np.nonzero(sl == 1)
    sl[(sl == 1) & (np.arange(sl.shape[0])[:, None] < np.median(ys))] = 0  # keep the lower half
    iou_half, _, _ = slice_signals(s, "lv", 0, 3)
    assert iou_half == pytest.approx(score * 2 / 3, abs=0.06)  # Dice of half a mask with the whole is 2/3


def test_segment_reports_confidence_and_min_confidence_hands_over(model, phantom):
    vol = phantom.image.with_array(phantom.image.array[:1], frame_times_s=None)
    ps = prompts_from_labels(phantom.labels[:1], LM, key_slice=True)
    steps = []
    r = segment_volume(vol, model, ps, label_map=LM, progress=lambda d, t, what=None: steps.append((d, t, what)))
    assert set(r.confidence["volume"]) == {"lv", "myo", "rv"} and "review" in r.provenance
    # the bar follows each propagation slice by slice, then names the confidence and review steps
    # (it sat at 0/? through a propagation, then at 3/3 through the review)
    whats = [w for _, _, w in steps]
    assert any(w and "lv propagated, slices" in w for w in whats) and sum(1 for w in whats if w and "propagated" in w) > 3
    assert whats[-1] == "review (measurements, anatomy)" and "confidence (jittered decodes)" in whats
    assert whats[-2] == "confidence (jittered decodes), slices"  # counted slice by slice
    assert (3, 3, "prompts") in steps
    r2 = segment_volume(vol, model, ps, label_map=LM, min_confidence=0.999)
    assert set(r2.handed_over) == {"lv", "myo", "rv"} and not r2.labels.any()
    assert r2.provenance["needs_review"] and any(f["code"] == "handed_over" for f in r2.provenance["review"]["flags"])


def _ring_labels():
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 36)
    lab = np.zeros((5, 64, 64), np.uint8)
    lab[:, r < 16] = 2
    lab[:, r < 10] = 1
    lab[:, (np.hypot(yy - 32, xx - 12) < 9) & (r >= 16)] = 3
    return lab


def test_anatomy_flags():
    lab = _ring_labels()
    assert anatomy_flags(lab, LM) == []
    broken = lab.copy()
    broken[2][(broken[2] == 2) & (np.arange(64)[None, :] > 36)] = 0  # half the ring gone
    codes = [(f["code"], f.get("slice")) for f in anatomy_flags(broken, LM)]
    assert ("myo_not_enclosing_lv", 2) in codes
    far = lab.copy()
    far[far == 3] = 0
    far[:, 2:6, 2:6] = 3  # an RV nowhere near the septum
    assert "rv_not_adjacent_septum" in [f["code"] for f in anatomy_flags(far, LM)]


@pytest.mark.parametrize("report, code", [({"lv_mass_g": 5.0}, "lv_mass_implausible"), ({"lv_mass_g": 500.0}, "lv_mass_implausible"),
                                          ({"lv": {"ef_pct": 95.0}}, "ef_implausible"), ({"lv": {"ef_pct": 2.0}}, "ef_implausible"),
                                          ({"lv": {"ef_pct": 60.0}, "rv": {"ef_pct": 100.0}}, "ef_implausible"),
                                          ({"flags": [{"code": "missing_slice"}]}, "missing_slice"),
                                          # a left atrium that leaked into the body (1.7 L on an upsampled CT phantom)
                                          ({"volumes_ml": {"lv": 150.0, "la": 1670.0}}, "volume_implausible"),
                                          ({"volumes_ml": {"lv": 150.0}, "phases": {"ed": {"volumes_ml": {"lv": 150.0}},
                                                                                     "es": {"volumes_ml": {"rv": 900.0}}}}, "volume_implausible")])
def test_measurement_flags(report, code):
    flags = measurement_flags(report)
    assert [f["code"] for f in flags] == [code] and needs_review(flags)


def test_plausible_numbers_and_info_flags_do_not_trigger_review():
    flags = measurement_flags({"lv_mass_g": 120.0, "lv": {"ef_pct": 60.0}, "rv": {"ef_pct": 52.0}, "flags": [{"code": "incomplete_coverage"}],
                               "volumes_ml": {"lv": 450.0, "la": 300.0}})  # a dilated ventricle, a giant atrium: not implausible
    assert flags == [] and not needs_review(flags)


def test_review_summary_says_what_to_look_at():
    """segment's closing line: which structures are unsure (volume confidence, slice count),
    then the other review codes; information-only flags are left out."""
    from medseg.review import review_summary

    flags = [{"code": "needs_review", "level": "slice", "structure": "rv", "frame": 0, "slice": 1, "confidence": 0.3},
             {"code": "needs_review", "level": "volume", "structure": "myo", "confidence": 0.839},
             {"code": "needs_review", "level": "slice", "structure": "rv", "frame": 0, "slice": 7, "confidence": 0.2},
             *measurement_flags({"lv_mass_g": 500.0, "flags": [{"code": "incomplete_coverage"}]})]
    assert review_summary(flags) == "low confidence: rv (2 slices), myo (0.84); lv_mass_implausible"
    assert review_summary([]) == ""
    # a confidence two decimals would print as its threshold gets three, in the flag and the line
    from medseg.confidence import below

    assert (below(0.9157, 0.92), below(0.87, 0.92)) == ("0.916 < 0.920", "0.87 < 0.92")
    close = [{"code": "needs_review", "level": "volume", "structure": "rv", "confidence": 0.9157, "threshold": 0.92}]
    assert review_summary(close) == "low confidence: rv (0.916)"
    clip = [{"code": "needs_review", "level": "slice", "structure": "myo", "frame": t, "slice": 0, "confidence": 0.2} for t in (0, 21)]
    assert review_summary(clip) == "low confidence: myo (2 frames)"  # one slice over the cycle: frames


def test_a_replay_of_the_log_gives_the_labels_min_confidence_left(model, phantom, monkeypatch):
    """Structures left out below --min-confidence were erased outside the session's log: a
    replay of the sidecar's actions (napari's "Load session") brought them back."""
    from medseg import confidence
    from medseg.confidence import ConfidenceReport

    vol = phantom.image.with_array(phantom.image.array[:1], frame_times_s=None)
    ps = prompts_from_labels(phantom.labels[:1], LM, key_slice=True)
    monkeypatch.setattr(confidence, "score_session", lambda session, **_: ConfidenceReport(volume={"lv": 0.97, "myo": 0.95, "rv": 0.5},
                                                                                      thresholds={"slice": 0.3, "volume": 0.92}))
    r = segment_volume(vol, model, ps, label_map=LM, min_confidence=0.9)
    assert r.handed_over == ["rv"] and not (r.labels == LM["rv"]).any() and (r.labels == LM["lv"]).any()
    assert r.provenance["actions"][-1]["op"] == "clear" and r.provenance["actions"][-1]["structure"] == "rv"
    again = Session(vol, model, LM)
    again.replay(r.provenance["actions"])
    assert np.array_equal(again.labels, r.labels)
