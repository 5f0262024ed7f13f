"""The echo user's workflow: apical views without pixel spacing measured one by one and as a
batch cohort, and the same on real CAMUS labels (validation patients, never trained on)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from medseg.measure.echo import measure_echo, measure_echo_clip
from medseg.phantoms import echo_apical_phantom

ECHO_MAP = "lv=1,myo=2,la=4"  # medseg's default values, as `medseg segment --auto` writes them


def _views(seed: int = 2) -> dict[tuple[str, str], np.ndarray]:
    """(view, phase) -> (Y, X) labels (lv, myo, la) of an apical echo phantom's ED and ES frames."""
    out = {}
    for view, name in (("a4c", "4CH"), ("a2c", "2CH")):
        ph = echo_apical_phantom(view, n_frames=8, seed=seed, spacing=None)
        for phase in ("ED", "ES"):
            lab = ph.labels[ph.info[f"{phase.lower()}_frame"], 0]
            out[(name, phase)] = np.where(np.isin(lab, (1, 2, 4)), lab, 0).astype(np.uint8)
    return out


def _case(tmp_path, case: str, lab: np.ndarray, spacing: float | None = None) -> dict:
    """A batch result of one apical view segmented from a PNG (no pixel spacing), or from an
    image of ``spacing`` mm pixels."""
    from medseg.io import Volume, write_labels

    sp = spacing or 1.0
    like = Volume(np.zeros((1, 1, *lab.shape), np.float32), np.diag([sp, sp, 1.0, 1.0]), modality="US", spacing_known=spacing is not None)
    out = tmp_path / f"{case}.nii.gz"
    write_labels(lab, like, out, ECHO_MAP)
    return {"case": case, "status": "ok", "output": str(out), "input": str(tmp_path / f"{case}.png")}


def test_batch_echo_study_single_plane_for_a_failed_two_chamber_view_says_so(tmp_path):
    """`batch --measure`: a study whose 2-chamber ED case failed (zero-click found no LA on CAMUS
    training patient0400's 2CH ED, which failed the case until batch flagged a structure found on
    no slice instead) was measured single plane with no word of it, its cohort row read as the
    study's EF (54.6 % single plane against 55.7 % biplane from the same labels)."""
    from medseg.batch import echo_study_rows

    views = _views()
    results = [_case(tmp_path, f"p1_{v}_{p}", lab) for (v, p), lab in views.items() if (v, p) != ("2CH", "ED")]
    results.append({"case": "p1_2CH_ED", "status": "failed", "output": "", "input": "p1_2CH_ED.png",
                    "reason": "structure(s) never found on any slice: la"})
    results += [_case(tmp_path, f"p2_{v}_{p}", lab) for (v, p), lab in views.items()]
    rows = {r["case"]: r for r in echo_study_rows(results)}
    p1, p2 = rows["p1"], rows["p2"]
    assert p1["cohort_row"]["method"] == "single_plane_disks_a4c" and p1["cohort_row"]["views"] == "4CH_ED 4CH_ES"
    assert "single plane" in p1["measure_note"] and "p1_2CH_ED failed (structure(s) never found on any slice: la)" in p1["measure_note"]
    assert p2["cohort_row"]["method"] == "biplane_disks" and not p2.get("measure_note")


def test_batch_echo_study_with_one_two_chamber_phase_says_which_is_missing(tmp_path):
    from medseg.batch import echo_study_rows

    views = _views()
    results = [_case(tmp_path, f"p3_{v}_{p}", lab) for (v, p), lab in views.items() if (v, p) != ("2CH", "ES")]
    row = echo_study_rows(results)[0]
    assert row["cohort_row"]["method"] == "single_plane_disks_a4c"
    assert "no p3_2CH_ES case" in row["measure_note"]


@pytest.mark.parametrize("es_spacing", [0.5, None], ids=["other_mm", "unknown"])
def test_batch_echo_study_with_ed_and_es_of_other_pixel_sizes_is_not_measured(tmp_path, es_spacing):
    """A study's 4-chamber ED at 0.3 mm and ES at 0.5 mm (or a PNG) was measured with the ES's
    pixel size for both (EDV 17.3 mL for 3.7 mL), where `medseg measure` refuses it."""
    from medseg.batch import echo_study_rows

    v = _views()
    results = [_case(tmp_path, "p4_4CH_ED", v[("4CH", "ED")], 0.3), _case(tmp_path, "p4_4CH_ES", v[("4CH", "ES")], es_spacing),
               _case(tmp_path, "p5_4CH_ED", v[("4CH", "ED")], 0.3), _case(tmp_path, "p5_4CH_ES", v[("4CH", "ES")], 0.3)]
    rows = {r["case"]: r for r in echo_study_rows(results)}
    assert "cohort_row" not in rows["p4"] and "different pixel spacings" in rows["p4"]["measure_note"]
    assert rows["p5"]["cohort_row"]["lv.edv_ml"] > 0 and not rows["p5"].get("measure_note")


@pytest.mark.parametrize("biplane", [False, True], ids=["single_plane", "biplane"])
def test_same_labels_as_ed_and_es_give_no_ef_not_zero(biplane):
    """`medseg measure --ed V_4CH_ED.png --es V_4CH_ED.png` (one file twice) read 'LV EF 0.0 %'
    with lvef_low and ef_implausible; a clip whose frames are alike already gave no EF."""
    v = _views()
    a2c = (v[("2CH", "ED")], v[("2CH", "ED")]) if biplane else (None, None)
    rep = measure_echo(v[("4CH", "ED")], v[("4CH", "ED")], *a2c, label_map=ECHO_MAP)
    assert math.isnan(rep["lv"]["ef_pct"]) and math.isnan(rep["lv_area_length"]["ef_pct"])
    codes = [f["code"] for f in rep["flags"]]
    assert codes.count("ef_undefined") == 1 and "lvef_low" not in codes
    assert "same" in next(f["message"] for f in rep["flags"] if f["code"] == "ef_undefined")
    # different ES labels: an EF, without spacing no volumes
    rep = measure_echo(v[("4CH", "ED")], v[("4CH", "ES")], *((v[("2CH", "ED")], v[("2CH", "ES")]) if biplane else ()), label_map=ECHO_MAP)
    assert 20 < rep["lv"]["ef_pct"] < 90 and math.isnan(rep["lv"]["edv_ml"]) and not rep["spacing_known"]


def test_biplane_with_one_view_s_phases_swapped_is_flagged_not_a_low_ef():
    """`--a2c-ed V_2CH_ES.png --a2c-es V_2CH_ED.png`: CAMUS validation patient0451 (zero-click
    labels) read 'LV EF 7.1 %' (25 % with the phases right) with only lvef_low, a finding."""
    v = _views()
    rep = measure_echo(v[("4CH", "ED")], v[("4CH", "ES")], v[("2CH", "ES")], v[("2CH", "ED")], label_map=ECHO_MAP, sex="F")
    assert rep["lv"]["ef_pct"] > 0
    flag = next(f for f in rep["flags"] if f["code"] == "esv_exceeds_edv")
    assert flag["view"] == "2-chamber" and "swapped" in flag["message"]
    assert not any(f["code"] in ("lvef_low", "lvef_high") for f in rep["flags"])
    right = measure_echo(v[("4CH", "ED")], v[("4CH", "ES")], v[("2CH", "ED")], v[("2CH", "ES")], label_map=ECHO_MAP)
    assert not any(f["code"] == "esv_exceeds_edv" for f in right["flags"])


def test_clip_with_alike_frames_keeps_one_ef_undefined():
    lab = _views()[("4CH", "ED")]
    rep = measure_echo_clip(np.stack([lab, lab, lab]), label_map=ECHO_MAP)
    undefined = [f for f in rep["flags"] if f["code"] == "ef_undefined"]
    assert len(undefined) == 1 and "does not change over its 3 labelled frames" in undefined[0]["message"]
    assert rep["es_frame"] is None and math.isnan(rep["lv"]["ef_pct"])


def test_camus_expert_labels_biplane_ef_without_spacing(shared_data):
    """Real data: CAMUS validation patient0451's expert labels (PNG, no spacing), biplane disks
    (`medseg measure --label-map lv=1,myo=2,la=3` reads 27.1 %; 26.4 % while stray LV pixels of
    the resize put the annulus inside the LA, docs/measurement.md *Atria*). EF is reported, every
    volume, length and the LA volume is left out."""
    from medseg.io import read_label_volume

    d = shared_data / "camus-224" / "patient0451"
    lab = {k: read_label_volume(d / f"patient0451_{k}_gt.png") for k in ("4CH_ED", "4CH_ES", "2CH_ED", "2CH_ES")}
    assert not any(v.spacing_known for v in lab.values())
    rep = measure_echo(*(lab[k].array[0, 0] for k in ("4CH_ED", "4CH_ES", "2CH_ED", "2CH_ES")), label_map="lv=1,myo=2,la=3")
    assert rep["method"] == "biplane_disks" and rep["lv"]["ef_pct"] == pytest.approx(27.06, abs=0.05)
    assert all(math.isnan(rep["lv"][k]) for k in ("edv_ml", "esv_ml", "sv_ml")) and math.isnan(rep["la_volume_ml"])
    assert all(math.isnan(x) for x in rep["lengths_mm"].values())
    assert set(rep["annulus_method"].values()) == {"lv_la_boundary"}


def _pngs(tmp_path) -> dict[tuple[str, str], str]:
    """The phantom's four views as label PNGs named as CAMUS names them (no pixel spacing)."""
    from PIL import Image

    out = {}
    for (view, phase), lab in _views().items():
        path = tmp_path / f"p7_{view}_{phase}.png"
        Image.fromarray(lab).save(path)
        out[(view, phase)] = str(path)
    return out


def test_measure_refuses_views_given_to_the_wrong_option(tmp_path, capsys):
    """`measure --ed X_2CH_ED --es X_4CH_ES` read a plausible EF, unflagged."""
    from medseg.cli import run_cli

    v = _pngs(tmp_path)
    out = tmp_path / "r.json"
    for argv, said in ((["--ed", v[("2CH", "ED")], "--es", v[("4CH", "ES")]], "p7_2CH_ED.png is named the 2-chamber ED view, but was given as --ed"),
                       (["--ed", v[("4CH", "ED")], "--es", v[("4CH", "ES")], "--a2c-ed", v[("2CH", "ES")], "--a2c-es", v[("2CH", "ED")]],
                        "p7_2CH_ES.png is named the 2-chamber ES view, but was given as --a2c-ed")):
        assert run_cli(["measure", *argv, "--label-map", ECHO_MAP, "-o", str(out)]) == 1
        err = capsys.readouterr().err.strip()
        assert said in err and len(err.splitlines()) == 1 and not out.exists()
    other = tmp_path / "p8_4CH_ES.png"
    other.write_bytes(open(v[("4CH", "ES")], "rb").read())
    assert run_cli(["measure", "--ed", v[("4CH", "ED")], "--es", str(other), "--label-map", ECHO_MAP, "-o", str(out)]) == 1
    assert "named for different studies (p7, p8)" in capsys.readouterr().err


def test_label_files_named_as_camus_names_them_are_checked_too(tmp_path, capsys):
    """CAMUS's labels are ``patient0451_2CH_ES_gt.png``: the name check matched only image names,
    so the 2-chamber ES labels given as --es read as an EF of 22 % for a 26 % biplane, exit 0."""
    from medseg.batch import labels_echo_view
    from medseg.cli import run_cli

    v = _pngs(tmp_path)
    gt = {}
    for key, path in v.items():
        gt[key] = Path(path).with_name(Path(path).stem + "_gt.png")
        Path(path).rename(gt[key])
    out = tmp_path / "r.json"
    assert run_cli(["measure", "--ed", str(gt[("4CH", "ED")]), "--es", str(gt[("2CH", "ES")]), "--label-map", ECHO_MAP, "-o", str(out)]) == 1
    assert "p7_2CH_ES_gt.png is named the 2-chamber ES view, but was given as --es" in capsys.readouterr().err and not out.exists()
    assert run_cli(["measure", "--ed", str(gt[("4CH", "ED")]), "--es", str(gt[("4CH", "ES")]), "--label-map", ECHO_MAP, "-o", str(out)]) == 0
    assert labels_echo_view("p7_A2C_ES_labels") == labels_echo_view("p7_2CH_ES labels") == ("p7", "2ch", "ES")
    assert labels_echo_view("p7_4CH_ED_GT") == ("p7", "4ch", "ED") and labels_echo_view("_gt") is None
    assert labels_echo_view("p7_4CH_ED_other") is None


def test_measure_report_of_views_without_spacing_has_no_spacing(tmp_path):
    """The report said spacing_mm [1.0, 1.0, 1.0] for PNGs, as if 1 mm pixels had been measured."""
    import json

    from medseg.cli import run_cli

    v = _pngs(tmp_path)
    out = tmp_path / "r.json"
    assert run_cli(["measure", "--ed", v[("4CH", "ED")], "--es", v[("4CH", "ES")], "--a2c-ed", v[("2CH", "ED")],
                    "--a2c-es", v[("2CH", "ES")], "--label-map", ECHO_MAP, "-o", str(out), "--plots", str(tmp_path / "plots")]) == 0
    rep = json.loads(out.read_text())
    assert rep["spacing_mm"] is None and rep["method"] == "biplane_disks" and math.isfinite(rep["lv"]["ef_pct"])
    assert (tmp_path / "plots" / "overlay.png").is_file()


def test_evaluate_gives_no_echo_ef_for_a_view_whose_phases_have_other_pixel_sizes():
    """evaluate's echo EF took the ED pixel size for both phases (as batch --measure did)."""
    from medseg.evaluation_clinical import _echo_clinical
    from medseg.io import Volume
    from medseg.labels import LabelMap

    def views(es_spacing: float) -> dict:
        out = {}
        for (name, phase), lab in _views().items():
            sp = es_spacing if phase == "ES" and name == "4CH" else 0.3
            vol = Volume(np.zeros((1, 1, *lab.shape), np.float32), np.diag([sp, sp, 1.0, 1.0]), modality="US")
            out[(name.lower(), phase)] = {"_vol": vol, "_pred": lab[None, None], "_ref": lab[None, None]}
        return out

    same = views(0.3)
    assert _echo_clinical(same, LabelMap.parse(ECHO_MAP)) == (0.0, 0.0) and "edv_ref_ml" in same[("4ch", "ED")]["clinical"]
    other = views(0.5)
    assert _echo_clinical(other, LabelMap.parse(ECHO_MAP)) is None and "clinical" not in other[("4ch", "ED")]
