"""An ED without myocardium (handed over by --min-confidence, not written) has no LV mass: the
ED + ES and cine reports gave 0.0 g and myo 0.0 mL (flagged lv_mass_implausible, counted in a
cohort's mean), while ED alone gave n/a. Chambers keep their 0 mL (EF undefined)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from measure_phantoms import LVPhantom, centred_affine, rasterise

from medseg.measure.report import measure_cine, measure_ed_es, measure_phase
from medseg.review import measurement_flags

LMAP = "lv=1,myo=2,rv=3"
SHAPE = (9, 64, 64)
AFF = centred_affine((10.0, 1.5, 1.5), SHAPE, shift_mm=(0.3, 0.2, -3.3))


@pytest.fixture(scope="module")
def phases():
    """(ED without myocardium, ES with it): the myocardium of ED handed over."""
    full = rasterise(LVPhantom(), AFF, SHAPE)
    es = full.copy()
    es[tuple(np.argwhere(es == 1)[0])] = 2  # ES one LV voxel smaller (the same labels twice are refused)
    return np.where(full == 2, 0, full).astype(full.dtype), es


def _codes(rep):
    return {f["code"] for f in rep["flags"]}


def test_ed_without_myocardium_has_no_mass_not_zero(phases):
    ed, es = phases
    alone = measure_phase(ed, AFF, LMAP)
    assert math.isnan(alone["lv_mass_g"]) and math.isnan(alone["volumes_ml"]["myo"])  # the one-phase path, as before
    rep = measure_ed_es(ed, es, AFF, LMAP, height_cm=175.0, weight_kg=70.0)
    assert math.isnan(rep["lv_mass_g"]) and math.isnan(rep["volumes_ml"]["myo"])  # was 0.0 and 0.0
    assert math.isnan(rep["phases"]["ed"]["lv_mass_g"]) and rep["phases"]["es"]["lv_mass_g"] > 50  # ES keeps its own
    assert math.isnan(rep["indexed"]["lv_mass_g_m2"]) and math.isnan(rep["wall_thickness_mm"]["global_mean"])
    assert math.isnan(rep["wall_thickening_pct"]["global"])
    assert not any(c.startswith("lv_mass_index") for c in _codes(rep))
    assert "lv_mass_implausible" not in {f["code"] for f in measurement_flags(rep)}  # missing, not implausible
    assert ("myo", "ed") in {(f.get("structure"), f.get("phase")) for f in rep["flags"] if f["code"] == "absent_structure"}
    assert rep["lv"]["edv_ml"] > rep["lv"]["esv_ml"] > 0 and math.isfinite(rep["lv"]["ef_pct"])  # the EF stands


def test_es_without_myocardium_keeps_the_ed_mass(phases):
    ed_no_myo, full = phases
    es = np.where(full == 2, 0, full).astype(full.dtype)
    rep = measure_ed_es(full, es, AFF, LMAP)
    assert rep["lv_mass_g"] == pytest.approx(measure_phase(full, AFF, LMAP)["lv_mass_g"])
    assert math.isnan(rep["phases"]["es"]["volumes_ml"]["myo"]) and math.isnan(rep["phases"]["es"]["lv_mass_g"])  # was 0.0


def test_a_chamber_labelled_in_one_phase_is_still_0_ml_in_the_other(phases):
    _, es = phases
    rep = measure_ed_es(np.zeros_like(es), es, AFF, LMAP)
    assert rep["lv"]["edv_ml"] == 0.0 and rep["volumes_ml"]["rv"] == 0.0 and math.isnan(rep["lv"]["ef_pct"])
    assert math.isnan(rep["lv_mass_g"]) and math.isnan(rep["volumes_ml"]["myo"])


def test_cine_whose_ed_frame_has_no_myocardium_has_no_mass(phases):
    ed, es = phases
    rep = measure_cine(np.stack([ed, es]), AFF, LMAP)
    assert (rep["ed_frame"], rep["es_frame"]) == (0, 1)
    assert math.isnan(rep["lv_mass_g"]) and math.isnan(rep["volumes_ml"]["myo"])
    assert "lv_mass_implausible" not in {f["code"] for f in measurement_flags(rep)}


def test_measure_command_says_mass_n_a_and_leaves_the_csv_cell_empty(phases, tmp_path, capsys):
    from medseg.cli import run_cli
    from medseg.io import Volume, write_labels

    like = Volume(np.zeros((1, *SHAPE), np.float32), AFF, spacing_known=True)
    files = {}
    for name, lab in zip(("ed", "es"), phases):
        files[name] = tmp_path / f"p1_{name}.nii.gz"
        write_labels(lab[None], like, files[name], LMAP)
    code = run_cli(["measure", "--ed", str(files["ed"]), "--es", str(files["es"]), "--label-map", LMAP,
                    "-o", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv")])
    out = capsys.readouterr().out
    assert code == 0 and "mass n/a" in out and "mass 0.0 g" not in out and "lv_mass_implausible" not in out
    (row,) = list(csv.DictReader((tmp_path / "r.csv").read_text().splitlines()))
    assert row["lv_mass_g"] == "" and row["volumes_ml.myo"] == "" and float(row["lv.ef_pct"]) > 0
