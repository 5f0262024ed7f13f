"""`medseg measure` of echo apical views and clips (biplane / single-plane disks, the curve, no
pixel spacing: EF only) and of label images over time that are not apical views."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from medseg.cli import run_cli

# --- echo: apical views (one slice each) ------------------------------------------------------

ECHO_PX = 0.3


def _echo_file(path, lab_yx_or_tyx, px=ECHO_PX):
    """A 2-D (or 2-D + time) label image as NIfTI with (px, px) mm pixels."""
    arr = np.asarray(lab_yx_or_tyx)
    aff = np.diag([px, px, 1.0, 1.0])
    data = arr[:, None].T.copy() if arr.ndim == 3 else arr[None].T.copy()  # (X, Y, 1[, T])
    nib.save(nib.Nifti1Image(data.astype(np.int16), aff), str(path))
    return str(path)


def test_echo_biplane_and_single_plane_from_apical_views(tmp_path):
    from measure_phantoms import echo_view

    (a, b, c), (a2, b2, c2) = (22.0, 18.0, 80.0), (17.0, 14.0, 70.0)
    f = {k: _echo_file(tmp_path / f"{k}.nii.gz", echo_view(w, L, True))
         for k, w, L in (("a4c_ed", a, c), ("a4c_es", a2, c2), ("a2c_ed", b, c), ("a2c_es", b2, c2))}
    out = tmp_path / "bi.json"
    assert run_cli(["measure", "--ed", f["a4c_ed"], "--es", f["a4c_es"], "--a2c-ed", f["a2c_ed"], "--a2c-es", f["a2c_es"],
                    "--label-map", "lv=1,myo=2,la=3", "--csv", str(tmp_path / "bi.csv"), "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    edv, esv = 2 / 3 * np.pi * a * b * c / 1000, 2 / 3 * np.pi * a2 * b2 * c2 / 1000
    assert rep["method"] == "biplane_disks" and rep["spacing_known"] is True
    assert rep["lv"]["edv_ml"] == pytest.approx(edv, rel=0.005) and rep["lv"]["esv_ml"] == pytest.approx(esv, rel=0.005)
    assert rep["la_volume_ml"] > 0 and rep["inputs"]["a2c_es"] == f["a2c_es"]
    with open(tmp_path / "bi.csv") as fh:
        row = next(csv.DictReader(fh))
    assert float(row["lv.ef_pct"]) == pytest.approx(rep["lv"]["ef_pct"], abs=1e-3)
    out1 = tmp_path / "single.json"
    assert run_cli(["measure", "--ed", f["a4c_ed"], "--es", f["a4c_es"], "--label-map", "lv=1,myo=2,la=3", "-o", str(out1)]) == 0
    single = json.loads(out1.read_text())
    assert single["method"] == "single_plane_disks_a4c"
    assert single["lv"]["edv_ml"] == pytest.approx(2 / 3 * np.pi * a * a * c / 1000, rel=0.005)


def test_echo_clip_gives_the_curve_ed_es_and_plots(tmp_path, capsys):
    from measure_phantoms import echo_view

    widths = [19.0, 21.0, 18.0, 15.0, 16.0, 20.0]
    shape = (int(130 / ECHO_PX), int(110 / ECHO_PX))
    clip = _echo_file(tmp_path / "clip.nii.gz", np.stack([echo_view(w, 60.0 + w, False, shape=shape) for w in widths]))
    out = tmp_path / "clip_report.json"
    assert run_cli(["measure", clip, "-o", str(out), "--plots", str(tmp_path / "plots")]) == 0  # medseg's map: lv=1
    rep = json.loads(out.read_text())
    assert rep["method"] == "single_plane_disks_clip" and (rep["ed_frame"], rep["es_frame"]) == (1, 3)
    edv, esv = (2 / 3 * np.pi * w * w * (60 + w) / 1000 for w in (21.0, 15.0))
    assert rep["lv"]["ef_pct"] == pytest.approx(100 * (1 - esv / edv), abs=0.5)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["overlay.png", "volume_curve.png"]
    printed = capsys.readouterr()
    assert "ED frame 1, ES frame 3" in " ".join(printed.out.split())
    # nothing named the structures: the map taken is said (CAMUS' LA, value 3, would read as the RV)
    assert rep["inputs"]["label_map_from"] == "medseg default" and "note: no --label-map" in printed.err
    assert "CAMUS lv=1,myo=2,la=3" in " ".join(printed.err.split())


def test_echo_views_without_spacing_give_ef_only(tmp_path, capsys):
    from measure_phantoms import echo_view
    from PIL import Image

    for k, w, L in (("ed", 22.0, 80.0), ("es", 17.0, 70.0)):
        Image.fromarray(echo_view(w, L, True, px=1.0).astype(np.uint8)).save(tmp_path / f"{k}.png")
    out = tmp_path / "r.json"
    assert run_cli(["measure", "--ed", str(tmp_path / "ed.png"), "--es", str(tmp_path / "es.png"), "--label-map", "lv=1,myo=2,la=3",
                    "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["spacing_known"] is False and rep["lv"]["edv_ml"] is None  # NaN is written as null
    assert 40 < rep["lv"]["ef_pct"] < 60
    assert "no pixel spacing: volumes not reported" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("argv, message", [
    (["--ed", "{a4c}", "--es", "{a4c}", "--a2c-ed", "{a4c}"], "--a2c-ed and --a2c-es go together"),
    (["{a4c}"], "one 2-D image gives no EF"),
    (["--ed", "{a4c}", "--es", "{a4c}", "--label-map", "lv=5,la=3"], "the label map names lv=5 but no voxel has that value"),
    (["--ed", "{a4c}", "--es", "{a4c}", "--label-map", "lv=1"], "label values 3 are not in the label map"),  # as for short axis
])
def test_echo_bad_input_one_line(tmp_path, capsys, argv, message):
    from measure_phantoms import echo_view

    a4c = _echo_file(tmp_path / "a4c.nii.gz", echo_view(20.0, 70.0, True))
    out = tmp_path / "r.json"
    assert run_cli(["measure", *[a.format(a4c=a4c) for a in argv], "-o", str(out)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error") and message in err and len(err.splitlines()) == 1 and not out.exists()


def test_labels_of_an_image_without_spacing_give_no_millimetres(tmp_path, capsys):
    """Labels of a video (no pixel size) written as NIfTI have 1 mm pixels nobody measured; the
    sidecar says so and measure reports EF and the relative curve only (it used to print mL)."""
    from measure_phantoms import echo_view

    from medseg.io import Volume, write_labels

    widths = [19.0, 21.0, 18.0, 15.0, 16.0]
    clip = np.stack([echo_view(w, 60.0 + w, False, px=1.0, shape=(140, 110)) for w in widths])[:, None]
    video = Volume(np.zeros(clip.shape, np.uint8), np.eye(4), frame_times_s=np.arange(5) / 25.0, modality="US", spacing_known=False)
    written, side = write_labels(clip, video, tmp_path / "seg.nii.gz", "lv=1,myo=2,la=3")
    assert json.loads(side.read_text())["provenance"]["spacing_known"] is False
    out = tmp_path / "r.json"
    assert run_cli(["measure", str(written), "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["spacing_known"] is False and rep["lv"]["edv_ml"] is None and all(v is None for v in rep["volume_curve_ml"]["lv"])
    assert (rep["ed_frame"], rep["es_frame"]) == (1, 3) and 40 < rep["lv"]["ef_pct"] < 60
    assert "volumes not reported" in " ".join(capsys.readouterr().out.split())


def test_a_short_axis_slice_over_time_is_refused_in_one_line(tmp_path, capsys):
    from measure_phantoms import sax_section

    cine = _echo_file(tmp_path / "sax.nii.gz", np.stack([sax_section(r, w) for r, w in ((22.0, 8.0), (17.0, 11.0), (21.0, 8.0))]), px=1.0)
    out = tmp_path / "r.json"
    assert run_cli(["measure", cine, "--label-map", "lv=1,myo=2,rv=3", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "short-axis section" in err and len(err.splitlines()) == 1 and not out.exists()
