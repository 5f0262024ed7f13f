"""medseg.io.geometry: LPS/RAS, DICOM and ITK affines, axis orders, grid checks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from medseg.errors import GeometryError
from medseg.io import Volume, check_same_grid, slice_positions_mm
from medseg.io.geometry import (
    affine_from_dicom,
    affine_from_itk,
    affine_lps_to_ras,
    lps_to_ras,
    medseg_to_nifti,
    nifti_to_medseg,
    sitk_geometry_from_affine,
)
from medseg.io.volume import affine_from_spacing


def _oblique_ras_affine() -> np.ndarray:
    rot, _ = np.linalg.qr(np.array([[0.9, 0.3, 0.1], [-0.2, 0.8, 0.4], [0.1, -0.5, 0.9]]))
    aff = np.eye(4)
    aff[:3, :3] = rot * np.array([1.25, 1.5, 8.0])
    aff[:3, 3] = [12.0, -30.5, 44.0]
    return aff


def test_affine_from_dicom_matches_the_dicom_formula():
    ipp, iop, ps = [-40.0, 25.0, 60.0], [0.8, 0.6, 0.0, -0.36, 0.48, -0.8], [1.5, 1.25]
    step = 8.0 * np.cross(iop[:3], iop[3:])
    aff = affine_from_dicom(ipp, iop, ps, step)
    r, c, k = 3, 7, 2  # row, column, slice
    lps = np.array(ipp) + c * ps[1] * np.array(iop[:3]) + r * ps[0] * np.array(iop[3:]) + k * step
    assert np.allclose(aff @ [c, r, k, 1], [*lps_to_ras(lps), 1])
    assert np.allclose(np.linalg.norm(aff[:3, :3], axis=0), [1.25, 1.5, 8.0])


def test_lps_ras_flip_is_an_involution():
    aff = _oblique_ras_affine()
    assert np.allclose(affine_lps_to_ras(affine_lps_to_ras(aff)), aff)
    assert np.allclose(lps_to_ras([1.0, 2.0, 3.0]), [-1.0, -2.0, 3.0])


@pytest.mark.parametrize("ndim", [3, 4])
def test_itk_geometry_round_trip(ndim):
    aff = _oblique_ras_affine()
    origin, spacing, direction = sitk_geometry_from_affine(aff, ndim=ndim)
    assert len(origin) == ndim and len(direction) == ndim * ndim
    assert np.allclose(affine_from_itk(origin, spacing, direction), aff)


def test_affine_from_itk_rejects_zero_spacing():
    with pytest.raises(GeometryError, match="spacing"):
        affine_from_itk((0, 0, 0), (1.0, 0.0, 1.0), np.eye(3).ravel())


def test_nifti_axis_order_round_trip():
    xyzt = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    tzyx = nifti_to_medseg(xyzt)
    assert tzyx.shape == (5, 4, 3, 2) and tzyx[4, 3, 2, 1] == xyzt[1, 2, 3, 4]
    assert np.array_equal(medseg_to_nifti(tzyx, 4), xyzt)
    assert nifti_to_medseg(np.zeros((6, 7))).shape == (1, 1, 7, 6)
    assert medseg_to_nifti(np.zeros((1, 1, 7, 6)), 2).shape == (6, 7)
    with pytest.raises(GeometryError):
        medseg_to_nifti(np.zeros((2, 1, 7, 6)), 3)


def test_slice_positions_along_the_normal():
    aff = _oblique_ras_affine()
    vol = Volume(np.zeros((1, 5, 4, 4), np.float32), aff)
    pos = slice_positions_mm(vol)
    assert np.allclose(np.diff(pos), 8.0)


def test_check_same_grid():
    img = Volume(np.zeros((3, 4, 5, 6), np.float32), affine_from_spacing((8.0, 1.5, 1.5)))
    one_frame = img.with_array(np.zeros((1, 4, 5, 6), np.uint8))
    check_same_grid(img, one_frame, "labels.nii.gz")  # a 3-D label pairs with one frame
    shifted = Volume(one_frame.array, affine_from_spacing((8.0, 1.5, 1.5), (0.0, 0.0, 0.5)))
    with pytest.raises(GeometryError, match="labels.nii.gz: grid does not match"):
        check_same_grid(img, shifted, "labels.nii.gz")
    other_shape = Volume(np.zeros((1, 4, 5, 7), np.uint8), img.affine)
    with pytest.raises(GeometryError, match=r"\(4, 5, 7\)"):
        check_same_grid(img, other_shape, "x")
    with pytest.raises(GeometryError, match="frames"):
        check_same_grid(img, img.with_array(np.zeros((2, 4, 5, 6), np.uint8)), "x")


def test_import_medseg_io_is_light():
    code = (
        "import sys, medseg.io; heavy = [m for m in ('pydicom', 'nibabel', 'SimpleITK', 'PIL', 'imageio', "
        "'highdicom', 'torch', 'av') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
