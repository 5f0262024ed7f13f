"""A NIfTI whose sform puts the row and column axes at 80 degrees (pixels are parallelograms):
medseg read it without a word, measured it right, and wrote .mha / .nrrd labels for it that it
then refused to read ("row and column axes 80.00 degrees apart"). Now the read notes it and
those outputs are refused before anything is written; NIfTI labels still are written."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medseg.errors import ImageWriteError
from medseg.io import read_label_volume, read_volume, write_labels


def _oblique(tmp_path, degrees: float):
    aff = np.diag([1.5, 1.5, 10.0, 1.0])
    a = np.radians(degrees)
    aff[:3, 1] = [1.5 * np.cos(a), 1.5 * np.sin(a), 0.0]
    img = nib.Nifti1Image(np.random.default_rng(0).random((32, 32, 4)).astype(np.float32), aff)
    img.set_qform(None, code=0)
    img.set_sform(aff, code=1)
    nib.save(img, tmp_path / "img.nii.gz")
    return read_volume(tmp_path / "img.nii.gz")


def test_oblique_pixels_are_noted_and_refused_where_they_cannot_be_held(tmp_path):
    vol = _oblique(tmp_path, 80.0)
    assert "80.00 degrees apart, not 90" in vol.meta["geometry_note"]
    lab = np.zeros(vol.grid_shape, np.uint8)
    lab[:, 10:20, 10:20] = 1
    for name in ("lab.mha", "lab.nrrd", "lab.seg.nrrd"):
        with pytest.raises(ImageWriteError, match="80.00 degrees apart .* write .nii.gz"):
            write_labels(lab, vol, tmp_path / name, "lv=1")
        assert not (tmp_path / name).exists()
    write_labels(lab, vol, tmp_path / "lab.nii.gz", "lv=1")
    back = read_label_volume(tmp_path / "lab.nii.gz")
    assert np.array_equal(back.array[0], lab) and np.allclose(back.affine, vol.affine)


def test_square_pixels_have_no_note(tmp_path):
    vol = _oblique(tmp_path, 90.0)
    assert "degrees apart" not in str(vol.meta.get("geometry_note") or "")
    write_labels(np.zeros(vol.grid_shape, np.uint8), vol, tmp_path / "lab.mha", "lv=1")
    assert read_label_volume(tmp_path / "lab.mha").grid_shape == vol.grid_shape
