"""The atria as a user measures them: LA / RA maximum (at LV ES), minimum (at LV ED) and emptying
fraction from 3-D labels, the echo LA by area-length (biplane with the shorter length, or the
4-chamber view alone), an atrium cut off by the field of view flagged ``truncated`` (not read as
a small atrium), and CAMUS-224's resize rim that put the mitral annulus inside the LA."""

from __future__ import annotations

import csv
import json
import math

import nibabel as nib
import numpy as np
import pytest
from measure_phantoms import echo_view
from scipy import ndimage

from medseg.cli import run_cli
from medseg.measure import measure_ed_es, measure_phase
from medseg.measure.echo import measure_echo
from medseg.phantoms import ct_phantom

PX = 0.3
AFF = np.diag([1.5, 1.5, 4.0, 1.0])  # (x, y, z) mm
LMAP = "lv=1,myo=2,rv=3,la=4,ra=5"


def _codes(rep, code):
    return [f for f in rep["flags"] if f["code"] == code]


def _heart(la_box, ra_box, lv_r=8):
    """(Z, Y, X) labels: an LV block ringed by myocardium, LA and RA boxes (slices, rows, cols)."""
    lab = np.zeros((12, 48, 48), np.uint8)
    lab[2:9, 10:30, 10:30] = 2
    lab[2:8, 20 - lv_r:20 + lv_r, 20 - lv_r:20 + lv_r] = 1
    lab[la_box] = 4
    lab[ra_box] = 5
    return lab


def test_atria_max_at_lv_es_min_at_lv_ed_and_emptying_fraction():
    """Voxel counts by hand: LA 6 x 8 x 8 voxels at LV ES, 6 x 6 x 6 at LV ED; the emptying
    fraction (max - min) / max is reported, and an atrium inside the grid is not flagged."""
    ed = _heart(np.s_[9:11, 10:16, 10:16], np.s_[9:11, 30:36, 30:36])
    es = _heart(np.s_[8:11, 8:16, 8:16], np.s_[8:11, 30:38, 30:38], lv_r=5)
    rep = measure_ed_es(ed, es, AFF, LMAP, height_cm=180, weight_kg=80)
    vox = 1.5 * 1.5 * 4.0 / 1000
    la_max, la_min = 3 * 8 * 8 * vox, 2 * 6 * 6 * vox
    assert rep["atria"]["la"]["max_ml"] == pytest.approx(la_max)
    assert rep["atria"]["la"]["min_ml"] == pytest.approx(la_min)
    assert rep["atria"]["la"]["emptying_fraction_pct"] == pytest.approx(100 * (la_max - la_min) / la_max)
    assert rep["atria"]["ra"]["emptying_fraction_pct"] == pytest.approx(100 * (1 - 72 / 192))
    assert rep["indexed"]["la_max_ml_m2"] == pytest.approx(la_max / 2.0)
    assert not _codes(rep, "truncated")


def test_an_atrium_at_the_edge_of_the_stack_is_flagged_truncated():
    """An LA that reaches the last slice (a stack that stops inside it) or the image border is
    cut off: its volume is a lower bound, flagged per phase; the RA inside the grid is not."""
    ed = _heart(np.s_[9:12, 10:16, 10:16], np.s_[9:11, 30:36, 30:36])
    es = _heart(np.s_[8:11, 0:16, 8:16], np.s_[8:11, 30:38, 30:38], lv_r=5)
    rep = measure_ed_es(ed, es, AFF, LMAP)
    cut = _codes(rep, "truncated")
    assert [(f["structure"], f["phase"], f["edge"]) for f in cut] == [
        ("la", "ed", "the last slice of the stack"), ("la", "es", "the image border")]
    assert all(f["severity"] == "warning" and "lower bound" in f["message"] for f in cut)
    assert math.isfinite(rep["atria"]["la"]["max_ml"])  # still reported, flagged


def test_ct_phantom_atria_whole_and_cut_by_the_stack():
    """The CT phantom's atria lie inside its grid (no flag; volumes = voxel counts); the same
    labels cut through the LA (the stack stops inside the atrium) are flagged."""
    ph = ct_phantom(shape=(48, 96, 96), spacing=(2.5, 1.5, 1.5), seed=4, noise=0.0)
    lab = ph.labels[0]
    rep = measure_phase(ph.label_volume, label_map=ph.label_map)
    assert rep["volumes_ml"]["la"] == pytest.approx((lab == 4).sum() * 2.5 * 1.5 * 1.5 / 1000)
    assert not _codes(rep, "truncated")
    z = np.flatnonzero((lab == 4).any(axis=(1, 2)))
    mid = int(z[len(z) // 2])
    cut = measure_phase(lab[:mid], ph.image.affine, ph.label_map)
    flags = {f["structure"]: f for f in _codes(cut, "truncated")}
    assert "la" in flags and "slice of the stack" in flags["la"]["edge"]
    assert cut["volumes_ml"]["la"] < rep["volumes_ml"]["la"]


def _views(la_cut_rows=0):
    """A4C / A2C ED and ES views (LV 1, LA 3; echo_view's LA roof 5.1 mm below the top);
    ``la_cut_rows``: rows cut off the top of the ES views (the LA then reaches the border)."""
    a4c_ed, a2c_ed = echo_view(22.0, 80.0, True), echo_view(18.0, 80.0, True)
    a4c_es, a2c_es = echo_view(17.0, 70.0, True), echo_view(14.0, 70.0, True)
    return a4c_ed, a4c_es[la_cut_rows:], a2c_ed, a2c_es[la_cut_rows:]


def _la_area_length(view, px=PX):
    """Hand calculation: LA area and L = annulus midpoint (the LV-LA boundary) to the farthest LA
    pixel corner."""
    la, lv = view == 3, view == 1
    rows = np.flatnonzero((lv[1:] & la[:-1]).any(axis=1))[0] + 1  # first LV row below the LA
    cols = np.flatnonzero(lv[rows] & la[rows - 1])
    mid = np.array([rows, (cols[0] + cols[-1] + 1) / 2]) * px
    rr, cc = np.nonzero(la)
    far = np.hypot(rr * px - mid[0], (cc + 0.5) * px - mid[1]).max()
    return la.sum() * px * px, far


def test_echo_la_biplane_shorter_length_min_at_ed_and_emptying_fraction():
    v = _views()
    rep = measure_echo(*v, label_map="lv=1,myo=2,la=3", spacing_a4c_mm=(PX, PX), spacing_a2c_mm=(PX, PX),
                       height_cm=180, weight_kg=80)
    (a4, l4), (a2, l2) = _la_area_length(v[1]), _la_area_length(v[3])
    assert rep["la_method"] == "biplane_area_length"
    assert rep["la_volume_ml"] == pytest.approx(0.85 * a4 * a2 / min(l4, l2) / 1000, rel=0.03)
    assert rep["atria"]["la"]["max_ml"] == rep["la_volume_ml"]
    (e4, m4), (e2, m2) = _la_area_length(v[0]), _la_area_length(v[2])
    assert rep["atria"]["la"]["min_ml"] == pytest.approx(0.85 * e4 * e2 / min(m4, m2) / 1000, rel=0.03)
    la = rep["atria"]["la"]  # these views' LA is smaller at LV ES than at LV ED: no emptying fraction to state
    assert la["max_ml"] < la["min_ml"] and math.isnan(la["emptying_fraction_pct"])
    assert rep["indexed"]["la_volume_ml_m2"] == pytest.approx(rep["la_volume_ml"] / 2.0)
    assert not _codes(rep, "truncated") and not _codes(rep, "absent_structure")


def test_echo_la_from_one_view_says_so():
    """No LA in the 2-chamber ES labels: single plane 8/(3 pi) A^2 / L from the 4-chamber view,
    said (``la_method``, an info flag); no LA in the 4-chamber ES labels: no LA volume, a
    warning; no ``la`` in the label map: a note, not a silent null."""
    a4c_ed, a4c_es, a2c_ed, a2c_es = _views()
    no_la = np.where(a2c_es == 3, 0, a2c_es)
    rep = measure_echo(a4c_ed, a4c_es, a2c_ed, no_la, spacing_a4c_mm=(PX, PX), spacing_a2c_mm=(PX, PX))
    a, length = _la_area_length(a4c_es)
    assert rep["la_method"] == "single_plane_area_length_a4c"
    assert rep["la_volume_ml"] == pytest.approx(8 / (3 * math.pi) * a * a / length / 1000, rel=0.03)
    (flag,) = _codes(rep, "absent_structure")
    assert flag["view"] == "2-chamber ES" and flag["severity"] == "info" and "4-chamber view alone" in flag["message"]
    rep = measure_echo(a4c_ed, np.where(a4c_es == 3, 0, a4c_es), a2c_ed, a2c_es, spacing_a4c_mm=(PX, PX), spacing_a2c_mm=(PX, PX))
    assert math.isnan(rep["la_volume_ml"]) and rep["la_method"] is None
    assert [f["severity"] for f in _codes(rep, "absent_structure") if f["view"] == "4-chamber ES"] == ["warning"]
    rep = measure_echo(a4c_ed, a4c_es, label_map="lv=1,myo=2,rv=3", spacing_a4c_mm=(PX, PX))
    assert math.isnan(rep["la_volume_ml"]) and "no la in the label map: no LA volume" in rep["notes"]


def test_echo_la_cut_by_the_image_border_is_flagged_and_not_called_small():
    """An LA that reaches the image border (the sector's depth) is cut off: ``truncated`` with
    the views and phase, and a low LAVI is not flagged from a lower bound."""
    v = _views(la_cut_rows=40)  # 12 mm off the top: through the LA
    rep = measure_echo(*v, spacing_a4c_mm=(PX, PX), spacing_a2c_mm=(PX, PX), height_cm=200, weight_kg=150)
    (flag,) = _codes(rep, "truncated")
    assert (flag["phase"], flag["view"], flag["structure"]) == ("es", "4-chamber and 2-chamber", "la")
    assert rep["indexed"]["la_volume_ml_m2"] < 16  # below Lang's 16-34 mL/m^2, but a lower bound
    assert not _codes(rep, "la_volume_index_low")


def test_echo_resize_rim_does_not_move_the_annulus():
    """Labels resized with interpolation carry 1-pixel pieces of LV along the LA's edge
    (CAMUS-224: all 400 studies). Their LV-LA contacts put the annulus inside the LA: the LA
    length read short and the LA volume about 1.7 times too large."""
    v = list(_views())
    clean = measure_echo(*v, spacing_a4c_mm=(PX, PX), spacing_a2c_mm=(PX, PX))
    for i in range(4):
        la = v[i] == 3
        rim = ndimage.binary_dilation(la) & ~la & (v[i] == 0)
        rr, cc = np.nonzero(rim)
        keep = (np.arange(rr.size) % 7) == 0  # scattered single pixels, apart from the LV
        v[i] = v[i].copy()
        v[i][rr[keep], cc[keep]] = 1
    rimmed = measure_echo(*v, spacing_a4c_mm=(PX, PX), spacing_a2c_mm=(PX, PX))
    assert set(rimmed["annulus_method"].values()) == {"lv_la_boundary"}
    assert rimmed["la_volume_ml"] == pytest.approx(clean["la_volume_ml"], rel=0.02)
    assert rimmed["lv"]["ef_pct"] == pytest.approx(clean["lv"]["ef_pct"], abs=0.5)


def _nifti_from_png(png, path, spacing_yx):
    from PIL import Image

    a = np.array(Image.open(png)).astype(np.uint8)
    nib.save(nib.Nifti1Image(a.T[:, :, None].copy(), np.diag([spacing_yx[1], spacing_yx[0], 1.0, 1.0])), str(path))
    return a


def test_camus_la_by_hand_through_the_cli(shared_data, tmp_path, capsys):
    """CAMUS patient0001's expert labels given a pixel spacing (NIfTI): medseg measure's LA
    (biplane area-length, shorter L) equals the numpy calculation on the label images (largest LV
    part for the annulus), in the JSON, the CSV and the console line; its LA reaches the image
    border in every view (CAMUS's sector depth) and is flagged."""
    from scipy.spatial.distance import pdist, squareform

    dy, dx = 0.7, 0.5
    src = shared_data / "camus-224" / "patient0001"
    views, files = {}, {}
    for v in ("4CH_ED", "4CH_ES", "2CH_ED", "2CH_ES"):
        files[v] = tmp_path / f"p_{v}.nii.gz"
        views[v] = _nifti_from_png(src / f"patient0001_{v}_gt.png", files[v], (dy, dx))

    def hand(a):
        lab, _ = ndimage.label(a == 1)
        lv, la = lab == np.argmax(np.bincount(lab.ravel())[1:]) + 1, a == 3
        pts = [np.argwhere(lv[:-1] & la[1:]) + [0.5, 0], np.argwhere(la[:-1] & lv[1:]) + [0.5, 0],
               np.argwhere(lv[:, :-1] & la[:, 1:]) + [0, 0.5], np.argwhere(la[:, :-1] & lv[:, 1:]) + [0, 0.5]]
        mm = np.concatenate(pts) * [dy, dx]
        i, j = np.unravel_index(np.argmax(squareform(pdist(mm))), (len(mm), len(mm)))
        mid = (mm[i] + mm[j]) / 2
        return la.sum() * dy * dx, np.linalg.norm(np.argwhere(la) * [dy, dx] - mid, axis=1).max()

    (a4, l4), (a2, l2) = hand(views["4CH_ES"]), hand(views["2CH_ES"])
    out, row = tmp_path / "r.json", tmp_path / "r.csv"
    assert run_cli(["measure", "--ed", str(files["4CH_ED"]), "--es", str(files["4CH_ES"]), "--a2c-ed", str(files["2CH_ED"]),
                    "--a2c-es", str(files["2CH_ES"]), "--label-map", "lv=1,myo=2,la=3", "--height-cm", "170",
                    "--weight-kg", "70", "-o", str(out), "--csv", str(row)]) == 0
    rep = json.loads(out.read_text())
    assert rep["la_volume_ml"] == pytest.approx(0.85 * a4 * a2 / min(l4, l2) / 1000, rel=0.01)  # 40 mL (68.9 before)
    assert rep["atria"]["la"]["max_ml"] == rep["la_volume_ml"]
    assert {(f["phase"], f["view"]) for f in _codes(rep, "truncated")} == {("es", "4-chamber and 2-chamber"), ("ed", "4-chamber and 2-chamber")}
    (cells,) = list(csv.DictReader(row.open()))
    assert float(cells["atria.la.max_ml"]) == pytest.approx(rep["la_volume_ml"], abs=1e-4)
    assert float(cells["atria.la.emptying_fraction_pct"]) == pytest.approx(rep["atria"]["la"]["emptying_fraction_pct"], abs=1e-4)
    assert cells["la_method"] == "biplane_area_length" and "truncated(structure=la,phase=es" in cells["flags"]
    said = capsys.readouterr().out
    assert f"LA max {rep['la_volume_ml']:.1f} mL" in said and "emptying fraction" in said and "truncated x2" in said


def test_napari_panel_lists_the_atria():
    """The measurement panel's table shows what the JSON holds: LA / RA max, min, emptying
    fraction and index (ED + ES), the LA volume index and emptying fraction (echo)."""
    m = pytest.importorskip("medseg_napari._measure")
    ed = _heart(np.s_[9:11, 10:16, 10:16], np.s_[9:11, 30:36, 30:36])
    es = _heart(np.s_[8:11, 8:16, 8:16], np.s_[8:11, 30:38, 30:38], lv_r=5)
    rep = {**measure_ed_es(ed, es, AFF, LMAP, height_cm=180, weight_kg=80), "mode": "ed_es"}
    rows = {q: (v, u) for q, v, u in m.summary_rows(rep)}
    assert rows["LA max (at LV ES)"] == (f"{rep['atria']['la']['max_ml']:.1f}", "mL")
    assert rows["LA min (at LV ED)"][0] == f"{rep['atria']['la']['min_ml']:.1f}"
    assert rows["RA emptying fraction"] == (f"{rep['atria']['ra']['emptying_fraction_pct']:.1f}", "%")
    assert rows["LA max index"][1] == "mL/m²"
    echo = {**measure_echo(*_views(), spacing_a4c_mm=(PX, PX), spacing_a2c_mm=(PX, PX), height_cm=180, weight_kg=80), "mode": "echo"}
    rows = {q: v for q, v, _ in m.summary_rows(echo)}
    assert rows["LA volume (at LV ES)"] == f"{echo['la_volume_ml']:.1f}"
    assert rows["LA volume index"] == f"{echo['indexed']['la_volume_ml_m2']:.1f}"
    # these views' LA is smaller at LV ES than at LV ED: the panel, as the JSON, gives no emptying fraction
    assert math.isnan(echo["atria"]["la"]["emptying_fraction_pct"]) and "LA emptying fraction" not in rows
