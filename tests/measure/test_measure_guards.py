"""Guards on measurement details that the validation cases alone do not pin down.

Each test names the user-visible error it protects against: AHA levels upside down, uneven or
reversed slice positions, rings that are not rings, thin-wall and open-wall thickness, anisotropic
pixels, slice weights, QC boundaries, gap interpolation, ED/ES bookkeeping of the report, and
the echo biplane length conventions (Lang 2015).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from measure_phantoms import LVPhantom, centred_affine, ellipsoid, rasterise
from scipy.spatial import cKDTree

from medseg.measure import qc
from medseg.measure.echo import measure_echo
from medseg.measure.geometry import stack_geometry
from medseg.measure.report import measure_ed_es, measure_phase
from medseg.measure.thickness import slice_thickness
from medseg.measure.volumes import volume_ml

LMAP = "lv=1,myo=2,rv=3"
SHAPE = (9, 64, 64)
AFF = centred_affine((10.0, 1.5, 1.5), SHAPE, shift_mm=(0.3, 0.2, -3.3))
# LVPhantom(b=+z) on this grid: cap on slice 1, cavity on slices 2..7, so the base is slice 7.
CAVITY_SLICES = list(range(2, 8))


def _codes(rep, code):
    return [f for f in rep["flags"] if f["code"] == code]


def _phantom(b=(0.0, 0.0, 1.0), wall_mm=6.0, **kw):
    kw.setdefault("r_cav", 18.0)
    kw.setdefault("rv_depth_mm", 10.0)
    return rasterise(LVPhantom(b=b, thickness=lambda th: np.full_like(th, wall_mm), **kw), AFF, SHAPE)


def _levels(rep):
    return {s["slice"]: s["level"] for s in rep["wall_thickness_mm"]["slices"]}


def _segments(rep):
    return np.array([rep["wall_thickness_mm"]["segments"][str(k)]["mean"] for k in range(1, 18)])


# --------------------------------------------------------------------------------------------
# AHA levels and slice positions


@pytest.mark.parametrize("base_high", [True, False], ids=["base_high_index", "base_low_index"])
def test_aha_levels_follow_the_base_and_a_thick_base_lands_in_basal_segments(base_high):
    """Basal/mid/apical thirds counted from the wrong end would report the basal wall as apical
    segments 13-16 (and the apex as 1-6). The base is at a known slice; a wall twice as thick on
    the basal third must show up in segments 1-6, not 13-16."""
    b = (0.0, 0.0, 1.0) if base_high else (0.0, 0.0, -1.0)
    order = CAVITY_SLICES[::-1] if base_high else CAVITY_SLICES  # base -> apex
    thin, thick = _phantom(b, wall_mm=5.0), _phantom(b, wall_mm=10.0)
    lab = thin.copy()
    lab[order[:2]] = thick[order[:2]]
    rep = measure_phase(lab, AFF, LMAP)
    assert rep["base"]["end"] == ("high_index" if base_high else "low_index")
    expected = dict(zip(order, ["basal", "basal", "mid", "mid", "apical", "apical"]))
    assert _levels(rep) == expected
    seg = _segments(rep)
    assert np.nanmean(seg[0:6]) == pytest.approx(10.0, abs=0.6)
    assert np.nanmean(seg[12:16]) == pytest.approx(5.0, abs=0.6)


def test_decreasing_slice_positions_give_the_same_report():
    """Slice positions read from ImagePositionPatient often decrease with the slice index; only
    their gaps matter. Taken as they come they flip the stack: base, levels and segments change."""
    lab = _phantom(wall_mm=6.0)
    inc = 10.0 * np.arange(SHAPE[0]) + 3.0
    dec = 500.0 - inc
    r_inc = measure_phase(lab, AFF, LMAP, slice_positions_mm=inc)
    r_dec = measure_phase(lab, AFF, LMAP, slice_positions_mm=dec)
    assert r_inc["base"] == r_dec["base"]
    assert r_inc["base"]["end"] == "high_index"
    assert _levels(r_inc) == _levels(r_dec)
    assert _levels(r_inc)[7] == "basal" and _levels(r_inc)[2] == "apical"
    assert np.allclose(_segments(r_inc), _segments(r_dec), equal_nan=True)
    assert r_inc["volumes_ml"] == pytest.approx(r_dec["volumes_ml"])


def _open_basal_wall(lab, z, fraction):
    """Keep myocardium on slice ``z`` only over an arc of ``fraction`` x 360 degrees (no RV there)."""
    lab = lab.copy()
    rows, cols = np.nonzero(lab[z] == 1)
    yy, xx = np.mgrid[: lab.shape[1], : lab.shape[2]]
    ang = np.degrees(np.arctan2(yy - rows.mean(), xx - cols.mean())) % 360
    lab[z][(lab[z] == 2) & (ang >= 360 * fraction)] = 0
    lab[z][lab[z] == 3] = 0
    return lab


def test_a_partly_open_basal_slice_is_no_aha_ring():
    """A basal slice with myocardium round ~70 % of the cavity is LV (>= 50 %) but not an AHA
    ring (>= 95 %): counted as a ring, its open side would read as thin wall and it would also
    shift the basal/mid/apical thirds."""
    lab = _open_basal_wall(_phantom(), 7, 0.7)
    rep = measure_phase(lab, AFF, LMAP)
    assert 60 <= rep["lv_coverage_pct"][7] <= 80
    assert rep["excluded_basal_slices"] == []  # still LV volume
    assert 7 not in _levels(rep)
    assert sorted(_levels(rep)) == list(range(2, 7))


# --------------------------------------------------------------------------------------------
# Wall thickness on sub-pixel contours


def _ring_slice(r_in, wall, pixel_yx, shift=(0.31, 0.17), size_mm=70.0):
    shape = (3, int(size_mm / pixel_yx[0]), int(size_mm / pixel_yx[1]))
    aff = centred_affine((10.0, *pixel_yx), shape, shift_mm=(*shift, 0.0))

    def fn(p):
        r = np.hypot(p[..., 0], p[..., 1])
        return np.where(r <= r_in, 1, np.where(r <= r_in + wall, 2, 0))

    lab = rasterise(fn, aff, shape)
    return lab, stack_geometry(aff, shape)


@pytest.mark.parametrize("wall, pixel", [(3.0, 1.0), (3.0, 1.5), (2.0, 2.0)])
def test_thin_wall_ring_thickness_is_unbiased(wall, pixel):
    """A 2-3 mm wall (a thinned infarct, a dilated ventricle) is one to three pixels thick: the
    staircase of an unsmoothed contour biases the nearest-point distance low by ~0.1 mm there."""
    lab, geom = _ring_slice(20.0, wall, (pixel, pixel))
    st = slice_thickness(lab[1] == 1, lab[1] == 2, geom, 1)
    assert st.valid.all()
    assert st.thickness_mm[st.valid].mean() == pytest.approx(wall, abs=0.06)


def test_thin_wall_thickness_with_coarse_columns_uses_the_dense_epicardium():
    """Anisotropic pixels (0.5 x 3 mm): the epicardial contour's vertices lie 3 mm apart along
    the rows, so the distance to the nearest *vertex* overstates a 1 mm wall by ~0.2 mm; the
    distance to the contour (densely resampled) does not. Rectangular cavity, 1 mm walls above
    and below, 3 mm at the sides: the arc-length mean of the nearest-point thickness is 1.76 mm
    (top/bottom 120 mm at 1 mm; sides 80 mm: 3 mm except 2 mm at each corner where the top wall
    is nearer, min(3, u + 1))."""
    dy, dx = 0.5, 3.0
    hw, hh, tx, ty = 30.0, 20.0, 3.0, 1.0
    shape = (3, int(2 * (hh + ty + 8) / dy) // 2 * 2, int(2 * (hw + tx + 8) / dx) // 2 * 2)
    aff = centred_affine((10.0, dy, dx), shape)  # even sizes: the walls lie on pixel boundaries

    def fn(p):
        x, y = np.abs(p[..., 0]), np.abs(p[..., 1])
        return np.where((x < hw) & (y < hh), 1, np.where((x < hw + tx) & (y < hh + ty), 2, 0))

    lab = rasterise(fn, aff, shape)
    st = slice_thickness(lab[1] == 1, lab[1] == 2, stack_geometry(aff, shape), 1)
    side = (2 * 2.0 * 2.0 + 36.0 * 3.0) / 40.0  # mean of min(3, u + 1) over one 40 mm side
    truth = (2 * 60.0 * ty + 2 * 40.0 * side) / 200.0
    assert truth == pytest.approx(1.76)
    assert st.thickness_mm[st.valid].mean() == pytest.approx(truth, abs=0.1)


def _disc_boundary_in_box(centre_rc, r_px, lo, hi, n=20000):
    """Dense points (row, col) of the boundary of disc(centre, r) clipped to the box [lo, hi]^2."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    circ = centre_rc + r_px * np.stack([np.sin(t), np.cos(t)], axis=1)
    pts = [circ[np.all((circ >= lo) & (circ <= hi), axis=1)]]
    s = np.linspace(lo, hi, n)
    for e in (lo, hi):
        for seg in (np.stack([np.full(n, e), s], axis=1), np.stack([s, np.full(n, e)], axis=1)):
            pts.append(seg[np.hypot(*(seg - centre_rc).T) <= r_px])
    return np.concatenate(pts)


def test_endocardium_facing_no_myocardium_is_not_a_zero_thickness():
    """An LV cut by the field of view: along the cut there is no myocardium beyond the cavity,
    the two contours coincide and the distance is ~0. Those samples face no wall and are dropped
    (``valid``); averaged in, they pull an 8 mm wall down to ~6 mm. Truth: the nearest-point
    distance from the true endocardium (disc clipped to the grid) to the true epicardium,
    over the samples that face myocardium (>= half a pixel)."""
    n, r_in, wall, sx = 64, 20.0, 8.0, 14.3
    shape = (3, n, n)
    aff = centred_affine((10.0, 1.0, 1.0), shape, shift_mm=(sx, 0.17, 0.0))

    def fn(p):
        r = np.hypot(p[..., 0], p[..., 1])
        return np.where(r <= r_in, 1, np.where(r <= r_in + wall, 2, 0))

    lab = rasterise(fn, aff, shape)
    assert (lab[1, :, 0] == 1).sum() >= 15  # the cavity runs off the grid's first column
    geom = stack_geometry(aff, shape)
    st = slice_thickness(lab[1] == 1, lab[1] == 2, geom, 1)
    centre = np.array([(n - 1) / 2 - 0.17, (n - 1) / 2 - sx])  # phantom centre, (row, col)
    endo = geom.to_inplane_mm(_disc_boundary_in_box(centre, r_in, -0.5, n - 0.5))
    epi = geom.to_inplane_mm(_disc_boundary_in_box(centre, r_in + wall, -0.5, n - 0.5))
    d = cKDTree(epi).query(endo)[0]
    truth = d[d >= 0.5].mean()
    assert 6.8 < truth < 7.5
    assert not st.valid.all()
    assert st.thickness_mm[st.valid].mean() == pytest.approx(truth, abs=0.15)
    assert st.thickness_mm[st.valid].min() >= 0.5


@pytest.mark.parametrize("septum, pixel_yx", [((1.0, 0.0, 0.0), (1.0, 2.0)), ((0.0, 1.0, 0.0), (2.0, 1.0))],
                         ids=["septum_x_dx2", "septum_y_dy2"])
def test_rv_insertion_points_with_anisotropic_pixels(septum, pixel_yx):
    """Pixels of 1 x 2 mm: the RV distance map must use the row step for rows and the column
    step for columns; swapped, the RV contact arc (the septum) comes out ~13 degrees too long
    and the segments rotate. The same anatomy on square pixels is the reference."""
    def run(sp):
        shape = (8, int(80 / sp[1]), int(80 / sp[2]))
        aff = centred_affine(sp, shape, shift_mm=(0.3, 0.2, -3.3))
        lab = rasterise(LVPhantom(s=septum, r_cav=20.0, base_h=25, apex_h=-25, rv_apex_h=-5), aff, shape)
        rows = [s for s in measure_phase(lab, aff, LMAP)["wall_thickness_mm"]["slices"] if s["orientation"] == "detected"]
        assert rows
        return rows

    square, aniso = run((10.0, 1.0, 1.0)), run((10.0, *pixel_yx))
    assert [s["slice"] for s in square] == [s["slice"] for s in aniso]
    for a, b in zip(square, aniso):
        assert abs(b["septum_deg"] - a["septum_deg"]) <= 8.0, (a, b)
        d_ip = (b["anterior_ip_deg"] - a["anterior_ip_deg"] + 180) % 360 - 180
        assert abs(d_ip) <= 4.5, (a, b)


# --------------------------------------------------------------------------------------------
# Slice weights and volumes


def test_uneven_slice_positions_give_centre_to_centre_weights():
    """Unevenly spaced slices (e.g. a skipped slice): interior weight (z[i+1] - z[i-1]) / 2, the
    end slices their own nearest gap, so the last slice does not take the first gap."""
    aff = np.diag([1.5, 1.5, 5.0, 1.0])
    geom = stack_geometry(aff, (4, 8, 8), slice_positions_mm=[0.0, 5.0, 15.0, 30.0])
    assert geom.weights_mm.tolist() == [5.0, 7.5, 12.5, 15.0]
    rev = stack_geometry(aff, (4, 8, 8), slice_positions_mm=[30.0, 15.0, 5.0, 0.0])
    assert rev.weights_mm.tolist() == [15.0, 12.5, 7.5, 5.0]
    mask = np.zeros((4, 8, 8), bool)
    mask[3, :2, :2] = True  # 4 voxels on the last slice only
    assert volume_ml(mask, geom) == pytest.approx(4 * 1.5 * 1.5 * 15.0 / 1000)


def test_volume_ml_leaves_out_excluded_slices():
    """``volume_ml(..., exclude_slices=...)`` is how callers drop basal slices: ignored, the
    excluded slices' volume would still be counted."""
    geom = stack_geometry(np.diag([2.0, 2.0, 8.0, 1.0]), (4, 6, 6))
    mask = np.zeros((4, 6, 6), bool)
    mask[0, :3, :3] = mask[1, :2, :2] = mask[3, :1, :5] = True  # 9, 4, 5 voxels
    vox_ml = 2.0 * 2.0 * 8.0 / 1000
    assert volume_ml(mask, geom) == pytest.approx(18 * vox_ml)
    assert volume_ml(mask, geom, exclude_slices=[0]) == pytest.approx(9 * vox_ml)
    assert volume_ml(mask, geom, exclude_slices=[0, 3]) == pytest.approx(4 * vox_ml)


# --------------------------------------------------------------------------------------------
# QC boundaries


def test_missing_slice_next_to_the_last_labelled_slice_is_flagged():
    """An empty slice right before the last labelled one (the base) is a gap like any other;
    missed, it silently drops a basal slice's volume."""
    lab = _phantom()
    last = CAVITY_SLICES[-1]
    lab[last - 1][lab[last - 1] == 1] = 0  # LV cavity deleted on the slice below the base
    rep = measure_phase(lab, AFF, LMAP)
    assert [f["slice"] for f in _codes(rep, "missing_slice") if f["structure"] == "lv"] == [last - 1]
    mask = np.zeros((6, 3, 3), bool)
    mask[[1, 2, 3, 5], 1, 1] = True
    assert qc.missing_slices(mask, "lv")[0] == [4]


def test_gap_near_the_apex_is_filled_from_its_neighbours():
    """``interpolate_missing`` fills an empty slice with the area interpolated between its
    neighbours along the slice positions; the mean area of the stack would overfill a small
    apical slice several times over."""
    spacing = (10.0, 1.5, 1.5)
    shape = (12, 40, 40)
    aff = centred_affine(spacing, shape, shift_mm=(0.31, 0.17, 2.3))
    lab = rasterise(ellipsoid((25.0, 25.0, 45.0)), aff, shape)
    have = np.flatnonzero(lab.any(axis=(1, 2)))
    z = int(have[1])  # the second slice from the low (apical-like) end
    areas = (lab == 1).sum(axis=(1, 2)) * 1.5 * 1.5
    lab[z] = 0
    rep = measure_phase(lab, aff, "lv=1", interpolate_missing=True)
    (flag,) = _codes(rep, "missing_slice")
    assert flag["slice"] == z
    expected = (areas[z - 1] + areas[z + 1]) / 2 * 10.0 / 1000
    assert flag["interpolated_ml"] == pytest.approx(expected, abs=1e-3)
    assert flag["interpolated_ml"] < 0.7 * areas[have].mean() * 10.0 / 1000


def _rings(n_slices=5, gap_slice=None, gap_mm=2.0, size=64):
    """Short-axis rings on 1 mm pixels (cavity r 18, wall 8 mm); on ``gap_slice`` the
    myocardium starts ``gap_mm`` beyond the cavity (a thin unlabelled rim)."""
    yy, xx = (np.mgrid[:size, :size] - (size - 1) / 2 + 0.3).astype(float)
    r = np.hypot(yy, xx)
    lab = np.zeros((n_slices, size, size), np.int16)
    for z in range(n_slices):
        g = gap_mm if z == gap_slice else 0.0
        lab[z][(r > 18.0 + g) & (r <= 26.0 + g)] = 2
        lab[z][r <= 18.0] = 1
    return lab, np.diag([1.0, 1.0, 10.0, 1.0])


def test_myocardium_within_3_mm_of_the_cavity_counts_as_surrounding_it():
    """SCMR 50 % rule: a ray meets myocardium within max(3 mm, 2 pixels) beyond the cavity. A
    2 mm unlabelled rim between cavity and myocardium (common in hand labels) must not turn a
    complete basal ring into an excluded 'partial' slice."""
    lab, aff = _rings(gap_slice=4, gap_mm=2.0)
    rep = measure_phase(lab, aff, "lv=1,myo=2", base_end="high_index")
    assert rep["lv_coverage_pct"][4] >= 95
    assert _codes(rep, "basal_partial") == [] and rep["excluded_basal_slices"] == []


def test_basal_rule_keeps_a_slice_at_exactly_50_percent():
    """SCMR: a basal slice counts as LV when >= 50 % of its cavity is surrounded (not > 50 %)."""
    order = np.array([0, 1, 2])
    ml = np.array([3.0, 4.0, 5.0])
    assert qc.basal_partial(np.array([0.5, 1.0, 1.0]), order, ml) == ([], [])
    excluded, flags = qc.basal_partial(np.array([0.4999, 0.5, 1.0]), order, ml)
    assert excluded == [0] and [f["slice"] for f in flags] == [0]


def test_fragment_of_exactly_min_voxels_is_not_a_part():
    """``fragmented``: more than one component *over* ``min_voxels`` voxels."""
    mask = np.zeros((3, 20, 20), bool)
    mask[1, 2:8, 2:8] = True  # 36 voxels
    mask[1, 15, 5:15] = True  # exactly 10 voxels, far away
    assert qc.fragmented(mask, "rv", min_voxels=10) == []
    mask[1, 15, 15] = True  # 11 voxels
    (flag,) = qc.fragmented(mask, "rv", min_voxels=10)
    assert flag["n_components"] == 2 and flag["sizes_voxels"] == [36, 11]


# --------------------------------------------------------------------------------------------
# ED + ES report bookkeeping


def test_indexed_mass_uses_the_ed_mass_and_atria_peak_at_es():
    """LV mass (and its index) is the ED myocardium; the LA/RA maximum volume is at LV
    end-systole, the minimum at end-diastole. Taken from the wrong phase, LVMi and LAVi are
    wrong with no warning."""
    ed = _phantom(wall_mm=6.0)
    es = _phantom(wall_mm=9.0, r_cav=15.0)
    ed[8, 10:20, 10:20] = 4  # LA beyond the base: 100 voxels at ED
    es[8, 8:22, 8:22] = 4  # 196 voxels at ES
    rep = measure_ed_es(ed, es, AFF, LMAP + ",la=4", height_cm=180, weight_kg=80)
    ph = rep["phases"]
    assert ph["es"]["lv_mass_g"] > 1.2 * ph["ed"]["lv_mass_g"]
    assert rep["lv_mass_g"] == ph["ed"]["lv_mass_g"]
    assert rep["bsa_m2"] == pytest.approx(2.0)
    assert rep["indexed"]["lv_mass_g_m2"] == pytest.approx(ph["ed"]["lv_mass_g"] / 2.0)
    la_ed, la_es = ph["ed"]["volumes_ml"]["la"], ph["es"]["volumes_ml"]["la"]
    assert la_es == pytest.approx(196 * 1.5 * 1.5 * 10.0 / 1000) and la_ed < la_es
    assert rep["atria"]["la"] == {"max_ml": la_es, "min_ml": la_ed, "emptying_fraction_pct": pytest.approx(100 * (la_es - la_ed) / la_es)}
    assert rep["indexed"]["la_max_ml_m2"] == pytest.approx(la_es / 2.0)


# --------------------------------------------------------------------------------------------
# Echo: biplane length conventions


def _apical(half_width, length, la_half_width, la_depth, px=0.3, top_mm=45.0):
    """Apical view: LV half-ellipse (1) below a base line on a pixel boundary, LA (3) above it
    with its roof ``la_depth`` mm from the annulus (deeper than half wide: the roof is the LA
    point farthest from the annulus midpoint)."""
    top = round(top_mm / px) * px
    h, w = int((top + length + 10) / px), int((2 * half_width + 20) / px)
    r = (np.arange(h) + 0.5) * px
    x = (np.arange(w) + 0.5) * px - w * px / 2 + 0.13
    s, q = np.meshgrid(r - top, x, indexing="ij")
    lab = np.zeros((h, w), np.int16)
    lab[(s >= 0) & ((q / half_width) ** 2 + (s / length) ** 2 <= 1)] = 1
    lab[(s < 0) & ((q / la_half_width) ** 2 + (s / la_depth) ** 2 <= 1)] = 3
    return lab


def _half_ellipsoid_ml(a, b, c):
    return 2.0 / 3.0 * math.pi * a * b * c / 1000.0


def test_echo_biplane_uses_the_longer_lv_length_and_the_shorter_la_length():
    """Lang 2015: biplane disks with L the longer of the A4C/A2C lengths; the biplane
    area-length 8/(3 pi) A1 A2 / L with the same L; the LA area-length 0.85 A1 A2 / L with the
    shorter LA length; LVESVi = ESV / BSA. Here the A2C is the longer view (a foreshortened
    A4C) and the A4C LA is the deeper one, so choosing the wrong view is 12-50 % off."""
    px = 0.3
    (a, b, l4, l2), (a_s, b_s, l4_s, l2_s) = (22.0, 18.0, 75.0, 85.0), (17.0, 14.0, 65.0, 72.0)
    la4, la2 = 30.0, 20.0
    views = [_apical(a, l4, 12.0, 12.0), _apical(a_s, l4_s, 12.0, la4), _apical(b, l2, 12.0, 12.0), _apical(b_s, l2_s, 12.0, la2)]
    rep = measure_echo(*views, spacing_a4c_mm=(px, px), spacing_a2c_mm=(px, px), height_cm=180, weight_kg=80)
    assert rep["method"] == "biplane_disks"
    assert set(rep["annulus_method"].values()) == {"lv_la_boundary"}
    assert rep["lengths_mm"]["a2c_ed"] == pytest.approx(l2, abs=0.5)
    assert rep["lengths_mm"]["a4c_ed"] == pytest.approx(l4, abs=0.5)
    edv, esv = _half_ellipsoid_ml(a, b, l2), _half_ellipsoid_ml(a_s, b_s, l2_s)  # disks: the longer L
    assert rep["lv"]["edv_ml"] == pytest.approx(edv, rel=0.01)
    assert rep["lv"]["esv_ml"] == pytest.approx(esv, rel=0.01)
    # area-length with half-ellipse areas pi a L / 2: 8/(3 pi) A4 A2 / L2 = 2/3 pi a b L4
    assert rep["lv_area_length"]["edv_ml"] == pytest.approx(_half_ellipsoid_ml(a, b, l4), rel=0.01)
    assert rep["lv_area_length"]["esv_ml"] == pytest.approx(_half_ellipsoid_ml(a_s, b_s, l4_s), rel=0.01)
    a1 = float((views[1] == 3).sum()) * px * px
    a2 = float((views[3] == 3).sum()) * px * px
    assert rep["la_volume_ml"] == pytest.approx(0.85 * a1 * a2 / la2 / 1000, rel=0.03)
    assert rep["bsa_m2"] == pytest.approx(2.0)
    assert rep["indexed"]["lv_esv_ml_m2"] == pytest.approx(rep["lv"]["esv_ml"] / 2.0)
    assert rep["indexed"]["lv_edv_ml_m2"] == pytest.approx(rep["lv"]["edv_ml"] / 2.0)

