"""ED and ES of a cine or an echo clip: frames that do not close the cycle, no motion, a structure
missing on one frame, frames named twice in a batch, and the frame times labels keep."""

from __future__ import annotations

import csv
import json
import math

import nibabel as nib
import numpy as np
import pytest
from measure_phantoms import LVPhantom, centred_affine, echo_view, rasterise

from medseg.measure.echo import measure_echo_clip
from medseg.measure.qc import curve_closes
from medseg.measure.report import measure_cine

LMAP = "lv=1,myo=2,rv=3"
SHAPE = (9, 64, 64)
AFF = centred_affine((10.0, 1.5, 1.5), SHAPE, shift_mm=(0.3, 0.2, -3.3))
N = 12  # frames of the cycle; ED at frame 0, ES at frame 6
PX = 0.3


def _codes(rep, code):
    return [f for f in rep["flags"] if f["code"] == code]


@pytest.fixture(scope="module")
def cycle():
    """(N, Z, Y, X) labels of one whole cycle: the LV radius follows a cosine, largest at frame 0."""
    return np.stack([rasterise(LVPhantom(r_cav=20.0 + 4.0 * np.cos(2 * np.pi * t / N)), AFF, SHAPE) for t in range(N)])


# -- 1. frames that do not span a cycle ----------------------------------------------------
def test_cine_cut_before_its_extremes_flags_ed_and_es_at_the_clip_ends(cycle):
    """Frames 8-11 (mid-filling .. ED - 1): ED lands on the last frame, ES on the first, and the
    EF is far below the cycle's; both are flagged (the report was silent)."""
    whole = measure_cine(cycle, AFF, LMAP)
    part = measure_cine(cycle[8:12], AFF, LMAP)
    assert (part["ed_frame"], part["es_frame"]) == (3, 0) and part["lv"]["ef_pct"] < whole["lv"]["ef_pct"] - 10
    lv = {f["phase"]: f for f in _codes(part, "phase_at_clip_end") if f["structure"] == "lv"}
    assert set(lv) == {"ed", "es"} and (lv["ed"]["frame"], lv["es"]["frame"]) == (3, 0)
    assert lv["ed"]["severity"] == "warning" and "LV ED on the last labelled frame (3)" in lv["ed"]["message"]
    assert "the true end-systole may lie outside" in lv["es"]["message"]


@pytest.mark.parametrize("start", [0, 6, 3], ids=["starts_at_ED", "starts_at_ES", "starts_mid_systole"])
def test_a_whole_cycle_is_not_flagged_wherever_it_starts(cycle, start):
    rep = measure_cine(np.roll(cycle, -start, axis=0), AFF, LMAP)
    assert not _codes(rep, "phase_at_clip_end")
    assert rep["ed_frame"] == (-start) % N and rep["es_frame"] == (6 - start) % N


def test_ed_and_es_labelled_alone_are_not_judged(cycle):
    """A cine prompted on ED and ES only (frames 0 and 6, the others unlabelled): two frames tell
    nothing about the cycle, so no flag (ED is on frame 0 by the labeller's choice)."""
    cine = np.zeros_like(cycle)
    cine[[0, 6]] = cycle[[0, 6]]
    rep = measure_cine(cine, AFF, LMAP)
    assert (rep["ed_frame"], rep["es_frame"]) == (0, 6) and not _codes(rep, "phase_at_clip_end")
    assert curve_closes([1.0, None, 2.0]) is None and curve_closes([3.0, 2.0, 1.0]) is False
    assert curve_closes([3.0, 1.0, 2.0, float("nan"), 2.9]) is True


def _echo_clip(widths):
    shape = (int(130 / PX), int(110 / PX))
    return np.stack([echo_view(w, 60.0 + w, True, shape=shape) for w in widths])


def test_echo_clip_cut_part_way_flags_its_phases():
    part = measure_echo_clip(_echo_clip([21.0, 19.0, 17.0, 15.5]), spacing_mm=(PX, PX))
    assert (part["ed_frame"], part["es_frame"]) == (0, 3)
    assert {(f["phase"], f["frame"]) for f in _codes(part, "phase_at_clip_end")} == {("ed", 0), ("es", 3)}
    whole = measure_echo_clip(_echo_clip([19.0, 21.0, 18.0, 15.0, 16.0, 18.0, 19.5]), spacing_mm=(PX, PX))
    assert (whole["ed_frame"], whole["es_frame"]) == (1, 3) and not _codes(whole, "phase_at_clip_end")


# -- 2. an echo clip without motion ----------------------------------------------------------
@pytest.mark.parametrize("spacing", [(PX, PX), None], ids=["mm", "no_spacing"])
def test_echo_clip_without_motion_has_no_ef(spacing):
    """The same LV on every frame: ED = ES = frame 0 read EF 0.0 % (and lvef_low); the EF is
    undefined, as measure_cine says for a cine."""
    rep = measure_echo_clip(_echo_clip([20.0, 20.0, 20.0]), spacing_mm=spacing)
    assert (rep["ed_frame"], rep["es_frame"]) == (0, None)
    assert all(math.isnan(rep["lv"][k]) for k in ("esv_ml", "sv_ml", "ef_pct")) and math.isnan(rep["lv_area_length"]["ef_pct"])
    assert math.isnan(rep["la_volume_ml"])  # the LA is measured at LV end-systole, which is not known
    (flag,) = _codes(rep, "ef_undefined")
    assert "does not change over its 3 labelled frames (0, 1, 2" in flag["message"]
    assert [f["code"] for f in rep["flags"]] == ["ef_undefined"]
    assert (spacing is None) == math.isnan(rep["lv"]["edv_ml"])


def test_cli_summary_of_a_clip_without_motion(tmp_path, capsys):
    from medseg.cli import run_cli

    src, out = tmp_path / "clip.nii.gz", tmp_path / "r.json"
    clip = _echo_clip([20.0, 20.0, 20.0])
    nib.save(nib.Nifti1Image(clip[:, None].T.copy().astype(np.int16), np.diag([PX, PX, 1.0, 1.0])), str(src))
    assert run_cli(["measure", str(src), "--label-map", "lv=1,myo=2,la=3", "-o", str(out), "--plots", str(tmp_path / "p")]) == 0
    rep = json.loads(out.read_text())
    assert rep["es_frame"] is None and rep["lv"]["ef_pct"] is None
    text = " ".join(capsys.readouterr().out.split())
    assert "EF n/a" in text and "ES frame n/a" in text and (tmp_path / "p" / "volume_curve.png").exists()


# -- 3. a structure missing on one frame -----------------------------------------------------
def test_lv_missing_on_one_frame_is_a_gap_not_zero(cycle, tmp_path):
    from medseg.measure.export import report_row
    from medseg.measure.plots import volume_curve_png

    cine = cycle.copy()
    cine[3][cine[3] == 1] = 0  # myocardium and RV still labelled there
    rep = measure_cine(cine, AFF, LMAP)
    curve = rep["volume_curve_ml"]["lv"]
    assert curve[3] is None and all(v is not None and v > 0 for t, v in enumerate(curve) if t != 3)
    (flag,) = [f for f in _codes(rep, "absent_structure") if f.get("frame") == 3]
    assert flag["structure"] == "lv" and flag["severity"] == "warning" and "gap, not 0 mL" in flag["message"]
    assert (rep["ed_frame"], rep["es_frame"]) == (0, 6)
    assert not [f for f in _codes(rep, "absent_structure") if f["structure"] == "rv"]
    assert "absent_structure(structure=lv,frame=3)" in report_row(rep)["flags"]
    assert volume_curve_png(rep, tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_lv_on_two_frames_and_rv_on_all_gives_info_not_warnings(cycle):
    """The LV prompted at ED and ES, the RV followed through the cycle: the frames without LV are
    said once each, as information (the LV was not followed, not lost)."""
    cine = cycle.copy()
    for t in range(N):
        if t not in (0, 6):
            cine[t][np.isin(cine[t], (1, 2))] = 0
    rep = measure_cine(cine, AFF, LMAP)
    lv = [f for f in _codes(rep, "absent_structure") if f["structure"] == "lv"]
    assert sorted(f["frame"] for f in lv) == [t for t in range(N) if t not in (0, 6)]
    assert {f["severity"] for f in lv} == {"info"} and 5 < rep["lv"]["ef_pct"] < 90


# -- 4. identical labelled frames --------------------------------------------------------------
def test_identical_labelled_frames_say_the_volume_does_not_change(cycle):
    rep = measure_cine(np.stack([cycle[0], cycle[0]]), AFF, LMAP)
    assert (rep["ed_frame"], rep["es_frame"]) == (0, None)
    messages = {f["structure"]: f["message"] for f in _codes(rep, "ef_undefined")}
    assert "the LV volume does not change over its 2 labelled frames (0, 1" in messages["lv"]
    assert "only frame" not in messages["lv"] and "the RV volume does not change" in messages["rv"]
    one = np.zeros((3, *SHAPE), np.int16)
    one[1] = cycle[0]
    assert "only frame 1 has the LV labelled" in _codes(measure_cine(one, AFF, LMAP), "ef_undefined")[0]["message"]


# -- 5. batch: two cases naming one frame ---------------------------------------------------------
def test_frames_named_twice_give_a_note_not_a_silent_drop(cycle, tmp_path):
    from medseg.batch.cohort import stack_study_rows, write_cohort
    from medseg.io import Volume, write_labels

    like = Volume(np.zeros((1, *SHAPE), np.float32), AFF)

    def case(name, t):
        out = tmp_path / f"{name}.nii.gz"
        write_labels(cycle[t], like, out, LMAP)
        return {"case": name, "status": "ok", "output": str(out), "input": f"{name}.nii.gz"}

    results = [case("p1_frame1", 6), case("p1_frame01", 0), case("p1_frame12", 6), case("p2_frame01", 0), case("p2_frame07", 6)]
    rows = {r["case"]: r for r in stack_study_rows(results)}
    assert "cohort_row" not in rows["p1"]
    assert rows["p1"]["measure_note"].startswith("not measured: p1_frame01 and p1_frame1 are both frame 1")
    assert (rows["p2"]["cohort_row"]["ed_frame"], rows["p2"]["cohort_row"]["es_frame"]) == (1, 7)
    write_cohort(tmp_path, results + list(rows.values()))
    table = {r["case"]: r for r in csv.DictReader((tmp_path / "cohort.csv").open())}
    assert "both frame 1" in table["p1"]["measure_note"] and table["p1"]["lv.ef_pct"] == ""
    assert float(table["p2"]["lv.ef_pct"]) > 5


# -- 6. labels keep the image's frame times ---------------------------------------------------------
def test_labels_keep_the_image_frame_times(cycle, tmp_path):
    """A DICOM cine's trigger times (30, 70, ... ms, uneven) came back from the labels' NIfTI as
    0, 49.5, ... (pixdim[4], their mean step): the sidecar keeps them and `medseg measure` reports
    and plots them."""
    from medseg.cli import run_cli
    from medseg.io import Volume, read_label_volume, write_labels

    times = np.array([0.03 + 0.04 * t if t < 6 else 0.27 + 0.06 * (t - 6) for t in range(N)])
    image = Volume(np.zeros((N, *SHAPE), np.float32), AFF, frame_times_s=times, modality="MR")
    seg, side = write_labels(cycle, image, tmp_path / "seg.nii.gz", LMAP)
    assert json.loads(side.read_text())["provenance"]["frame_times_s"] == [round(float(t), 4) for t in times]
    assert read_label_volume(seg).frame_times_s == pytest.approx(times)
    out = tmp_path / "r.json"
    assert run_cli(["measure", str(seg), "-o", str(out), "--plots", str(tmp_path / "p")]) == 0
    assert json.loads(out.read_text())["frame_times_s"] == pytest.approx(times)
    # one frame's labels: the time of the frame its provenance names
    _, side1 = write_labels(cycle[6], image, tmp_path / "es.nii.gz", LMAP, provenance={"frame": 6})
    assert json.loads(side1.read_text())["provenance"]["frame_time_s"] == pytest.approx(0.27)
    # a sidecar whose times do not match the labels' frames is not taken (the NIfTI's own times are)
    obj = json.loads(side.read_text())
    obj["provenance"]["frame_times_s"] = obj["provenance"]["frame_times_s"][:-1]
    side.write_text(json.dumps(obj))
    assert read_label_volume(seg).frame_times_s[0] == 0.0


def test_a_phase_without_myocardium_turns_the_basal_rule_off_for_every_phase():
    """Sunnybrook's expert ES frames hold the endocardium only: the basal rule trimmed the ED
    frame's basal slices and not the ES frame's, ED and ES swapped and the EF read 11.7 % for
    about 25 %. The rule is now applied to all phases or none."""
    from medseg.measure.report import measure_cine, measure_ed_es

    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 32)
    arr = np.zeros((2, 8, 64, 64), np.uint8)
    arr[0][:, r < 16] = 2
    arr[0][6:, (r < 16) & (xx < 42)] = 0  # the two basal slices: myocardium on a small arc only
    arr[0][:, r < 12] = 1
    arr[1][:, r < 11] = 1  # ES: endocardium only
    aff = np.diag([1.5, 1.5, 10.0, 1.0])
    rep = measure_cine(arr, aff, "lv=1,myo=2", base_end="high_index")
    assert (rep["ed_frame"], rep["es_frame"]) == (0, 1)
    assert rep["lv"]["edv_ml"] == pytest.approx(8 * np.count_nonzero(r < 12) * 1.5 * 1.5 * 10 / 1000, rel=1e-6)
    (flag,) = [f for f in rep["flags"] if f["code"] == "basal_rule_off"]
    assert flag["message"].startswith("frame 1: the LV without myocardium")
    two = measure_ed_es(arr[0], arr[1], aff, "lv=1,myo=2", base_end="high_index")
    assert two["lv"]["ef_pct"] == pytest.approx(rep["lv"]["ef_pct"]) and two["lv"]["ef_pct"] > 10
    assert any(f["code"] == "basal_rule_off" and f["message"].startswith("ES:") for f in two["flags"])
    both = arr.copy()
    both[1][:, (r >= 11) & (r < 15)] = 2  # myocardium on both phases: the rule applies as before
    assert not any(f["code"] == "basal_rule_off" for f in measure_cine(both, aff, "lv=1,myo=2", base_end="high_index")["flags"])


def test_the_basal_rule_flag_names_many_frames_as_ranges():
    """A cine with the myocardium on one frame of twenty (prompted on one frame, the LV propagated
    through all): the flag listed "frame 0, frame 1, ..., frame 19" one by one."""
    from medseg.labels import LabelMap
    from medseg.measure.report import study_basal_rule

    arr = np.zeros((20, 3, 16, 16), np.uint8)
    arr[:, :, 4:12, 4:12] = 1
    arr[9, :, 3, 3:13] = 2
    rule, (flag,) = study_basal_rule(arr, LabelMap.parse(LMAP), True)
    assert rule is False and flag["message"].startswith("frames 0-8, 10-19: the LV without myocardium")
    one = arr[8:10]
    assert study_basal_rule(one, LabelMap.parse(LMAP), True)[1][0]["message"].startswith("frame 0: ")
