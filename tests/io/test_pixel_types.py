"""Pixel types the readers meet: a complex MHA (MetaIO stores it as two float channels) was
read as the mean of its real and imaginary parts; colour NIfTI is refused in words."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from medseg.errors import ImageReadError
from medseg.io import read_volume


@pytest.mark.parametrize("name", ["c.mha", "c.nrrd"])
def test_a_complex_image_is_refused_not_averaged(tmp_path, name):
    x = np.random.default_rng(0).uniform(1, 255, (4, 32, 32)).astype(np.float32)
    img = sitk.GetImageFromArray((x - 1j * x).astype(np.complex64))  # real x, imaginary -x: their mean is 0
    sitk.WriteImage(img, str(tmp_path / name))
    with pytest.raises(ImageReadError, match=r"2 values per pixel \(a complex or multi-channel image\)|not a real number type"):
        read_volume(tmp_path / name)


def test_two_and_five_channel_images_are_refused_colour_is_luminance(tmp_path):
    rng = np.random.default_rng(1)
    for n in (2, 5):
        sitk.WriteImage(sitk.GetImageFromArray(rng.uniform(0, 255, (4, 32, 32, n)).astype(np.float32), isVector=True), str(tmp_path / f"v{n}.mha"))
        with pytest.raises(ImageReadError, match=f"{n} values per pixel"):
            read_volume(tmp_path / f"v{n}.mha")
    rgb = rng.integers(0, 255, (4, 32, 32, 3)).astype(np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(tmp_path / "rgb.mha"))
    vol = read_volume(tmp_path / "rgb.mha")
    assert np.allclose(vol.array[0], rgb @ np.array([0.299, 0.587, 0.114]), atol=1e-3)


def test_colour_nifti_reads_as_luminance_like_the_other_formats(tmp_path):
    import nibabel as nib

    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 255, (32, 32, 3, 3)).astype(np.uint8)  # x, y, z, channel
    grey = rgb @ np.array([0.299, 0.587, 0.114])
    rgb24 = np.zeros(rgb.shape[:3], dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb24["R"], rgb24["G"], rgb24["B"] = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    nib.save(nib.Nifti1Image(rgb24, np.diag([1.5, 1.5, 8.0, 1.0])), str(tmp_path / "rgb24.nii.gz"))
    vec = sitk.GetImageFromArray(np.transpose(rgb, (2, 1, 0, 3)).copy(), isVector=True)  # ITK writes a vector NIfTI (intent 1007)
    sitk.WriteImage(vec, str(tmp_path / "vec.nii.gz"))
    assert int(nib.load(str(tmp_path / "vec.nii.gz")).header["intent_code"]) == 1007
    for name in ("rgb24.nii.gz", "vec.nii.gz"):
        vol = read_volume(tmp_path / name)
        assert vol.shape == (1, 3, 32, 32) and np.allclose(vol.array[0], grey.T, atol=1e-3), name
    two = sitk.GetImageFromArray(rng.uniform(0, 9, (3, 32, 32, 2)).astype(np.float32), isVector=True)
    sitk.WriteImage(two, str(tmp_path / "two.nii.gz"))
    with pytest.raises(ImageReadError, match="2 values per voxel"):
        read_volume(tmp_path / "two.nii.gz")


def test_nibabel_says_nothing_of_its_own_on_a_bad_datatype(tmp_path):
    """nibabel logs its header complaints at ERROR: they reached the terminal before medseg's one
    line (a subprocess: pytest's log capture would swallow them here)."""
    import subprocess
    import sys

    import nibabel as nib

    p = tmp_path / "binary.nii"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 2), np.uint8), np.eye(4)), str(p))
    raw = bytearray(p.read_bytes())
    raw[70:72] = raw[72:74] = (1).to_bytes(2, "little")  # datatype DT_BINARY (1 bit per voxel), which nibabel cannot read
    p.write_bytes(bytes(raw))
    run = subprocess.run([sys.executable, "-m", "medseg", "info", str(p)], capture_output=True, text=True, timeout=120)
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert run.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: cannot read NIfTI file"), run.stderr


@pytest.mark.parametrize("dtype, offset", [(np.float64, 1e9), (np.int64, 2**40), (np.int32, 10**9)])
def test_a_large_constant_offset_keeps_the_contrast(dtype, offset):
    """float32 has 24 bits: an image on a large offset lost its contrast in the cast (float64
    + 1e9: myocardium Dice 0.85 -> 0.71; int64 + 2^40 was refused as having no contrast)."""
    from medseg.preprocess import normalize_intensity

    x = np.random.default_rng(3).integers(0, 256, (1, 2, 32, 32))
    ref = normalize_intensity(x.astype(np.float32), "MR")
    out = normalize_intensity(x.astype(dtype) + dtype(offset), "MR")
    assert np.abs(out - ref).max() < 1e-5


def test_ordinary_wide_images_take_the_float32_path_bit_for_bit():
    from medseg.preprocess import normalize_intensity

    x = np.random.default_rng(4).normal(300, 80, (1, 2, 32, 32))
    for a in (x, np.round(x).astype(np.int32), np.round(x).astype(np.int64)):
        f = np.asarray(a, dtype=np.float32)
        lo, hi = np.percentile(f, (0.5, 99.5))
        ref = np.clip((f - np.float32(lo)) * np.float32(1.0 / max(float(hi) - float(lo), 1e-6)), 0.0, 1.0).astype(np.float32)
        assert np.array_equal(normalize_intensity(a, "MR"), ref)
