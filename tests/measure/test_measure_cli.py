"""`medseg measure` through run_cli with argv lists: outputs, exit codes, nothing half-written.
Echo apical views and clips, labels without pixel spacing: test_measure_cli_echo.py."""

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
    # --out, as every other command spells it (only --output was taken)
    assert run_cli(["measure", files["ed"], "--label-map", ACDC_MAP, "--out", str(tmp_path / "r2.json")]) == 0
    assert json.loads((tmp_path / "r2.json").read_text())["volumes_ml"] == rep["volumes_ml"]


def test_ed_es_with_csv_plots_and_image(files, tmp_path):
    out, table, plots = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "plots"
    argv = ["measure", "--ed", files["ed"], "--es", files["es"], "--label-map", ACDC_MAP, "-o", str(out),
            "--height-cm", "180", "--weight-kg", "80", "--heart-rate", "65", "--bsa-method", "dubois",
            "--csv", str(table), "--plots", str(plots), "--image", files["image"], "--image", files["image"]]
    assert run_cli(argv) == 0
    rep = json.loads(out.read_text())
    for key in ("lv", "rv", "bsa_m2", "indexed", "co_l_min"):
        assert key in rep
    assert set(rep["lv"]) == {"edv_ml", "esv_ml", "sv_ml", "ef_pct"}
    assert rep["bsa_m2"] == pytest.approx(1.996, abs=5e-4) and rep["bsa_method"] == "dubois"
    assert rep["co_l_min"] == pytest.approx(rep["lv"]["sv_ml"] * 65 / 1000)
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 1 and float(rows[0]["lv.ef_pct"]) == pytest.approx(rep["lv"]["ef_pct"], abs=1e-3)
    for name in ("bullseye.png", "thickening.png", "overlay.png", "volumes.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(rep["wall_thickening_pct"]["segments"]) == {str(k) for k in range(1, 18)} and "thickening" in rep["plots"]


def test_cine_file(files, tmp_path):
    out, plots = tmp_path / "r.json", tmp_path / "p"
    assert run_cli(["measure", files["cine"], "--label-map", ACDC_MAP, "-o", str(out), "--plots", str(plots)]) == 0
    rep = json.loads(out.read_text())
    assert (rep["ed_frame"], rep["es_frame"]) == (2, 5)
    assert len(rep["volume_curve_ml"]["lv"]) == 6
    assert (plots / "volume_curve.png").exists()


def test_labels_without_myocardium_flagged(files, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert run_cli(["measure", files["no_myo"], "--label-map", ACDC_MAP, "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["lv_mass_g"] is None and rep["volumes_ml"]["myo"] is None
    assert any(f["code"] == "absent_structure" and f["structure"] == "myo" for f in rep["flags"])
    line = capsys.readouterr().out.strip()  # the summary line names what was flagged
    assert len(line.splitlines()) == 1 and "absent_structure" in line and f"{len(rep['flags'])} flag" in line


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
    ["measure", "--ed", "{ed}", "--es", "{es}", "--label-map", ACDC_MAP, "--height-cm", "1800", "--weight-kg", "80"],  # millimetres
    ["measure", "--ed", "{ed}", "--es", "{es}", "--label-map", ACDC_MAP, "--height-cm", "180", "--weight-kg", "80000"],  # grams
    ["measure", "--ed", "{ed}", "--es", "{es}", "--label-map", ACDC_MAP, "--heart-rate", "6000"],
    ["measure", "{ed}", "--label-map", ACDC_MAP, "--height-cm", "9999", "--weight-kg", "80"],  # one phase checks them too
    ["measure", "{ed}", "--label-map", ACDC_MAP, "--sex", "X"],
    ["measure", "{ed}", "--label-map", ACDC_MAP, "--height-cm", "175"],  # BSA needs the weight too
    ["measure", "--ed", "{ed}", "--es", "{es}", "--label-map", "lv=1,myo=2,rv=3"],  # another data set's map: the RV read as the LV
    ["measure", "--ed", "{ed}", "--es", "{es}", "--label-map", ACDC_MAP, "--plots", "{dir}/r_as_plots.json"],  # = -o below
    ["measure", "--ed", "{ed}", "--es", "{es}", "--label-map", ACDC_MAP, "--plots", "{ed}"],  # a file
    ["measure", "--ed", "{ed}", "--es", "{es}", "--label-map", ACDC_MAP, "--image", "{image}"],  # no --plots
    ["measure", "--ed", "{ed}", "--es", "{es}", "--label-map", ACDC_MAP, "--plots", "{dir}/p_cine", "--image", "{cine}"],
], ids=["missing_file", "empty", "single_slice", "ed_es_grid", "lv_absent", "unknown_value",
        "no_lv_in_map", "bad_bsa", "ed_without_es", "both_modes", "image_grid", "height_in_mm", "weight_in_g", "heart_rate",
        "one_phase_height", "one_phase_sex", "height_alone", "rv_read_as_lv", "plots_is_the_report", "plots_is_a_file",
        "image_without_plots", "cine_image_for_ed_es"])
def test_bad_input_one_line_error_nothing_written(files, tmp_path, capsys, argv):
    out = tmp_path / "r.json"
    argv = [str(out) if a == "{dir}/r_as_plots.json" else a for a in argv]
    code = run_cli([a.format(**files) for a in argv] + ["-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.startswith("error") and len(err.splitlines()) == 1, err
    assert not out.exists()
    assert not any(p.name.startswith(".r.json") for p in tmp_path.iterdir())
    assert not (files["dir"] / "p_cine").exists()


def test_labels_without_spacing_refused(files, tmp_path, monkeypatch, capsys):
    """PNG-like inputs (spacing_known False) cannot give millimetres: one-line error."""
    import medseg.cli.measure_cmd as cmd

    real = cmd._read_labels
    def no_spacing(p, *a, **k):
        v = real(p, *a, **k)
        return v.with_array(v.array, spacing_known=False)

    monkeypatch.setattr(cmd, "_read_labels", no_spacing)
    out = tmp_path / "r.json"
    assert run_cli(["measure", files["ed"], "--label-map", ACDC_MAP, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "spacing" in err and "unexpected" not in err and not out.exists()


def test_the_report_never_replaces_the_labels_or_their_sidecar(files, tmp_path, capsys):
    from medseg.io import read_label_volume, write_labels

    vol = read_label_volume(files["ed"])
    written, side = write_labels(vol.array[0], vol, tmp_path / "seg.nii.gz", ACDC_MAP)
    before = {p: p.read_bytes() for p in (written, side)}
    for argv, message in ((["-o", str(side)], "the report would replace the sidecar JSON of the labels"),
                          (["-o", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.json")], "is both the report and the CSV"),
                          (["-o", str(written)], "the report would replace the labels")):
        assert run_cli(["measure", str(written), *argv]) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert {p: p.read_bytes() for p in before} == before and not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("option", ["-o", "--csv"])
def test_a_report_named_as_the_labels_sidecar_is_refused_before_there_is_one(files, tmp_path, capsys, option):
    """``measure lab.nii.gz -o lab.json`` on labels without a sidecar wrote the report where
    their sidecar goes: the same command then said "would replace the sidecar JSON", and every
    later command read the report as the labels' (broken) sidecar."""
    import shutil

    lab = tmp_path / "lab.nii.gz"
    shutil.copy(files["ed"], lab)
    target = tmp_path / "lab.json"
    other = ["-o", str(tmp_path / "r.json")] if option == "--csv" else []
    assert run_cli(["measure", str(lab), "--label-map", ACDC_MAP, option, str(target), *other]) == 1
    err = capsys.readouterr().err.strip()
    assert "would be read as the sidecar JSON of the labels lab.nii.gz" in err and "lab_report.json" in err
    assert len(err.splitlines()) == 1 and not target.exists() and not (tmp_path / "r.json").exists()
    assert run_cli(["measure", str(lab), "--label-map", ACDC_MAP, "-o", str(tmp_path / "lab_report.json")]) == 0


def test_label_map_comes_from_the_labels_sidecar(files, tmp_path):
    """Labels written by medseg with the ACDC map: measure without --label-map reads the map
    from the sidecar JSON (it used to take medseg's lv=1, the RV here)."""
    from medseg.io import read_label_volume, write_labels

    vol = read_label_volume(files["ed"])
    written, _ = write_labels(vol.array[0], vol, tmp_path / "seg.nii.gz", ACDC_MAP)
    explicit, implicit = tmp_path / "a.json", tmp_path / "b.json"
    assert run_cli(["measure", str(written), "--label-map", ACDC_MAP, "-o", str(explicit)]) == 0
    assert run_cli(["measure", str(written), "-o", str(implicit)]) == 0
    a, b = json.loads(explicit.read_text()), json.loads(implicit.read_text())
    assert b["inputs"]["label_map_from"] == str(tmp_path / "seg.json") and b["inputs"]["label_map"] == ACDC_MAP
    assert b["volumes_ml"] == a["volumes_ml"] and b["lv_mass_g"] == a["lv_mass_g"]


def test_ed_and_es_written_with_different_label_maps_are_measured_by_name(files, tmp_path):
    """ED segmented with ACDC's values (--prompts-from its labels), ES with medseg's (--auto):
    measure used to stop at "different label maps; give --label-map", which no one map could
    answer. Each is re-encoded by its own sidecar's names; the result is the one-map result."""
    from medseg.io import read_label_volume, write_labels

    ed, es = read_label_volume(files["ed"]), read_label_volume(files["es"])
    ed_w, _ = write_labels(ed.array[0], ed, tmp_path / "ed" / "seg.nii.gz", ACDC_MAP)
    medseg_values = np.zeros_like(es.array[0])
    for v_acdc, v_medseg in ((3, 1), (2, 2), (1, 3)):
        medseg_values[es.array[0] == v_acdc] = v_medseg
    es_w, _ = write_labels(medseg_values, es, tmp_path / "es" / "seg.nii.gz", "lv=1,myo=2,rv=3")
    both, ref = tmp_path / "both.json", tmp_path / "ref.json"
    assert run_cli(["measure", "--ed", str(ed_w), "--es", str(es_w), "-o", str(both)]) == 0
    assert run_cli(["measure", "--ed", files["ed"], "--es", files["es"], "--label-map", ACDC_MAP, "-o", str(ref)]) == 0
    a, b = json.loads(both.read_text()), json.loads(ref.read_text())
    assert a["inputs"]["label_map"] == ACDC_MAP and a["lv"] == b["lv"] and a["lv_mass_g"] == b["lv_mass_g"] and a["lv"]["ef_pct"] > 0


def test_overlay_shows_the_image_the_sidecar_names(files, tmp_path):
    """Labels written by `medseg segment` name their image in the sidecar: `measure --plots`
    draws the contours on it without --image; an image that is gone or on another grid leaves
    the contours alone (as before), never an error."""
    from medseg.io import read_label_volume, write_labels

    vol = read_label_volume(files["ed"])
    pngs = {}
    for name, src in (("here", files["image"]), ("gone", str(tmp_path / "moved.nii.gz")), ("other_grid", files["single"])):
        seg = tmp_path / name / "seg.nii.gz"
        write_labels(vol.array[0], vol, seg, ACDC_MAP, provenance={"input": src})
        out = tmp_path / name / "r.json"
        assert run_cli(["measure", str(seg), "-o", str(out), "--plots", str(tmp_path / name / "plots")]) == 0
        assert json.loads(out.read_text())["inputs"].get("overlay_image") == ([files["image"]] if name == "here" else None)
        pngs[name] = (tmp_path / name / "plots" / "overlay.png").read_bytes()
    assert pngs["gone"] == pngs["other_grid"] != pngs["here"]


def test_overlay_of_two_phases_of_one_cine_shows_each_phases_frame(files, tmp_path, monkeypatch):
    """ED and ES labels written one phase each from one cine (``seg_frame00.dcm`` and
    ``seg_frame01.dcm``, whose sidecars name the cine and the frame): the ES contours are drawn
    on the ES frame (both were drawn on frame 0)."""
    from medseg.io import read_label_volume, read_volume, write_labels
    from medseg.measure import plots

    vol = read_label_volume(files["ed"])
    cine = tmp_path / "cine.nii.gz"
    base = np.asarray(read_volume(files["image"]).array[0])
    base = base + np.arange(base.shape[-1], dtype=np.float32)  # frame 1, its mirror, is told apart from frame 0
    _save(cine, np.stack([base, base[..., ::-1]]))
    for t, key in ((0, "ed"), (1, "es")):
        write_labels(read_label_volume(files[key]).array[0], vol, tmp_path / f"seg{t}.nii.gz", ACDC_MAP,
                     provenance={"input": str(cine), "frame": t})
    seen = {}
    real = plots.overlay_png
    monkeypatch.setattr(plots, "overlay_png", lambda phases, lmap, path, images=None, **kw: seen.update(images or {}) or real(phases, lmap, path, images=images, **kw))
    assert run_cli(["measure", "--ed", str(tmp_path / "seg0.nii.gz"), "--es", str(tmp_path / "seg1.nii.gz"), "-o", str(tmp_path / "r.json"),
                    "--plots", str(tmp_path / "plots")]) == 0
    assert set(seen) == {"ED", "ES"} and np.allclose(seen["ES"], seen["ED"][..., ::-1])
    assert not np.allclose(seen["ES"], seen["ED"])


@pytest.mark.parametrize("timing, heart_rate", [({"heart_rate": 72.0}, 72.0), ({"nominal_interval": 800.0}, 75.0), ({}, None)])
def test_labels_of_a_dicom_cine_keep_its_heart_rate_for_cardiac_output(tmp_path, timing, heart_rate):
    """A DICOM cine's HeartRate (or RR interval) goes into its labels' sidecar, so `medseg
    measure LABELS` (and `batch --measure`) give the cardiac output a NIfTI alone could not."""
    from medseg.io import read_label_volume, write_labels
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=6, n_slices=5, shape=(64, 64), seed=3)
    image = ph.image.with_array(ph.image.array, meta={**(ph.image.meta or {}), **timing})
    written, side = write_labels(ph.labels, image, tmp_path / "seg.nii.gz", ph.label_map)
    assert json.loads(side.read_text())["provenance"].get("cardiac_timing", {}) == timing
    assert {k: read_label_volume(written).meta.get(k) for k in timing} == timing
    out = tmp_path / "r.json"
    assert run_cli(["measure", str(written), "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    if heart_rate is None:
        assert rep["co_l_min"] is None and rep["heart_rate_bpm"] is None
    else:
        assert rep["heart_rate_bpm"] == pytest.approx(heart_rate) and rep["co_l_min"] == pytest.approx(rep["lv"]["sv_ml"] * heart_rate / 1000)


def test_a_cine_labelled_on_one_frame_prints_no_ef(files, tmp_path, capsys):
    cine = np.asarray(nib.load(files["cine"]).dataobj).T.copy()
    cine[[0, 1, 3, 4, 5]] = 0
    src, out, plots = _save(tmp_path / "one_frame.nii.gz", cine), tmp_path / "r.json", tmp_path / "plots"
    assert run_cli(["measure", src, "--label-map", ACDC_MAP, "-o", str(out), "--plots", str(plots)]) == 0
    rep = json.loads(out.read_text())
    assert (rep["ed_frame"], rep["es_frame"]) == (2, None)
    assert "ESV n/a, EF n/a" in capsys.readouterr().out
    assert (plots / "overlay.png").exists() and (plots / "volume_curve.png").exists() and not (plots / "thickening.png").exists()


def test_one_image_for_ed_and_es_is_refused_before_any_output(files, tmp_path, capsys):
    out, plots = tmp_path / "r.json", tmp_path / "plots"
    argv = ["measure", "--ed", files["ed"], "--es", files["es"], "--label-map", ACDC_MAP, "-o", str(out), "--plots", str(plots), "--image", files["image"]]
    assert run_cli(argv) != 0
    assert "1 --image file(s) for 2 phases" in capsys.readouterr().err
    assert not out.exists() and not plots.exists()


def test_medseg_default_map_reports_only_the_structures_the_labels_hold(files, tmp_path):
    """Labels that name no structures, read with medseg's default map: a short-axis stack has no
    aorta, and its atria, great vessels are not "absent" (M&Ms-2 printed absent_structure x8);
    lv/myo/rv stay in the map, another default structure counts where its value occurs, and a
    map the user gives is reported in full."""
    ed, es = (_to_medseg(np.asarray(nib.load(files[k]).dataobj).T) for k in ("ed", "es"))
    paths = {k: _save(tmp_path / f"{k}.nii.gz", a) for k, a in (("ed", ed), ("es", es))}
    out = tmp_path / "r.json"
    assert run_cli(["measure", "--ed", paths["ed"], "--es", paths["es"], "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["label_map"] == {"lv": 1, "myo": 2, "rv": 3} and rep["inputs"]["label_map"] == "lv=1,myo=2,rv=3"
    assert not [f for f in rep["flags"] if f["code"] == "absent_structure"] and rep["lv"]["ef_pct"] > 0
    la = ed.copy()
    la[0, :4, :4] = 4  # an LA (medseg's value 4) on the basal slice
    paths["ed"] = _save(tmp_path / "ed_la.nii.gz", la)
    assert run_cli(["measure", "--ed", paths["ed"], "--es", paths["es"], "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["label_map"] == {"lv": 1, "myo": 2, "rv": 3, "la": 4}
    assert [f["message"] for f in rep["flags"] if f["code"] == "absent_structure"] == ["ES: la (label 4) has no voxels"]
    assert run_cli(["measure", "--ed", paths["ed"], "--es", paths["es"], "--label-map", "lv=1,myo=2,rv=3,la=4,aorta=6", "-o", str(out)]) == 0
    assert {f["structure"] for f in json.loads(out.read_text())["flags"] if f["code"] == "absent_structure"} == {"la", "aorta"}


def _to_medseg(acdc):
    out = np.zeros_like(acdc)
    out[acdc == 3], out[acdc == 2], out[acdc == 1] = 1, 2, 3
    return out


def test_measure_flags_an_implausible_lv_mass_as_segment_does(tmp_path):
    """`medseg measure` on labels from elsewhere reported a 9 g LV mass unflagged; `segment` and
    `batch` flag it (review rules: LV mass outside 20-400 g)."""
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 32)
    lab = np.zeros((6, 64, 64), np.uint8)
    lab[:, r < 11.5] = 2  # a one-pixel ring of myocardium
    lab[:, r < 10.5] = 1
    path = _save(tmp_path / "thin.nii.gz", lab, np.diag([1.5, 1.5, 10.0, 1.0]))
    assert run_cli(["measure", path, "--label-map", "lv=1,myo=2", "-o", str(tmp_path / "r.json")]) == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["lv_mass_g"] < 20
    (flag,) = [f for f in rep["flags"] if f["code"] == "lv_mass_implausible"]
    assert flag["severity"] == "warning" and "outside 20-400 g" in flag["message"] and "level" not in flag
    thick = np.zeros_like(lab)
    thick[:, r < 18] = 2  # a 7-pixel (10 mm) wall
    thick[:, r < 10.5] = 1
    ok = _save(tmp_path / "ok.nii.gz", thick, np.diag([1.5, 1.5, 10.0, 1.0]))
    assert run_cli(["measure", ok, "--label-map", "lv=1,myo=2", "-o", str(tmp_path / "ok_report.json")]) == 0
    rep = json.loads((tmp_path / "ok_report.json").read_text())
    assert 20 <= rep["lv_mass_g"] <= 400 and not any(f["code"].endswith("_implausible") for f in rep["flags"])


def test_an_lv_outside_its_myocardium_blames_the_map_only_when_the_map_is_a_guess(tmp_path, capsys):
    """Labels whose medseg sidecar names their map (a failed zero-click on an LGE image): the
    error asked "is the label map right?" of a map that was; it now says the segmentation fails.
    Labels without a sidecar, read with a --label-map, still get the map question."""
    from medseg.io import Volume, write_labels

    yy, xx = np.mgrid[:64, :64]
    lab = np.zeros((6, 64, 64), np.uint8)
    lab[:, np.hypot(yy - 32, xx - 20) < 8] = 1  # the LV beside, not inside, the myocardium
    lab[:, (np.hypot(yy - 32, xx - 44) < 12) & (np.hypot(yy - 32, xx - 44) >= 8)] = 2
    aff = np.diag([1.5, 1.5, 10.0, 1.0])
    own, _ = write_labels(lab, Volume(np.zeros((1, *lab.shape), np.float32), aff, meta={"format": "nifti"}), tmp_path / "own.nii.gz", "lv=1,myo=2,rv=3")
    assert run_cli(["measure", str(own), "-o", str(tmp_path / "r.json")]) != 0
    err = " ".join(capsys.readouterr().err.split())
    assert "the segmentation itself fails here" in err and "is the label map right" not in err
    cine, _ = write_labels(np.stack([lab, lab]), Volume(np.zeros((2, *lab.shape), np.float32), aff, meta={"format": "nifti"}),
                           tmp_path / "cine.nii.gz", "lv=1,myo=2,rv=3")
    assert run_cli(["measure", str(cine), "-o", str(tmp_path / "r3.json")]) != 0  # a cine: measure_cine's own check
    assert "the segmentation itself fails here" in " ".join(capsys.readouterr().err.split())
    bare = _save(tmp_path / "bare.nii.gz", lab, aff)
    assert run_cli(["measure", bare, "--label-map", "lv=1,myo=2,rv=3", "-o", str(tmp_path / "r2.json")]) != 0
    assert "is the label map right" in " ".join(capsys.readouterr().err.split())


def test_the_same_labels_given_as_ed_and_es_are_refused(files, tmp_path, capsys):
    """``measure --ed X --es X`` reported LV EF 0.0 %, flagged only as a low EF."""
    import shutil

    out = tmp_path / "r.json"
    assert run_cli(["measure", "--ed", files["ed"], "--es", files["ed"], "--label-map", ACDC_MAP, "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "the ED and ES labels are the same" in err and len(err.splitlines()) == 1 and not out.exists()
    copy = tmp_path / "copy.nii.gz"
    shutil.copy(files["ed"], copy)  # the same labels under another name
    assert run_cli(["measure", "--ed", files["ed"], "--es", str(copy), "--label-map", ACDC_MAP, "-o", str(out)]) == 1
    assert "the ED and ES labels are the same" in capsys.readouterr().err
