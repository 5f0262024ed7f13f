"""`medseg batch DIR --auto --frames ...`: each cine segmented on the frames asked for (ED and ES
found per case), the frames part of the settings ``--resume`` compares, and --frames refused
without --auto before any case runs."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
from batch_data import read_labels

from medseg.cli._app import run_cli


def _cine(folder, case: str, seed: int):
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=5, n_slices=3, shape=(96, 96), spacing=(10.0, 1.8, 1.8), seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 4), ph.image.affine), str(folder / f"{case}.nii.gz"))
    return ph


def test_batch_frames_and_resume(tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    _cine(src, "c1", seed=1)
    assert run_cli(["batch", str(src), "-o", str(out), "--auto", "--frames", "1, 3"]) == 0
    labels = read_labels(out / "c1.nii.gz")
    assert labels.shape[0] == 5 and [t for t in range(5) if labels[t].any()] == [1, 3]
    assert json.loads((out / "c1.json").read_text())["provenance"]["settings"]["frames"] == [1, 3]
    assert run_cli(["batch", str(src), "-o", str(out), "--auto", "--frames", "1,3", "--resume"]) == 0  # the same frames: kept
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["n_skipped"], summary["settings"]["frames"]) == (1, "1,3")
    assert run_cli(["batch", str(src), "-o", str(out), "--auto", "--frames", "0,2", "--resume"]) == 0  # other frames: redone
    assert json.loads((out / "summary.json").read_text())["n_ok"] == 1
    assert [t for t in range(5) if read_labels(out / "c1.nii.gz")[t].any()] == [0, 2]


def test_batch_frames_needs_auto(tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    _cine(src, "c1", seed=1)
    capsys.readouterr()
    assert run_cli(["batch", str(src), "-o", str(out), "--frames", "ed,es", "--prompts-from", str(src), "--label-map", "lv=1"]) == 1
    err = capsys.readouterr().err
    assert "--frames picks the frames of the zero-click pass: add --auto" in err
    assert not out.exists()
