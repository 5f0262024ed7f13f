"""What README promises of the CLI and the examples, checked as a user meets it:

* redirected output has no progress bar and a long ``train`` writes the shared plain progress
  line (README, the ``NO_COLOR``/``TERM=dumb`` row); train drew its own rich bar, which left
  ``training  0%  -:--:--`` in a ``2> log`` after training ended, and no such line;
* ``examples/quickstart.py --help`` and ``adapt_phantoms.py --help`` print their usage: they took
  ``--help`` as the output folder (a folder ``./--help``; adapt_phantoms started training);
* the shipped default model has one ``model_id`` however it is given (README, *Your own
  models*): by path it was recorded as ``checkpoints/medseg_default``, as ``--model default``
  as ``default``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import medseg.cli._app as app
from medseg.cli import run_cli, train_cmd

ROOT = Path(__file__).resolve().parents[2]
#: ``medseg`` with every progress update logged (no minute to wait), stderr as the caller gives it
_LOGGED_EVERY_UPDATE = ("import sys, medseg.cli._app as a; a.LOG_EVERY_S = 0.0; from medseg.cli import run_cli; "
                        "sys.exit(run_cli(sys.argv[1:]))")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "MEDSEG_HOME")}
    return {**env, "OMP_NUM_THREADS": "1", "COLUMNS": "100"}


# -- 1. train's progress into a file ------------------------------------------------------------
def test_train_into_a_log_file_leaves_no_bar_and_writes_the_plain_progress_line(tmp_path):
    log = tmp_path / "log"
    with open(log, "w") as err:  # `medseg train ... 2> log`
        run = subprocess.run([sys.executable, "-c", _LOGGED_EVERY_UPDATE, "train", "--phantoms", "4", "--max-steps", "25",
                              "--batch-size", "1", "-o", str(tmp_path / "out")], stderr=err, stdout=subprocess.PIPE,
                             text=True, cwd=tmp_path, env=_env(), timeout=600)
    text = log.read_text()
    assert run.returncode == 0, text
    lines = text.splitlines()
    assert "\x1b" not in text and "\r" not in text and "━" not in text and "-:--:--" not in text  # no bar, no escape codes
    assert not any(line.startswith("training") for line in lines), text  # was: "training   0%  -:--:--" after the run
    progress = [line for line in lines if line.startswith("  ... ")]
    assert len(progress) == 1, text  # the loop reports every 25 steps: one update, logged
    assert progress[0].startswith("  ... training 100% step 25 loss ") and progress[0].endswith(" elapsed)"), progress
    assert lines[-1].startswith("trained 25 steps (25 samples, ")


def test_train_s_logged_line_counts_to_the_step_limit_or_the_time_budget(monkeypatch, capsys):
    """The lines the shared helper writes (``  ... TEXT (H:MM:SS elapsed, about H:MM:SS left)``)
    for train's events: how far it got by ``--max-steps`` when that ends training first, by the
    time budget otherwise."""
    from medseg.training import loop

    now = [0.0]
    monkeypatch.setattr(app, "_clock", lambda: now[0])
    monkeypatch.setattr(train_cmd, "progress_bar", lambda *cols: app._logged_progress_class()(*cols, console=app.console, disable=True,
                                                                                                 log_lines=True))

    def fake_train(cfg, progress):  # 25 steps every 15 s (events as medseg.training.loop.train sends them)
        for step in range(25, 201, 25):
            now[0] += 15.0
            progress({"step": step, "elapsed_s": now[0], "frac": now[0] / cfg.time_budget_s, "loss": 0.5, "lr": 1e-4})
        progress({"step": 200, "elapsed_s": now[0], "validation": {"score": 0.0}, "best": 0.0})
        return {"steps": 200}

    monkeypatch.setattr(loop, "train", fake_train)
    assert train_cmd._run(SimpleNamespace(max_steps=200, time_budget_s=1800.0)) == {"steps": 200}
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("  ... ")] == [
        "  ... training 50% step 100 loss 0.500 (0:01:00 elapsed, about 0:01:00 left)",
        "  ... training 100% step 200 loss 0.500 (0:02:00 elapsed)"]
    assert err[-1] == "step 200: checkpoint saved (no validation slices to score; best.safetensors is this step)"

    now[0] = 0.0  # no step limit: the time budget says how far
    assert train_cmd._run(SimpleNamespace(max_steps=0, time_budget_s=480.0)) == {"steps": 200}
    logged = [line for line in capsys.readouterr().err.splitlines() if line.startswith("  ... ")]
    assert logged == ["  ... training 12% step 100 loss 0.500 (0:01:00 elapsed, about 0:07:00 left)",
                      "  ... training 25% step 200 loss 0.500 (0:02:00 elapsed, about 0:06:00 left)"]


# -- 2. the examples' --help -----------------------------------------------------------------------
@pytest.mark.parametrize("name, usage", [("quickstart", "usage: quickstart.py [-h] [OUT_DIR]"),
                                         ("adapt_phantoms", "usage: adapt_phantoms.py [-h] [WORK_DIR] [STEPS]")])
def test_an_example_s_help_prints_its_usage_and_writes_nothing(tmp_path, name, usage):
    run = subprocess.run([sys.executable, str(ROOT / "examples" / f"{name}.py"), "--help"], capture_output=True, text=True,
                         cwd=tmp_path, env=_env(), timeout=120)
    assert run.returncode == 0 and run.stdout.startswith(usage), run.stdout + run.stderr
    assert list(tmp_path.iterdir()) == []  # was: a folder ./--help of phantom studies (and adapt_phantoms trained)


def test_an_example_s_bad_argument_is_refused_before_anything_is_written(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "adapt_phantoms.py"), "work", "many"], capture_output=True, text=True,
                         cwd=tmp_path, env=_env(), timeout=120)
    assert run.returncode == 2 and "argument STEPS: invalid int value: 'many'" in run.stderr
    assert list(tmp_path.iterdir()) == []  # was: the studies written, then a ValueError traceback


# -- 3. the shipped model's id ---------------------------------------------------------------------
def _segment_model_id(image: Path, model: str, out: Path) -> str:
    from medseg.io import read_sidecar

    assert run_cli(["segment", str(image), "--auto", "--model", model, "-o", str(out)]) == 0
    return read_sidecar(out)["provenance"]["model_id"]


def test_the_shipped_model_is_recorded_as_default_however_it_is_given(tmp_path, monkeypatch, capsys):
    import nibabel as nib
    import numpy as np

    from medseg.io.geometry import medseg_to_nifti
    from medseg.models import load_model
    from medseg.models.registry import shipped_checkpoint
    from medseg.phantoms import cine_sax_phantom

    shipped = shipped_checkpoint()
    ph = cine_sax_phantom(n_frames=1, n_slices=2, shape=(64, 64), seed=1)
    image = tmp_path / "img.nii.gz"
    nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 3), ph.image.affine), str(image))
    link = tmp_path / "links" / "mine.safetensors"
    link.parent.mkdir()
    link.symlink_to(shipped)
    monkeypatch.chdir(shipped.parent.parent)  # as README gives it: checkpoints/medseg_default.safetensors
    given = ["default", "checkpoints/medseg_default.safetensors", str(shipped), os.path.relpath(shipped, tmp_path / "links"), str(link)]
    assert _segment_model_id(image, "default", tmp_path / "a.nii.gz") == "default"
    assert _segment_model_id(image, given[1], tmp_path / "b.nii.gz") == "default"  # was: checkpoints/medseg_default
    monkeypatch.chdir(tmp_path / "links")
    assert {spec: load_model(spec).model_id for spec in given[2:]} == dict.fromkeys(given[2:], "default")
    for spec in given[2:]:
        capsys.readouterr()
        assert run_cli(["info", spec, "--json"]) == 0
        d = json.loads(capsys.readouterr().out)
        assert d["model_id"] == "default" and "recorded as model_id default" in d["note"], (spec, d)


def test_a_copy_of_the_shipped_weights_is_default_and_other_weights_keep_their_folder_and_stem(tmp_path, capsys):
    """The id follows the weights (sha256), as ``info``'s note and replay do: a copy elsewhere
    is the same model, which ``--model default`` loads again on any install."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from medseg.models.own import checkpoint_id
    from medseg.models.registry import shipped_checkpoint

    shipped = shipped_checkpoint()
    copy = tmp_path / "lab" / "copied.safetensors"
    copy.parent.mkdir()
    shutil.copy(shipped, copy)
    with safe_open(str(shipped), "pt") as f:
        meta = dict(f.metadata())
    save_file(load_file(str(shipped)), str(tmp_path / "lab" / "other.safetensors"), metadata={**meta, "note": "another file"})
    ids = {}
    for f in (copy, tmp_path / "lab" / "other.safetensors"):
        capsys.readouterr()
        assert run_cli(["info", str(f), "--json"]) == 0
        ids[f.name] = json.loads(capsys.readouterr().out)["model_id"]
    assert ids == {"copied.safetensors": "default", "other.safetensors": "lab/other"}
    assert checkpoint_id(shipped) == "checkpoints/medseg_default"  # no sha256 given: the path's id, as before
