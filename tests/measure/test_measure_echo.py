"""Validation case 7: echo half-ellipsoids at 0.3 mm (method of disks, area-length)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medseg.measure.echo import measure_echo

PX = 0.3
ED_AXES = (22.0, 18.0, 80.0)  # a (A4C half-width), b (A2C half-width), c (length) mm
ES_AXES = (17.0, 14.0, 70.0)


def _view(half_width, length, with_la, px=PX, tilt_deg=0.0):
    """A4C/A2C label image: LV half-ellipse (1) with its base on a pixel boundary; LA (3) above.

    The long axis points down the image, optionally tilted by ``tilt_deg``.
    """
    h, w = int((length + 50) / px), int((2 * half_width + 60) / px)
    r = (np.arange(h) + 0.5) * px
    x = (np.arange(w) + 0.5) * px - w * px / 2 + 0.13
    rr, xx = np.meshgrid(r, x, indexing="ij")
    t = math.radians(tilt_deg)
    s = (rr - 20.1) * math.cos(t) + xx * math.sin(t)  # along the axis, from the base plane (20.1 = 67 px)
    q = -(rr - 20.1) * math.sin(t) + xx * math.cos(t)
    lab = np.zeros((h, w), np.int16)
    lab[(s >= 0) & ((q / half_width) ** 2 + (s / length) ** 2 <= 1)] = 1
    if with_la:
        lab[(s < 0) & ((q / (0.9 * half_width)) ** 2 + (s / 15.0) ** 2 <= 1)] = 3
    return lab


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
