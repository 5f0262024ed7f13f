"""Bad inputs, as users make them, to what the last hour added: `medseg compare`, `medseg train
--pairs`, the adapters' recorded sha256. Each gives one `error:` line and writes nothing (or
works correctly)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from medseg.cli._app import run_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "measure"))

from test_compare import _batch_folder, _report  # noqa: E402  (the compare tests' synthetic visits)
from test_sweep43_train_own import _csv, _write_pairs  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _err(capsys) -> str:
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reports")
    return tmp, _report(tmp, "base", seed=1), _report(tmp, "follow", seed=1, ef=0.45)


@pytest.mark.parametrize("how", ["same path", "another spelling"])
def test_compare_refuses_the_same_report_or_folder_twice(reports, tmp_path, capsys, how, monkeypatch):
    """`medseg compare base.json base.json` (or a batch folder twice) wrote CHANGES.json with every
    change 0.0 and no caution: a typo passed as 'no change'."""
    tmp, base, _ = reports
    monkeypatch.chdir(tmp)
    out = tmp_path / "c.json"
    second = str(base) if how == "same path" else f"./{base.name}"
    assert run_cli(["compare", str(base), second, "-o", str(out)]) == 1
    assert "BASELINE and FOLLOWUP are the same file" in _err(capsys) and not out.exists()
    folder = _batch_folder(tmp_path / "b", {"c1": {"seed": 1}})
    assert run_cli(["compare", str(folder), str(folder) + "/", "-o", str(out)]) == 1
    assert "the same folder" in _err(capsys) and not out.exists()


def test_compare_lost_sidecars_are_not_recorded_not_hand_drawn(tmp_path):
    """A batch folder whose label sidecars were lost (copied without the .json) was said to hold
    'labels not made by a medseg model'; batch made them: their model is not recorded."""
    base = _batch_folder(tmp_path / "b1", {"c1": {"seed": 1}})
    follow = _batch_folder(tmp_path / "b2", {"c1": {"seed": 1, "ef": 0.5}})
    for p in (base / "_m" / "labels").glob("*.json"):
        p.unlink()
    out = tmp_path / "c.json"
    assert run_cli(["compare", str(base), str(follow), "-o", str(out)]) == 0
    cautions = json.loads(out.read_text())["pairs"][0]["cautions"]
    model = [c for c in cautions if "models cannot be compared" in c]
    assert model and "baseline not recorded" in model[0] and "not made by a medseg model" not in model[0]


@pytest.mark.parametrize("dates, order", [
    (("2020-12-01", "20200601"), ("v2", "v1")),  # as text 2020-12-01 < 20200601: the later visit was the baseline
    (("2021/03/01", "2020-02-01T10:00"), ("v2", "v1")),
    (("2020-01-01", "2021-01-01"), ("v1", "v2")),
])
def test_compare_one_folder_orders_visits_by_date_not_text(tmp_path, dates, order):
    folder = _batch_folder(tmp_path / "all", {"v1": {"seed": 1}, "v2": {"seed": 1, "ef": 0.5}},
                           study={"v1": ("0012", dates[0]), "v2": ("0012", dates[1])})
    out = tmp_path / "c.json"
    assert run_cli(["compare", str(folder), "-o", str(out)]) == 0
    p = json.loads(out.read_text())["pairs"][0]
    assert (p["baseline"]["case"], p["followup"]["case"]) == order


@pytest.mark.parametrize("date", ["01/02/2021", "", "20201300", "20200230"])
def test_compare_one_folder_refuses_a_date_it_cannot_order(tmp_path, capsys, date):
    folder = _batch_folder(tmp_path / "all", {"v1": {"seed": 1}, "v2": {"seed": 1, "ef": 0.5}},
                           study={"v1": ("P1", "2020-01-01"), "v2": ("P1", date or " ")})
    out = tmp_path / "c.json"
    assert run_cli(["compare", str(folder), "-o", str(out)]) == 1
    err = _err(capsys)
    assert "patient P1: case v2 has" in err and "BASELINE FOLLOWUP" in err and not out.exists()


def test_compare_one_folder_orders_anonymised_years_and_refuses_an_open_order(tmp_path, capsys):
    """Sunnybrook's anonymised 20120000 (as cohort.csv writes it) orders by its year; within one
    year an unknown month leaves the order open: refused, not guessed."""
    folder = _batch_folder(tmp_path / "all", {"v1": {"seed": 1}, "v2": {"seed": 1, "ef": 0.5}},
                           study={"v1": ("P1", "20130000"), "v2": ("P1", "20120000")})
    out = tmp_path / "c.json"
    assert run_cli(["compare", str(folder), "-o", str(out)]) == 0
    p = json.loads(out.read_text())["pairs"][0]
    assert (p["baseline"]["case"], p["followup"]["case"]) == ("v2", "v1")
    open_order = _batch_folder(tmp_path / "open", {"v1": {"seed": 1}, "v2": {"seed": 1, "ef": 0.5}},
                               study={"v1": ("P1", "2012-05-03"), "v2": ("P1", "20120000")})
    assert run_cli(["compare", str(open_order), "-o", str(tmp_path / "d.json")]) == 1
    assert "do not say which came first" in _err(capsys) and not (tmp_path / "d.json").exists()


def test_compare_header_only_cohort_says_no_measured_study(reports, tmp_path, capsys):
    """A cohort.csv of a header only gave 'no pairs found (paired by case): followup: c1, c2'."""
    folder = _batch_folder(tmp_path / "b", {"c1": {"seed": 1}})
    other = _batch_folder(tmp_path / "o", {"c1": {"seed": 1}})
    cohort = folder / "cohort.csv"
    cohort.write_text(cohort.read_text().splitlines()[0] + "\n")
    out = tmp_path / "c.json"
    assert run_cli(["compare", str(folder), str(other), "-o", str(out)]) == 1
    assert "its cohort.csv has no measured study" in _err(capsys) and not out.exists()


def test_compare_label_file_as_report_says_measure_it_first(reports, tmp_path, capsys):
    """A label file given as BASELINE: 'not a readable JSON report (UnicodeDecodeError)'."""
    tmp, _, follow = reports
    out = tmp_path / "c.json"
    assert run_cli(["compare", str(tmp / "labels" / "base.nii.gz"), str(follow), "-o", str(out)]) == 1
    assert "not a report: measure its labels first" in _err(capsys) and not out.exists()


@pytest.mark.parametrize("content, said", [
    (lambda t: t[: len(t) // 2], "not a readable JSON report"),  # cut short in transfer
    (lambda t: "", "not a readable JSON report"),
    (lambda t: "[1, 2]", "not a medseg measure report"),
])
def test_compare_damaged_reports_are_one_line(reports, tmp_path, capsys, content, said):
    tmp, base, follow = reports
    bad = tmp_path / "bad.json"
    bad.write_text(content(base.read_text()))
    out = tmp_path / "c.json"
    assert run_cli(["compare", str(bad), str(follow), "-o", str(out)]) == 1
    assert said in _err(capsys) and not out.exists()


@pytest.mark.parametrize("recorded", [12345, "", ["x"], "not-a-sha"])
def test_adapter_sha256_that_is_no_sha256_names_medseg_json(tmp_path, recorded):
    """adapter_sha256: 12345 said 'sha256 95169698... is not the 12345 its medseg.json records
    (damaged in transfer ...)', and "" said 'is not the ...': the card, not the weights, is wrong."""
    from medseg.adapter_checks import check_adapter_file
    from medseg.errors import CheckpointError

    folder = tmp_path / "lge"
    shutil.copytree(REPO / "adapters" / "cmr-lge", folder)
    meta = json.loads((folder / "medseg.json").read_text())
    meta["adapter_sha256"] = recorded
    (folder / "medseg.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="medseg.json: adapter_sha256 must be the weights' sha256"):
        check_adapter_file(folder)
    meta["adapter_sha256"] = None
    (folder / "medseg.json").write_text(json.dumps(meta))
    check_adapter_file(folder)  # none recorded: not checked


def test_train_resume_with_other_pairs_is_refused_before_the_pack_is_replaced(tmp_path, capsys):
    """`--resume` with another --pairs repacked OUT/pack.npz over the run's own and continued its
    steps on the new data; the card then named only the new volumes as what it was trained on."""
    rows = _write_pairs(tmp_path, n=2)
    out = tmp_path / "run"
    assert run_cli(["train", "--pairs", str(_csv(tmp_path / "t.csv", rows)), "-o", str(out), "--pack-only"]) == 0
    (out / "state.pt").write_bytes(b"state of the first run")
    before = (out / "pack.npz").read_bytes()
    capsys.readouterr()
    assert run_cli(["train", "--pairs", str(_csv(tmp_path / "one.csv", rows[:1])), "-o", str(out), "--resume", "--phantoms", "0"]) == 1
    assert "--resume continues the run" in _err(capsys) and (out / "pack.npz").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["pack.npz", "state.pt"]


def test_train_data_onto_an_own_pairs_pack_is_refused(tmp_path, capsys):
    """`--data SHARED -o OUT` where OUT/pack.npz was packed by --pairs: 'using existing pack' and
    trained on the lab's pairs as if on the shared data."""
    rows = _write_pairs(tmp_path, n=1)
    out = tmp_path / "run"
    assert run_cli(["train", "--pairs", str(_csv(tmp_path / "t.csv", rows)), "-o", str(out), "--pack-only"]) == 0
    shared = tmp_path / "shared"
    from medseg.cli.train_cmd import SHARED_LAYOUT

    for p in SHARED_LAYOUT:
        (shared / p).parent.mkdir(parents=True, exist_ok=True)
        (shared / p).mkdir() if "." not in Path(p).name else (shared / p).touch()
    capsys.readouterr()
    assert run_cli(["train", "--data", str(shared), "-o", str(out), "--pack-only"]) == 1
    assert "holds your own pairs" in _err(capsys)
