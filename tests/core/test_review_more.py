"""Review guards, continued: structures asked for and not found, structures of specks only,
RV adjacency judged in-plane and in mm, confidences just under a threshold, the review sheet's
frameless slice flags, and `segment` removing an earlier run's outputs when it writes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseg.confidence import ConfidenceReport, below, rounded, score_session
from medseg.labels import LabelMap
from medseg.review import anatomy_flags, asked_in_log, needs_review, review_segmentation, review_summary
from medseg.session import Session

LM = LabelMap.parse("lv=1,myo=2,rv=3")


def _heart(n_slices: int = 5, rv: bool = True, myo: bool = True) -> np.ndarray:
    """(Z, 64, 64): LV inside a myocardium ring, an RV touching the ring on its left."""
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 40)
    lab = np.zeros((n_slices, 64, 64), np.uint8)
    if myo:
        lab[:, r < 16] = 2
    lab[:, r < 10] = 1
    if rv:
        lab[:, 28:37, 8:25] = 3
    return lab


def _not_found(review):
    return sorted(f["structure"] for f in review["flags"] if f["code"] == "structure_not_found")


@pytest.mark.parametrize("drop", ["myo", "rv"])
def test_a_structure_asked_for_and_missing_is_flagged(drop):
    """An LV without any myocardium (or a heart without RV) passed review with no flag: the
    enclosure rule needs some myocardium and the mass is None. Asked for and absent, it is now
    ``structure_not_found`` and needs review; not asked for, it is not flagged."""
    lab = _heart(rv=drop != "rv", myo=drop != "myo")
    aff = np.diag([1.5, 1.5, 8.0, 1.0])
    review = review_segmentation(lab, aff, LM, asked=["lv", "myo", "rv"])
    assert _not_found(review) == [drop] and review["needs_review"]
    flag = next(f for f in review["flags"] if f["code"] == "structure_not_found")
    assert drop.upper() in flag["message"] and f"structure_not_found ({drop})" in review_summary(review["flags"])
    nobody = review_segmentation(lab, aff, LM, asked=[s for s in ("lv", "myo", "rv") if s != drop])
    assert _not_found(nobody) == [] and not any(f["code"] == "structure_not_found" for f in nobody["flags"])
    # a label file reviewed on its own: its label map says what it should hold
    assert _not_found(review_segmentation(lab, aff, LM)) == [drop]


def test_what_was_asked_comes_from_the_session_log():
    """segment, batch and napari pass the session log: zero-click's structures and prompted or
    propagated ones are asked for; a structure cleared as a whole is not; one handed over by
    --min-confidence is flagged ``handed_over``, not also ``structure_not_found``."""
    log = [{"op": "auto", "structures": ["lv", "myo"]}, {"op": "prompt", "prompt": {"structure": "rv", "frame": 0, "slice": 2}},
           {"op": "propagate", "structure": "la", "frame": 0, "slice": 2}, {"op": "lock", "structure": "ao", "locked": True}]
    assert asked_in_log(log) == ["lv", "myo", "rv", "la"]
    assert asked_in_log([*log, {"op": "clear", "structure": "rv", "frame": None, "slice": None}]) == ["lv", "myo", "la"]
    assert asked_in_log([*log, {"op": "clear", "structure": "rv", "frame": 0, "slice": 2}]) == ["lv", "myo", "rv", "la"]
    lab = _heart(rv=False, myo=False)
    assert _not_found(review_segmentation(lab, None, LM, actions=log, measure=False)) == ["myo", "rv"]  # la: not in the map
    assert _not_found(review_segmentation(lab, None, LM, actions=log[:1], measure=False)) == ["myo"]
    assert _not_found(review_segmentation(lab, None, LM, actions=[], measure=False)) == []
    handed = [{"code": "handed_over", "level": "volume", "structure": "myo", "confidence": 0.5}]
    assert _not_found(review_segmentation(lab, None, LM, handed, actions=log[:1], measure=False)) == []
    cine = np.stack([_heart(), _heart(rv=False)])  # the RV on one frame of two: not "not found"
    assert _not_found(review_segmentation(cine, None, LM, actions=log, measure=False)) == []


def _specks_session(model, phantom) -> Session:
    """Labels: the LV on one slice of frame 0, the RV as two pixels on each of slices 1, 3, 5."""
    lab = np.zeros(phantom.labels.shape, np.uint8)
    lab[0, 3][phantom.labels[0, 3] == phantom.label_map["lv"]] = 1
    for z in (1, 3, 5):
        lab[0, z, 5, 5:7] = 3
    return Session(phantom.image, model, LM, labels=lab)


def test_a_structure_of_specks_only_gets_confidence_zero_and_is_handed_over(model, phantom):
    """An RV of 2 pixels on each of three slices had no confidence (slices under 3 pixels are
    not scored), so it escaped the flags and --min-confidence. It now scores 0 with a volume
    ``needs_review`` flag, and --min-confidence leaves it out."""
    from medseg.segment import _confidence

    s = _specks_session(model, phantom)
    rep = score_session(s, ["rv"])
    assert rep.volume == {"rv": 0.0} and rep.slices == []
    (flag,) = rep.flags
    assert (flag["code"], flag["level"], flag["structure"], flag["confidence"]) == ("needs_review", "volume", "rv", 0.0)
    assert "specks" in flag["message"] and needs_review(rep.flags)
    conf, handed, _ = _confidence(s, 0.5)
    assert "rv" in handed and not (s.labels == 3).any() and conf["volume"]["rv"] == 0.0
    assert (s.labels == 1).any() == ("lv" not in handed)
    assert any(f["code"] == "handed_over" and f["structure"] == "rv" for f in conf["flags"])


def test_an_rv_touching_the_myocardium_only_on_other_slices_is_flagged():
    """The RV on slice 0 alone, beside where the myocardium is on slices 1-2 (8 mm away): a 3-D
    dilation called that touching. Adjacency is judged on each slice, in-plane."""
    lab = _heart(n_slices=3)
    lab[0][lab[0] != 3] = 0  # slice 0: the RV only
    lab[1:][lab[1:] == 3] = 0  # slices 1, 2: LV and myocardium, no RV
    aff = np.diag([1.0, 1.0, 8.0, 1.0])
    codes = [f["code"] for f in anatomy_flags(lab, LM, frame=1, affine=aff)]
    assert codes == ["rv_not_adjacent_septum"]
    assert anatomy_flags(_heart(n_slices=3), LM, affine=aff) == []  # the same RV on the myocardium's slices


@pytest.mark.parametrize("pixel_mm, flagged", [(0.5, False), (1.0, True)])
def test_rv_adjacency_is_measured_in_millimetres(pixel_mm, flagged):
    """An RV 4 background pixels from the myocardium: 2.5 mm centre to centre on a 0.5 mm grid
    (adjacent), 5 mm on a 1 mm grid (not); counting pixels flagged both alike."""
    lab = _heart()
    lab[lab == 3] = 0
    lab[:, 28:37, 4:21] = 3  # the ring's leftmost column is 25: a gap of 4 pixels
    aff = np.diag([pixel_mm, pixel_mm, 8.0, 1.0])
    codes = [f["code"] for f in anatomy_flags(lab, LM, affine=aff)]
    assert ("rv_not_adjacent_septum" in codes) == flagged


def test_a_confidence_just_under_its_threshold_never_prints_as_equal():
    """0.9196 against 0.92 printed "0.920 < 0.920" and the summary "myo (0.920)"; the stored
    flag values rounded 0.91996 to the threshold."""
    assert below(0.9196, 0.92) == "0.9196 < 0.9200"
    assert below(0.2996, 0.30) == "0.2996 < 0.3000"
    assert (below(0.9157, 0.92), below(0.87, 0.92)) == ("0.916 < 0.920", "0.87 < 0.92")  # as before
    flag = {"code": "needs_review", "level": "volume", "structure": "myo", "confidence": 0.9196, "threshold": 0.92}
    assert review_summary([flag]) == "low confidence: myo (0.9196)"
    assert rounded(0.91996, 0.92) < 0.92 and rounded(0.91996) == 0.92 and rounded(0.95, 0.92) == 0.95
    rep = ConfidenceReport(volume={"myo": 0.919996}, thresholds={"slice": 0.3, "volume": 0.92})
    assert rep.to_json()["volume"]["myo"] < 0.92


def test_the_handed_over_flag_keeps_a_confidence_under_the_cut_off(model, phantom, monkeypatch):
    """--min-confidence 0.9 with a confidence of 0.8996: the flag said "0.90 < --min-confidence
    0.9" and stored 3 decimals (0.9 < 0.9 would read 0.900)."""
    from medseg import confidence, segment

    s = _specks_session(model, phantom)
    monkeypatch.setattr(confidence, "score_session", lambda session, **_: ConfidenceReport(volume={"lv": 0.8996, "rv": 0.95},
                                                                                      thresholds={"slice": 0.3, "volume": 0.92}))
    conf, handed, _ = segment._confidence(s, 0.9)
    assert handed == ["lv"]
    (flag,) = [f for f in conf["flags"] if f["code"] == "handed_over"]
    assert flag["confidence"] == 0.8996 and flag["threshold"] == 0.9
    assert "0.8996 < 0.9000" in flag["message"] and "0.90 <" not in flag["message"]


def test_a_slice_flag_without_a_frame_frames_that_slice_of_every_shown_frame():
    """A phase's ``missing_slice`` names a slice and no frame: it was matched to no panel and
    shown nowhere. It now frames that slice on every shown frame (an unlabelled slice gets its
    panel); a flag whose slice no panel shows is listed under the title."""
    from medseg.measure.sheets import review_panels, review_sheet_figure

    lab = np.stack([_heart(6), _heart(6)])
    lab[:, 4] = 0  # slice 4 empty between labelled slices
    review = {"flags": [{"code": "missing_slice", "structure": "rv", "slice": 4, "message": "rv: slice 4 is empty between labelled slices 0..5"},
                        {"code": "needs_review", "level": "slice", "structure": "lv", "frame": 7, "slice": 2, "message": "lv on frame 7, slice 2: low"}]}
    panels = review_panels(lab, LM, review)
    assert [(p["frame"], p["slice"]) for p in panels if p["flags"]] == [(0, 4), (1, 4)]
    assert all(p["flags"] == ["rv missing_slice"] for p in panels if p["flags"])
    fig = review_sheet_figure(np.zeros(lab.shape), lab, LM, review)
    header = fig.texts[0].get_text()
    assert "lv on frame 7, slice 2" in header and "slice 4 is empty" not in header


def _write_study(d, phantom):
    import nibabel as nib

    from medseg.io.geometry import medseg_to_nifti

    vol = phantom.image.with_array(phantom.image.array[:1], frame_times_s=None)
    nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(d / "img.nii.gz"))
    ys, xs = np.nonzero(phantom.labels[0, 3] == phantom.label_map["lv"])
    (d / "p.json").write_text(json.dumps({"prompts": [{"structure": "lv", "slice": 3, "box": [int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max())]}]}))


def test_segment_that_writes_nothing_removes_the_earlier_outputs_of_its_name(model, phantom, tmp_path, capsys):
    """A run that hands every structure over writes nothing (exit 3); the labels, sidecar and
    review sheet an earlier run wrote under the same name stayed and looked like its result.
    They are removed (as batch does) and named; other files are left alone."""
    from medseg.cli._app import run_cli

    _write_study(tmp_path, phantom)
    args = ["segment", str(tmp_path / "img.nii.gz"), "--prompts", str(tmp_path / "p.json"), "--label-map", "lv=1",
            "-o", str(tmp_path / "s.nii.gz"), "--review-png", str(tmp_path / "s.png")]
    assert run_cli(args) == 0
    (tmp_path / "s_notes.txt").write_text("mine")
    assert {"s.nii.gz", "s.json", "s.png"} <= {p.name for p in tmp_path.iterdir()}
    capsys.readouterr()
    assert run_cli([*args, "--min-confidence", "1"]) == 3
    cap = capsys.readouterr()
    out = " ".join((cap.out + cap.err).split())
    assert "nothing written" in out and "removed" in out and "s.json" in out
    assert not {"s.nii.gz", "s.json", "s.png"} & {p.name for p in tmp_path.iterdir()}
    assert (tmp_path / "s_notes.txt").read_text() == "mine" and (tmp_path / "img.nii.gz").exists()


def test_zero_click_on_one_2d_view_without_a_modality_suggests_the_echo_structures():
    """An apical CAMUS PNG segmented with the default zero-click structures read
    `structure_not_found (rv)` on every image, with no word of --structures lv,myo,la."""
    from medseg.cli.segment_cmd import structures_hint
    from medseg.io import Volume

    png = Volume(np.zeros((1, 1, 32, 32), np.float32), np.eye(4), modality="OT", spacing_known=False)
    assert "--structures lv,myo,la" in structures_hint(png, True, None, ["rv"])
    stack = Volume(np.zeros((1, 6, 32, 32), np.float32), np.eye(4), modality="OT")
    us = Volume(np.zeros((1, 1, 32, 32), np.float32), np.eye(4), modality="US")
    assert structures_hint(stack, True, None, ["rv"]) is None  # a short-axis stack: an RV to find
    assert structures_hint(us, True, None, ["rv"]) is None  # ultrasound: lv, myo, la were looked for
    assert structures_hint(png, True, ("lv", "myo", "rv"), ["rv"]) is None  # asked for by name
    assert structures_hint(png, True, None, []) is None and structures_hint(png, False, None, ["rv"]) is None
