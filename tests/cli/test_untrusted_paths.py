"""Paths that files from outside (or a shared output folder) name: a symbolic link planted under
the name of a batch's lock file is not written through, and a replayed sidecar loads its model
and adapter only from medseg's own folders, by name; outputs replace a planted link, never the
file it points to."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.errors import CheckpointError, ImageWriteError


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious data\n")
    return victim


def test_batch_lock_is_not_written_through_a_planted_link(tmp_path):
    """A batch truncated its lock file and wrote its process id there: a link planted as
    OUT/.medseg-batch.lock (an output folder in a shared place) overwrote the file it names."""
    from medseg.batch.outdir import LOCK_NAME, out_dir_lock

    victim, out = _victim(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).symlink_to(victim)
    for shared in (False, True):  # a whole batch, and the shards of a --shard run
        with pytest.raises(ImageWriteError) as e, out_dir_lock(out, shared=shared):
            pass
        assert "symbolic link" in str(e.value) and "\n" not in str(e.value)
    assert victim.read_text() == "precious data\n" and (out / LOCK_NAME).is_symlink()
    (out / LOCK_NAME).unlink()
    with out_dir_lock(out):  # without the link: locked as before
        assert (out / LOCK_NAME).is_file() and not (out / LOCK_NAME).is_symlink()


def test_shards_merge_lock_is_not_opened_through_a_link(tmp_path):
    from medseg.batch.shards import SHARDS_DIR, _merge_lock

    (tmp_path / SHARDS_DIR).mkdir()
    (tmp_path / SHARDS_DIR / ".merge.lock").symlink_to(tmp_path / "made_elsewhere")
    with pytest.raises(ImageWriteError), _merge_lock(str(tmp_path)):
        pass
    assert not (tmp_path / "made_elsewhere").exists()


def test_batch_cli_refuses_a_linked_lock_in_one_line(tmp_path, capsys):
    from medseg.cli import run_cli

    victim, inp, out = _victim(tmp_path), tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    out.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 2), np.float32), np.eye(4)), str(inp / "c1.nii.gz"))
    (out / ".medseg-batch.lock").symlink_to(victim)
    assert run_cli(["batch", str(inp), "-o", str(out), "--auto"]) == 1
    said = capsys.readouterr().err
    assert "is a symbolic link" in said and "Traceback" not in said, said
    assert victim.read_text() == "precious data\n"


@pytest.mark.parametrize("name", ["handed_over", "measured", "shards", "c1_seg"])
def test_batch_does_not_work_in_a_linked_own_folder(tmp_path, capsys, name):
    """A batch removes ``handed_over/<case>.json`` for every case (and writes records, SEG files
    there): OUT/handed_over planted as a link deleted ``<case>.json`` in the folder it named."""
    from medseg.cli import run_cli

    inp, out, elsewhere = tmp_path / "in", tmp_path / "out", tmp_path / "elsewhere"
    for d in (inp, out, elsewhere):
        d.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 2), np.float32), np.eye(4)), str(inp / "c1.nii.gz"))
    (elsewhere / "c1.json").write_text("kept\n")
    (out / name).symlink_to(elsewhere)
    assert run_cli(["batch", str(inp), "-o", str(out), "--auto"]) == 1
    said = capsys.readouterr().err
    assert f"{name} is a symbolic link" in said and "Traceback" not in said, said
    assert (elsewhere / "c1.json").read_text() == "kept\n" and sorted(p.name for p in elsewhere.iterdir()) == ["c1.json"]


def _recorded(model_id: str, sha: str | None, adapter: str | None):
    from medseg.labels import LabelMap
    from medseg.replay_sidecar import RecordedSession

    return RecordedSession(Path("case.json"), "0" * 64, {"model_id": model_id, "model_sha256": sha, "adapter_id": adapter},
                           LabelMap.parse({"lv": 1}), [{"op": "auto"}])


def test_replayed_sidecar_names_no_model_file_outside_the_checkpoint_folders(tmp_path):
    """``model_id`` joined to a checkpoint folder: an absolute id or one with ``..`` loaded any
    ``.safetensors`` file a hand-made sidecar named (its sha256 beside it)."""
    from medseg._files import sha256_file
    from medseg.replay_sidecar import model_choice

    planted = tmp_path / "planted" / "x.safetensors"
    planted.parent.mkdir()
    planted.write_bytes(b"weights a sidecar chose")
    sha = sha256_file(planted)
    up = os.path.relpath(planted.with_suffix(""), Path(__file__).resolve().parents[2] / "checkpoints")
    for model_id in (str(planted.with_suffix("")), up):
        with pytest.raises(CheckpointError) as e:
            model_choice(_recorded(model_id, sha, None), None, None)
        assert "give it with --model" in str(e.value)
    assert model_choice(_recorded("default", None, None), None, None)[0] == "default"
    assert model_choice(_recorded(str(planted.with_suffix("")), sha, None), str(planted), None)[0] == str(planted)  # --model given


def test_replayed_sidecar_names_adapters_by_name_only(tmp_path):
    from medseg.replay_sidecar import model_choice

    folder = tmp_path / "planted_adapter"
    folder.mkdir()
    for adapter in (str(folder), "../planted_adapter", "..", "sub/lge"):
        with pytest.raises(CheckpointError) as e:
            model_choice(_recorded("default", None, adapter), None, None)
        assert "give --adapter" in str(e.value) and "\n" not in str(e.value)
    assert model_choice(_recorded("default", None, "cmr-lge"), None, None)[1] == "cmr-lge"  # a name: as before
    assert model_choice(_recorded("default", None, str(folder)), None, str(folder))[1] == str(folder)  # --adapter given: as before
    assert model_choice(_recorded("default", None, str(folder)), None, "")[1] is None


def test_outputs_replace_a_planted_link_not_its_target(tmp_path):
    """(Already so: atomic writes rename a temporary file onto the name.)"""
    from medseg._files import write_text_atomic

    victim = _victim(tmp_path)
    link = tmp_path / "summary.csv"
    link.symlink_to(victim)
    write_text_atomic(link, "case\n")
    assert victim.read_text() == "precious data\n" and not link.is_symlink() and link.read_text() == "case\n"
