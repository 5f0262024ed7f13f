"""``--series`` with an input that holds no DICOM series (a NIfTI, an MHA, a PNG, a folder holding
one such file, a zip of one): ``info`` and ``segment`` refuse it in one line that names the input
and starts as the zip's refusal did; ``batch`` refuses it when no case of INPUT_DIR is a DICOM
folder or zip (it was ignored, every case segmented as if it were not given), and keeps ignoring
it for the image-file cases beside DICOM folders (docs/batch.md)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from io_synth import write_cine_series

from medseg.batch import discover_cases
from medseg.cli import run_cli
from medseg.errors import MedsegError

DICOM_ONLY = "--series picks a series of a DICOM folder (or a zip of one); "


def _nifti(path: Path) -> Path:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.arange(24 * 20 * 2, dtype=np.int16).reshape(24, 20, 2) % 97, np.eye(4)), path)
    return path


def _png(path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.arange(24 * 20).reshape(24, 20) % 200).astype(np.uint8)).save(path)
    return path


def _mha(path: Path) -> Path:
    import SimpleITK as sitk

    sitk.WriteImage(sitk.GetImageFromArray(np.ones((2, 24, 20), np.int16)), str(path))
    return path


def _zip_of_nifti(path: Path) -> Path:
    nii = _nifti(path.parent / "zipped" / "a.nii.gz")
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(nii, "a.nii.gz")
    return path


# (how the input is made, the end of the refusal after the input's name)
INPUTS = {
    "nifti": (lambda d: _nifti(d / "a.nii.gz"), "is not a folder"),
    "mha": (lambda d: _mha(d / "a.mha"), "is not a folder"),
    "png": (lambda d: _png(d / "a.png"), "is not a folder"),
    "zip_of_nifti": (lambda d: _zip_of_nifti(d / "a.zip"), "holds one image file"),
    "folder_of_nifti": (lambda d: _nifti(d / "case" / "a.nii.gz").parent, "holds one image file (a.nii.gz), no DICOM images"),
    "folder_of_png": (lambda d: _png(d / "case" / "a.png").parent, "holds one image file (a.png), no DICOM images"),
}


def _error(capsys) -> str:
    got = capsys.readouterr()
    return " ".join((got.out + got.err).split())


@pytest.mark.parametrize("kind", list(INPUTS))
def test_info_refuses_series_for_an_input_without_dicom_series(tmp_path, capsys, kind):
    make, end = INPUTS[kind]
    path = make(tmp_path)
    assert run_cli(["info", str(path), "--series", "3"]) == 1
    assert f"error: {DICOM_ONLY}{path} {end}" in _error(capsys)


@pytest.mark.parametrize("kind", ["folder_of_nifti", "folder_of_png", "nifti"])
def test_segment_refuses_series_for_an_input_without_dicom_series(tmp_path, capsys, kind):
    make, end = INPUTS[kind]
    path = make(tmp_path)
    out = tmp_path / "out" / "labels.nii.gz"
    assert run_cli(["segment", str(path), "--auto", "--series", "3", "-o", str(out)]) == 1
    assert f"error: {DICOM_ONLY}{path} {end}" in _error(capsys)
    assert not out.exists()


def test_a_folder_of_several_image_files_is_named_in_the_refusal(tmp_path, capsys):
    for name in ("a.nii.gz", "b.nii.gz", "c.nii.gz", "d.nii.gz"):
        _nifti(tmp_path / "case" / name)
    assert run_cli(["info", str(tmp_path / "case"), "--series", "sax"]) == 1
    assert f"{DICOM_ONLY}{tmp_path / 'case'} holds 4 image files (a.nii.gz, b.nii.gz, c.nii.gz, ...), no DICOM images" in _error(capsys)


def test_batch_refuses_series_when_no_case_is_a_dicom_folder(tmp_path, capsys):
    """INPUT_DIR of image files only (one in a sub-folder): refused before OUT_DIR is made;
    the same folder without --series is a batch of two cases."""
    inp = tmp_path / "in"
    _nifti(inp / "p1" / "p1.nii.gz")
    _png(inp / "echo.png")
    out = tmp_path / "out"
    assert run_cli(["batch", str(inp), "-o", str(out), "--auto", "--series", "3"]) == 1
    assert f"error: {DICOM_ONLY}{inp} holds none: its 2 case(s) are image files (echo.png, p1/p1.nii.gz)" in _error(capsys)
    assert not out.exists()
    assert [c.case for c in discover_cases(inp)] == ["echo", "p1"]
    with pytest.raises(MedsegError, match="holds none"):
        discover_cases(inp / "p1", series="3")


def test_batch_keeps_series_beside_a_dicom_folder(tmp_path):
    """A DICOM folder case beside a NIfTI: --series is for the folder, the NIfTI case ignores it."""
    inp = tmp_path / "in"
    write_cine_series(inp / "cine", n_slices=2, n_phases=1)
    _nifti(inp / "p1.nii.gz")
    assert [c.case for c in discover_cases(inp, series="5")] == ["cine", "p1"]
