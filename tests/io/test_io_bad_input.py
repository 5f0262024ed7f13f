"""Bad input: every case raises a MedsegError subclass with a one-line message."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from io_synth import write_cine_series
from PIL import Image

from medseg.errors import GeometryError, ImageReadError, MedsegError
from medseg.io import read_volume


def _nifti(tmp: Path, data: np.ndarray, name: str = "x.nii.gz", zooms=None) -> Path:
    img = nib.Nifti1Image(data, np.eye(4))
    if zooms is not None:
        img.header.set_zooms(zooms)
        img.set_sform(None, 0)
        img.set_qform(None, 0)
    nib.save(img, tmp / name)
    return tmp / name


def _truncated_nifti(tmp: Path) -> Path:
    p = _nifti(tmp, np.random.default_rng(0).random((20, 20, 10)).astype(np.float32))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def _truncated_gzip_header(tmp: Path) -> Path:
    p = tmp / "h.nii.gz"
    p.write_bytes(gzip.compress(b"\x5c\x01\x00\x00" + b"\x00" * 100))
    return p


def _random(name: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(np.random.default_rng(1).bytes(4096))
        return tmp / name

    return make


def _empty(name: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(b"")
        return tmp / name

    return make


def _empty_folder(tmp: Path) -> Path:
    (tmp / "d").mkdir()
    return tmp / "d"


def _non_dicom_folder(tmp: Path) -> Path:
    (tmp / "d").mkdir()
    (tmp / "d" / "readme.txt").write_text("not an image")
    (tmp / "d" / "x.dcm").write_bytes(b"\x00" * 300)
    return tmp / "d"


def _folder_of_nifti(tmp: Path) -> Path:  # ACDC's patient folder given instead of one of its files
    for name in ("p_frame01.nii.gz", "p_frame01_gt.nii.gz"):
        _nifti(tmp, np.zeros((4, 4, 2), np.float32), name=name)
    (tmp / "Info.cfg").write_text("ED: 1")
    return tmp


def _export_root(tmp: Path) -> Path:  # a DICOM export of two patients: series two levels down
    write_cine_series(tmp / "export" / "pat1" / "series1", n_slices=1, n_phases=1)
    write_cine_series(tmp / "export" / "pat2" / "series1", n_slices=1, n_phases=1)
    return tmp / "export"


def _all_nan(tmp: Path) -> Path:
    return _nifti(tmp, np.full((4, 4, 2), np.nan, np.float32))


def _some_nan(tmp: Path) -> Path:
    a = np.ones((4, 4, 2), np.float32)
    a[0, 0, 0] = a[1, 1, 1] = np.nan
    return _nifti(tmp, a)


def _one_pixel_png(tmp: Path) -> Path:
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(tmp / "dot.png")
    return tmp / "dot.png"


def _truncated_dicom(tmp: Path) -> Path:
    write_cine_series(tmp / "s", n_slices=1, n_phases=1, rows=64, cols=64)
    (src,) = list((tmp / "s").iterdir())
    data = src.read_bytes()
    (tmp / "cut.dcm").write_bytes(data[: len(data) - 3000])
    return tmp / "cut.dcm"


def _truncated_dicom_in_a_folder(tmp: Path) -> Path:
    """A copy cut short inside the header: pydicom reads the header up to there (no Rows), and
    the folder would lose a slice without a word."""
    write_cine_series(tmp / "s", n_slices=4, n_phases=1)
    cut = sorted((tmp / "s").iterdir())[2]
    cut.write_bytes(cut.read_bytes()[:600])
    return tmp / "s"


def _dicom_without_spacing(tmp: Path) -> Path:
    write_cine_series(tmp / "s", n_slices=1, n_phases=1)
    (src,) = list((tmp / "s").iterdir())
    ds = pydicom.dcmread(src)
    del ds.PixelSpacing
    ds.save_as(tmp / "nospacing.dcm")
    return tmp / "nospacing.dcm"


def _unsupported(tmp: Path) -> Path:
    (tmp / "x.xyz").write_text("hello")
    return tmp / "x.xyz"


CASES = [
    ("nonexistent", lambda tmp: tmp / "missing.nii.gz", ImageReadError, "no such file"),
    ("zero-byte nii.gz", _empty("z.nii.gz"), ImageReadError, "empty"),
    ("zero-byte dcm", _empty("z.dcm"), ImageReadError, "empty"),
    ("truncated nii.gz", _truncated_nifti, ImageReadError, "cannot read NIfTI"),
    ("truncated header", _truncated_gzip_header, ImageReadError, "cannot read NIfTI"),
    ("random .dcm", _random("r.dcm"), ImageReadError, "not a DICOM file"),
    ("truncated .dcm", _truncated_dicom, ImageReadError, "cannot decode pixels"),
    ("DICOM without PixelSpacing", _dicom_without_spacing, GeometryError, "missing spacing"),
    ("DICOM folder with a file cut short", _truncated_dicom_in_a_folder, ImageReadError, "truncated or corrupt DICOM file .*MR Image Storage"),
    ("random .nii", _random("r.nii"), ImageReadError, "cannot read NIfTI"),
    ("random .png", _random("r.png"), ImageReadError, "cannot read image"),
    ("random .mha", _random("r.mha"), ImageReadError, "SimpleITK could not read"),
    ("random .mp4", _random("r.mp4"), ImageReadError, "cannot read video"),
    ("empty folder", _empty_folder, ImageReadError, "folder is empty"),
    ("non-DICOM folder", _non_dicom_folder, ImageReadError, "no DICOM images"),
    ("folder of NIfTI files", _folder_of_nifti, ImageReadError, r"holds 2 image file\(s\) \(p_frame01.nii.gz, p_frame01_gt.nii.gz\): give one"),
    ("DICOM export root", _export_root, ImageReadError, "its sub-folders hold more than one study; .* or the folder to medseg batch"),
    ("all NaN", _all_nan, ImageReadError, "contains no finite values"),
    ("some NaN", _some_nan, ImageReadError, "2 non-finite voxels"),
    ("1-voxel image", _one_pixel_png, ImageReadError, "too small to segment: 1x1"),
    ("5-D NIfTI", lambda tmp: _nifti(tmp, np.zeros((3, 3, 2, 2, 2), np.float32)), ImageReadError, "5-D"),
    ("6-D NIfTI", lambda tmp: _nifti(tmp, np.zeros((3, 3, 2, 2, 1, 2), np.float32)), ImageReadError, "6-D"),
    ("NIfTI with a zero dimension", lambda tmp: _nifti(tmp, np.zeros((16, 0, 4), np.float32)), ImageReadError, "array is empty"),
    ("zero pixdim", lambda tmp: _nifti(tmp, np.zeros((3, 3, 2), np.float32), zooms=(1.0, 0.0, 2.0)), GeometryError, "spacing is zero"),
    ("unsupported ending", _unsupported, ImageReadError, "supported: a DICOM folder or file, .dcm"),
]


@pytest.mark.parametrize(("make", "error", "match"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, make, error, match):
    path = make(tmp_path)
    with pytest.raises(error, match=match) as info:
        read_volume(path)
    assert isinstance(info.value, MedsegError)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
    assert str(path) in message or path.name in message


def test_a_study_copied_twice_into_one_folder_is_that_study(tmp_path):
    """The same SOP instances under other names are read once, not as a second frame."""
    series = write_cine_series(tmp_path / "s", n_slices=3, n_phases=2)
    once = read_volume(series.folder)
    for f in sorted(series.folder.iterdir()):
        (series.folder / f"copy_{f.name}").write_bytes(f.read_bytes())
    twice = read_volume(series.folder)
    assert twice.shape == once.shape == (2, 3, 12, 10)
    assert np.array_equal(twice.array, once.array)


def test_fifos_and_devices_are_not_read_forever(tmp_path):
    """A FIFO beside the studies of a batch, a detached MHD/NRRD header whose data file is a FIFO
    or a device, a --model that is a FIFO: each hung the command (a read that never ends) or read
    /dev/urandom as an image. Now they are left out or refused in one line."""
    import os

    from medseg.batch import discover_cases
    from medseg.errors import CheckpointError
    from medseg.models import load_model

    write_cine_series(tmp_path / "in" / "cine", n_slices=2, n_phases=1)
    os.mkfifo(tmp_path / "in" / "pipe")
    assert [c.case for c in discover_cases(tmp_path / "in")] == ["cine"]
    os.mkfifo(tmp_path / "raw")
    (tmp_path / "a.mhd").write_text("ObjectType = Image\nNDims = 2\nDimSize = 4 4\nElementType = MET_UCHAR\nElementDataFile = raw\n")
    (tmp_path / "b.nhdr").write_text("NRRD0004\ntype: uchar\ndimension: 2\nsizes: 4 4\nencoding: raw\ndata file: /dev/urandom\n")
    for name, match in (("a.mhd", "its data file raw is not a regular file"), ("b.nhdr", "its data file /dev/urandom is not a regular file")):
        with pytest.raises(ImageReadError, match=match):
            read_volume(tmp_path / name)
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_model(str(tmp_path / "raw"))


def test_a_long_output_name_is_written_and_a_killed_runs_temporary_files_found(tmp_path):
    """An output named with 240 characters (legal: 255 bytes) failed after segmenting, "File
    name too long": its temporary name added 20 more. And the temporary files a killed run left
    are found by name even when it holds glob characters ([, *)."""
    from medseg._files import atomic_path, stale_temp_files, write_text_atomic

    long = tmp_path / ("L" * 240 + ".json")
    write_text_atomic(long, "{}")
    assert long.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == [long.name]
    target = tmp_path / "case[1]*.nii.gz"
    try:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            kept = tmp.with_name(tmp.name + "x")  # as if the process died before its rename
            tmp.rename(kept)
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert stale_temp_files(target) == [kept] and stale_temp_files(tmp_path / "case[2].nii.gz") == []


@pytest.mark.parametrize("damage", ["flipped", "cut"])
def test_a_nii_gz_with_corrupt_or_missing_gzip_data_is_refused(tmp_path, damage):
    """nibabel stops reading at the last voxel, before the gzip trailer's CRC: flipped bytes
    in the data read as wrong labels (a batch --resume kept such a file as complete and measured
    862 g of myocardium for 201), and a file cut short by a few bytes read as whole."""
    from medseg.io import read_label_volume

    rng = np.random.default_rng(0)
    lab = np.zeros((24, 20, 6), np.uint8)
    lab[5:15, 4:16, 1:5] = rng.integers(1, 4, size=(10, 12, 4))
    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(lab, np.diag([1.5, 1.5, 8.0, 1.0])), str(good))
    raw = bytearray(good.read_bytes())
    if damage == "flipped":
        raw[len(raw) // 2] ^= 0x01  # one bit in the deflate data
    else:
        raw = raw[:-5]  # most of the 8-byte trailer gone
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(bytes(raw))
    assert np.array_equal(read_label_volume(good).array[0], lab.T)
    with pytest.raises(ImageReadError, match=r"bad\.nii\.gz: the gzip data is corrupt or cut short \(") as e:
        read_label_volume(bad)
    assert "\n" not in str(e.value)
