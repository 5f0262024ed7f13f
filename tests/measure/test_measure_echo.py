"""Validation case 7: echo half-ellipsoids at 0.3 mm (method of disks, area-length)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from measure_phantoms import echo_view as _view
from measure_phantoms import sax_section

from medseg.measure.echo import measure_echo, measure_echo_clip

PX = 0.3
ED_AXES = (22.0, 18.0, 80.0)  # a (A4C half-width), b (A2C half-width), c (length) mm
ES_AXES = (17.0, 14.0, 70.0)


def _half_ellipsoid_ml(a, b, c):
    return 2.0 / 3.0 * math.pi * a * b * c / 1000.0


@pytest.mark.parametrize("with_la", [True, False], ids=["lv_la_boundary", "basal_chord"])
def test_case7_biplane(with_la):
    (a, b, c), (a2, b2, c2) = ED_AXES, ES_AXES
    rep = measure_echo(_view(a, c, with_la), _view(a2, c2, with_la), _view(b, c, with_la), _view(b2, c2, with_la),
                       spacing_a4c_mm=(PX, PX), spacing_a2c_mm=(PX, PX))
    edv, esv = _half_ellipsoid_ml(a, b, c), _half_ellipsoid_ml(a2, b2, c2)
    assert rep["method"] == "biplane_disks"
    assert abs(rep["lv"]["edv_ml"] / edv - 1) <= 0.005
    assert abs(rep["lv"]["esv_ml"] / esv - 1) <= 0.005
    assert abs(rep["lv_area_length"]["edv_ml"] / edv - 1) <= 0.005
    assert abs(rep["lv_area_length"]["esv_ml"] / esv - 1) <= 0.005
    assert abs(rep["lv"]["ef_pct"] - 100 * (1 - esv / edv)) <= 0.5
    assert set(rep["annulus_method"].values()) == {"lv_la_boundary" if with_la else "basal_chord"}


@pytest.mark.parametrize("tilt", [0.0, 25.0])
def test_case7_single_plane(tilt):
    a, _, c = ED_AXES
    rep = measure_echo(_view(a, c, True, tilt_deg=tilt), _view(17.0, 70.0, True, tilt_deg=tilt), spacing_a4c_mm=(PX, PX))
    truth = _half_ellipsoid_ml(a, a, c)
    assert rep["method"] == "single_plane_disks_a4c"
    assert abs(rep["lv"]["edv_ml"] / truth - 1) <= 0.005
    assert abs(rep["lv_area_length"]["edv_ml"] / truth - 1) <= 0.005


def test_la_volume_at_lv_es_and_index():
    a, b, c = ES_AXES
    la4, la2 = _view(a, c, True), _view(b, c, True)
    rep = measure_echo(_view(*ED_AXES[::2], True), la4, _view(ED_AXES[1], ED_AXES[2], True), la2,
                       spacing_a4c_mm=(PX, PX), spacing_a2c_mm=(PX, PX), height_cm=180, weight_kg=80)
    a1 = (la4 == 3).sum() * PX * PX
    a2 = (la2 == 3).sum() * PX * PX
    assert rep["la_volume_ml"] == pytest.approx(0.85 * a1 * a2 / 15.0 / 1000, rel=0.03)  # L ~ 15 mm (LA roof)
    assert rep["indexed"]["la_volume_ml_m2"] == pytest.approx(rep["la_volume_ml"] / 2.0)


def test_without_spacing_reports_ef_only():
    (a, b, c), (a2, b2, c2) = ED_AXES, ES_AXES
    rep = measure_echo(_view(a, c, False), _view(a2, c2, False), _view(b, c, False), _view(b2, c2, False))
    assert rep["spacing_known"] is False and "EF" in rep["notes"][0]
    assert math.isnan(rep["lv"]["edv_ml"]) and math.isnan(rep["la_volume_ml"])
    esv, edv = _half_ellipsoid_ml(a2, b2, c2), _half_ellipsoid_ml(a, b, c)
    assert abs(rep["lv"]["ef_pct"] - 100 * (1 - esv / edv)) <= 0.5
    # the views are combined in pixels: said, since it is right only for one pixel size
    assert "biplane_without_spacing" in [f["code"] for f in rep["flags"]]
    from medseg.measure.geometry import MeasurementError

    with pytest.raises(MeasurementError, match="both views or of neither"):  # millimetres and pixels do not mix
        measure_echo(_view(a, c, False), _view(a2, c2, False), _view(b, c, False), _view(b2, c2, False), spacing_a4c_mm=(PX, PX))
    with pytest.raises(MeasurementError, match=r"must be \(dy, dx\) mm"):
        measure_echo(_view(a, c, False), _view(a2, c2, False), spacing_a4c_mm=0.5)
    with pytest.raises(MeasurementError, match="frame_times_s has 2 value"):
        measure_echo_clip(np.stack([_view(a, c, False)] * 3), frame_times_s=[0.0, 0.1])


def test_views_of_ed_and_es_swapped_are_flagged_as_such():
    """The end-systolic image given as ED (and the other way round): ``esv_exceeds_edv``, not an
    EF below the normal range."""
    (a, _, c), (a2, _, c2) = ED_AXES, ES_AXES
    rep = measure_echo(_view(a2, c2, True), _view(a, c, True), spacing_a4c_mm=(PX, PX))
    assert rep["lv"]["ef_pct"] < 0 and [f["code"] for f in rep["flags"]] == ["esv_exceeds_edv"]
    right = measure_echo(_view(a, c, True), _view(a2, c2, True), spacing_a4c_mm=(PX, PX))
    assert right["lv"]["ef_pct"] > 0 and "esv_exceeds_edv" not in [f["code"] for f in right["flags"]]


def test_clip_curve_finds_ed_and_es_and_matches_the_two_frame_report():
    # one apical view over a cycle: the LV half-ellipse shrinks to frame 3 and grows back;
    # frame 6 has no LV (left out of the curve); ED is the largest frame, not frame 0
    widths = [19.0, 21.0, 18.0, 15.0, 16.0, 20.0, None, 20.5]
    shape = (int(130 / PX), int(110 / PX))
    clip = np.stack([np.zeros(shape, np.int16) if w is None else _view(w, 60.0 + w, True, shape=shape) for w in widths])
    rep = measure_echo_clip(clip, spacing_mm=(PX, PX), frame_times_s=[0.04 * t for t in range(len(widths))])
    assert rep["method"] == "single_plane_disks_clip"
    assert (rep["ed_frame"], rep["es_frame"]) == (1, 3)
    curve = rep["volume_curve_ml"]["lv"]
    assert curve[6] is None and rep["volume_curve_rel"]["lv"][6] is None
    for t, w in enumerate(widths):
        if w is not None:  # each frame's single-plane disk volume is its half-ellipsoid's
            assert curve[t] == pytest.approx(_half_ellipsoid_ml(w, w, 60.0 + w), rel=0.005)
    two = measure_echo(clip[1], clip[3], spacing_a4c_mm=(PX, PX))
    assert rep["lv"]["ef_pct"] == pytest.approx(two["lv"]["ef_pct"])
    assert rep["volume_curve_rel"]["lv"][1] == 1.0 and rep["frame_times_s"][3] == pytest.approx(0.12)
    no_spacing = measure_echo_clip(clip)
    assert no_spacing["lv"]["ef_pct"] == pytest.approx(rep["lv"]["ef_pct"], abs=0.01)
    assert all(v is None for v in no_spacing["volume_curve_ml"]["lv"])
    assert no_spacing["volume_curve_rel"]["lv"] == pytest.approx(rep["volume_curve_rel"]["lv"], abs=1e-3)


def test_clip_needs_the_lv_on_two_frames():
    from medseg.measure.geometry import MeasurementError

    clip = np.zeros((3, 200, 200), np.int16)
    clip[1] = _view(20.0, 70.0, False, shape=(200, 200))
    with pytest.raises(MeasurementError, match="at least two frames; it is on 1"):
        measure_echo_clip(clip, spacing_mm=(PX, PX))


def test_a_short_axis_section_is_refused_and_an_apical_view_with_its_myocardium_is_not():
    """The method of disks needs a long-axis view: a short-axis slice (myocardium all round the
    cavity) used to be measured as if it were one, with a made-up volume and EF."""
    from medseg.measure.geometry import MeasurementError

    a4c = {k: _view(w, L, True, wall_mm=8.0) for k, (w, L) in (("ed", (22.0, 80.0)), ("es", (17.0, 70.0)))}
    with_myo = measure_echo(a4c["ed"], a4c["es"], spacing_a4c_mm=(PX, PX))
    plain = measure_echo(*(np.where(v == 2, 0, v) for v in a4c.values()), spacing_a4c_mm=(PX, PX))
    assert with_myo["lv"] == pytest.approx(plain["lv"])
    ed, es = sax_section(22.0), sax_section(16.0, 11.0)
    with pytest.raises(MeasurementError, match="short-axis section"):
        measure_echo(ed, es, spacing_a4c_mm=(1.0, 1.0))
    with pytest.raises(MeasurementError, match="short-axis section"):
        measure_echo_clip(np.stack([ed, es, ed]), spacing_mm=(1.0, 1.0))
