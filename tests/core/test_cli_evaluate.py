"""`medseg evaluate` end to end: Dice / HD95, pairs from a CSV or a folder (ACDC, M&Ms-2 and
CAMUS layouts), ED/ES function errors, case CSV, plots and limits of agreement, bad pairs."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli


def test_evaluate_reports_hd95_in_pixels_without_spacing(tmp_path):
    """A PNG has no pixel size: its HD95 is reported under hd95_px, never as millimetres."""
    from PIL import Image

    from medseg.phantoms import echo_apical_phantom

    ph = echo_apical_phantom("a2c", seed=2)
    Image.fromarray(ph.image.array[0, 0].astype(np.uint8)).save(tmp_path / "echo.png")
    Image.fromarray(ph.labels[0, 0].astype(np.uint8)).save(tmp_path / "echo_gt.png")
    (tmp_path / "pairs.csv").write_text("image,label\necho.png,echo_gt.png\n")
    out = tmp_path / "r.json"
    lm = ",".join(f"{n}={ph.label_map[n]}" for n in ("lv", "myo", "la"))
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "pairs.csv"), "--label-map", lm, "--prompt", "box", "-o", str(out)]) == 0
    r = json.loads(out.read_text())
    assert "hd95_mm" not in r["summary"] and set(r["summary"]["hd95_px"]) == {"lv", "myo", "la"}
    assert "hd95_px" in r["cases"][0] and r["summary"]["dice"]["lv"] > 0.8


def test_evaluate_box_and_errors(study, tmp_path, capsys):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"image,label\n{study / 'img.nii.gz'},{study / 'gt.nii.gz'}\n")
    out = tmp_path / "r.json"
    assert run_cli(["evaluate", "--pairs", str(pairs), "--label-map", "lv=1,myo=2,rv=3", "--prompt", "box", "-o", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["summary"]["n_cases"] == 1 and r["summary"]["dice"]["lv"] > 0.85 and "rv" in r["summary"]["hd95_mm"]
    assert "review" in r["summary"]
    row = f"{study / 'img.nii.gz'},{study / 'gt.nii.gz'}"
    (tmp_path / "img2.nii.gz").write_bytes((study / "img.nii.gz").read_bytes())  # another image, the same case and phase
    for bad, msg in [("image,label\n", "no rows"), (f"image,label\n{tmp_path / 'x.nii.gz'},{study / 'gt.nii.gz'}\n", "not found"),
                     (f"image,label\n{study / 'img.nii.gz'}\n", "row 2: the 'label' cell is empty"),  # a short row
                     ("image,label\n,x\n", "row 2: the 'image' cell is empty"),  # a row of empty cells (Excel's ;;) is skipped
                     (f"image,label\n{row}\n{row}\n", "row 3 repeats row 2 (the same image, labels and case)"),
                     (f"image,label,case,phase\n{row},p1,ED\n{tmp_path / 'img2.nii.gz'},{study / 'gt.nii.gz'},p1,ED\n", "row 3 repeats row 2 (case p1 ED)"),
                     (b"\xff\xfe\x00\x00x\x00", "not a readable CSV text file")]:
        pairs.write_bytes(bad) if isinstance(bad, bytes) else pairs.write_text(bad)
        out2 = tmp_path / "r2.json"
        assert run_cli(["evaluate", "--pairs", str(pairs), "--label-map", "lv=1", "--prompt", "box", "-o", str(out2)]) == 1
        assert msg in capsys.readouterr().err and not out2.exists()
    pairs.write_text(f"image,label\n{study / 'img.nii.gz'},{study / 'gt.nii.gz'}\n")
    assert run_cli(["evaluate", "--pairs", str(pairs), "--label-map", "la=7", "--prompt", "box", "-o", str(out2)]) == 1
    assert not out2.exists()
    capsys.readouterr()
    assert run_cli(["evaluate", "--pairs", str(pairs), "--label-map", "lv=1", "--prompt", "box", "-o", str(out2), "--workers", "0"]) == 1
    assert "--workers must be 1 or more" in capsys.readouterr().err and not out2.exists()


@pytest.mark.slow  # ~16 s on the shared 2-core CPU
def test_evaluate_reports_lv_and_rv_function_errors_for_ed_es_pairs(phantom, tmp_path, capsys):
    """Rows with case + ED/ES phase get LVEF / mass / EDV and RVEF / RV EDV errors against the
    reference measured the same way (box prompts on a phantom: small errors)."""
    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.measure import measure_ed_es

    lm = phantom.label_map.subset(["lv", "myo", "rv"])
    lv = (phantom.labels == lm["lv"]).sum(axis=(1, 2, 3))
    frames = {"ED": int(lv.argmax()), "ES": int(lv.argmin())}
    rows = ["image,label,case,phase"]
    for ph, t in frames.items():
        vol = phantom.image.with_array(phantom.image.array[t : t + 1], frame_times_s=None)
        nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(tmp_path / f"{ph}.nii.gz"))
        write_labels(phantom.labels[t : t + 1], vol, tmp_path / f"{ph}_gt.nii.gz", lm)
        rows.append(f"{tmp_path / f'{ph}.nii.gz'},{tmp_path / f'{ph}_gt.nii.gz'},p1,{ph}")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "r.json"
    spec = ",".join(f"{n}={lm[n]}" for n in ("lv", "myo", "rv"))
    capsys.readouterr()
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "pairs.csv"), "--label-map", spec, "--prompt", "box", "-o", str(out)]) == 0
    assert "mean absolute error over 1 ED/ES cases: LVEF" in " ".join(capsys.readouterr().err.split())
    r = json.loads(out.read_text())
    s = r["summary"]
    assert s["n_clinical_cases"] == 1
    assert 0 <= s["lvef_mae"] < 5 and 0 <= s["rvef_mae"] < 5 and 0 <= s["rv_edv_mae_ml"] < 10
    truth = measure_ed_es(phantom.labels[frames["ED"]], phantom.labels[frames["ES"]], phantom.image.affine, lm)
    c = next(c for c in r["cases"] if c.get("clinical"))["clinical"]
    assert abs(c["rvef_ref"] - truth["rv"]["ef_pct"]) < 1e-6 and abs(c["rvef_pred"] - c["rvef_ref"]) == pytest.approx(s["rvef_mae"])
    assert c["wall_thickening_ref_pct"] == pytest.approx(truth["wall_thickening_pct"]["global"]) and 0 <= s["wall_thickening_mae_pct"] < 15
    # the same pairs in 2 worker processes: the same result, rows in the pairs' order
    out2 = tmp_path / "r2.json"
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "pairs.csv"), "--label-map", spec, "--prompt", "key-slice", "-o", str(out2), "--workers", "2"]) == 0
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "pairs.csv"), "--label-map", spec, "--prompt", "key-slice", "-o", str(out)]) == 0
    r, r2 = json.loads(out.read_text()), json.loads(out2.read_text())
    for c in r["cases"] + r2["cases"]:
        del c["seconds"]
    for x in (r, r2):
        del x["settings"]["created"]  # the date each was made
    assert r2 == r and [c["phase"] for c in r2["cases"]] == ["ED", "ES"]


def test_evaluate_pairs_from_a_folder_of_images_with_labels_beside_them(study, tmp_path, capsys):
    """--pairs DIR (for evaluate and adapt): each image with its C_gt / C_labels / ... file, in
    the folder and its sub-folders (ACDC's layout); images without labels are left out; the
    scores are those of the same pairs given as a CSV."""
    import shutil

    from medseg.evaluation import read_pairs

    d = tmp_path / "cohort"
    (d / "p1").mkdir(parents=True)
    shutil.copy(study / "img.nii.gz", d / "p1" / "p1_frame01.nii.gz")
    shutil.copy(study / "gt.nii.gz", d / "p1" / "p1_frame01_gt.nii.gz")
    shutil.copy(study / "img.nii.gz", d / "p1" / "p1_4d.nii.gz")  # no labels: left out
    shutil.copy(study / "img.nii.gz", d / "p2.nii.gz")
    shutil.copy(study / "gt.nii.gz", d / "p2_seg.nii.gz")
    assert [(p.case, p.label.name) for p in read_pairs(d)] == [("p1_frame01", "p1_frame01_gt.nii.gz"), ("p2", "p2_seg.nii.gz")]
    (tmp_path / "pairs.csv").write_text(f"image,label,case\n{d / 'p1' / 'p1_frame01.nii.gz'},{d / 'p1' / 'p1_frame01_gt.nii.gz'},p1_frame01\n"
                                        f"{d / 'p2.nii.gz'},{d / 'p2_seg.nii.gz'},p2\n")
    for src, out in ((d, tmp_path / "a.json"), (tmp_path / "pairs.csv", tmp_path / "b.json")):
        assert run_cli(["evaluate", "--pairs", str(src), "--label-map", "lv=1,myo=2,rv=3", "--prompt", "box", "-o", str(out)]) == 0
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert a["summary"]["dice"] == b["summary"]["dice"] and a["summary"]["n_cases"] == 2
    (tmp_path / "none").mkdir()
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "none"), "--label-map", "lv=1", "--prompt", "box", "-o", str(tmp_path / "c.json")]) == 1
    assert "no image with its labels beside it" in capsys.readouterr().err


def test_evaluate_folder_phases_from_names_and_single_views_give_no_volumes(study, tmp_path):
    """M&Ms-2's names (001_SA_ED, 001_LA_ES): the ED/ES part gives the phase and pairs them into
    one case; a single long-axis view per phase gives Dice but no volumes (it used to stop the
    whole evaluation with "a volume needs at least 2 slices")."""
    from medseg.evaluation import read_pairs
    from medseg.io import read_label_volume, read_volume, write_labels
    from medseg.io.geometry import medseg_to_nifti

    d = tmp_path / "001"
    d.mkdir()
    vol, ref = read_volume(study / "img.nii.gz"), read_label_volume(study / "gt.nii.gz")
    one = vol.with_array(vol.array[:, 3:4])
    for phase in ("ED", "ES"):
        (d / f"001_SA_{phase}.nii.gz").write_bytes((study / "img.nii.gz").read_bytes())
        (d / f"001_SA_{phase}_gt.nii.gz").write_bytes((study / "gt.nii.gz").read_bytes())
        nib.save(nib.Nifti1Image(medseg_to_nifti(one.array.astype(np.float32), 3), one.affine), str(d / f"001_LA_{phase}.nii.gz"))
        write_labels(ref.array[:, 3:4], one, d / f"001_LA_{phase}_gt.nii.gz", "lv=1,myo=2,rv=3")
    assert sorted((p.case, p.phase) for p in read_pairs(tmp_path)) == [("001_LA", "ED"), ("001_LA", "ES"), ("001_SA", "ED"), ("001_SA", "ES")]
    out = tmp_path / "r.json"
    assert run_cli(["evaluate", "--pairs", str(tmp_path), "--label-map", "lv=1,myo=2,rv=3", "--prompt", "box", "-o", str(out)]) == 0
    s = json.loads(out.read_text())["summary"]
    assert s["n_cases"] == 4 and s["n_clinical_cases"] == 1 and s["lvef_mae"] < 5  # SA ED = SA ES here: EF 0 both ways


def test_evaluate_writes_a_case_csv_plots_and_limits_of_agreement(study, tmp_path, capsys):
    """--csv: one row per case; --plots: Dice, confidence vs Dice and (ED/ES cases) Bland-Altman;
    summary.agreement: bias and 95 % limits of agreement; an output that is an input is refused
    before any work."""
    import csv

    from PIL import Image

    img, gt = study / "img.nii.gz", study / "gt.nii.gz"
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("image,label,case,phase\n" + "".join(f"{img},{gt},{c},{p}\n" for c in ("a", "b") for p in ("ED", "ES")))
    out, table, plots = tmp_path / "r.json", tmp_path / "cases.csv", tmp_path / "plots"
    assert run_cli(["evaluate", "--pairs", str(pairs), "--label-map", "lv=1,myo=2,rv=3", "--prompt", "box", "-o", str(out),
                    "--csv", str(table), "--plots", str(plots)]) == 0
    r = json.loads(out.read_text())
    rows = list(csv.DictReader(table.open()))
    assert [(x["case"], x["phase"]) for x in rows] == [("a", "ED"), ("a", "ES"), ("b", "ED"), ("b", "ES")]
    assert float(rows[0]["dice.lv"]) == pytest.approx(r["cases"][0]["dice"]["lv"], abs=1e-4) and rows[0]["lvef_pred"] != "" and rows[1]["lvef_pred"] == ""
    ef = r["summary"]["agreement"]["lvef"]
    d = [c["clinical"]["lvef_pred"] - c["clinical"]["lvef_ref"] for c in r["cases"] if "clinical" in c]
    assert ef["n"] == 2 and ef["bias"] == pytest.approx(np.mean(d)) and ef["loa"] == pytest.approx([np.mean(d) - 1.96 * np.std(d, ddof=1), np.mean(d) + 1.96 * np.std(d, ddof=1)])
    assert sorted(p.name for p in plots.iterdir()) == ["bland_altman.png", "confidence.png", "dice.png"]
    assert all(Image.open(p).size[0] > 300 for p in plots.iterdir())
    assert "limits of agreement" in capsys.readouterr().err
    before = pairs.read_bytes()
    assert run_cli(["evaluate", "--pairs", str(pairs), "--label-map", "lv=1", "-o", str(tmp_path / "r2.json"), "--csv", str(pairs)]) == 1
    assert "would replace the pairs file" in capsys.readouterr().err and pairs.read_bytes() == before and not (tmp_path / "r2.json").exists()


def test_evaluate_gives_echo_studies_their_ef_from_view_images(tmp_path, echo_views):
    """CAMUS-style views (p1_4CH_ED.png, ..._gt.png): evaluate measures LV EF by the biplane
    method of disks on the model's and the expert's labels, as `medseg measure --ed --es
    --a2c-ed --a2c-es` does on each; no pixel spacing, so EF and no volumes."""
    inp = echo_views(tmp_path / "echo")
    out = tmp_path / "r.json"
    assert run_cli(["evaluate", "--pairs", str(inp), "--label-map", "lv=1,myo=2,la=4", "--prompt", "box", "-o", str(out)]) == 0
    r = json.loads(out.read_text())
    row = next(c for c in r["cases"] if "clinical" in c)
    assert (row["case"], row["phase"], r["summary"]["n_echo_studies"]) == ("p1_4CH", "ED", 1)
    views = {k: str(inp / f"p1_{k}_gt.png") for k in ("4CH_ED", "4CH_ES", "2CH_ED", "2CH_ES")}
    assert run_cli(["measure", "--ed", views["4CH_ED"], "--es", views["4CH_ES"], "--a2c-ed", views["2CH_ED"], "--a2c-es", views["2CH_ES"],
                    "--label-map", "lv=1,myo=2,la=4", "-o", str(tmp_path / "m.json")]) == 0
    ref = json.loads((tmp_path / "m.json").read_text())["lv"]
    assert row["clinical"]["method"] == "biplane_disks" and row["clinical"]["lvef_ref"] == pytest.approx(ref["ef_pct"], abs=1e-6)
    assert r["summary"]["lvef_mae"] == pytest.approx(abs(row["clinical"]["lvef_pred"] - ref["ef_pct"])) and r["summary"]["lvef_mae"] < 10
    assert "edv_pred_ml" not in row["clinical"]


def test_evaluate_folder_pairs_a_study_whose_frames_are_cases_acdc_style(tmp_path):
    """ACDC's folder (patient001_frame01 and _frame12 with their _gt): the two frames of a study
    are its ED and ES (largest and smallest reference LV), scored for LVEF and mass as the same
    pairs given in a CSV with their phases."""
    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=8, n_slices=5, shape=(80, 80), seed=6)
    d = tmp_path / "acdc" / "patient001"
    d.mkdir(parents=True)
    rows = []
    for phase in ("ES", "ED"):
        t = ph.info[f"{phase.lower()}_frame"]
        one = ph.image.with_array(ph.image.array[t:t + 1], frame_times_s=None)
        img, gt = d / f"patient001_frame{t + 1:02d}.nii.gz", d / f"patient001_frame{t + 1:02d}_gt.nii.gz"
        nib.save(nib.Nifti1Image(medseg_to_nifti(one.array.astype(np.float32), 3), one.affine), str(img))
        write_labels(ph.labels[t:t + 1], one, gt, "lv=1,myo=2,rv=3")
        rows.append(f"{img},{gt},patient001,{phase}")
    (tmp_path / "pairs.csv").write_text("image,label,case,phase\n" + "\n".join(rows) + "\n")
    results = []
    for src, out in ((tmp_path / "acdc", tmp_path / "a.json"), (tmp_path / "pairs.csv", tmp_path / "b.json")):
        assert run_cli(["evaluate", "--pairs", str(src), "--prompt", "box", "-o", str(out)]) == 0
        results.append(json.loads(out.read_text()))
    a, b = results
    assert a["summary"]["n_clinical_cases"] == b["summary"]["n_clinical_cases"] == 1
    for key in ("lvef_mae", "lv_mass_mae_g", "edv_mae_ml"):
        assert a["summary"][key] == pytest.approx(b["summary"][key], abs=1e-6)
    ed = ph.info["ed_frame"] + 1
    assert {c["case"]: c["phase"] for c in a["cases"]} == {f"patient001_frame{ed:02d}": "ED", f"patient001_frame{ph.info['es_frame'] + 1:02d}": "ES"}
