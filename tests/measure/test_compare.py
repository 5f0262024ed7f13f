"""`medseg compare`: baseline vs follow-up reports and batch folders, paired, with the changes
equal to the hand-computed differences and the cautions that say a change may not be real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medseg.cli import run_cli

MAP = "lv=1,myo=2,rv=3"
SHA_A, SHA_B = "a" * 64, "b" * 64


def _labels(path: Path, seed: int = 0, ef: float = 0.6, spacing=(10.0, 1.5, 1.5), sha: str | None = SHA_A,
            needs_review: bool = False, label_map: str = MAP) -> Path:
    """A small cine phantom's labels with a sidecar naming the model ``sha`` (None: drawn by hand)."""
    from medseg.io import write_labels
    from medseg.labels import LabelMap
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=4, n_slices=6, shape=(64, 64), spacing=spacing, seed=seed, ef=ef, pose_jitter=False)
    labels = LabelMap.parse(MAP).by_name(ph.labels, LabelMap.parse(label_map)) if label_map != MAP else ph.labels
    prov = {"model_id": "default", "model_sha256": sha, "adapter_id": None, "adapter_sha256": None, "needs_review": needs_review} if sha else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_labels(labels, ph.image, path, label_map, provenance=prov)
    return path


def _report(tmp: Path, name: str, **kw) -> Path:
    lab = _labels(tmp / "labels" / f"{name}.nii.gz", **kw)
    out = tmp / f"{name}.json"
    assert run_cli(["measure", str(lab), "-o", str(out)]) == 0
    return out


def _batch_folder(folder: Path, cases: dict[str, dict], study: dict[str, tuple[str, str]] | None = None) -> Path:
    """A folder laid out as `medseg batch --measure` writes it: labels + sidecars, summary.csv/.json, cohort.csv."""
    from medseg._files import csv_text, write_json_atomic, write_text_atomic
    from medseg.measure.export import report_row

    rows, summary = [], []
    for case, kw in cases.items():
        rep = json.loads(_report(folder / "_m", case, **kw).read_text())
        lab = folder / "_m" / "labels" / f"{case}.nii.gz"
        pid, date = (study or {}).get(case, ("", ""))
        rows.append({"case": case, "needs_review": kw.get("needs_review", False), "confidence": 0.9,
                     **({"patient_id": pid, "study_date": date} if pid else {}), **report_row(rep)})
        summary.append({"case": case, "status": "ok", "output": str(lab)})
    fields = list(dict.fromkeys(k for r in rows for k in r))
    write_text_atomic(folder / "cohort.csv", csv_text(fields, rows))
    write_text_atomic(folder / "summary.csv", csv_text(["case", "status", "output"], summary))
    write_json_atomic(folder / "summary.json", {"settings": {"basal_rule": True}})
    return folder


def _changes(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two")
    return tmp, _report(tmp, "base", seed=1, ef=0.6), _report(tmp, "follow", seed=1, ef=0.45)


def test_two_reports_changes_are_the_differences(two, tmp_path):
    tmp, b, f = two
    out, csv = tmp_path / "changes.json", tmp_path / "changes.csv"
    assert run_cli(["compare", str(b), str(f), "-o", str(out), "--csv", str(csv), "--plots", str(tmp_path / "plots")]) == 0
    res, rb, rf = _changes(out), json.loads(b.read_text()), json.loads(f.read_text())
    assert res["paired_by"] == "given" and res["summary"]["n_pairs"] == 1
    m = res["pairs"][0]["measures"]
    assert m["lv.ef_pct"]["change"] == pytest.approx(rf["lv"]["ef_pct"] - rb["lv"]["ef_pct"], abs=1e-3)
    assert m["lv_mass_g"]["change"] == pytest.approx(rf["lv_mass_g"] - rb["lv_mass_g"], abs=1e-3)
    assert m["rv.edv_ml"]["change"] == pytest.approx(rf["rv"]["edv_ml"] - rb["rv"]["edv_ml"], abs=1e-3)
    assert m["lv.ef_pct"]["change"] < -5  # EF 0.60 -> 0.45
    assert res["summary"]["measures"]["lv.ef_pct"]["mean_change"] == pytest.approx(m["lv.ef_pct"]["change"], abs=1e-3)
    assert res["summary"]["measures"]["lv.ef_pct"]["sd_change"] is None  # one pair
    assert res["pairs"][0]["cautions"] == [] or all("QC" in c for c in res["pairs"][0]["cautions"])
    assert (tmp_path / "plots" / "lvef_change.png").stat().st_size > 1000
    assert "lv.ef_pct.change" in csv.read_text().splitlines()[0]


def test_measure_records_the_model_of_the_labels(two):
    _, b, _ = two
    seg = json.loads(b.read_text())["inputs"]["segmentation"]
    assert seg == {"labels": {"model_id": "default", "model_sha256": SHA_A, "adapter_id": None, "adapter_sha256": None, "needs_review": False}}


def test_model_change_is_refused_then_allowed_with_a_caution(two, tmp_path, capsys):
    tmp, b, _ = two
    other = _report(tmp_path, "other_model", seed=1, ef=0.5, sha=SHA_B)
    out = tmp_path / "c.json"
    assert run_cli(["compare", str(b), str(other), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "model or adapter differs" in err and "--allow-model-change" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert run_cli(["compare", str(b), str(other), "-o", str(out), "--allow-model-change"]) == 0
    assert any("model or adapter differs" in c for c in _changes(out)["pairs"][0]["cautions"])


def test_reports_without_the_model_record_read_it_from_the_labels_sidecars(two, tmp_path, capsys):
    """Reports written before ``inputs.segmentation``: the model comes from the sidecars of the label files they name."""
    tmp, b, _ = two
    other = _report(tmp_path, "other_model", seed=1, ef=0.5, sha=SHA_B)
    for path in (b, other):
        rep = json.loads(path.read_text())
        del rep["inputs"]["segmentation"]
        (tmp_path / f"old_{path.name}").write_text(json.dumps(rep))
    assert run_cli(["compare", str(tmp_path / f"old_{b.name}"), str(tmp_path / f"old_{other.name}"), "-o", str(tmp_path / "c.json")]) == 1
    assert "model or adapter differs" in capsys.readouterr().err


def test_cautions_spacing_label_map_review_and_one_phase(two, tmp_path):
    tmp, b, _ = two
    f = _report(tmp_path, "f", seed=1, ef=0.5, spacing=(8.0, 1.25, 1.25), needs_review=True, label_map="rv=1,myo=2,lv=3")
    out = tmp_path / "c.json"
    assert run_cli(["compare", str(b), str(f), "-o", str(out)]) == 0
    text = " | ".join(_changes(out)["pairs"][0]["cautions"])
    for part in ("pixel spacing differs: baseline 1.5 x 1.5, follow-up 1.25 x 1.25 mm", "slice spacing differs: baseline 10, follow-up 8 mm",
                 "label maps differ", "follow-up segmentation needs review"):
        assert part in text
    # a one-phase report against an ED/ES one: only LV mass in common, said
    from medseg.io import read_label_volume, write_labels

    cine = read_label_volume(tmp / "labels" / "base.nii.gz")
    one = tmp_path / "one.nii.gz"
    write_labels(cine.array[0], cine, one, MAP, provenance={"model_id": "default", "model_sha256": SHA_A, "adapter_id": None,
                                                            "adapter_sha256": None})
    assert run_cli(["measure", str(one), "-o", str(tmp_path / "one_report.json")]) == 0
    assert run_cli(["compare", str(b), str(tmp_path / "one_report.json"), "-o", str(out)]) == 0
    pair = _changes(out)["pairs"][0]
    assert list(pair["measures"]) == ["lv_mass_g"] and any("one phase (no ED/ES)" in c for c in pair["cautions"])


def test_two_batch_folders_pair_by_case_and_list_the_unpaired(tmp_path):
    base = _batch_folder(tmp_path / "v1", {"s01": {"seed": 1}, "s02": {"seed": 2}, "s03": {"seed": 3}})
    follow = _batch_folder(tmp_path / "v2", {"s01": {"seed": 1, "ef": 0.5}, "s02": {"seed": 2, "ef": 0.5}, "s09": {"seed": 4}})
    out = tmp_path / "c.json"
    assert run_cli(["compare", str(base), str(follow), "-o", str(out), "--plots", str(tmp_path / "p")]) == 0
    res = _changes(out)
    assert res["paired_by"] == "case" and [p["baseline"]["case"] for p in res["pairs"]] == ["s01", "s02"]
    assert res["unpaired"] == {"baseline": ["s03"], "followup": ["s09"]}
    d = [p["measures"]["lv.ef_pct"]["change"] for p in res["pairs"]]
    import statistics

    assert res["summary"]["measures"]["lv.ef_pct"]["mean_change"] == pytest.approx(statistics.fmean(d), abs=1e-3)
    assert res["summary"]["measures"]["lv.ef_pct"]["sd_change"] == pytest.approx(statistics.stdev(d), abs=1e-3)
    assert (tmp_path / "p" / "lvef_change.png").is_file()


def test_batch_folders_model_change_read_from_the_sidecars(tmp_path, capsys):
    base = _batch_folder(tmp_path / "v1", {"s01": {"seed": 1}})
    follow = _batch_folder(tmp_path / "v2", {"s01": {"seed": 1, "sha": SHA_B}})
    assert run_cli(["compare", str(base), str(follow), "-o", str(tmp_path / "c.json")]) == 1
    assert "model or adapter differs" in capsys.readouterr().err


def test_one_folder_pairs_first_and_last_visit_by_study_date(tmp_path):
    folder = _batch_folder(tmp_path / "all", {"a_v2": {"seed": 1, "ef": 0.5}, "a_v1": {"seed": 1}, "b_v1": {"seed": 2}},
                           study={"a_v2": ("PA", "20240301"), "a_v1": ("PA", "20230110"), "b_v1": ("PB", "20230111")})
    out = tmp_path / "c.json"
    assert run_cli(["compare", str(folder), "-o", str(out)]) == 0
    res = _changes(out)
    assert res["paired_by"].startswith("patient_id") and len(res["pairs"]) == 1
    p = res["pairs"][0]
    assert (p["baseline"]["case"], p["followup"]["case"], p["baseline"]["patient_id"]) == ("a_v1", "a_v2", "PA")
    assert res["unpaired"] == {"one_visit": ["b_v1"]}


def test_reports_of_different_patients_are_refused_unless_allowed(two, tmp_path, capsys):
    tmp, b, f = two
    for path, pid in ((b, "P1"), (f, "P2")):
        rep = json.loads(path.read_text())
        rep["inputs"]["study"] = {"patient_id": pid, "study_date": "20240101"}
        (tmp_path / path.name).write_text(json.dumps(rep))
    args = ["compare", str(tmp_path / b.name), str(tmp_path / f.name), "-o", str(tmp_path / "c.json")]
    assert run_cli(args) == 1
    assert "different patients (P1 vs P2)" in capsys.readouterr().err and not (tmp_path / "c.json").exists()
    assert run_cli([*args, "--allow-other-patient"]) == 0


@pytest.mark.parametrize("case", ["missing", "not_medseg", "not_json", "no_cohort", "no_pairs", "one_report"])
def test_bad_inputs_one_line_error_and_nothing_written(two, tmp_path, capsys, case):
    tmp, b, _ = two
    other = tmp_path / "x.json"
    if case == "not_medseg":
        other.write_text(json.dumps({"hello": 1}))
    elif case == "not_json":
        other.write_text("{not json")
    elif case == "no_cohort":
        other = tmp_path / "empty_dir"
        other.mkdir()
    elif case == "no_pairs":
        b = _batch_folder(tmp_path / "v1", {"s01": {"seed": 1}})
        other = _batch_folder(tmp_path / "v2", {"s02": {"seed": 1}})
    out = tmp_path / "c.json"
    args = ["compare", str(b), "-o", str(out)] if case == "one_report" else ["compare", str(b), str(other), "-o", str(out)]
    assert run_cli(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
    if case == "no_pairs":
        assert "no pairs found (paired by case)" in err and "s01" in err


def test_output_may_not_replace_an_input(two, capsys):
    _, b, f = two
    assert run_cli(["compare", str(b), str(f), "-o", str(f)]) == 1
    assert "would replace" in capsys.readouterr().err

