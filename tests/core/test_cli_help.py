"""The command line's help as a new user reads it: at the usual and a narrow terminal width,
the command list, metavars named in the help, and choices checked before any work."""

from __future__ import annotations

import re

import numpy as np
import pytest

from medseg.cli import run_cli

COMMANDS = ["segment", "batch", "measure", "evaluate", "adapt", "train", "info", "models", "bench", "demo", "compare"]


@pytest.mark.parametrize("columns", [60, 80])
@pytest.mark.parametrize("command", COMMANDS)
def test_help_cuts_no_option_name_or_path(command, columns, capsys, monkeypatch):
    """At 60 columns rich's option table cut option names (``--interpolate-mi…``,
    ``--predicted-labe…``) and paths (``examples/prompts_…``); at 80 it cut batch's list of
    file endings (``.mp4/.d…``). The help wraps instead, and names every option in full."""
    monkeypatch.setenv("COLUMNS", str(columns))
    assert run_cli([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out, [line for line in out.splitlines() if "…" in line]
    assert max(len(line) for line in out.splitlines()) <= columns
    long_names = {"measure": "--interpolate-missing", "evaluate": "--predicted-label-map", "batch": "--min-confidence"}
    assert long_names.get(command, "--help") in out


def test_command_list_gives_each_command_one_line(capsys, monkeypatch):
    """``medseg --help`` at 100 columns: one line per command (batch's and evaluate's ran onto a
    second line with the exit code and the metrics)."""
    monkeypatch.setenv("COLUMNS", "100")
    assert run_cli(["--help"]) == 0
    out = capsys.readouterr().out
    panel = out[out.index("Commands"):].splitlines()[1:]
    rows = [line for line in panel if line.startswith("│")]
    assert [re.match(r"│ (\w+) ", line).group(1) for line in rows] == sorted(COMMANDS)  # no continuation line


@pytest.mark.parametrize("command", ["segment", "batch"])
def test_min_confidence_help_shows_the_x_it_speaks_of(command, capsys, monkeypatch):
    """The help said "confidence ... is below X" under a ``<float>`` metavar: X is the metavar,
    as in the docs (``--min-confidence X``)."""
    monkeypatch.setenv("COLUMNS", "200")
    assert run_cli([command, "--help"]) == 0
    assert re.search(r"--min-confidence\s+X\s", capsys.readouterr().out)


@pytest.mark.parametrize("command", ["adapt", "bench"])
def test_every_model_option_says_what_it_takes(command, capsys, monkeypatch):
    """segment, batch and evaluate list the forms --model takes; adapt said "Base model.", bench
    "Model to compare against SAM ViT-B." for the same specification."""
    monkeypatch.setenv("COLUMNS", "200")
    assert run_cli([command, "--help"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "--model" in x)
    assert "sam_vit_b=PATH" in line and "checkpoint path" in line


def _one_case(folder):
    import nibabel as nib

    folder.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 3), np.float32), np.eye(4)), str(folder / "p1.nii.gz"))
    return folder


@pytest.mark.parametrize("command", ["demo", "batch"])
def test_a_misspelt_device_is_refused_before_any_work(command, tmp_path, capsys):
    """``--device gpu``: one line naming the devices, nothing written. The demo wrote its study
    before the model refused the device; a batch failed every case, one after another."""
    out = tmp_path / "out"
    argv = {"demo": ["demo", "-o", str(out)],
            "batch": ["batch", str(_one_case(tmp_path / "in")), "--auto", "-o", str(out)]}[command]
    assert run_cli([*argv, "--device", "gpu"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: unknown device 'gpu'; allowed: cpu, cuda, cuda:N (N: a GPU's index, from 0)"
    assert not out.exists()


def test_a_misspelt_prompt_mode_is_named_before_the_pairs_are_read(tmp_path, capsys):
    """``evaluate --prompt boxes``: the modes, not an error about the pairs file read first."""
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "missing.csv"), "--prompt", "boxes", "-o", str(tmp_path / "r.json")]) == 1
    assert capsys.readouterr().err.strip() == "error: --prompt must be one of box, point, key-slice, auto, got 'boxes'"


def test_train_takes_cuda_n_as_the_other_commands_and_checks_for_a_gpu_first(tmp_path, capsys):
    """``train --device cuda:0`` was "unknown device" (the other commands take it); without a GPU
    it is now said before any work."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: cuda:0 would train")
    out = tmp_path / "run"
    assert run_cli(["train", "--phantoms", "4", "-o", str(out), "--device", "cuda:0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: --device cuda was requested but no CUDA GPU is available here" and not out.exists()


@pytest.mark.parametrize("command", ["compare", "evaluate", "info", "batch"])
def test_description_paragraphs_wrap_as_one_text(command, capsys, monkeypatch):
    """typer 0.29 kept each docstring line break inside a paragraph, and rich wrapped the lines
    again: at 80 columns ``compare --help`` read "... else by equal" / "case id;" / "unpaired
    cases are listed. ... may not be" / "real: another". Each paragraph now fills its lines."""
    monkeypatch.setenv("COLUMNS", "80")
    assert run_cli([command, "--help"]) == 0
    out = capsys.readouterr().out
    head = out[:out.index("╭")].splitlines()  # the description, above the first panel
    lines = [line.strip() for line in head]
    for line, following in zip(lines, lines[1:]):
        if line and following:  # a line followed by more of its paragraph is (nearly) full
            assert len(line) > 80 - 2 - 20, (line, following)
