"""Regressions from the I/O fuzzing review: NIfTI unit codes and non-finite transforms, ITK
images without spacing or with a direction matrix that is not orthonormal, messages without
numpy reprs, and labels stored on the image's grid with their axes reordered."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medseg.errors import GeometryError, ImageReadError
from medseg.io import Volume, check_same_grid, read_label_volume, read_volume, write_labels
from medseg.io.geometry import affine_from_itk, affine_from_sitk
from medseg.io.volume import affine_from_spacing

SPACING_XYZ = (1.5625, 1.25, 10.0)


def _image(shape_zyx=(3, 12, 14)) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 500, shape_zyx).astype(np.int16)


# -- NIfTI xyzt_units ------------------------------------------------------------------
def _nifti(path, code: int, ndim: int = 3):
    data = np.random.default_rng(1).integers(0, 500, (14, 12, 3, 4)[:ndim]).astype(np.int16)
    img = nib.Nifti1Image(data, np.diag([*SPACING_XYZ, 1.0]))
    img.header.set_zooms((*SPACING_XYZ, 40.0)[:ndim])
    img.header["xyzt_units"] = code
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize("code", [4, 7, 255, 4 | 8])
def test_an_undefined_nifti_space_unit_reads_as_millimetres_with_a_note(tmp_path, code):
    """xyzt_units with spatial code 4-7 raised KeyError inside nibabel ("unexpected KeyError:
    np.uint8(4)"); ITK reads such a header in millimetres, and so does medseg now, saying so."""
    path = _nifti(tmp_path / "u.nii", code)
    vol = read_volume(path)
    assert np.allclose(vol.spacing, SPACING_XYZ[::-1])
    assert np.allclose(vol.spacing[::-1], sitk.ReadImage(str(path)).GetSpacing())  # as SimpleITK reads it
    note = vol.meta["geometry_note"]
    assert f"spatial unit code {code & 7}" in note and "millimetres" in note and "2 mm" in note
    assert vol.meta["geometry_conflict"] is True


def test_an_undefined_nifti_time_unit_leaves_the_frame_times_out_with_a_note(tmp_path):
    vol = read_volume(_nifti(tmp_path / "t.nii", 2 | 56, ndim=4))  # mm, time code 56 (undefined)
    assert vol.frame_times_s is None and "time code 56" in vol.meta["time_note"]
    assert "geometry_note" not in vol.meta
    ok = read_volume(_nifti(tmp_path / "ok.nii", 2 | 16, ndim=4))  # mm, ms: as before
    assert np.allclose(ok.frame_times_s, np.arange(4) * 0.04) and "time_note" not in ok.meta


# -- NIfTI transforms holding NaN ------------------------------------------------------
def test_a_nan_in_the_sform_is_named(tmp_path):
    img = nib.Nifti1Image(np.zeros((8, 8, 2), np.int16), np.diag([*SPACING_XYZ, 1.0]))
    path = tmp_path / "nan.nii"
    nib.save(img, str(path))
    raw = bytearray(path.read_bytes())
    raw[280 + 4 * 3 : 280 + 4 * 4] = np.float32(np.nan).tobytes()  # srow_x[3]
    path.write_bytes(bytes(raw))
    with pytest.raises(GeometryError) as err:
        read_volume(path)
    msg = str(err.value)
    assert "srow_x[3]" in msg and "NaN or infinite" in msg and "shape" not in msg and "\n" not in msg


def test_a_volume_with_a_nan_affine_says_where():
    aff = affine_from_spacing((10.0, 1.25, 1.5))
    aff[1, 3] = np.inf
    with pytest.raises(GeometryError, match=re.escape("NaN or infinite values (at row, column [1, 3])")):
        Volume(array=np.zeros((1, 1, 4, 4)), affine=aff)


def test_zero_spacing_is_reported_in_plain_numbers():
    aff = affine_from_spacing((10.0, 1.5625, 1.0))
    aff[0, 0] = 0.0
    with pytest.raises(GeometryError) as err:
        Volume(array=np.zeros((1, 1, 4, 4)), affine=aff)
    assert "np." not in str(err.value) and "x, y, z = 0, 1.5625, 10 mm" in str(err.value)
    with pytest.raises(GeometryError) as err:
        affine_from_itk((0, 0, 0), (np.float64(1.0), np.float64(0.0), np.float64(2.0)), np.eye(3).ravel())
    assert "np." not in str(err.value) and "[1, 0, 2]" in str(err.value)


# -- ITK images without spacing --------------------------------------------------------
def _write_itk(path, spacing=(1.5625, 1.25, 10.0), direction=None):
    img = sitk.GetImageFromArray(_image())
    img.SetSpacing(spacing)
    if direction is not None:
        img.SetDirection(direction)
    sitk.WriteImage(img, str(path))
    return path


def _edit_header(path, pattern: bytes, repl: bytes) -> None:
    raw = path.read_bytes()
    edited, n = re.subn(pattern, repl, raw, count=1)
    assert n == 1, pattern
    path.write_bytes(edited)


@pytest.mark.parametrize("name, pattern", [("a.mha", rb"ElementSpacing = [^\n]*\n"),
                                           ("a.nrrd", rb"space directions: [^\n]*\n")])
def test_an_itk_header_without_spacing_reads_with_spacing_unknown(tmp_path, name, pattern):
    """SimpleITK reads 1 mm for an MHA without ElementSpacing or a NRRD without space directions /
    spacings; medseg took that for a measured spacing (spacing_known True)."""
    path = _write_itk(tmp_path / name)
    _edit_header(path, pattern, b"")
    vol = read_volume(path)
    assert vol.spacing_known is False and np.allclose(vol.spacing, 1.0)
    assert "no voxel spacing" in vol.meta["geometry_note"]
    # a header that states 1 mm is a measured 1 mm
    assert read_volume(_write_itk(tmp_path / f"one{path.suffix}", spacing=(1.0, 1.0, 1.0))).spacing_known is True


def test_labels_of_an_image_without_spacing_read_back_with_spacing_unknown(tmp_path):
    path = _write_itk(tmp_path / "a.mha")
    _edit_header(path, rb"ElementSpacing = [^\n]*\n", b"")
    vol = read_volume(path)
    out = write_labels(np.ones(vol.grid_shape, np.uint8), vol, tmp_path / "lab.nii.gz", "lv=1")
    assert read_label_volume(out[0]).spacing_known is False


# -- ITK direction matrices ------------------------------------------------------------
@pytest.mark.parametrize("matrix, words", [
    (b"2 0 0 0 2 0 0 0 2", "axes of length [2, 2, 2], not 1"),
    (b"1 0 0 0.5 0.5 0 0 0 1", "not 1"),
    (b"0 0 0 0 0 0 0 0 0", "singular"),
    (b"1 0 0 1 0 0 0 0 1", "singular"),
])
def test_an_mha_direction_matrix_that_is_not_orthonormal_is_refused(tmp_path, matrix, words):
    """TransformMatrix 2 0 0 0 2 0 0 0 2 read as 3.125 mm pixels where SimpleITK reports 1.5625;
    a zero one said "SimpleITK could not read it as an image (0 0 0)"."""
    path = _write_itk(tmp_path / "a.mha")
    _edit_header(path, rb"TransformMatrix = [^\n]*", b"TransformMatrix = " + matrix)
    with pytest.raises(GeometryError) as err:
        read_volume(path)
    assert words in str(err.value) and "direction matrix" in str(err.value) and "\n" not in str(err.value)


def test_a_nrrd_whose_row_and_column_axes_are_not_perpendicular_is_refused(tmp_path):
    path = _write_itk(tmp_path / "a.nrrd")
    _edit_header(path, rb"space directions: [^\n]*", b"space directions: (1.5625,0,0) (1.25,1.25,0) (0,0,10)")
    with pytest.raises(GeometryError, match="45.00 degrees apart"):
        read_volume(path)


def test_the_cli_says_a_bad_direction_matrix_in_one_line(tmp_path):
    path = _write_itk(tmp_path / "a.mha")
    _edit_header(path, rb"TransformMatrix = [^\n]*", b"TransformMatrix = 2 0 0 0 2 0 0 0 2")
    run = subprocess.run([sys.executable, "-m", "medseg", "info", str(path)], capture_output=True, text=True, timeout=120)
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert run.returncode != 0 and len(lines) == 1 and "direction matrix" in lines[0], run.stderr


@pytest.mark.parametrize("ext", ["mha", "nrrd", "nii.gz"])
def test_oblique_files_simpleitk_writes_still_read(tmp_path, ext):
    """The tolerance (1e-3) passes what SimpleITK writes (its files are orthonormal within 1e-7)."""
    for seed in range(8):
        q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
        path = _write_itk(tmp_path / f"o{seed}.{ext}", spacing=(0.7, 1.3, 8.0), direction=tuple(q.ravel()))
        vol = read_volume(path)
        assert np.allclose(vol.spacing, (8.0, 1.3, 0.7), atol=1e-4)
        assert np.allclose(vol.affine, affine_from_sitk(sitk.ReadImage(str(path))))


@pytest.mark.parametrize("ext", ["mha", "nrrd"])
def test_labels_of_a_sheared_stack_still_read_back_from_mha_and_nrrd(tmp_path, ext):
    """A stack whose slices drift in-plane (gantry tilt) has a leaning slice axis; medseg writes
    its labels with that direction matrix and must read them back on the image's grid."""
    aff = affine_from_spacing((10.0, 1.5, 1.5))
    aff[0, 2] = 2.0
    like = Volume(array=np.zeros((1, 3, 8, 8), np.int16), affine=aff)
    out = write_labels(np.ones((3, 8, 8), np.uint8), like, tmp_path / f"lab.{ext}", "lv=1")
    check_same_grid(like, read_label_volume(out[0]), "lab")


def test_itk_refusal_of_a_singular_direction_is_worded():
    from medseg.io.itk import _unreadable

    e = RuntimeError("Exception thrown in SimpleITK ImageFileReader_Execute: itkImageBase.hxx:145:\n"
                     "ITK ERROR: Image(0x5): Bad direction, determinant is 0. Refusing to change direction from 1 0 0\n"
                     "0 1 0\n0 0 1\n to 0 0 0\n0 0 0\n0 0 0\n")
    err = _unreadable(Path("x.nrrd"), e, "")
    assert isinstance(err, GeometryError) and "singular" in str(err) and "(0 0 0)" not in str(err)
    assert isinstance(_unreadable(Path("x.nrrd"), RuntimeError("bad"), ""), ImageReadError)


# -- labels on the image's grid with reordered axes ------------------------------------
def test_labels_on_the_same_grid_with_reordered_axes_get_a_hint():
    aff = np.array([[-1.5, 0, 0, 40.0], [0, 0, 10.0, -20.0], [0, -1.25, 0, 15.0], [0, 0, 0, 1]])
    image = Volume(array=np.zeros((1, 3, 12, 14), np.int16), affine=aff)
    canon = nib.as_closest_canonical(nib.Nifti1Image(np.zeros((14, 12, 3), np.uint8), aff))
    labels = Volume(array=np.asarray(canon.dataobj).transpose(2, 1, 0)[None], affine=canon.affine)
    assert labels.grid_shape != image.grid_shape
    with pytest.raises(GeometryError) as err:
        check_same_grid(image, labels, "lab.nii.gz")
    assert "axes flipped or reordered" in str(err.value) and "\n" not in str(err.value)
    shifted = labels.with_array(labels.array, affine=labels.affine + np.c_[np.zeros((4, 3)), [1.0, 0, 0, 0]])
    with pytest.raises(GeometryError) as err:
        check_same_grid(image, shifted, "lab.nii.gz")
    assert "flipped" not in str(err.value)
