"""Validation cases 1-4, 8, 9 of docs (shared measurement spec): volumes, mass, EF, scaling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from measure_phantoms import LVPhantom, centred_affine, ellipsoid, ellipsoid_volume_ml, rasterise

from medseg.measure.geometry import slice_weights, stack_geometry
from medseg.measure.report import measure_ed_es, measure_phase
from medseg.measure.volumes import bsa_m2, cardiac_output_l_min, detect_ed_es, function_from_volumes, volume_ml

# A generic sub-voxel offset of the phantom centre: a lattice-aligned centre puts many voxel
# centres exactly on the surface of an integer-axis ellipsoid and biases the count.
OFFSET = (0.31, 0.17, 0.23)
SEMI = (25.0, 25.0, 45.0)  # x, y, z mm -> 117.81 mL


def _grid(spacing_zyx, extent_xyz=(30.0, 30.0, 50.0)):
    return tuple(int(math.ceil(2 * e / s)) + 2 for e, s in zip(extent_xyz[::-1], spacing_zyx))


@pytest.mark.parametrize("spacing, tol_pct, z_offset", [
    ((1.0, 1.0, 1.0), 0.1, 0.23),
    ((2.0, 2.0, 2.0), 0.5, 0.23),
    ((10.0, 1.25, 1.25), 1.5, 2.3),
    ((10.0, 1.5625, 1.5625), 1.5, 4.1),
    ((10.0, 1.8, 1.8), 1.5, 7.7),
])
def test_case1_ellipsoid_volume(spacing, tol_pct, z_offset):
    shape = _grid(spacing)
    aff = centred_affine(spacing, shape, shift_mm=(OFFSET[0], OFFSET[1], z_offset))
    lab = rasterise(ellipsoid(SEMI), aff, shape)
    v = measure_phase(lab, aff, "lv=1")["volumes_ml"]["lv"]
    truth = ellipsoid_volume_ml(*SEMI)
    assert truth == pytest.approx(117.81, abs=0.01)
    assert abs(v / truth - 1) * 100 <= tol_pct


def test_probabilistic_mask_sums_probabilities():
    geom = stack_geometry(np.diag([2.0, 2.0, 5.0, 1.0]), (3, 4, 4))
    prob = np.zeros((3, 4, 4))
    prob[1, 1:3, 1:3] = 0.5
    assert volume_ml(prob, geom) == pytest.approx(4 * 0.5 * 20 / 1000)


@pytest.mark.parametrize("h", [0.0, 20.0])
def test_case2_truncated_ellipsoid_base_on_slice_boundary(h):
    a, b, c = SEMI
    spacing = (10.0, 1.5, 1.5)
    n_z = int(math.ceil((h + c) / 10)) + 1
    shape = (n_z, 44, 44)
    aff = centred_affine(spacing, shape, shift_mm=(OFFSET[0], OFFSET[1], 0.0))
    aff[2, 3] = h - 5.0 - 10.0 * (n_z - 1)  # top slice's upper boundary at z = h
    trunc = ellipsoid(SEMI)

    def fn(p):
        return np.where(p[..., 2] <= h, trunc(p), 0)

    lab = rasterise(fn, aff, shape)
    truth = math.pi * a * b * ((h + c) - (h**3 + c**3) / (3 * c**2)) / 1000
    v = measure_phase(lab, aff, "lv=1", basal_rule=False)["volumes_ml"]["lv"]
    assert abs(v / truth - 1) <= 0.015


def test_case3_shell_mass():
    spacing = (1.0, 1.0, 1.0)
    inner, t = SEMI, 10.0
    outer = tuple(s + t for s in inner)
    shape = _grid(spacing, extent_xyz=(37.0, 37.0, 57.0))
    aff = centred_affine(spacing, shape, shift_mm=OFFSET)
    out_fn, in_fn = ellipsoid(outer, label=2), ellipsoid(inner, label=1)

    def fn(p):
        return np.where(in_fn(p) > 0, 1, out_fn(p))

    lab = rasterise(fn, aff, shape)
    rep = measure_phase(lab, aff, "lv=1,myo=2", basal_rule=False)
    shell_ml = ellipsoid_volume_ml(*outer) - ellipsoid_volume_ml(*inner)
    assert abs(rep["lv_mass_g"] / (1.05 * shell_ml) - 1) <= 0.007


@pytest.mark.parametrize("spacing, tol_points", [((1.0, 1.0, 1.0), 0.3), ((10.0, 1.5, 1.5), 6.0)])
def test_case4_ed_es_phantom_ef(spacing, tol_points):
    ed_axes, es_axes = SEMI, (19.0, 19.0, 40.0)
    shape = _grid(spacing)
    aff = centred_affine(spacing, shape, shift_mm=(OFFSET[0], OFFSET[1], 3.3 if spacing[0] > 5 else OFFSET[2]))
    ed = rasterise(ellipsoid(ed_axes), aff, shape)
    es = rasterise(ellipsoid(es_axes), aff, shape)
    rep = measure_ed_es(ed, es, aff, "lv=1")
    truth = 100 * (1 - ellipsoid_volume_ml(*es_axes) / ellipsoid_volume_ml(*ed_axes))
    assert abs(rep["lv"]["ef_pct"] - truth) <= tol_points
    assert rep["lv"]["sv_ml"] == pytest.approx(rep["lv"]["edv_ml"] - rep["lv"]["esv_ml"])


def test_case8_scaling_spacing():
    shape = (9, 56, 56)
    aff = centred_affine((10.0, 1.5, 1.5), shape, shift_mm=(0.3, 0.2, -3.3))
    ed = rasterise(LVPhantom(), aff, shape)
    es = rasterise(LVPhantom(r_cav=16.0, thickness=lambda th: np.full_like(th, 11.0)), aff, shape)
    k = 1.7
    aff_k = aff.copy()
    aff_k[:3, :] *= k
    r1 = measure_ed_es(ed, es, aff, "lv=1,myo=2,rv=3")
    rk = measure_ed_es(ed, es, aff_k, "lv=1,myo=2,rv=3")
    for name in ("lv", "myo", "rv"):
        assert rk["volumes_ml"][name] == pytest.approx(r1["volumes_ml"][name] * k**3, rel=1e-9)
    assert rk["lv_mass_g"] == pytest.approx(r1["lv_mass_g"] * k**3, rel=1e-9)
    assert rk["lv"]["ef_pct"] == pytest.approx(r1["lv"]["ef_pct"], abs=1e-9)
    w1, wk = r1["wall_thickness_mm"], rk["wall_thickness_mm"]
    assert wk["global_mean"] == pytest.approx(w1["global_mean"] * k, rel=1e-6)
    for s in map(str, range(1, 18)):
        assert wk["segments"][s]["mean"] == pytest.approx(w1["segments"][s]["mean"] * k, rel=1e-6)


def test_case9_slice_gap_uses_centre_spacing():
    """An 8 mm slice + 2 mm gap stack: the affine step (centre-to-centre, 10 mm) is used."""
    shape = _grid((10.0, 1.5, 1.5))
    aff = centred_affine((10.0, 1.5, 1.5), shape, shift_mm=(OFFSET[0], OFFSET[1], 2.3))
    lab = rasterise(ellipsoid(SEMI), aff, shape)
    v = measure_phase(lab, aff, "lv=1")["volumes_ml"]["lv"]
    truth = ellipsoid_volume_ml(*SEMI)
    assert abs(v / truth - 1) <= 0.015
    assert abs(v * 0.8 / truth - 1) > 0.15  # what the 8 mm SliceThickness would give


def test_case9_nonuniform_positions_weights():
    # asymmetric gaps (10, 20, 15): each end slice takes its own gap, not the other end's
    assert slice_weights(np.array([0.0, 10.0, 30.0, 45.0]), 10.0).tolist() == [10.0, 15.0, 17.5, 15.0]
    assert slice_weights(np.array([45.0, 30.0, 10.0, 0.0]), 10.0).tolist() == [15.0, 17.5, 15.0, 10.0]
    # An ellipsoid sampled on uneven positions: weights (z[i+1] - z[i-1]) / 2 keep the volume.
    full_shape = _grid((5.0, 1.5, 1.5))
    aff = centred_affine((5.0, 1.5, 1.5), full_shape, shift_mm=(OFFSET[0], OFFSET[1], 1.1))
    lab = rasterise(ellipsoid(SEMI), aff, full_shape)
    keep = [z for z in range(full_shape[0]) if z % 4 != 1]  # drop every 4th slice: gaps 5, 10, 5...
    pos = aff[2, 3] + 5.0 * np.array(keep, dtype=float)
    v = measure_phase(lab[keep], aff, "lv=1", slice_positions_mm=pos)["volumes_ml"]["lv"]
    assert abs(v / ellipsoid_volume_ml(*SEMI) - 1) <= 0.02


@pytest.mark.parametrize("method, expected", [("mosteller", 2.000), ("dubois", 1.996)])
def test_bsa_check_numbers(method, expected):
    assert round(bsa_m2(180, 80, method), 3) == expected
    assert math.isnan(bsa_m2(None, 80, method))


def test_function_and_cardiac_output():
    fn = function_from_volumes(150.0, 60.0)
    assert fn == {"edv_ml": 150.0, "esv_ml": 60.0, "sv_ml": 90.0, "ef_pct": 60.0}
    assert cardiac_output_l_min(90.0, 70.0) == pytest.approx(6.3)
    assert math.isnan(function_from_volumes(0.0, 0.0)["ef_pct"])


@pytest.mark.parametrize("curve, expected", [
    ([100, 120, 140, 90, 60, 80, 95], (2, 4)),
    ([60, 80, 150, 100], (2, 0)),
    ([np.nan, 120, 0, 60, 130], (4, 3)),
    ([np.nan, 0, np.nan], (None, None)),
])
def test_detect_ed_es_never_assumes_frame_0(curve, expected):
    assert detect_ed_es(np.array(curve, dtype=float)) == expected
