"""Bad-input sweep of what medseg 0.45 added (train --init-from / --state-dir, segment_volume's
model check) and the docs' blinded-read recipe, run as a user would."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.cli._app import run_cli
from medseg.errors import MedsegError


def _train(tmp_path, *extra):
    return run_cli(["train", "-o", str(tmp_path / "out"), "--phantoms", "4", "--max-steps", "1", *extra])


def test_train_state_dir_that_is_a_file_is_refused_before_training(tmp_path, capsys):
    """--resume --state-dir FILE trained, wrote best/last.safetensors into OUT, then failed on
    'cannot write or read FILE: File exists' (and its note said 'no state.pt in FILE yet')."""
    f = tmp_path / "state"
    f.write_text("x")
    assert _train(tmp_path, "--resume", "--state-dir", str(f)) == 1
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_train_init_from_a_file_that_is_no_checkpoint_is_refused_before_out_is_made(tmp_path, capsys):
    """A corrupt --init-from file was read only once training began: OUT was left behind, empty."""
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"junk")
    assert _train(tmp_path, "--init-from", str(f)) == 1
    err = capsys.readouterr().err
    assert "not a readable safetensors checkpoint" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_train_init_from_a_folder_without_best_says_so(tmp_path, capsys):
    """An empty folder was reported as 'checkpoint not found', though it is there."""
    (tmp_path / "run").mkdir()
    assert _train(tmp_path, "--init-from", str(tmp_path / "run")) == 1
    err = capsys.readouterr().err
    assert "is a folder with no best.safetensors" in err and not (tmp_path / "out").exists()


def test_train_init_from_an_own_model_stem_that_is_missing_names_init_from(tmp_path, monkeypatch, capsys):
    """--init-from labA/nosuch answered '--model labA/nosuch: ... --model labA/best'."""
    model = tmp_path / "home" / "models" / "labA"
    model.mkdir(parents=True)
    (model / "best.safetensors").write_bytes(b"x")
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path / "home"))
    assert _train(tmp_path, "--init-from", "labA/nosuch") == 1
    err = capsys.readouterr().err
    assert "--init-from labA/nosuch" in err and "--init-from labA/best" in err and "--model" not in err


def test_segment_volume_given_a_model_name_names_itself_and_the_name():
    """segment_volume(vol, "default") said 'a Session needs a loaded model ..., got str'."""
    from medseg.io.volume import Volume, affine_from_spacing
    from medseg.segment import segment_volume

    vol = Volume(np.zeros((1, 2, 32, 32), np.float32), affine_from_spacing((8.0, 1.5, 1.5)))
    with pytest.raises(MedsegError, match=r"^segment_volume needs a loaded model \(medseg.models.load_model\), got str 'default'$"):
        segment_volume(vol, "default", auto=True)


def test_blinded_reads_a_linked_file_takes_the_code_a_linked_folder_its_files_names(tmp_path):
    """docs/batch.md *Blinded reads*: a linked series folder is the coded case, but an image file
    keeps its own name (a linked folder's s01.nii.gz is the case s01): link the file itself."""
    from medseg.batch.cases import discover_cases

    study = tmp_path / "trial" / "s01" / "followup"
    study.mkdir(parents=True)
    (study / "s01.nii.gz").write_bytes(b"")
    by_folder, by_file = tmp_path / "a", tmp_path / "b"
    by_folder.mkdir()
    by_file.mkdir()
    (by_folder / "R0173").symlink_to(study)
    (by_file / "R0173.nii.gz").symlink_to(study / "s01.nii.gz")
    assert [c.case for c in discover_cases(by_folder)] == ["s01"]
    assert [c.case for c in discover_cases(by_file)] == ["R0173"]


def _summary(folder):
    import json

    return json.loads((folder / "summary.json").read_text())["data"]


def test_resume_keeps_what_the_run_started_from_and_refuses_another_init_from(tmp_path, capsys):
    """--resume of a run begun with --init-from, the same command without it, wrote 'Started
    from: from scratch' on the card; --resume --init-from OTHER of a run from scratch wrote OTHER
    as its start, though state.pt's weights were trained on."""
    first, tuned = tmp_path / "first", tmp_path / "tuned"
    base = ["train", "--phantoms", "4", "--max-steps", "1"]
    assert run_cli([*base, "-o", str(first)]) == 0
    assert run_cli([*base, "-o", str(tuned), "--init-from", str(first)]) == 0
    started = _summary(tuned)["init_from"]
    assert run_cli(["train", "--phantoms", "4", "--max-steps", "2", "-o", str(tuned), "--resume"]) == 0
    assert _summary(tuned)["init_from"] == started
    assert "Started from: from scratch" not in (tuned / "README.md").read_text()
    capsys.readouterr()
    before = (first / "last.safetensors").stat().st_mtime_ns
    assert run_cli(["train", "--phantoms", "4", "--max-steps", "2", "-o", str(first), "--resume", "--init-from", str(tuned)]) == 1
    err = capsys.readouterr().err
    assert "started from scratch, not from --init-from" in err and "Traceback" not in err
    assert (first / "last.safetensors").stat().st_mtime_ns == before and "init_from" not in _summary(first)
    assert run_cli(["train", "--phantoms", "4", "--max-steps", "2", "-o", str(tuned), "--resume", "--init-from", str(first)]) == 0
