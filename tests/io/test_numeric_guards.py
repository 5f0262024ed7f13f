"""Numbers a reader cannot hold: float64 intensities beyond float32's range (a numpy overflow
warning leaked and the voxels became inf, then 0), label values beyond int32, and a DICOM header
declaring far more pixels than its pixel data holds (the output was allocated first: a
MemoryError, or gigabytes, instead of the one-line "truncated" error)."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pydicom
import pytest
from io_synth import write_cine_series, write_enhanced_mr, write_us_clip

from medseg.cli._app import run_cli
from medseg.errors import ImageReadError, LabelMapError
from medseg.io import read_label_volume, read_volume
from medseg.preprocess import normalize_intensity


def _one_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return " ".join(lines[0].split())


def _nifti(path, values=None):
    a = np.random.default_rng(0).random((24, 20, 3)) * 800.0  # float64, ordinary MR-like values
    if values is not None:
        a[4:7, 5:8, 1] = values
    nib.save(nib.Nifti1Image(a, np.diag([1.5, 1.5, 8.0, 1.0])), str(path))
    return path, a


@pytest.mark.parametrize("value", [1e300, -1e300, 3.5e38])
def test_float64_beyond_float32_is_refused_in_one_line_without_a_warning(tmp_path, value, capsys):
    path, _ = _nifti(tmp_path / "big.nii.gz", value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageReadError) as err:
            read_volume(path)
    assert _one_line(str(err.value)) == (f"{path}: image contains 9 voxels beyond float32's range (|value| > 3.4e+38, e.g. {value:.3g}) "
                                         "out of 1440; medseg computes in float32 and does not clip them silently: fix or rescale the file first")
    for argv in (["info", str(path)], ["segment", str(path), "--auto", "-o", str(tmp_path / "out.nii.gz")]):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            rc = run_cli(argv)
        cap = capsys.readouterr()
        assert rc == 1 and _one_line(cap.err).startswith(f"error: {path}: image contains 9 voxels beyond float32's range"), argv
        assert "Warning" not in cap.out + cap.err
    assert not (tmp_path / "out.nii.gz").exists()


def test_ordinary_float64_images_read_and_normalise_as_before(tmp_path):
    """The float32 edge itself (3.4e38) and ordinary float64 values: bit for bit what they were."""
    path, a = _nifti(tmp_path / "edge.nii.gz", float(np.finfo(np.float32).max))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vol = read_volume(path)  # float32's largest value is not beyond its range
        assert vol.array.dtype == np.float64 and vol.array.max() == a.max()
        _, plain = _nifti(tmp_path / "plain.nii.gz")
        arr = read_volume(tmp_path / "plain.nii.gz").array
        out = normalize_intensity(arr, "MR")
    expect = np.asarray(arr, dtype=np.float32)
    lo, hi = np.percentile(expect, (0.5, 99.5))
    ref = np.clip((expect - np.float32(lo)) * np.float32(1.0 / max(float(hi) - float(lo), 1e-6)), 0.0, 1.0).astype(np.float32)
    assert out.dtype == np.float32 and np.array_equal(out, ref)
    assert np.array_equal(np.sort(arr.reshape(-1)), np.sort(plain.reshape(-1)))


@pytest.mark.parametrize("modality", ["MR", "CT"])
def test_normalize_intensity_takes_values_beyond_float32_as_non_finite_without_a_warning(modality):
    """The library function (a Volume made in memory, not read from a file): no overflow warning;
    those voxels are 0 as NaN voxels are, the others as if those were NaN."""
    a = np.random.default_rng(1).random((1, 2, 16, 16)) * 500.0 - 100.0
    big, nan = a.copy(), a.copy()
    big[0, 1, 2:4, 2:4], big[0, 0, 5, 5] = 1e300, -1e300
    nan[0, 1, 2:4, 2:4], nan[0, 0, 5, 5] = np.nan, np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = normalize_intensity(big, modality)
        ref = normalize_intensity(nan, modality)
    assert np.array_equal(out, ref) and out[0, 1, 2, 2] == 0.0 and out[0, 0, 5, 5] == 0.0


def test_label_values_beyond_int32_are_refused_without_a_warning(tmp_path):
    lab = np.zeros((8, 8, 2))
    lab[1, 1, 1] = 1e300
    nib.save(nib.Nifti1Image(lab, np.eye(4)), str(tmp_path / "lab.nii.gz"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(LabelMapError) as err:
            read_label_volume(tmp_path / "lab.nii.gz")
    assert _one_line(str(err.value)) == f"{tmp_path / 'lab.nii.gz'}: label file holds values too large for labels (max 1e+300); labels must be below 2^31"


# -- DICOM: the pixel data's length is checked before the output is allocated -------------------
class _RecordingNumpy:
    """numpy for medseg.io.dicom and its dicom_* helper modules alone, recording the size of every
    array they allocate and refusing one above 1 GB (so the test never allocates it, whatever the
    overcommit policy)."""

    def __init__(self):
        self.sizes: list[int] = []

    def __getattr__(self, name):
        return getattr(np, name)

    def _alloc(self, fn, shape, dtype=float, *args, **kwargs):
        n = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
        self.sizes.append(n)
        if n > 1e9:
            raise MemoryError(f"test: an allocation of {n / 1e9:.1f} GB")
        return fn(shape, dtype, *args, **kwargs)

    def empty(self, shape, dtype=float, *args, **kwargs):
        return self._alloc(np.empty, shape, dtype, *args, **kwargs)

    def zeros(self, shape, dtype=float, *args, **kwargs):
        return self._alloc(np.zeros, shape, dtype, *args, **kwargs)


def _huge_header(path, frames=None):
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = 65535
    if frames is not None:
        ds.NumberOfFrames = frames
    ds.PixelData = b"\0" * 64
    ds.save_as(path)


def _cine(tmp_path):
    s = write_cine_series(tmp_path / "cine", n_slices=4, n_phases=2)
    for f in s.folder.iterdir():
        _huge_header(f)
    return s.folder


def _enhanced(tmp_path):
    write_enhanced_mr(tmp_path / "enh.dcm", n_slices=4, n_phases=5)  # 20 frames of 65535 x 65535 declared
    _huge_header(tmp_path / "enh.dcm")
    return tmp_path / "enh.dcm"


def _clip(tmp_path):
    write_us_clip(tmp_path / "us.dcm")
    _huge_header(tmp_path / "us.dcm", frames=100_000)
    return tmp_path / "us.dcm"


@pytest.mark.parametrize("make", [_cine, _enhanced, _clip], ids=["cine_folder", "enhanced_multiframe", "legacy_clip"])
def test_a_dicom_header_declaring_huge_images_over_short_pixel_data_is_truncated_not_allocated(tmp_path, make, monkeypatch, capsys):
    import medseg.io.dicom as dicom
    import medseg.io.dicom_pixels as dicom_pixels
    import medseg.io.dicom_stack as dicom_stack

    path = make(tmp_path)
    # a memory guard on the size a header declares (where there is one) would refuse this first:
    # lifted, so that the order of the check and the allocation is what is tested
    monkeypatch.setenv("MEDSEG_MAX_IMAGE_GB", "1e12")
    rec = _RecordingNumpy()
    for module in (dicom, dicom_pixels, dicom_stack):  # dicom_pixels allocates the (T, Z, Y, X) output
        monkeypatch.setattr(module, "np", rec)
    with pytest.raises(ImageReadError) as err:
        read_volume(path)
    msg = _one_line(str(err.value))
    assert "cannot decode pixels of" in msg and "the pixel data is truncated (64 bytes, where its header's Rows x Columns x frames need" in msg
    assert max(rec.sizes, default=0) < 1e6
    assert run_cli(["info", str(path)]) == 1
    assert _one_line(capsys.readouterr().err).startswith("error: cannot decode pixels of")
