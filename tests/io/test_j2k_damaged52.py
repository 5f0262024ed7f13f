"""A DICOM series whose pixel data is a damaged JPEG 2000 codestream: GDCM, pydicom's first
decoder for it, ended the whole process on some (a C++ exception nothing caught: "terminate
called ...", rc 134), so ``medseg info``/``segment``/``evaluate`` and a batch died with no
message. JPEG 2000 is now decoded by Pillow (OpenJPEG) first, which raises a Python error: the
one-line :class:`ImageReadError`. Intact JPEG 2000 images decode to the same pixels as GDCM
gives (16-bit signed, 12- and 8-bit unsigned, lossless and lossy syntaxes, several frames),
and an image Pillow refuses (16-bit colour) is still GDCM's.

The damaged cases run in a subprocess: a regression aborts that process, not the test run."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import warnings

import numpy as np
import pydicom
import pytest
from io_synth import write_cine_series
from pydicom.encaps import encapsulate

from medseg.io import read_volume
from medseg.io.dicom_pixels import _pixels

gdcm = pytest.importorskip("gdcm")

J2K_LOSSLESS, J2K = "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"


def _gdcm_encode(path, ts: str) -> None:
    """Recompress the pixels of ``path`` (native) to JPEG 2000 with GDCM, as a scanner toolkit
    would; the rest of the header as pydicom wrote it (GDCM's writer drops some elements)."""
    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEG2000Lossless if ts == J2K_LOSSLESS else gdcm.TransferSyntax.JPEG2000))
    change.SetInput(reader.GetImage())
    assert change.Change()
    coded = path.with_name(path.name + ".j2k")
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(coded))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()
    ds, j2k = pydicom.dcmread(path), pydicom.dcmread(coded)
    coded.unlink()
    ds.file_meta.TransferSyntaxUID = j2k.file_meta.TransferSyntaxUID
    ds.PhotometricInterpretation = j2k.PhotometricInterpretation
    ds.PixelData = j2k.PixelData
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)


def _gdcm_pixels(path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    ds.pixel_array_options(decoding_plugin="gdcm")
    return ds.pixel_array


def _damage(path, ts: str, seed: int) -> None:
    """The review's damaged codestream: a J2K start (SOC, SIZ) and 200 random bytes."""
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = ts
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + random.Random(seed).randbytes(200)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)


_READ = """
import sys
from medseg.errors import MedsegError
from medseg.io import read_volume
try:
    read_volume(sys.argv[1])
except MedsegError as e:
    print(type(e).__name__, isinstance(e, MedsegError))
    print(str(e))
    sys.exit(7)
"""


@pytest.mark.parametrize("ts", [J2K_LOSSLESS, J2K])
@pytest.mark.parametrize("seed", [3, 5])
def test_damaged_j2k_is_one_line_error_not_an_abort(tmp_path, ts, seed):
    series = write_cine_series(tmp_path / "cine", n_slices=3, n_phases=2)
    bad = sorted(series.folder.glob("*.dcm"))[2]
    _damage(bad, ts, seed)
    r = _run(_READ, str(series.folder))
    assert r.returncode == 7, f"rc {r.returncode} (-6: aborted)\n{r.stdout}\n{r.stderr[-2000:]}"
    kind, message, *rest = r.stdout.splitlines()
    assert kind == "ImageReadError True" and rest == [], r.stdout
    assert "terminate called" not in r.stderr
    assert f"cannot decode pixels of {bad}" in message and "JPEG 2000" in message and "damaged" in message, message
    assert " at 0x" not in message, message  # no Python object's repr


def test_damaged_j2k_info_says_one_line(tmp_path):
    series = write_cine_series(tmp_path / "cine", n_slices=2, n_phases=2)
    _damage(sorted(series.folder.glob("*.dcm"))[0], J2K, 3)
    r = _run("import sys; from medseg.cli._app import run_cli; sys.exit(run_cli(['info', sys.argv[1]]))", str(series.folder))
    assert r.returncode == 1, f"rc {r.returncode}\n{r.stderr[-2000:]}"
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot decode pixels of ") and "damaged" in lines[0], r.stderr


@pytest.mark.parametrize("ts", [J2K_LOSSLESS, J2K])
def test_intact_j2k_series_reads_as_its_native_pixels(tmp_path, ts):
    """16-bit signed MR-like values (the synthetic cine): the same volume as the native series,
    and each file's pixels those GDCM decodes."""
    native = write_cine_series(tmp_path / "native", n_slices=3, n_phases=2, rows=24, cols=20, seed=4)
    coded = write_cine_series(tmp_path / "coded", n_slices=3, n_phases=2, rows=24, cols=20, seed=4)
    for f in sorted(coded.folder.glob("*.dcm")):
        _gdcm_encode(f, ts)
        assert str(pydicom.dcmread(f).file_meta.TransferSyntaxUID) == ts
        np.testing.assert_array_equal(_pixels(f)[1], _gdcm_pixels(f))
    a, b = read_volume(native.folder), read_volume(coded.folder)
    np.testing.assert_array_equal(b.array, a.array)
    np.testing.assert_array_equal(b.affine, a.affine)


def _single(path, arr: np.ndarray, bits_stored: int, signed: bool, spp: int = 1) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        series = write_cine_series(path.parent / "one", n_slices=1, n_phases=1, rows=4, cols=4)
        ds = pydicom.dcmread(next(series.folder.glob("*.dcm")))
    ds.Rows, ds.Columns = arr.shape[1:3] if arr.ndim == 3 + (spp > 1) else arr.shape[:2]
    if arr.ndim == 3 + (spp > 1):
        ds.NumberOfFrames = arr.shape[0]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = spp, "RGB" if spp > 1 else "MONOCHROME2"
    if spp > 1:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = arr.dtype.itemsize * 8, bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(signed)
    for name in ("RescaleSlope", "RescaleIntercept"):
        delattr(ds, name)
    ds.PixelData = arr.tobytes()
    ds.save_as(path, enforce_file_format=True)


_YY, _XX = np.mgrid[:40, :48]
_SMOOTH = np.sin(_XX / 7) + np.cos(_YY / 5) + 2
_NOISE = np.random.default_rng(0).normal(0, 1, (3, 40, 48))


@pytest.mark.parametrize("ts", [J2K_LOSSLESS, J2K])
@pytest.mark.parametrize("kind", ["u12", "u16", "s16_12", "u8", "u12_frames"])
def test_intact_j2k_decodes_as_gdcm_does(tmp_path, ts, kind):
    arr, bits, signed = {
        "u12": (np.clip(_SMOOTH * 900 + 40 * _NOISE[0], 0, 4095).astype(np.uint16), 12, False),
        "u16": (np.clip(_SMOOTH * 15000 + 400 * _NOISE[0], 0, 65535).astype(np.uint16), 16, False),
        "s16_12": (np.clip(_SMOOTH * 500 - 1000 + 40 * _NOISE[0], -2048, 2047).astype(np.int16), 12, True),
        "u8": (np.clip(_SMOOTH * 60 + 5 * _NOISE[0], 0, 255).astype(np.uint8), 8, False),
        "u12_frames": (np.clip(_SMOOTH[None] * 900 + 40 * _NOISE, 0, 4095).astype(np.uint16), 12, False),
    }[kind]
    path = tmp_path / "im.dcm"
    _single(path, arr, bits, signed)
    _gdcm_encode(path, ts)
    gd = _gdcm_pixels(path)
    np.testing.assert_array_equal(gd, arr)  # GDCM's lossy syntax with its defaults is still exact
    np.testing.assert_array_equal(_pixels(path)[1], gd)


def test_j2k_pillow_refuses_still_decoded_by_gdcm(tmp_path):
    """16-bit colour: Pillow refuses it whatever its data ("cannot decode 16-bit multi-sample
    data correctly"); GDCM decodes it, as before."""
    rgb = np.clip(np.stack([_SMOOTH * 6000, _SMOOTH * 4000 + 100, _SMOOTH * 2000 + 900], -1), 0, 65535).astype(np.uint16)
    path = tmp_path / "rgb16.dcm"
    _single(path, rgb, 16, False, spp=3)
    _gdcm_encode(path, J2K_LOSSLESS)
    ds = pydicom.dcmread(path)
    ds.pixel_array_options(decoding_plugin="pillow")
    with pytest.raises(RuntimeError, match="Pillow cannot decode"):
        ds.pixel_array  # noqa: B018 (the property decodes)
    from medseg.io.volume import luminance

    np.testing.assert_array_equal(_pixels(path)[1], luminance(_gdcm_pixels(path)))


def test_a_valid_stream_pillow_does_not_decode_is_read_by_gdcm_in_a_child(tmp_path):
    """pydicom's GDCMJ2K_TextGBR.dcm (8-bit YBR_RCT in a JP2 box, written by GDCM): OpenJPEG
    through Pillow says "broken data stream"; it read through GDCM before Pillow came first, and
    was then refused as damaged. GDCM now decodes it in a child process (an abort there ends only
    the child): the pixels are GDCM's."""
    import shutil

    from pydicom.data import get_testdata_file

    from medseg.io.volume import luminance

    src = get_testdata_file("GDCMJ2K_TextGBR.dcm")
    if src is None:
        pytest.skip("pydicom's test file is not installed")
    path = tmp_path / "gbr.dcm"
    shutil.copy(src, path)
    ds = pydicom.dcmread(path)
    ds.pixel_array_options(decoding_plugin="pillow")
    with pytest.raises(Exception, match="broken data stream"):
        _ = ds.pixel_array
    ds.pixel_array_options(decoding_plugin="gdcm")
    want = luminance(ds.pixel_array)
    vol = read_volume(path)
    np.testing.assert_array_equal(vol.array[0, 0], want)


def test_the_gdcm_child_reads_a_file_without_preamble(tmp_path):
    """The same stream in a file without the 128-byte preamble and "DICM" (medseg reads those with
    force=True): its copy for the child had none either, and the child's plain dcmread refused it."""
    from pydicom.data import get_testdata_file

    from medseg.io.volume import luminance

    src = get_testdata_file("GDCMJ2K_TextGBR.dcm")
    if src is None:
        pytest.skip("pydicom's test file is not installed")
    raw = open(src, "rb").read()
    assert raw[128:132] == b"DICM"
    path = tmp_path / "nopre.dcm"
    path.write_bytes(raw[132:])
    ds = pydicom.dcmread(src)
    ds.pixel_array_options(decoding_plugin="gdcm")
    np.testing.assert_array_equal(read_volume(path).array[0, 0], luminance(ds.pixel_array))
