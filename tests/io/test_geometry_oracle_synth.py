"""medseg's geometry against SimpleITK, nibabel and the DICOM standard on synthetic files the
geometry oracle (benchmarks/geometry_oracle.py) checks: an oblique, shuffled DICOM cine (GDCM's
order, each file's ImagePositionPatient, DICOM SEG frames), oblique and mirrored NIfTI / MHA / NRRD,
2-D images; and NIfTI headers whose negative voxel width or qfac nibabel and ITK read differently
(medseg's NIfTI labels of them lay mirrored in ITK, 2 x their distance from the axis away)."""

from __future__ import annotations

import gzip
import struct
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from medseg.io import check_same_grid, read_label_volume, read_volume, write_labels

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import geometry_oracle as oracle  # noqa: E402
import io_synth  # noqa: E402  (tests/io, on the path as for the other io tests)

TOL_MM = 1e-3
#: orthonormal columns: an oblique short-axis-like orientation (RAS)
ROT = np.array([[0.8, 0.6, 0.0], [-0.36, 0.48, -0.8], [-0.48, 0.64, 0.6]]).T


@pytest.fixture(autouse=True)
def _quiet_itk():
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    yield
    sitk.ProcessObject_SetGlobalWarningDisplay(True)


def _assert_passed(rows):
    bad = [r for r in rows if not r.passed(TOL_MM)]
    assert rows and not bad, "\n".join(f"{r.case} {r.check}: {r.max_mm:.3g} mm, ok={r.ok} {r.note}" for r in bad)


def _affine(spacing=(1.2, 1.5, 8.0), flip_axis=None) -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] = ROT * np.asarray(spacing)
    if flip_axis is not None:
        a[:3, flip_axis] *= -1
    a[:3, 3] = (10.0, -20.0, 30.0)
    return a


def _data(shape=(9, 7, 5)) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 1000, size=shape).astype(np.int16)


def test_oblique_shuffled_dicom_cine(tmp_path):
    """GDCM's sort of each frame's files, every file's corners by PS3.3 C.7.6.2.1.1, one file alone,
    and labels in every format, the SEG's frames at their source slices (the last phase's)."""
    io_synth.write_cine_series(tmp_path / "cine", n_slices=5, n_phases=3, rows=12, cols=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = oracle.check_dicom("synth", tmp_path / "cine")
        rows += oracle.check_writes("synth", read_volume(tmp_path / "cine"), "cine", tmp_path)
    _assert_passed(rows)
    assert any(r.check.startswith("write SEG frame 2") for r in rows)


@pytest.mark.parametrize("how", ["sform+qform", "qform qfac -1", "sform det<0", "4-D", "2-D in-plane rotation"])
def test_nifti_oblique_and_mirrored(tmp_path, how):
    data, aff = _data(), _affine(flip_axis=2 if "det" in how or "qfac" in how else None)
    if how == "4-D":
        data = np.stack([data, data + 1, data + 2], axis=-1)
    if how.startswith("2-D"):
        data, aff = data[..., 0], np.diag([1.2, 1.5, 1.0, 1.0])
        aff[:2, :2] = np.array([[0.6, -0.8], [0.8, 0.6]]) @ np.diag([1.2, 1.5])
    img = nib.Nifti1Image(data, aff)
    qform, sform = how != "sform det<0", how != "qform qfac -1"
    img.set_qform(aff if qform else None, int(qform))
    img.set_sform(aff if sform else None, int(sform))
    path = tmp_path / "image.nii.gz"
    nib.save(img, str(path))
    rows = oracle.check_nifti("synth", path) + oracle.check_writes("synth", read_volume(path), how, tmp_path)
    _assert_passed(rows)


@pytest.mark.parametrize("ending", [".mha", ".nrrd"])
@pytest.mark.parametrize("flip", [None, 1])
def test_itk_files_oblique_and_mirrored(tmp_path, ending, flip):
    direction = ROT @ np.diag([1, -1 if flip else 1, 1])
    img = sitk.GetImageFromArray(_data().transpose(2, 1, 0).copy())
    img.SetSpacing((1.2, 1.5, 8.0))
    img.SetOrigin((10.0, -20.0, 30.0))
    img.SetDirection(tuple((np.diag([-1.0, -1.0, 1.0]) @ direction).ravel()))  # LPS
    path = tmp_path / f"image{ending}"
    sitk.WriteImage(img, str(path))
    vol = read_volume(path)
    zyx = oracle.sample_points(vol.grid_shape)
    assert oracle.worst(oracle.medseg_world(vol, zyx), oracle.sitk_world(img, zyx[:, ::-1])) < TOL_MM
    _assert_passed(oracle.check_writes("synth", vol, path.name, tmp_path))


def test_png_is_placed_as_its_convention_says(tmp_path):
    """A PNG has no geometry: medseg places it where ITK does (LPS identity); its labels in every
    format lie where medseg and ITK put its pixels."""
    path = tmp_path / "echo.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, size=(20, 30)).astype(np.uint8)).save(path)
    rows = oracle.check_raster("synth", path) + oracle.check_writes("synth", read_volume(path), path.name, tmp_path)
    _assert_passed(rows)


# -- NIfTI pixdim signs: nibabel takes |pixdim| (and qfac 1), ITK mirrors that axis ---------------
PIXDIM, QFORM_CODE, SFORM_CODE = 76, 252, 254  # byte offsets in a NIfTI-1 header


def _with_header_bytes(tmp_path: Path, edits: list[tuple[int, str, float]]) -> Path:
    """An oblique .nii whose header bytes are then edited (nibabel will not write a negative pixdim)."""
    aff = _affine()
    img = nib.Nifti1Image(_data(), aff)
    img.set_qform(aff, 1)
    img.set_sform(aff, 1)
    path = tmp_path / "image.nii"
    nib.save(img, str(path))
    raw = bytearray(path.read_bytes())
    for offset, fmt, value in edits:
        struct.pack_into(fmt, raw, offset, value)
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("edits, axis", [
    ([(PIXDIM + 4, "<f", -1.2), (SFORM_CODE, "<h", 0)], "x"),  # qform only, pixdim[1] < 0
    ([(PIXDIM + 4, "<f", -1.2)], "x"),  # sform and qform: ITK mirrors x all the same
    ([(PIXDIM + 12, "<f", -8.0), (SFORM_CODE, "<h", 0)], "z"),
    ([(PIXDIM, "<f", -0.5), (SFORM_CODE, "<h", 0)], "z (qfac)"),  # qfac neither 1 nor -1
], ids=["qform-pixdim1", "sform-pixdim1", "qform-pixdim3", "qform-qfac"])
def test_negative_pixdim_labels_lie_on_the_image_in_itk(tmp_path, edits, axis):
    path = _with_header_bytes(tmp_path, edits)
    vol = read_volume(path)
    lab = oracle.blob(vol.grid_shape)
    out = write_labels(lab, vol, tmp_path / "labels.nii.gz", oracle.LABEL_MAP)[0]
    image = sitk.ReadImage(str(path))
    in_itk = {int(v): oracle.sitk_world(image, np.argwhere(lab == v)[:, ::-1]) for v in (1, 2, 3)}
    n, dev, same = oracle.compare(oracle.read_back_sitk(out), in_itk)
    assert same and n == int(np.count_nonzero(lab)) and dev < TOL_MM, f"{dev:.3g} mm"  # was 2 x the blob's distance from the axis
    raw_in = struct.unpack_from("<4f", path.read_bytes(), PIXDIM)
    assert struct.unpack_from("<4f", gzip.open(out).read(PIXDIM + 16), PIXDIM) == raw_in  # as the image's file holds them
    n, dev, same = oracle.compare(oracle.read_back_nibabel(out), oracle.expected(vol, lab))
    assert same and dev < TOL_MM
    back = read_label_volume(out)
    check_same_grid(vol, back, out.name)
    assert np.array_equal(back.array[0], lab)
    # medseg says where it and ITK part (its positions and .mha / .nrrd labels are nibabel's reading)
    assert "ITK-based tools" in vol.meta["geometry_note"] and f"mirror the image in {axis}" in vol.meta["geometry_note"]


def test_positive_pixdim_headers_get_no_note_and_keep_nibabels_values(tmp_path):
    path = _with_header_bytes(tmp_path, [(PIXDIM, "<f", 0.0)])  # qfac 0: 1 for nibabel and ITK alike
    vol = read_volume(path)
    assert "nifti_raw_pixdim" not in vol.meta and "mirror" not in (vol.meta.get("geometry_note") or "")
    out = write_labels(oracle.blob(vol.grid_shape), vol, tmp_path / "labels.nii.gz", oracle.LABEL_MAP)[0]
    assert nib.load(str(out)).header["pixdim"][0] == 1.0
