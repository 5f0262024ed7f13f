"""A shard's record and a batch's summary.json read back with medseg's one JSON reader: a file
nested thousands deep (damaged, or made so) raised RecursionError out of ``batch --shard``'s
merge and out of ``evaluate --predicted`` (json.loads's RecursionError is no ValueError); now
the shard is waited for as "record unreadable", and the summary is passed over for its CSV,
like a truncated one."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medseg.batch import BatchOptions, CaseSpec, Shard, run_batch_shard

DEEP = "[" * 100_000 + "]" * 100_000  # past Python's recursion limit


@pytest.mark.parametrize("damage", ['{"results": ' + DEEP + "}", DEEP, "", '{"status": "done", "results": [', "[1, 2]"])
def test_a_damaged_shard_record_is_waited_for_as_unreadable(tmp_path, damage):
    out = tmp_path / "out"
    out.mkdir()
    cases = [CaseSpec(f"c{i}", str(tmp_path / f"c{i}.nii.gz"), error="not run") for i in range(4)]
    opts = BatchOptions(out_dir=str(out), auto=True)
    run_batch_shard(cases, opts, Shard(1, 2))
    record = out / "shards" / "1-of-2.json"
    assert json.loads(record.read_text())["status"] == "done"
    record.write_text(damage)
    run = run_batch_shard(cases, opts, Shard(2, 2))
    assert not run.merged and run.waiting == [(1, "record unreadable")] and not (out / "summary.csv").exists()


def _pairs(tmp_path: Path, folder: Path):
    """p1, p2 (no labels in ``folder``) and p3 (its labels there)."""
    import nibabel as nib
    import numpy as np

    from medseg.pairs import Pair

    nib.save(nib.Nifti1Image(np.zeros((8, 8, 2), np.uint8), np.eye(4)), folder / "p3.nii.gz")
    return [Pair(tmp_path / f"{c}.nii.gz", tmp_path / f"{c}_gt.nii.gz", c) for c in ("p1", "p2", "p3")]


@pytest.mark.parametrize("damage", ['{"cases": ' + DEEP + "}", "", '{"cases": [{"case": "p1"', '{"cases": 5}'])
def test_a_damaged_summary_json_gives_way_to_the_summary_csv(tmp_path, damage):
    """The batch output holds no labels: the summary says p1 was handed over and p2 failed. A
    damaged summary.json is read as the CSV beside it says."""
    from medseg.pairs import with_predictions

    folder = tmp_path / "pred"
    folder.mkdir()
    (folder / "summary.json").write_text(damage)
    with open(folder / "summary.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["case", "status", "handed_over", "reason"])
        w.writeheader()
        w.writerow({"case": "p1", "status": "handed_over", "handed_over": "lv myo", "reason": ""})
        w.writerow({"case": "p2", "status": "failed", "handed_over": "", "reason": "no signal"})
    got = {p.case: p for p in with_predictions(_pairs(tmp_path, folder), folder)}
    assert got["p1"].handed_over == ("lv", "myo") and got["p2"].failed == "no signal" and got["p3"].prediction == folder / "p3.nii.gz"


def test_a_whole_summary_json_is_read_before_the_csv(tmp_path):
    from medseg.pairs import with_predictions

    folder = tmp_path / "pred"
    folder.mkdir()
    rows = [{"case": "p1", "status": "handed_over", "handed_over": "lv"}, {"case": "p2", "status": "failed", "reason": "too small"}]
    (folder / "summary.json").write_text("\ufeff" + json.dumps({"cases": rows}))  # a byte-order mark is fine
    (folder / "summary.csv").write_text("case,status\n")  # says nothing: not read
    got = {p.case: p for p in with_predictions(_pairs(tmp_path, folder), folder)}
    assert got["p1"].handed_over == ("lv",) and got["p2"].failed == "too small"
