"""`medseg batch --shard K/N`: one batch split over the tasks of a cluster's array job (Slurm,
PBS, LSF), all writing one OUT_DIR. Each case runs in exactly one shard, the shards run side by
side (a batch of the whole folder is refused meanwhile), and the shard that ends last writes the
same summary and cohort tables as one batch over the folder."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from batch_data import MAP, read_labels, write_case

from medseg.batch import BatchOptions, CaseSpec, Shard, run_batch, run_batch_shard
from medseg.cli import run_cli
from medseg.errors import MedsegError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="fcntl locks")


def test_shard_text_is_k_of_n_numbered_from_one():
    assert Shard.parse("3/50") == Shard(3, 50) and Shard.parse(" 1 / 1 ") == Shard(1, 1)
    with pytest.raises(MedsegError, match=r"numbered 1 to 4; for a Slurm array 0-3 give --shard \$\(\(SLURM_ARRAY_TASK_ID \+ 1\)\)/4"):
        Shard.parse("0/4")
    for bad, why in (("5/4", "K must be 1 to 4"), ("3/0", "N must be 1 or more"), ("3", "must be K/N"), ("a/b", "must be K/N")):
        with pytest.raises(MedsegError, match=why):
            Shard.parse(bad)


def test_every_case_is_in_exactly_one_shard_and_shards_are_even():
    cases = [CaseSpec(f"c{i:03d}", f"/in/c{i:03d}.nii.gz") for i in range(103)]
    picked = [Shard(k, 10).pick(list(reversed(cases))) for k in range(1, 11)]  # the order given does not matter
    ids = [c.case for p in picked for c in p]
    assert sorted(ids) == [c.case for c in cases] and len(set(ids)) == 103
    assert {len(p) for p in picked} == {10, 11}
    assert Shard(1, 200).pick(cases[:3]) == [cases[0]] and Shard(7, 200).pick(cases[:3]) == []


def _batch(inp: Path, out: Path, *extra: str) -> int:
    return run_cli(["batch", str(inp), "-o", str(out), "--prompts-from", str(inp), "--label-map", MAP, "--key-slice", *extra])


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shards") / "in"
    for i, name in enumerate(("p1_ED", "p1_ES", "p2", "p3", "p4")):
        write_case(folder, name, seed=i, shape=(48, 48), n_slices=4)
    return folder


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: v for k, v in r.items() if k not in ("seconds", "output")} for r in csv.DictReader(fh)]


@pytest.mark.slow  # ~11 s on the shared 2-core CPU
def test_the_last_shard_writes_the_tables_one_batch_writes(studies, tmp_path, capsys):
    """Three shards one after another (an array whose tasks end at different times): the first
    two say what they wait for and write no summary; the third writes summary.csv/json and
    cohort.csv (with the ED/ES study row measured from cases of two shards) equal to those of
    one batch over the folder, and the same labels."""
    out, whole = tmp_path / "out", tmp_path / "whole"
    assert _batch(studies, whole, "--measure") == 0
    capsys.readouterr()
    assert _batch(studies, out, "--measure", "--shard", "1/3") == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "batch: 2 cases (shard 1/3 of 5 cases) in this process" in said
    assert "summary.csv waits for shards 2, 3 (not started) of 3: the last shard to end writes it" in said
    assert not (out / "summary.csv").exists() and not (out / "cohort.csv").exists()
    rec = json.loads((out / "shards" / "1-of-3.json").read_text())
    assert rec["status"] == "done" and rec["cases"] == ["p1_ED", "p3"] and [r["case"] for r in rec["results"]] == ["p1_ED", "p3"]
    assert _batch(studies, out, "--measure", "--shard", "3/3") == 0
    assert "waits for shard 2 (not started) of 3" in " ".join(capsys.readouterr().err.split())
    assert _batch(studies, out, "--measure", "--shard", "2/3") == 0
    said = " ".join(capsys.readouterr().err.split())
    assert f"summary: {out / 'summary.csv'} (all 3 shards, 5 cases); cohort: {out / 'cohort.csv'}" in said
    assert _rows(out / "summary.csv") == _rows(whole / "summary.csv")
    assert (out / "cohort.csv").read_text() == (whole / "cohort.csv").read_text()
    assert "p1" in [r["case"] for r in _rows(out / "cohort.csv")]  # the study row of p1_ED (shard 1) and p1_ES (shard 2)
    summary, one = json.loads((out / "summary.json").read_text()), json.loads((whole / "summary.json").read_text())
    assert summary["n_cases"] == one["n_cases"] == 5 and summary["settings"] == {**one["settings"], "out_dir": str(out)}
    for case in ("p1_ED", "p1_ES", "p2", "p3", "p4"):
        assert (read_labels(out / f"{case}.nii.gz") == read_labels(whole / f"{case}.nii.gz")).all()


def test_shards_of_other_settings_or_another_case_list_are_not_merged(studies, tmp_path, capsys):
    out = tmp_path / "out"
    assert _batch(studies, out, "--shard", "1/2") == 0
    assert _batch(studies, out, "--measure", "--shard", "2/2") == 0  # the other shard measured nothing
    said = " ".join(capsys.readouterr().err.split())
    assert "waits for shard 1 (run with other settings) of 2" in said and not (out / "summary.csv").exists()
    assert _batch(studies, out, "--measure", "--shard", "1/2", "--resume") == 0  # run again with them: merged
    assert "(all 2 shards, 5 cases)" in " ".join(capsys.readouterr().err.split())
    rec = out / "shards" / "1-of-2.json"
    data = json.loads(rec.read_text())
    rec.write_text(json.dumps({**data, "cases_sha256": "0" * 64}))  # a task that saw another folder
    (out / "summary.csv").unlink()
    assert _batch(studies, out, "--measure", "--shard", "2/2", "--resume") == 0
    assert "waits for shard 1 (saw another case list) of 2" in " ".join(capsys.readouterr().err.split())
    assert not (out / "summary.csv").exists()


def test_a_split_into_another_number_of_shards_is_refused(studies, tmp_path, capsys):
    out = tmp_path / "out"
    assert _batch(studies, out, "--shard", "5/5") == 0  # 0 cases: its record alone
    capsys.readouterr()
    assert _batch(studies, out, "--shard", "1/2") == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"{out / 'shards'} holds the records of a split into 5 shards, not 2: use --shard K/5" in " ".join(err.split())


@posix_only
def test_shards_run_side_by_side_but_not_beside_a_whole_batch_or_themselves(tmp_path):
    from medseg.batch.outdir import OutputFolderBusy, out_dir_lock
    from medseg.batch.shards import _shard_lock

    out = tmp_path / "out"
    out.mkdir()
    cases = [CaseSpec(f"c{i}", str(tmp_path / f"c{i}.nii.gz"), error="not run") for i in range(4)]
    opts = BatchOptions(out_dir=str(out), auto=True)
    with out_dir_lock(out, shared=True):  # shard 1/2 running
        run = run_batch_shard(cases, opts, Shard(2, 2))  # shard 2/2 runs beside it; shard 1 has no record: no summary
        assert [r["case"] for r in run.results] == ["c1", "c3"] and not run.merged and run.waiting == [(1, "not started")]
        with pytest.raises(OutputFolderBusy, match=r"another medseg batch \(or the shards of a --shard run\) is writing to"):
            run_batch(cases, opts)
        with _shard_lock(str(out), Shard(2, 2)), pytest.raises(OutputFolderBusy, match="shard 2/2 is already running into"):
            run_batch_shard(cases, opts, Shard(2, 2))
    with out_dir_lock(out), pytest.raises(OutputFolderBusy, match=r"another medseg batch \(process \d+ on .+\) is writing"):
        run_batch_shard(cases, opts, Shard(1, 2))
    run = run_batch_shard(cases, opts, Shard(1, 2))
    assert run.merged and json.loads((out / "summary.json").read_text())["n_cases"] == 4


def test_shard_and_scheduler_are_refused_together(studies, tmp_path, capsys):
    assert _batch(studies, tmp_path / "out", "--shard", "1/2", "--scheduler", "tcp://localhost:1") == 1
    assert "give either --shard (one task of an array job) or --scheduler (a Dask cluster), not both" in capsys.readouterr().err


@posix_only
@pytest.mark.slow  # ~16 s on the shared 2-core CPU
def test_shards_started_together_as_processes_merge_once(studies, tmp_path):
    """An array's tasks start at once: every shard runs its cases beside the others, exactly one
    (the last to end, under the merge lock) writes summary.csv, and it holds every case."""
    import os
    import subprocess

    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["batch", str(studies), "-o", str(out), "--prompts-from", str(studies), "--label-map", MAP, "--key-slice"]
    runs = [subprocess.Popen([sys.executable, "-m", "medseg", *args, "--shard", f"{k}/2"], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for k in (1, 2)]
    said = [" ".join(r.communicate(timeout=600)[0].split()) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], said
    assert sum("(all 2 shards, 5 cases)" in s for s in said) >= 1
    assert all("(all 2 shards, 5 cases)" in s or "waits for shard" in s for s in said)
    assert sorted(r["case"] for r in _rows(out / "summary.csv")) == ["p1_ED", "p1_ES", "p2", "p3", "p4"]
    assert sorted(p.name for p in (out / "shards").glob("*.json")) == ["1-of-2.json", "2-of-2.json"]


def test_an_interrupted_shard_keeps_its_rows_and_is_waited_for(tmp_path, monkeypatch):
    """A shard stopped by its time limit (SIGTERM, taken as Ctrl-C) records the cases it did and
    ``interrupted``; the other shard's merge waits for it, naming why."""
    import medseg.batch.run as run_mod

    out = tmp_path / "out"
    out.mkdir()
    cases = [CaseSpec(f"c{i}", str(tmp_path / f"c{i}.nii.gz"), error="not run") for i in range(4)]
    opts = BatchOptions(out_dir=str(out), auto=True)
    real = run_mod.run_case

    def stop_at_c2(case, options):
        if case.case == "c2":
            raise KeyboardInterrupt
        return real(case, options)

    monkeypatch.setattr(run_mod, "run_case", stop_at_c2)
    with pytest.raises(KeyboardInterrupt):
        run_batch_shard(cases, opts, Shard(1, 2))
    rec = json.loads((out / "shards" / "1-of-2.json").read_text())
    assert rec["status"] == "interrupted" and [r["case"] for r in rec["results"]] == ["c0"] and rec["cases"] == ["c0", "c2"]
    monkeypatch.setattr(run_mod, "run_case", real)
    run = run_batch_shard(cases, opts, Shard(2, 2))
    assert not run.merged and run.waiting == [(1, "interrupted")] and not (out / "summary.csv").exists()
