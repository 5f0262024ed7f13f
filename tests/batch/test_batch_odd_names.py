"""`medseg batch` / `segment` with odd names: a file name that is not UTF-8 (Linux names are
bytes; Python gives ``caf\\xe9`` as ``caf\\udce9``), a case name holding a newline, an output
folder that is a file, and the probe file that proves a folder writable. Tiny phantom studies
(1, 6, 96, 96); most checks run no model."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from batch_data import MAP, write_case

from medseg.cli import run_cli

CAFE = os.fsdecode(b"caf\xe9")  # 'caf\udce9'


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8", errors="surrogateescape"), newline="")))


def test_batch_with_a_non_utf8_file_name_writes_every_case_and_the_summary(tmp_path, capsys):
    """One such file aborted the whole batch (UnicodeEncodeError writing summary.csv): no summary,
    the other cases' results lost, --resume hit the same crash."""
    inp, out = tmp_path / "in", tmp_path / "out"
    write_case(inp, "ok", seed=1)
    write_case(inp, CAFE, seed=2)
    args = ["batch", str(inp), "-o", str(out), "--prompts-from", str(inp), "--label-map", MAP, "--measure", "--review-png"]
    assert run_cli(args) == 0
    err = capsys.readouterr().err
    assert "2 ok" in err and "\udce9" not in err
    names = set(os.listdir(os.fsencode(out)))
    assert {b"caf\xe9.nii.gz", b"caf\xe9.json", b"caf\xe9_review.png", b"summary.csv", b"summary.json", b"cohort.csv", b"cohort.png"} <= names
    assert not [n for n in names if n.startswith(b".")]  # no temporary or probe file left
    rows = {r["case"]: r for r in _csv_rows(out / "summary.csv")}  # the name's own byte, read back with surrogateescape
    assert set(rows) == {"ok", CAFE} and rows[CAFE]["status"] == "ok" and Path(rows[CAFE]["input"]) == inp / f"{CAFE}.nii.gz"
    assert {r["case"] for r in _csv_rows(out / "cohort.csv")} == {"ok", CAFE}
    summary = json.loads((out / "summary.json").read_text(encoding="ascii"))  # JSON escapes the surrogate
    case = next(c for c in summary["cases"] if c["case"] == CAFE)
    assert Path(case["output"]).is_file() and Path(case["input"]).is_file()
    side = json.loads((out / f"{CAFE}.json").read_text(encoding="ascii"))
    assert Path(side["provenance"]["input"]).samefile(inp / f"{CAFE}.nii.gz")
    assert run_cli([*args, "--resume"]) == 0
    assert {r["case"]: r["status"] for r in _csv_rows(out / "summary.csv")} == {"ok": "skipped", CAFE: "skipped"}


def test_segment_writes_a_non_utf8_output_name(tmp_path, capsys):
    image, ref = write_case(tmp_path / "in", "img", seed=3)
    out = tmp_path / f"{CAFE}_seg.nii.gz"
    sheet = tmp_path / f"{CAFE}_review.png"
    assert run_cli(["segment", str(image), "-o", str(out), "--prompts-from", str(ref), "--label-map", MAP, "--review-png", str(sheet)]) == 0
    assert out.is_file() and (tmp_path / f"{CAFE}_seg.json").is_file() and sheet.is_file()
    err = capsys.readouterr().err.replace("\n", "")  # rich wraps the line at the console's width
    assert "caf\\xe9_seg.nii.gz" in err and "caf\\xe9_review.png" in err and "\udce9" not in err  # the byte shown readably


def test_a_case_that_fails_on_its_name_fails_alone_and_the_summary_is_written(tmp_path, monkeypatch):
    """Whatever a case still raises on such a name, that case fails with its reason; the others
    and the summary are written."""
    from medseg.batch import BatchOptions, CaseSpec, run_batch
    from medseg.batch import run as run_mod

    def segment(case, options, out):
        if case.case == CAFE:
            raise UnicodeEncodeError("utf-8", case.case, 3, 4, "surrogates not allowed")
        raise run_mod.MedsegError("no model in this test")

    monkeypatch.setattr(run_mod, "_segment_case", segment)
    cases = [CaseSpec(CAFE, str(tmp_path / f"{CAFE}.nii.gz")), CaseSpec("ok", str(tmp_path / "ok.nii.gz"))]
    results = run_batch(cases, BatchOptions(out_dir=str(tmp_path / "out"), auto=True))
    assert sorted((r["case"], r["status"]) for r in results) == [(CAFE, "failed"), ("ok", "failed")]
    rows = {r["case"]: r for r in _csv_rows(tmp_path / "out" / "summary.csv")}
    assert rows[CAFE]["reason"].startswith("unexpected UnicodeEncodeError") and rows["ok"]["reason"] == "no model in this test"


def test_failed_case_lines_escape_newlines_and_non_utf8_bytes(tmp_path, capsys):
    """`failed new<newline>line: ...` broke the console line in two."""
    inp = tmp_path / "in"
    inp.mkdir()
    for name in ("new\nline", CAFE):
        (inp / f"{name}.nii.gz").write_bytes(b"not a NIfTI file at all" * 20)
    assert run_cli(["batch", str(inp), "-o", str(tmp_path / "out"), "--auto"]) == 1
    lines = capsys.readouterr().err.splitlines()
    failed = [line for line in lines if line.startswith("failed ")]
    assert len(failed) == 2, lines
    assert any(line.startswith("failed new\\nline: cannot read NIfTI") for line in failed)
    assert any(line.startswith("failed caf\\xe9: cannot read NIfTI") and "caf\\xe9.nii.gz" in line for line in failed)
    assert "line: cannot" not in [line[:13] for line in lines]  # no line starts with the rest of the name
    assert {r["case"] for r in _csv_rows(tmp_path / "out" / "summary.csv")} == {"new\nline", CAFE}  # the summary keeps the names


@pytest.mark.parametrize("where", ["is_a_file", "under_a_file"])
def test_an_output_folder_that_is_a_file_is_named_so(tmp_path, capsys, where):
    """`batch -o FILE` said "output folder FILE is not writable: File exists"."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.nii.gz").write_bytes(b"x")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker if where == "is_a_file" else blocker / "sub"
    assert run_cli(["batch", str(tmp_path / "in"), "-o", str(out), "--auto"]) == 1
    err = capsys.readouterr().err.strip()
    assert f"{blocker} is a file, not a folder" in err and "File exists" not in err and len(err.splitlines()) == 1
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("how", ["crash", "interrupt", "done"])
def test_a_write_probe_a_killed_worker_left_is_removed_when_the_batch_ends(tmp_path, monkeypatch, how):
    """A worker ended while it proved the output folder writable (a crashed `--workers 2` run
    ends its workers) left `.medseg-write-test-*` in the output folder."""
    from medseg.batch import BatchOptions, CaseSpec, run_batch
    from medseg.batch import run as run_mod

    out = tmp_path / "out"

    def run_case(case, options):
        (out / ".medseg-write-test-abc123").write_bytes(b"")  # what a worker killed in check_writable_folder leaves
        (out / "handed_over").mkdir(exist_ok=True)
        (out / "handed_over" / ".medseg-write-test-def456").write_bytes(b"")
        if how == "crash":
            raise RuntimeError("the batch process crashed")
        if how == "interrupt":
            raise KeyboardInterrupt
        return run_mod.failed_result(case, "no model in this test")

    monkeypatch.setattr(run_mod, "run_case", run_case)
    (out / "keep").mkdir(parents=True)
    (out / ".keep-me").write_bytes(b"")  # another hidden file: left alone
    cases = [CaseSpec("a", str(tmp_path / "a.nii.gz"))]
    expected = {"crash": RuntimeError, "interrupt": KeyboardInterrupt}.get(how)
    if expected:
        with pytest.raises(expected):
            run_batch(cases, BatchOptions(out_dir=str(out), auto=True))
    else:
        run_batch(cases, BatchOptions(out_dir=str(out), auto=True))
    left = sorted(p.name for p in out.rglob(".*"))
    assert left == [".keep-me"]
