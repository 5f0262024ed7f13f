"""QC flags (cases 9 and 10), base detection, reference ranges, papillary statement, cine."""

from __future__ import annotations

import math

import numpy as np
import pytest
from measure_phantoms import LVPhantom, centred_affine, rasterise

from medseg.errors import GeometryError, LabelMapError
from medseg.labels import LabelMap
from medseg.measure.geometry import MeasurementError
from medseg.measure.report import measure_cine, measure_ed_es, measure_phase

LMAP = "lv=1,myo=2,rv=3"
SHAPE = (9, 64, 64)
AFF = centred_affine((10.0, 1.5, 1.5), SHAPE, shift_mm=(0.3, 0.2, -3.3))


def _codes(rep, code):
    return [f for f in rep["flags"] if f["code"] == code]


@pytest.fixture(scope="module")
def lv_labels():
    return rasterise(LVPhantom(), AFF, SHAPE)


def test_clean_phantom_has_no_warnings(lv_labels):
    rep = measure_phase(lv_labels, AFF, LMAP)
    assert [f for f in rep["flags"] if f["severity"] == "warning"] == []
    assert set(rep) >= {"volumes_ml", "lv_mass_g", "wall_thickness_mm", "flags", "spacing_mm", "label_map"}
    assert rep["spacing_mm"] == [10.0, 1.5, 1.5]
    assert rep["label_map"] == {"lv": 1, "myo": 2, "rv": 3}
    assert set(rep["wall_thickness_mm"]["segments"]) == {str(k) for k in range(1, 18)}


def test_case9_missing_middle_slice_flagged_and_interpolated(lv_labels):
    lab = lv_labels.copy()
    z = 5
    lab[z] = 0
    rep = measure_phase(lab, AFF, LMAP)
    missing = _codes(rep, "missing_slice")
    assert {(f["structure"], f["slice"]) for f in missing} >= {("lv", z), ("myo", z), ("rv", z)}
    full = measure_phase(lv_labels, AFF, LMAP)["volumes_ml"]["lv"]
    interp = measure_phase(lab, AFF, LMAP, interpolate_missing=True)
    assert interp["volumes_ml"]["lv"] == pytest.approx(full, rel=0.01)
    assert all("interpolated_ml" in f for f in _codes(interp, "missing_slice"))


def test_case10_empty_ed_gives_nan_ef_and_flag(lv_labels):
    rep = measure_ed_es(np.zeros_like(lv_labels), lv_labels, AFF, LMAP)
    assert rep["lv"]["edv_ml"] == 0.0 and rep["lv"]["esv_ml"] > 0
    assert math.isnan(rep["lv"]["ef_pct"]) and math.isnan(rep["rv"]["ef_pct"])
    assert {f["structure"] for f in _codes(rep, "ef_undefined")} == {"lv", "rv"}
    assert math.isnan(rep["lv_mass_g"]) and math.isnan(rep["wall_thickness_mm"]["global_mean"])  # no myocardium at ED: no mass, not 0 g
    assert {(f["structure"], f["phase"]) for f in _codes(rep, "absent_structure")} == {("lv", "ed"), ("myo", "ed"), ("rv", "ed")}
    lv_myo = np.where(lv_labels > 2, 0, lv_labels)
    lv_myo_es = lv_myo.copy()
    lv_myo_es[tuple(np.argwhere(lv_myo_es == 1)[0])] = 2  # ES one LV voxel smaller (the same labels twice are refused)
    no_rv = measure_ed_es(lv_myo, lv_myo_es, AFF, "lv=1,myo=2")  # labels without an RV: no RV flag for it
    assert not _codes(no_rv, "ef_undefined") and math.isnan(no_rv["rv"]["ef_pct"])
    empty_es = measure_ed_es(lv_labels, np.zeros_like(lv_labels), AFF, LMAP)
    assert empty_es["lv"]["esv_ml"] == 0.0 and empty_es["lv"]["ef_pct"] == pytest.approx(100.0)


def _basal_partial_labels(base_lab, fraction):
    """Keep only an arc of ``fraction`` x 360 degrees of myocardium on the basal slice."""
    lab = base_lab.copy()
    z = max(np.flatnonzero((lab == 1).any(axis=(1, 2))))  # base at the high index (apex cap low)
    rows, cols = np.nonzero(lab[z] == 1)
    cy, cx = rows.mean(), cols.mean()
    yy, xx = np.mgrid[: lab.shape[1], : lab.shape[2]]
    ang = np.degrees(np.arctan2(yy - cy, xx - cx)) % 360
    drop = (lab[z] == 2) & (ang >= 360 * fraction)
    lab[z][drop] = 0
    lab[z][lab[z] == 3] = 0  # no RV at that level: the myocardium gap opens onto background
    return lab, z


@pytest.mark.parametrize("fraction, excluded", [(0.4, True), (0.6, False)])
def test_case10_basal_50_percent_rule(lv_labels, fraction, excluded):
    lab, z = _basal_partial_labels(lv_labels, fraction)
    rep = measure_phase(lab, AFF, LMAP)
    flags = _codes(rep, "basal_partial")
    cov = rep["lv_coverage_pct"][z]
    assert abs(cov - 100 * fraction) < 5
    no_rule = measure_phase(lab, AFF, LMAP, basal_rule=False)["volumes_ml"]["lv"]
    if excluded:
        assert [f["slice"] for f in flags] == [z]
        assert rep["excluded_basal_slices"] == [z]
        assert rep["volumes_ml"]["lv"] == pytest.approx(no_rule - flags[0]["excluded_ml"], abs=1e-3)
    else:
        assert flags == [] and rep["volumes_ml"]["lv"] == pytest.approx(no_rule)


def test_incomplete_coverage_names_the_end(lv_labels):
    rep = measure_phase(lv_labels[2:], AFF, LMAP)  # cut off the apex: cavity in slice 0
    f = _codes(rep, "incomplete_coverage")
    assert [(x["slice"], x["end"]) for x in f] == [(0, "apex")]


def test_fragmented(lv_labels):
    lab = lv_labels.copy()
    lab[7, 2:6, 2:6] = 3  # a stray RV blob of 16 voxels
    rep = measure_phase(lab, AFF, LMAP)
    assert [f["structure"] for f in _codes(rep, "fragmented")] == ["rv"]
    lab[7, 2:6, 2:6] = 0
    lab[7, 2:4, 2:4] = 3  # 4 voxels: below the 10-voxel rule
    assert _codes(measure_phase(lab, AFF, LMAP), "fragmented") == []
    # parts counted in the structure's bounding box (not a CT's whole grid), up to the grid's edges
    from medseg.measure.qc import bounding_box, fragmented

    far = np.zeros((40, 300, 300), bool)
    far[0, 0:4, 0:4] = far[39, 290:300, 296:300] = True
    assert bounding_box(far) == (slice(0, 40), slice(0, 300), slice(0, 300))
    assert fragmented(far, "la")[0]["sizes_voxels"] == [40, 16]
    assert bounding_box(far[:1, :10, :10]) == (slice(0, 1), slice(0, 4), slice(0, 4))


def test_base_from_atria_overrides_shape():
    lab = rasterise(LVPhantom(cap_mm=0.0, rv_apex_h=-30.0), AFF, SHAPE)  # no cap, uniform RV
    lab[0, 5:15, 5:15] = 4  # left atrium near slice 0 -> base at the low end
    rep = measure_phase(lab, AFF, LMAP + ",la=4")
    assert rep["base"] == {"end": "low_index", "method": "atria", "confident": True}


def test_base_given_and_shared_by_ed_es(lv_labels):
    rep = measure_phase(lv_labels, AFF, LMAP, base_end="low_index")
    assert rep["base"] == {"end": "low_index", "method": "given", "confident": True}
    # ES alone looks "base at the low end" (RV at the apex end only); the study votes once.
    es = lv_labels.copy()
    es[es == 3] = 0
    es[1:3][lv_labels[5:7] == 3] = 3
    pair = measure_ed_es(lv_labels, es, AFF, LMAP)
    assert pair["phases"]["ed"]["base"]["end"] == pair["phases"]["es"]["base"]["end"] == "high_index"
    with pytest.raises(MeasurementError):
        measure_phase(lv_labels, AFF, LMAP, base_end="top")


def test_absent_structures_are_nan_with_flag(lv_labels):
    lab = lv_labels.copy()
    lab[lab == 2] = 0
    rep = measure_phase(lab, AFF, LMAP + ",la=4")
    assert math.isnan(rep["volumes_ml"]["myo"]) and math.isnan(rep["lv_mass_g"])
    assert math.isnan(rep["volumes_ml"]["la"])
    assert {f["structure"] for f in _codes(rep, "absent_structure")} == {"myo", "la"}
    assert math.isnan(rep["wall_thickness_mm"]["global_mean"])


def test_papillary_statement(lv_labels):
    rep = measure_phase(lv_labels, AFF, LMAP)
    assert rep["papillary_muscles"]["counted_in"] == "blood_pool"
    lab = lv_labels.copy()
    zs = np.flatnonzero((lab == 1).any(axis=(1, 2)))
    for z in zs[2:5]:
        lab[z, 30:33, 30:33] = 2  # papillary muscles labelled myocardium inside the cavity
    pap = measure_phase(lab, AFF, LMAP)["papillary_muscles"]
    assert pap["counted_in"] == "myocardium" and pap["inside_cavity_as_myo_ml"] > 0


def test_reference_flags_and_indexing():
    shape = (9, 64, 64)
    ed = rasterise(LVPhantom(r_cav=26.0), AFF, shape)
    es = rasterise(LVPhantom(r_cav=24.0), AFF, shape)  # EF ~ 15 %: low
    rep = measure_ed_es(ed, es, AFF, LMAP, height_cm=180, weight_kg=80, heart_rate=60, sex="F")
    low = _codes(rep, "lvef_low")
    assert low and low[0]["normal_range"] == [51.0, 71.0]
    assert rep["bsa_m2"] == pytest.approx(2.0) and rep["bsa_method"] == "mosteller"
    assert rep["indexed"]["lv_edv_ml_m2"] == pytest.approx(rep["lv"]["edv_ml"] / 2.0)
    assert rep["co_l_min"] == pytest.approx(rep["lv"]["sv_ml"] * 60 / 1000)
    assert rep["indexed"]["ci_l_min_m2"] == pytest.approx(rep["co_l_min"] / 2.0)
    dub = measure_ed_es(ed, es, AFF, LMAP, height_cm=180, weight_kg=80, bsa_method="dubois")
    assert dub["bsa_m2"] == pytest.approx(1.996, abs=5e-4) and dub["bsa_method"] == "dubois"
    none = measure_ed_es(ed, es, AFF, LMAP)  # no height and weight: no BSA, and no method said to have given one
    assert not none["bsa_m2"] == none["bsa_m2"] and none["bsa_method"] is None  # NaN: null in the JSON


def _cine(n_frames=8, ed=3):
    """LV radius follows a cosine with its maximum at frame ``ed``; RV peaks one frame later."""
    frames = []
    for t in range(n_frames):
        ph = np.cos(2 * np.pi * (t - ed) / n_frames)
        frames.append(rasterise(LVPhantom(r_cav=20.0 + 4.0 * ph, rv_depth_mm=14 + 4 * np.cos(2 * np.pi * (t - ed - 1) / n_frames)),
                                AFF, SHAPE))
    return np.stack(frames)


def test_cine_detects_ed_es_from_curves():
    cine = _cine()
    rep = measure_cine(cine, AFF, LMAP, frame_times_s=np.arange(8) * 0.1, height_cm=170, weight_kg=70)
    assert (rep["ed_frame"], rep["es_frame"]) == (3, 7)
    assert (rep["rv_ed_frame"], rep["rv_es_frame"]) == (4, 0)
    curve = rep["volume_curve_ml"]["lv"]
    assert rep["lv"]["edv_ml"] == pytest.approx(curve[3]) and rep["lv"]["esv_ml"] == pytest.approx(curve[7])
    assert rep["rv"]["edv_ml"] == pytest.approx(rep["volume_curve_ml"]["rv"][4])
    assert rep["frame_times_s"][1] == pytest.approx(0.1)


def test_timing_in_the_wrong_unit_or_length_is_refused():
    cine = _cine()
    with pytest.raises(MeasurementError, match="is it in milliseconds"):  # an RR of 1 s written as 1
        measure_cine(cine, AFF, LMAP, nominal_interval_ms=1.0)
    with pytest.raises(MeasurementError, match="must be positive"):
        measure_cine(cine, AFF, LMAP, nominal_interval_ms=-800.0)
    assert measure_cine(cine, AFF, LMAP, nominal_interval_ms=800.0)["heart_rate_bpm"] == pytest.approx(75.0)
    with pytest.raises(MeasurementError, match="frame_times_s has 2 value"):
        measure_cine(cine, AFF, LMAP, frame_times_s=[0.0, 0.1])
    from medseg.measure.report import heart_rate_options

    class Header:  # a DICOM header's placeholder is no heart rate: no cardiac output, not an error
        meta = {"heart_rate": 0, "nominal_interval": 5.0}

    assert heart_rate_options(Header()) == {}


def test_cine_unlabelled_frames_are_skipped():
    cine = _cine()
    cine[5] = 0
    rep = measure_cine(cine, AFF, LMAP)
    assert rep["volume_curve_ml"]["lv"][5] is None
    assert [f["frame"] for f in _codes(rep, "unlabelled_frame")] == [5]


def _smaller(lab: np.ndarray) -> np.ndarray:
    """``lab`` with one LV voxel made myocardium: an ES other than the ED (the same labels twice are refused)."""
    out = lab.copy()
    out[tuple(np.argwhere(out == 1)[0])] = 2
    return out


@pytest.mark.parametrize("call, error", [
    (lambda lab: measure_phase(lab[:1], AFF, LMAP), MeasurementError),
    (lambda lab: measure_phase(lab, None, LMAP), GeometryError),
    (lambda lab: measure_phase(lab * 2, AFF, LMAP), LabelMapError),  # value 4 and 6 not in the map
    (lambda lab: measure_phase(lab + 0.5, AFF, LMAP), MeasurementError),
    (lambda lab: measure_ed_es(lab, lab[:, :10], AFF, LMAP), GeometryError),
    (lambda lab: measure_ed_es(lab, _smaller(lab), AFF, LMAP, sex="X"), MeasurementError),
    (lambda lab: measure_phase(lab, AFF, LMAP, aha_method="sectors"), MeasurementError),
    (lambda lab: measure_ed_es(lab, _smaller(lab), AFF, LMAP, bsa_method="haycock", height_cm=170, weight_kg=70), MeasurementError),
])
def test_bad_input_raises_typed_errors(lv_labels, call, error):
    with pytest.raises(error):
        call(lv_labels)


def test_ed_and_es_swapped_is_flagged_once(lv_labels):
    """ED and ES given the wrong way round: ``esv_exceeds_edv`` says so; the negative EF is not
    also reported as an EF below the normal range."""
    small = lv_labels.copy()  # "end-systole": the cavity of every other slice filled with myocardium
    small[::2][small[::2] == 1] = 2
    swapped = measure_ed_es(small, lv_labels, AFF, LMAP)
    assert swapped["lv"]["ef_pct"] < -20 and [f["structure"] for f in _codes(swapped, "esv_exceeds_edv")] == ["lv"]
    assert not _codes(swapped, "lvef_low")
    swapped = measure_ed_es(small, lv_labels, AFF, LMAP, heart_rate=60, height_cm=170, weight_kg=70)
    assert math.isnan(swapped["co_l_min"]) and math.isnan(swapped["indexed"]["ci_l_min_m2"])  # not a negative output
    right = measure_ed_es(lv_labels, small, AFF, LMAP, heart_rate=60)
    assert 20 < right["lv"]["ef_pct"] < 80 and not _codes(right, "esv_exceeds_edv") and right["co_l_min"] > 0


def test_cine_with_one_labelled_frame_has_no_ef():
    """A cine prompted on one frame holds one phase: its EF is undefined, not 0 % (ED = ES)."""
    cine = _cine()
    cine[[t for t in range(cine.shape[0]) if t != 3]] = 0
    rep = measure_cine(cine, AFF, LMAP, heart_rate=60)
    assert (rep["ed_frame"], rep["es_frame"]) == (3, None)
    assert rep["lv"]["edv_ml"] == pytest.approx(rep["volume_curve_ml"]["lv"][3])
    assert all(math.isnan(rep["lv"][k]) for k in ("esv_ml", "sv_ml", "ef_pct")) and math.isnan(rep["co_l_min"])
    undefined = _codes(rep, "ef_undefined")
    assert {f["structure"] for f in undefined} == {"lv", "rv"}
    assert all(f"only frame 3 has the {f['structure'].upper()} labelled" in f["message"] for f in undefined)
    assert not {"lvef_low", "esv_exceeds_edv"} & {f["code"] for f in rep["flags"]}
    assert math.isnan(rep["wall_thickening_pct"]["global"])


def test_cine_with_the_lv_on_one_frame_and_the_rv_on_all_has_no_lv_ef():
    """The LV prompted on one frame, the RV propagated through the cycle: the other frames are
    labelled, but they hold no LV, so the LV's EF is undefined (it read 0 %, ED = ES), and the
    RV keeps the EF of its own curve; the same the other way round."""
    cine = _cine()
    lv_once = cine.copy()
    others = [t for t in range(cine.shape[0]) if t != 3]
    lv_once[others] = np.where(np.isin(cine[others], (1, 2)), 0, cine[others])
    rep = measure_cine(lv_once, AFF, LMAP, heart_rate=60)
    assert (rep["ed_frame"], rep["es_frame"]) == (3, None)
    assert math.isnan(rep["lv"]["ef_pct"]) and math.isnan(rep["co_l_min"])
    assert [f["structure"] for f in _codes(rep, "ef_undefined")] == ["lv"]
    assert (rep["rv_ed_frame"], rep["rv_es_frame"]) == (4, 0) and 5 < rep["rv"]["ef_pct"] < 90
    assert not {"lvef_low", "esv_exceeds_edv"} & {f["code"] for f in rep["flags"]}

    rv_once = cine.copy()
    rv_once[others] = np.where(cine[others] == 3, 0, cine[others])
    rep = measure_cine(rv_once, AFF, LMAP)
    assert (rep["ed_frame"], rep["es_frame"]) == (3, 7) and 5 < rep["lv"]["ef_pct"] < 90
    assert (rep["rv_ed_frame"], rep["rv_es_frame"]) == (3, None) and math.isnan(rep["rv"]["ef_pct"])
    (rv_flag,) = _codes(rep, "ef_undefined")
    assert rv_flag["structure"] == "rv" and "only frame 3 has the RV labelled" in rv_flag["message"]


def test_review_of_a_cine_labelled_on_one_frame_measures_that_phase():
    from medseg.review import review_segmentation

    cine = _cine()
    cine[[t for t in range(cine.shape[0]) if t != 3]] = 0
    codes = {f["code"] for f in review_segmentation(cine, AFF, LabelMap.parse(LMAP))["flags"]}
    assert not {"ef_implausible", "ef_undefined", "measurement_failed"} & codes


def test_a_stack_reoriented_so_its_slices_are_not_on_z_is_refused(lv_labels):
    """The same labels with the slice axis moved to X (the world geometry unchanged, as
    nibabel's as_closest_canonical does to an oblique short-axis stack): measured across it,
    thickness and AHA came out wrong and the basal rule took volume away, silently."""
    moved = np.ascontiguousarray(np.transpose(lv_labels, (2, 1, 0)))  # (X, Y, Z): the slices on the last axis
    aff = AFF.copy()
    aff[:, [0, 2]] = AFF[:, [2, 0]]
    assert np.allclose(aff[:3, :3] @ [3, 5, 7] + aff[:3, 3], AFF[:3, :3] @ [7, 5, 3] + AFF[:3, 3])  # same world point
    with pytest.raises(MeasurementError, match="short-axis slices lie along another array axis") as err:
        measure_phase(moved, aff, LMAP)
    assert "\n" not in str(err.value)
    assert measure_phase(lv_labels, AFF, LMAP)["volumes_ml"]["lv"] > 0


def test_flag_messages_print_a_value_on_its_side_of_the_threshold():
    """Coverage 0.4972 printed "50% ... (< 50%)" and an EF of 47.96 "48.0 % is below the normal
    range 48-68": as many decimals as keep the value on its side, in the message and the value."""
    from medseg.measure.qc import basal_partial
    from medseg.measure.reference import range_flag

    _, flags = basal_partial(np.array([0.4972, 0.97]), np.array([0, 1]), np.array([3.0, 4.0]))
    assert "surrounds 49.7% of the LV cavity (< 50%)" in flags[0]["message"]
    assert flags[0]["coverage_pct"] < 50
    low = range_flag("cmr_lvef_pct", 47.996, "male")[0]
    assert "47.996 % is below the normal range 48-68" in low["message"] and low["value"] < 48
    high = range_flag("cmr_lvef_pct", 68.04, "male")[0]
    assert "68.04 % is above" in high["message"]
    assert "lvef 30.0 % is below" in range_flag("cmr_lvef_pct", 30.0, "male")[0]["message"]


def test_the_measure_summary_line_prints_a_flagged_ef_apart_from_its_range():
    from medseg.cli._measure_output import _ef_bounds, _v

    flags = [{"code": "lvef_low", "normal_range": [48.0, 68.0]}, {"code": "basal_partial"}]
    assert _v(47.96, "%", _ef_bounds(flags)) == "47.96%"
    assert _v(55.0, "%", _ef_bounds([])) == "55.0%"
    assert _v(float("nan"), "%", _ef_bounds(flags)) == "n/a"
