"""`medseg batch --resume` with nothing left to segment imported torch (~3 s on a 2-core CPU) only to
say whether a CUDA GPU sat unused: the note now comes once a case is segmented in the batch's own
process (torch loaded then anyway), and a run that segments nothing imports no torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from batch_data import MAP, write_case

from medseg.cli import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NOTE = "note: a CUDA GPU is available here and this run uses the cpu"


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> tuple[Path, Path]:
    studies = tmp_path_factory.mktemp("gpu_note") / "in"
    write_case(studies, "c1", seed=4, shape=(48, 48), n_slices=3)
    out = studies.parent / "out"
    assert run_cli(_argv(studies, out)) == 0
    return studies, out


def _argv(studies: Path, out: Path, *extra: str) -> list[str]:
    return ["batch", str(studies), "-o", str(out), "--prompts-from", str(studies), "--label-map", MAP, *extra]


def test_a_resume_with_nothing_left_imports_no_torch(done):
    studies, out = done
    code = ("import sys; from medseg.cli import run_cli; "
            f"rc = run_cli({_argv(studies, out, '--resume')!r}); print(rc, 'torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.stdout.split()[-2:] == ["0", "False"], run.stderr


def test_the_gpu_note_comes_once_a_case_is_segmented(done, monkeypatch, capsys):
    import torch

    studies, out = done
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    capsys.readouterr()
    assert run_cli(_argv(studies, out, "--resume")) == 0  # nothing segmented: no note
    assert NOTE not in " ".join(capsys.readouterr().err.split())
    (out / "c1.nii.gz").unlink()
    assert run_cli(_argv(studies, out, "--resume")) == 0
    assert " ".join(capsys.readouterr().err.split()).count(NOTE) == 1
