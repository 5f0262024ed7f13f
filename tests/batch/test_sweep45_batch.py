"""Sweep of `medseg batch --shard K/N` as a user breaks it: a shard record edited by hand or
damaged is not merged (it crashed the merge with 'unexpected KeyError'), and a shard record
whose cases were written again since it ended (labels corrected in napari, a batch of the whole
folder) is not merged either (its old numbers went into summary.csv and cohort.csv)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from batch_data import MAP, write_case

from medseg.cli import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(inp: Path, out: Path, *extra: str) -> int:
    return run_cli(["batch", str(inp), "-o", str(out), "--prompts-from", str(inp), "--label-map", MAP, "--key-slice", "--measure", *extra])


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> tuple[Path, Path]:
    """Three cases run as shards 1/2 (a, c) and 2/2 (b), merged."""
    root = tmp_path_factory.mktemp("sweep45")
    for i, name in enumerate(("a", "b", "c")):
        write_case(root / "in", name, seed=i, shape=(48, 48), n_slices=4)
    out = root / "out"
    assert _batch(root / "in", out, "--shard", "1/2") == 0
    assert _batch(root / "in", out, "--shard", "2/2") == 0
    assert (out / "summary.csv").is_file()
    return root / "in", out


def _summary_rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        return {r["case"]: r for r in csv.DictReader(fh)}


@pytest.mark.parametrize("edit", ["row without input", "row not a dict", "row missing", "measures not a dict", "row of another case"])
def test_a_damaged_shard_record_is_waited_for_not_merged(sharded, capsys, edit):
    inp, out = sharded  # (moved, OUT_DIR would be another setting: edited in place, put back)
    (out / "summary.csv").unlink()
    path = out / "shards" / "2-of-2.json"
    kept = path.read_text()
    rec = json.loads(kept)
    rows = rec["results"]
    if edit == "row without input":
        rows[0] = {"case": "b"}
    elif edit == "row not a dict":
        rows[0] = "junk"
    elif edit == "row missing":
        rows.pop()
    elif edit == "measures not a dict":
        rows[0]["measures"] = 3
    else:
        rows[0]["case"] = "a"
    path.write_text(json.dumps(rec))
    capsys.readouterr()
    try:
        assert _batch(inp, out, "--shard", "1/2", "--resume") == 0
        said = " ".join(capsys.readouterr().err.split())
        assert "summary.csv waits for shard 2 (record unreadable) of 2" in said and "unexpected" not in said
        assert not (out / "summary.csv").exists()
    finally:
        path.write_text(kept)
        assert _batch(inp, out, "--shard", "1/2", "--resume") == 0 and (out / "summary.csv").is_file()


def test_a_shard_whose_outputs_were_written_again_is_not_merged_with_its_old_numbers(sharded, capsys):
    """Case b (shard 2) corrected by hand after the shards ended; shard 1 run again (a requeued
    task) merged shard 2's old row of b: summary.csv and cohort.csv held b's old LV volume."""
    import nibabel as nib

    inp, out = sharded
    before = _summary_rows(out)["b"]["volumes_ml.lv"]
    img = nib.load(out / "b.nii.gz")
    lab = np.asarray(img.dataobj).copy()
    lab[lab == 1] = 0  # the LV taken out (an edit of another program)
    nib.save(nib.Nifti1Image(lab, img.affine, img.header), out / "b.nii.gz")
    capsys.readouterr()
    assert _batch(inp, out, "--shard", "1/2", "--resume") == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "waits for shard 2 (outputs written again since it ended: run it again with --resume) of 2" in said
    assert _summary_rows(out)["b"]["volumes_ml.lv"] == before  # the earlier merge's, not rewritten
    assert _batch(inp, out, "--shard", "2/2", "--resume") == 0
    assert "all 2 shards" in " ".join(capsys.readouterr().err.split())
    after = _summary_rows(out)["b"]
    assert after["volumes_ml.lv"] != before and after["reason"].startswith("kept: labels changed")


def test_shards_of_one_folder_by_two_paths_and_devices_are_merged(sharded, tmp_path, capsys):
    """OUT_DIR mounted at two paths on a cluster's nodes (/scratch and /gpfs/scratch), and a
    shard run again on a CPU node: the settings were 'other', so summary.csv waited forever."""
    inp, _ = sharded
    out, alias, inp_alias = tmp_path / "out", tmp_path / "alias", tmp_path / "inp_alias"
    out.mkdir()
    alias.symlink_to(out, target_is_directory=True)
    inp_alias.symlink_to(inp, target_is_directory=True)  # the input folder too, at another mount path
    assert _batch(inp, out, "--shard", "1/2") == 0
    capsys.readouterr()
    assert _batch(inp_alias, alias, "--shard", "2/2", "--device", "cpu") == 0
    assert "(all 2 shards, 3 cases)" in " ".join(capsys.readouterr().err.split())
    assert sorted(_summary_rows(out)) == ["a", "b", "c"]


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl locks")
def test_a_shard_killed_while_running_is_named_not_waited_for_as_running(sharded, capsys):
    """A task killed with SIGKILL (out of memory) leaves its record 'running': the other shards
    said 'waits for shard 2 (running)' for ever. No process holds its lock: it says so."""
    from medseg.batch.outdir import out_dir_lock

    inp, out = sharded
    path = out / "shards" / "2-of-2.json"
    kept = path.read_text()
    path.write_text(json.dumps({**json.loads(kept), "status": "running"}))
    capsys.readouterr()
    try:
        assert _batch(inp, out, "--shard", "1/2", "--resume") == 0
        assert "waits for shard 2 (killed while running, no process holds it: run it again with --resume) of 2" in \
            " ".join(capsys.readouterr().err.split())
        with out_dir_lock(out / "shards", name=".2-of-2.lock"):  # shard 2 alive (this process holds its lock)
            assert _batch(inp, out, "--shard", "1/2", "--resume") == 0
        assert "waits for shard 2 (running) of 2" in " ".join(capsys.readouterr().err.split())
    finally:
        path.write_text(kept)
