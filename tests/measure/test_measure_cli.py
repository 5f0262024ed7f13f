"""`medseg measure` through run_cli with argv lists: outputs, exit codes, nothing half-written."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
from measure_phantoms import LVPhantom, centred_affine, rasterise

from medseg.cli import run_cli

SHAPE = (9, 64, 64)
AFF = centred_affine((10.0, 1.5, 1.5), SHAPE, shift_mm=(0.3, 0.2, -3.3))
ACDC_MAP = "lv=3,myo=2,rv=1"


def _to_acdc(lab):
    out = np.zeros_like(lab)
    out[lab == 1], out[lab == 2], out[lab == 3] = 3, 2, 1
    return out


def _save(path, arr_zyx_or_tzyx, aff=AFF):
    nib.save(nib.Nifti1Image(np.asarray(arr_zyx_or_tzyx).T.copy(), aff), str(path))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("measure_cli")
    ed = _to_acdc(rasterise(LVPhantom(r_cav=24.0), AFF, SHAPE))
    es = _to_acdc(rasterise(LVPhantom(r_cav=17.0, thickness=lambda t: np.full_like(t, 11.0)), AFF, SHAPE))
    frames = [_to_acdc(rasterise(LVPhantom(r_cav=20.0 + 4 * np.cos(2 * np.pi * (t - 2) / 6)), AFF, SHAPE)) for t in range(6)]
    image = (ed > 0) * 300.0 + 50.0
    no_myo = ed.copy()
    no_myo[no_myo == 2] = 0
    shifted = AFF.copy()
    shifted[0, 3] += 5.0
    return {
        "dir": d,
        "ed": _save(d / "ed.nii.gz", ed), "es": _save(d / "es.nii.gz", es),
        "cine": _save(d / "cine.nii.gz", np.stack(frames)), "image": _save(d / "img.nii.gz", image.astype(np.float32)),
        "empty": _save(d / "empty.nii.gz", np.zeros_like(ed)), "no_myo": _save(d / "no_myo.nii.gz", no_myo),
        "single": _save(d / "single.nii.gz", ed[4:5]), "es_shifted": _save(d / "es_shifted.nii.gz", es, shifted),
    }


def test_one_phase(files, tmp_path):
    out = tmp_path / "r.json"
    assert run_cli(["measure", files["ed"], "--label-map", ACDC_MAP, "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert {"volumes_ml", "lv_mass_g", "wall_thickness_mm", "flags", "spacing_mm", "label_map"} <= set(rep)
    assert rep["label_map"] == {"lv": 3, "myo": 2, "rv": 1}
    assert rep["volumes_ml"]["lv"] > 0 and rep["lv_mass_g"] > 0
    assert rep["spacing_mm"] == pytest.approx([10.0, 1.5, 1.5])


def test_ed_es_with_csv_plots_and_image(files, tmp_path):
    out, table, plots = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "plots"
    argv = ["measure", "--ed", files["ed"], "--es", files["es"], "--label-map", ACDC_MAP, "-o", str(out),
            "--height-cm", "180", "--weight-kg", "80", "--heart-rate", "65", "--bsa-method", "dubois",
            "--csv", str(table), "--plots", str(plots), "--image", files["image"]]
    assert run_cli(argv) == 0
    rep = json.loads(out.read_text())
    for key in ("lv", "rv", "bsa_m2", "indexed", "co_l_min"):
        assert key in rep
    assert set(rep["lv"]) == {"edv_ml", "esv_ml", "sv_ml", "ef_pct"}
    assert rep["bsa_m2"] == pytest.approx(1.996, abs=5e-4) and rep["bsa_method"] == "dubois"
    assert rep["co_l_min"] == pytest.approx(rep["lv"]["sv_ml"] * 65 / 1000)
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 1 and float(rows[0]["lv.ef_pct"]) == pytest.approx(rep["lv"]["ef_pct"], abs=1e-3)
    for name in ("bullseye.png", "overlay.png", "volumes.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cine_file(files, tmp_path):
    out, plots = tmp_path / "r.json", tmp_path / "p"
    assert run_cli(["measure", files["cine"], "--label-map", ACDC_MAP, "-o", str(out), "--plots", str(plots)]) == 0
    rep = json.loads(out.read_text())
    assert (rep["ed_frame"], rep["es_frame"]) == (2, 5)
    assert len(rep["volume_curve_ml"]["lv"]) == 6
    assert (plots / "volume_curve.png").exists()


def test_labels_without_myocardium_flagged(files, tmp_path):
    out = tmp_path / "r.json"
    assert run_cli(["measure", files["no_myo"], "--label-map", ACDC_MAP, "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["lv_mass_g"] is None and rep["volumes_ml"]["myo"] is None
    assert any(f["code"] == "absent_structure" and f["structure"] == "myo" for f in rep["flags"])


@pytest.mark.parametrize("argv", [
    ["measure", "{dir}/missing.nii.gz", "--label-map", ACDC_MAP],
    ["measure", "{empty}", "--label-map", ACDC_MAP],
    ["measure", "{single}", "--label-map", ACDC_MAP],
    ["measure", "--ed", "{ed}", "--es", "{es_shifted}", "--label-map", ACDC_MAP],
    ["measure", "{ed}", "--label-map", "lv=7,myo=2,rv=1,other=3"],  # lv value absent from the file
    ["measure", "{ed}", "--label-map", "lv=3,myo=2"],  # value 1 in the file is not in the map
    ["measure", "{ed}", "--label-map", "myo=2,rv=1,x=3"],  # no lv in the map
    ["measure", "{ed}", "--label-map", ACDC_MAP, "--bsa-method", "bogus"],
    ["measure", "--ed", "{ed}", "--label-map", ACDC_MAP],
    ["measure", "{ed}", "--ed", "{ed}", "--es", "{es}", "--label-map", ACDC_MAP],
    ["measure", "{ed}", "--label-map", ACDC_MAP, "--plots", "{dir}/plots_bad", "--image", "{single}"],
], ids=["missing_file", "empty", "single_slice", "ed_es_grid", "lv_absent", "unknown_value",
        "no_lv_in_map", "bad_bsa", "ed_without_es", "both_modes", "image_grid"])
def test_bad_input_one_line_error_nothing_written(files, tmp_path, capsys, argv):
    out = tmp_path / "r.json"
    code = run_cli([a.format(**files) for a in argv] + ["-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.startswith("error") and len(err.splitlines()) == 1, err
    assert not out.exists()
    assert not any(p.name.startswith(".r.json") for p in tmp_path.iterdir())


def test_labels_without_spacing_refused(files, tmp_path, monkeypatch, capsys):
    """PNG-like inputs (spacing_known False) cannot give millimetres: one-line error."""
    import medseg.cli.measure_cmd as cmd

    real = cmd._read_labels
    monkeypatch.setattr(cmd, "_read_labels", lambda p: real(p).with_array(real(p).array, spacing_known=False))
    out = tmp_path / "r.json"
    assert run_cli(["measure", files["ed"], "--label-map", ACDC_MAP, "-o", str(out)]) == 1
    assert "spacing" in capsys.readouterr().err and not out.exists()
