"""What README.md and docs/ say the commands do, where a sweep that ran them found otherwise.

README "Conventions": a file name that is not UTF-8 is read and written as it is and shown
escaped (``caf\\xe9.nii.gz``). ``measure`` and ``evaluate`` printed the raw name in their last
line: on a console that cannot write it (a UTF-8 locale's strict stdout, as pytest's capture) the
command wrote its outputs and then exited 1 with "unexpected UnicodeEncodeError".
"""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli

CAFE = os.fsdecode(b"caf\xe9")  # 'caf\udce9': how Python gives a Latin-1 file name's byte


@pytest.fixture(scope="module")
def one_phase(tmp_path_factory, phantom):
    """A phantom's first frame as a NIfTI image and its labels (with medseg's sidecar), both
    under names that are not UTF-8, and the label map."""
    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti

    d = tmp_path_factory.mktemp("names")
    lm = phantom.label_map.subset(["lv", "myo", "rv"])
    vol = phantom.image.with_array(phantom.image.array[:1], frame_times_s=None)
    image = d / f"{CAFE}.nii.gz"
    nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(image))
    labels = d / f"{CAFE}_gt.nii.gz"
    write_labels(phantom.labels[:1], vol, labels, lm)
    return image, labels, lm


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_measure_shows_a_non_utf8_report_name_escaped(one_phase, tmp_path, capsys):
    _, labels, _ = one_phase
    report = tmp_path / f"{CAFE}_report.json"
    assert run_cli(["measure", str(labels), "-o", str(report)]) == 0
    out = _one_line(capsys.readouterr().out)
    assert "-> " + str(tmp_path) + "/caf\\xe9_report.json" in out and "udce9" not in out
    assert os.fsencode(report.name) in os.listdir(os.fsencode(tmp_path))  # written under its own bytes


def test_evaluate_shows_non_utf8_names_escaped(one_phase, tmp_path, capsys):
    """``evaluate --predicted`` (no model run) with a result file and a predicted folder whose
    names are not UTF-8."""
    import shutil

    image, labels, lm = one_phase
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    shutil.copy(image, pairs / "p1.nii.gz")
    shutil.copy(labels, pairs / "p1_gt.nii.gz")
    predicted = tmp_path / f"pred_{CAFE}"
    predicted.mkdir()
    shutil.copy(labels, predicted / "p1.nii.gz")
    result = tmp_path / f"{CAFE}.json"
    assert run_cli(["evaluate", "--pairs", str(pairs), "--label-map", lm.to_string(), "--predicted", str(predicted), "-o", str(result)]) == 0
    err = _one_line(capsys.readouterr().err)
    assert "labels in " + str(tmp_path) + "/pred_caf\\xe9" in err and "wrote " + str(tmp_path) + "/caf\\xe9.json" in err
    assert "udce9" not in err


def test_segment_help_names_every_output_ending():
    """README: "The output's ending picks its format: .nii.gz, .nii, .mha, .nrrd, .png, .dcm or
    .seg.nrrd"; `segment --help` left .png out."""
    import inspect

    from medseg.cli.segment_cmd import segment_command

    text = inspect.signature(segment_command).parameters["out"].default.help
    for ending in (".nii.gz", ".nii,", ".mha", ".nrrd,", ".seg.nrrd", ".png", ".dcm"):
        assert ending in text, ending

