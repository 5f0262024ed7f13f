"""Voxel sizes no image has, and geometry messages that named the wrong cause (review 52).

A pixdim of 1e30 mm crashed ``measure`` and ``segment --auto`` with numpy's "Maximum allowed
size exceeded", 1e5 mm asked for 25 GiB (the myocardial ray coverage sampled every quarter pixel
out to 2 pixels); 0.0003 mm pixels (an echo in metres) were "singular"; a NaN PixelSpacing was
"different" from itself; a Part-10 file without a TransferSyntaxUID could not be decoded; a
NIfTI named with the wrong compression was "not a NIfTI file".
"""

from __future__ import annotations

import gzip
import shutil
import tracemalloc
import warnings

import nibabel as nib
import numpy as np
import pydicom
import pytest
from io_synth import write_cine_series
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from medseg.errors import GeometryError, ImageReadError
from medseg.io import read_volume
from medseg.io.dicom_stack import _check_uniform
from medseg.io.volume import Volume
from medseg.measure import report
from medseg.measure.geometry import MeasurementError, stack_geometry
from medseg.measure.qc import ray_coverage


def _vol(diag_xyz: tuple[float, float, float]) -> Volume:
    return Volume(np.zeros((1, 2, 4, 4), np.float32), np.diag([*diag_xyz, 1.0]))


# -- Volume: voxel sizes and a scale-free singular test --------------------------------------

def test_tiny_spacing_says_metres_not_singular():
    """0.0003 mm isotropic (an echo stored in metres) was "affine is singular"."""
    with pytest.raises(GeometryError) as e:
        _vol((0.0003, 0.0003, 0.0003))
    msg = str(e.value)
    assert "voxel size 0.0003 mm" in msg and "metres" in msg and "allowed: 0.001 to 1e+06 mm" in msg
    assert "singular" not in msg


def test_huge_spacing_is_refused_naming_it_a_km_is_kept():
    """pixdim 1e30 was read and then crashed measure; 1 km pixels stay readable (measured and
    flagged volume_implausible, as before)."""
    with pytest.raises(GeometryError, match=r"voxel size 1e\+30 mm is larger than any image's \(x, y, z = 1e\+30, 1.5, 10 mm"):
        _vol((1e30, 1.5, 10.0))
    assert _vol((1e6, 1e6, 1e6)).spacing == (1e6, 1e6, 1e6)
    assert _vol((0.001, 0.001, 0.001)).spacing == pytest.approx((0.001,) * 3)


def test_singular_test_is_scale_free():
    """Nearly parallel axes of 10 mm voxels (|det| 1e-6, above the old absolute 1e-9) are refused
    as singular; the same shape of grid is so at any voxel size."""
    aff = np.eye(4)
    aff[:3, 0], aff[:3, 1], aff[:3, 2] = (10, 0, 0), (10, 1e-8, 0), (0, 0, 10)
    with pytest.raises(GeometryError, match="affine is singular"):
        Volume(np.zeros((1, 2, 4, 4), np.float32), aff)
    small = aff.copy()
    small[:3, :3] /= 1000  # 0.01 mm
    with pytest.raises(GeometryError, match="affine is singular"):
        Volume(np.zeros((1, 2, 4, 4), np.float32), small)


# -- ray coverage: bounded whatever the spacing ------------------------------------------------

def _ring(n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - n / 2, xx - n / 2)
    return r < 6, (r >= 6) & (r < 9)


def test_ray_coverage_with_the_largest_pixel_is_a_fraction():
    """A geometry of 1e30 mm pixels (refused now by stack_geometry as by a Volume) made np.arange
    of 1e31 quarter-pixel radii: "ValueError: Maximum allowed size exceeded"; the largest pixel a
    Volume takes (1e6 mm: 4e6 quarter pixels a ray) gives a fraction without an overflow warning
    from casting far points to indices."""
    cavity, myo = _ring()
    geom = stack_geometry(np.diag([1e6, 1.5, 10.0, 1.0]), (1, *cavity.shape))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cov = ray_coverage(cavity, myo, geom)
    assert 0.0 <= cov <= 1.0


def test_ray_coverage_memory_is_bounded_for_pixels_far_from_square():
    """1.5 x 1e5 mm pixels: 4.7 million samples a ray (25 GiB for 96 x 96 pixels) before."""
    cavity, myo = _ring()
    geom = stack_geometry(np.diag([1e5, 1.5, 10.0, 1.0]), (1, *cavity.shape))
    tracemalloc.start()
    try:
        cov = ray_coverage(cavity, myo, geom)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 0.0 <= cov <= 1.0
    assert peak < 300e6


def test_ray_coverage_of_square_pixels_is_unchanged_by_the_bounds():
    """A closed ring reads 1.0 and a half ring about 0.5, at 1.5 mm and at 0.001 mm (where the 3 mm
    reach is 3000 pixels: the samples stop at the image's edge)."""
    cavity, myo = _ring()
    half = myo.copy()
    half[:, : cavity.shape[1] // 2] = False
    for mm in (1.5, 0.001):
        geom = stack_geometry(np.diag([mm, mm, 10.0 * mm, 1.0]), (1, *cavity.shape))
        assert ray_coverage(cavity, myo, geom) == 1.0
        assert ray_coverage(cavity, half, geom) == pytest.approx(0.5, abs=0.05)


# -- measure: the slice-axis check, early and naming the spacing --------------------------------

def _cine_labels() -> np.ndarray:
    cavity, myo = _ring()
    one = np.where(cavity, 1, np.where(myo, 2, 0)).astype(np.uint8)
    return np.stack([np.stack([one] * 3)] * 2)  # (T=2, Z=3, Y, X)


def test_measure_cine_checks_the_slice_axis_before_the_volume_curves(monkeypatch):
    """The 4-D path measured every frame (33 s) before the check that refuses the stack."""
    def curves(*a, **k):
        raise AssertionError("volume curves computed before the slice-axis check")

    monkeypatch.setattr(report, "volume_curves", curves)
    with pytest.raises(MeasurementError, match="another array axis"):
        report.measure_cine(_cine_labels(), np.diag([10.0, 1.5, 1.5, 1.0]))


def test_huge_pixel_spacing_is_named_not_taken_for_reoriented_labels():
    """DICOM PixelSpacing 1e5: "the short-axis slices lie along another array axis (labels
    reoriented...?)"; the message now names the pixel spacing."""
    with pytest.raises(MeasurementError) as e:
        report.measure_cine(_cine_labels(), np.diag([1e5, 1.5, 10.0, 1.0]))
    msg = str(e.value)
    assert msg.startswith("the pixel spacing is 1.5 x 1e+05 mm (rows x columns), slices 10 mm apart")
    assert "PixelSpacing" in msg and "another array axis" not in msg


# -- DICOM PixelSpacing ------------------------------------------------------------------------

def _set_spacing(folder, value: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom: "Invalid value for VR DS: 'NaN'"
        for p in folder.glob("*.dcm"):
            ds = pydicom.dcmread(p)
            ds["PixelSpacing"].value = value
            ds.save_as(p)


@pytest.mark.parametrize("value, shown", [(["NaN", "1.5"], "[nan, 1.5]"), (["0", "0"], "[0, 0]"),
                                          (["-1.5", "-1.5"], "[-1.5, -1.5]"), (["1e30", "1e30"], "[1e+30, 1e+30]")])
def test_bad_pixel_spacing_is_named(tmp_path, value, shown):
    """NaN in every file was "images have different PixelSpacing ([nan, 1.5] vs [nan, 1.5])"; 0 or
    negative "has no valid PixelSpacing"; 1e30 was read (then "lie along another array axis")."""
    write_cine_series(tmp_path / "s", n_slices=2, n_phases=1)
    _set_spacing(tmp_path / "s", value)
    with pytest.raises(GeometryError) as e:
        read_volume(tmp_path / "s")
    msg = str(e.value)
    assert f"has PixelSpacing {shown}; allowed: two positive finite numbers, 0.001 to 1e+06 (mm)" in msg
    assert "different" not in msg


def test_nan_pixel_spacing_is_not_different_from_itself(tmp_path):
    """The series listing checks uniformity first: NaN == NaN there."""
    from medseg.io.dicom_frames import frames_from_classic

    write_cine_series(tmp_path / "s", n_slices=2, n_phases=1)
    _set_spacing(tmp_path / "s", ["NaN", "1.5"])
    frames = [f for p in sorted((tmp_path / "s").glob("*.dcm")) for f in frames_from_classic(pydicom.dcmread(p), p)]
    assert len(frames) == 2 and np.isnan(frames[0].pixel_spacing[0])
    _check_uniform(frames)  # no "different PixelSpacing"


# -- a Part-10 file without TransferSyntaxUID ---------------------------------------------------

def test_part10_file_without_transfer_syntax_is_read_as_implicit_little_endian(tmp_path):
    """Preamble and DICM, then the data set in implicit VR with no file meta: "cannot decode
    pixels ... 'file_meta' has no (0002,0010) 'Transfer Syntax UID' element"."""
    truth = write_cine_series(tmp_path / "s", n_slices=2, n_phases=1)
    bare = tmp_path / "bare"
    bare.mkdir()
    for p in (tmp_path / "s").glob("*.dcm"):
        ds = pydicom.dcmread(p)
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, True
        write_dataset(fp, ds)
        (bare / p.name).write_bytes(b"\0" * 128 + b"DICM" + fp.getvalue())
    assert "TransferSyntaxUID" not in pydicom.dcmread(next(bare.iterdir())).file_meta
    vol = read_volume(bare)
    np.testing.assert_allclose(vol.array[0], truth.pixels[0] * truth.slope + truth.intercept)


# -- NIfTI named with the wrong compression -----------------------------------------------------

def _nifti(path):
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.int16), np.diag([1.5, 1.5, 8.0, 1.0])), str(path))
    return path


def test_gzip_nifti_named_nii_says_rename(tmp_path):
    src = _nifti(tmp_path / "a.nii.gz")
    shutil.copy(src, tmp_path / "b.nii")
    with pytest.raises(ImageReadError, match=r"gzip-compressed NIfTI but named 'b.nii': rename it to end in .nii.gz"):
        read_volume(tmp_path / "b.nii")


def test_plain_nifti_named_nii_gz_says_rename(tmp_path):
    src = _nifti(tmp_path / "a.nii")
    shutil.copy(src, tmp_path / "b.nii.gz")
    with pytest.raises(ImageReadError, match=r"uncompressed NIfTI but named 'b.nii.gz': rename it to end in .nii \(without .gz\)"):
        read_volume(tmp_path / "b.nii.gz")


def test_other_unreadable_nifti_keeps_its_message(tmp_path):
    """Gzip data that is no NIfTI is not told to rename."""
    bad = tmp_path / "c.nii"
    bad.write_bytes(gzip.compress(b"x" * 400))
    with pytest.raises(ImageReadError) as e:
        read_volume(bad)
    assert "rename" not in str(e.value)


def test_stack_geometry_refuses_as_a_volume_does():
    """measure.geometry.stack_geometry (a library call with a raw affine) said "voxel spacing is
    zero or missing" of 0.0003 mm pixels and took nearly parallel 10 mm axes: its absolute
    determinant test; now the Volume's scale-free checks, with their words."""
    from medseg.errors import GeometryError
    from medseg.measure.geometry import stack_geometry

    with pytest.raises(GeometryError, match="a spacing in metres"):
        stack_geometry(np.diag([0.0003, 0.0003, 0.0003, 1.0]), (3, 10, 10))
    skew = np.diag([10.0, 10.0, 10.0, 1.0])
    skew[:3, 1] = skew[:3, 0] + [0.0, 1e-6, 0.0]
    with pytest.raises(GeometryError, match="singular"):
        stack_geometry(skew, (3, 10, 10))
    assert stack_geometry(np.diag([0.5, 0.5, 8.0, 1.0]), (3, 10, 10)) is not None


def test_part10_file_without_transfer_syntax_in_big_endian_reads_its_values(tmp_path):
    """The same written explicit VR big endian (a retired syntax): the missing UID was filled as
    little endian, and the pixels read byte-swapped (0, 256, 512, ... for 0, 1, 2, ...), silently."""
    truth = write_cine_series(tmp_path / "s", n_slices=2, n_phases=1)
    bare = tmp_path / "bare"
    bare.mkdir()
    for p in (tmp_path / "s").glob("*.dcm"):
        ds = pydicom.dcmread(p)
        arr = ds.pixel_array
        ds.PixelData = arr.astype(arr.dtype.newbyteorder(">")).tobytes()  # the data set's own byte order
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = False, False
        write_dataset(fp, ds)
        (bare / p.name).write_bytes(b"\0" * 128 + b"DICM" + fp.getvalue())
    got = pydicom.dcmread(next(bare.iterdir()), force=True)
    assert "TransferSyntaxUID" not in got.file_meta and got.original_encoding == (False, False)
    vol = read_volume(bare)
    np.testing.assert_allclose(vol.array[0], truth.pixels[0] * truth.slope + truth.intercept)


def test_pixel_spacing_option_in_metres_is_told_in_the_options_words():
    """`--pixel-spacing 0.0003` was refused by the Volume: "... Save it in mm (or as NIfTI with
    xyzt_units 'meter')", naming no option the user typed."""
    from medseg.errors import MedsegError
    from medseg.io.volume import parse_pixel_spacing

    with pytest.raises(MedsegError, match=r"--pixel-spacing 0.0003: a pixel size is in mm, 0.001 to 1e\+06"):
        parse_pixel_spacing("0.0003")
    with pytest.raises(MedsegError, match="--a2c-pixel-spacing 0.3,2e6"):
        parse_pixel_spacing("0.3,2e6", "--a2c-pixel-spacing")
    assert parse_pixel_spacing("0.3,0.001") == (0.3, 0.001)
