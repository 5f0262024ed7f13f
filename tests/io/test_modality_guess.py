"""Which images are taken for CT by their intensities alone (NIfTI / MHA / NRRD record no
modality): an MR stored with a negative offset was segmented as CT (fixed -250..750 window, the
CT structure set) and lost its myocardium; the guess is said on the terminal."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from medseg.io import read_volume
from medseg.io.geometry import medseg_to_nifti
from medseg.io.readers import in_hounsfield_units
from medseg.phantoms import cine_sax_phantom, ct_phantom


def test_an_mr_with_a_negative_offset_is_not_taken_for_ct(tmp_path):
    mr = cine_sax_phantom(n_frames=1, n_slices=4, shape=(64, 64), seed=1).image
    a = mr.array / mr.array.max() * 2040.0  # a 12-bit-like MR range
    for name, arr in (("shift200", a - 200.0), ("inter100", a - 100.0)):
        assert (arr < 0).mean() > 0.05 and np.percentile(arr, 99) > 150  # what passed for fat and contrast blood
        assert not in_hounsfield_units(arr), name
    img = nib.Nifti1Image(medseg_to_nifti(np.round(a * 2).astype(np.int16), 3), mr.affine)
    img.header.set_slope_inter(0.5, -100.0)  # reads as a - 100
    nib.save(img, tmp_path / "mr_scaled.nii.gz")
    vol = read_volume(tmp_path / "mr_scaled.nii.gz")
    assert float(vol.array.min()) < -50 and vol.modality == "OT" and "modality_from" not in vol.meta
    ct = ct_phantom(shape=(16, 64, 64), seed=1).image.array
    assert in_hounsfield_units(ct)
    body = ct[:, 8:56, 8:56]  # a field of view closer around the heart still holds lung
    assert in_hounsfield_units(body)


def test_segment_says_it_took_the_image_for_ct(tmp_path, capsys, monkeypatch):
    from medseg.cli import run_cli

    ct = ct_phantom(shape=(16, 64, 64), seed=1).image
    nib.save(nib.Nifti1Image(medseg_to_nifti(ct.array.astype(np.int16), 3), ct.affine), tmp_path / "ct.nii.gz")
    assert run_cli(["segment", str(tmp_path / "ct.nii.gz"), "--auto", "--structures", "lv", "-o", str(tmp_path / "seg.nii.gz")]) in (0, 1)
    err = " ".join(capsys.readouterr().err.split())
    assert "records no modality; segmented as CT (intensities (Hounsfield units)); --modality MR (or US, OT) if it is not" in err
