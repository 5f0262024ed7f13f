"""The memory guard's premise, reader by reader: what :func:`medseg.io.limits.check_decoded_size`
lets pass fits, so a reader's peak stays within the bytes it counts (the native array and its
float32 copy). Measured with tracemalloc (numpy's and Python's allocations, deterministic), not
RSS. A DICOM's pixel bytes stayed alive beside the decoded array and its float32 copy (a
deflated 3 MB file of a 3.1 GB image peaked at ~12 GB where the guard counted ~9), MONOCHROME1
and PixelPaddingValue images made int64 copies of the whole image, and nibabel scaled a NIfTI
with scl_slope / scl_inter into two float64 copies (BENCHMARKS.md, "Peak memory by reader")."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from io_synth import write_enhanced_mr, write_us_clip
from pydicom.uid import DeflatedExplicitVRLittleEndian

from medseg.io import read_volume
from medseg.io.limits import ENV_VAR, decoded_bytes

ROWS = COLS = 256
SLICES, PHASES = 8, 4  # 32 frames of 256 x 256 int16: 4.2 MB native, 8.4 MB as float32


@pytest.fixture(autouse=True)
def _no_env_limit(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def _peak(read: Callable[[], object]) -> int:
    """Peak traced bytes of ``read()`` above what was allocated before it (after one unmeasured
    call: lazy imports and caches are not the reader's)."""
    read()
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        read()
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def _enhanced(tmp_path: Path, **header) -> Path:
    src = write_enhanced_mr(tmp_path / "e.dcm", n_slices=SLICES, n_phases=PHASES, rows=ROWS, cols=COLS).folder
    if not header:
        return src
    ds = pydicom.dcmread(src)
    for key, value in header.items():
        if key == "PixelPaddingValue":
            ds.add_new(0x00280120, "SS", value)  # 0: pixels of the random image hold it
        elif key == "TransferSyntaxUID":
            ds.file_meta.TransferSyntaxUID = value
        else:
            setattr(ds, key, value)
    out = tmp_path / "variant.dcm"
    ds.save_as(out, enforce_file_format=True)
    return out


@pytest.mark.parametrize("variant", ["enhanced", "deflated", "monochrome1", "padding"])
def test_dicom_peak_stays_within_what_the_guard_counts(tmp_path, variant):
    header = {"enhanced": {}, "deflated": {"TransferSyntaxUID": DeflatedExplicitVRLittleEndian},
              "monochrome1": {"PhotometricInterpretation": "MONOCHROME1"}, "padding": {"PixelPaddingValue": 0}}[variant]
    f = _enhanced(tmp_path, **header)
    shape = (PHASES, SLICES, ROWS, COLS)
    guard = decoded_bytes(shape, 2)  # int16 pixels and their float32 copy: 12.6 MB
    native = guard // 3
    peak = _peak(lambda: read_volume(f))
    # before: the pixel bytes beside the array and the copy (+4.2 MB), an int64 image for
    # MONOCHROME1 / padding (+16.8 MB and more); now the decoded array and the copy, plus headers
    assert peak < guard + native // 4, (variant, peak, guard)


def test_legacy_multiframe_peak_stays_within_what_the_guard_counts(tmp_path):
    f = tmp_path / "clip.dcm"
    write_us_clip(f, n_frames=64, rows=ROWS, cols=COLS)  # uint8: 4.2 MB native, 16.8 MB as float32
    ds = pydicom.dcmread(f)
    ds.PhotometricInterpretation = "MONOCHROME1"  # a float32 clip before the rescale: it was copied once more
    ds.save_as(f, enforce_file_format=True)
    guard = decoded_bytes((64, ROWS, COLS), 1)
    peak = _peak(lambda: read_volume(f))
    assert peak < guard + guard // 20, (peak, guard)


def test_scaled_nifti_peak_stays_within_what_the_guard_counts(tmp_path):
    from medseg.io.nifti import read_nifti

    stored = np.random.default_rng(0).integers(-300, 3000, size=(128, 128, 40)).astype(np.int16)
    img = nib.Nifti1Image(stored, np.diag([1.2, 1.2, 8.0, 1.0]))
    img.header.set_slope_inter(0.5, -10.0)  # nibabel reads it as float64
    f = tmp_path / "scaled.nii"
    nib.save(img, str(f))
    vol = read_volume(f)
    assert vol.array.dtype == np.float64 and vol.array.flags.c_contiguous
    np.testing.assert_array_equal(vol.array[0], stored.transpose(2, 1, 0) * 0.5 - 10.0)  # the values nibabel gives
    nib.save(img, str(tmp_path / "scaled.nii.gz"))
    np.testing.assert_array_equal(read_volume(tmp_path / "scaled.nii.gz").array, vol.array)
    guard = decoded_bytes(stored.shape, 8)  # float64 and the float32 copy: 12 bytes a voxel (7.9 MB)
    # the reader alone (read_volume's checks of a float image add a bounded copy of up to 2 M voxels);
    # the stored int16 is memory-mapped (not traced; 2 bytes a voxel more in RSS)
    peak = _peak(lambda: read_nifti(f))
    # before: arr * slope and (arr * slope) + inter, two float64 arrays: 16 bytes a voxel; now one
    assert peak < guard, (peak, guard)
