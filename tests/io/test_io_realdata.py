"""Real data (../shared/data): Sunnybrook DICOM cine and ACDC NIfTI. Skipped when absent."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medseg.io import check_same_grid, read_label_volume, read_volume, slice_positions_mm, write_labels
from medseg.io.geometry import affine_from_sitk, lps_to_ras

pytestmark = pytest.mark.realdata


def _header(path: str) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, stop_before_pixels=True)


def test_sunnybrook_cine_folder(shared_data, tmp_path):
    vol = read_volume(shared_data / "sunnybrook" / "dicoms" / "SCD0000101")
    assert vol.shape == (2, 9, 256, 256) and vol.modality == "MR"
    assert vol.spacing[1:] == pytest.approx((1.367188, 1.367188), abs=1e-5)
    assert np.allclose(np.diff(slice_positions_mm(vol)), vol.spacing[0], atol=1e-3)
    row, col = 17, 200
    for t in range(2):
        triggers = []
        for z in range(9):
            ds = _header(vol.meta["files"][t][z])
            ipp = np.asarray(ds.ImagePositionPatient, dtype=float)
            iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
            dy, dx = (float(v) for v in ds.PixelSpacing)
            lps = ipp + col * dx * iop[:3] + row * dy * iop[3:]
            assert np.allclose(vol.index_to_world([[z, row, col]])[0], lps_to_ras(lps), atol=2e-3)
            triggers.append(float(ds.TriggerTime))
        assert max(triggers) - min(triggers) < 100  # one phase per t, despite per-slice jitter
    assert vol.frame_times_s[0] < vol.frame_times_s[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = pydicom.dcmread(vol.meta["files"][1][4]).pixel_array
    assert np.array_equal(vol.array[1, 4], raw.astype(np.float32))

    lab = np.zeros(vol.grid_shape, np.uint8)
    lab[3:6, 100:140, 110:150] = 1
    out = write_labels(lab, vol, tmp_path / "scd101_lv.nii.gz", "lv=1")[0]
    back = read_label_volume(out)
    check_same_grid(vol, back, out.name)
    seg = write_labels(lab, vol, tmp_path / "scd101_lv.dcm", "lv=1")[0]
    assert _header(str(seg)).Modality == "SEG"


def test_acdc_nifti(shared_data, tmp_path):
    case = shared_data / "acdc" / "training" / "patient001"
    image_path, gt_path = case / "patient001_frame01.nii.gz", case / "patient001_frame01_gt.nii.gz"
    vol = read_volume(image_path)
    zooms = nib.load(image_path).header.get_zooms()
    assert vol.spacing == pytest.approx((zooms[2], zooms[1], zooms[0]))
    assert vol.spacing == pytest.approx((10.0, 1.5625, 1.5625))
    assert np.allclose(vol.affine, affine_from_sitk(sitk.ReadImage(str(image_path))), atol=1e-5)
    assert np.allclose(vol.affine, nib.load(image_path).header.get_qform(), atol=1e-6)
    gt = read_label_volume(gt_path)
    assert np.issubdtype(gt.array.dtype, np.integer) and set(np.unique(gt.array)) <= {0, 1, 2, 3}
    check_same_grid(vol, gt, gt_path.name)

    out = write_labels(gt.array[0], vol, tmp_path / "p001_gt.nii.gz", "rv=1,myo=2,lv=3")[0]
    src, back = nib.load(gt_path), nib.load(out)
    assert back.shape == src.shape
    assert np.array_equal(back.affine, src.affine)
    assert np.array_equal(back.header.get_qform(), src.header.get_qform())
    assert np.array_equal(np.asanyarray(back.dataobj), np.asanyarray(src.dataobj).astype(np.uint8))
    assert read_label_volume(out).same_grid(vol)
