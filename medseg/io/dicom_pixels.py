"""Decoding the pixels of DICOM images (pydicom): the pixel array of one file, with colour (RGB, YBR, PALETTE COLOR) as
luminance, MONOCHROME1 as MONOCHROME2 and PixelPaddingValue pixels as background, the one-line
errors for truncated or undecodable pixel data (naming the package a compressed transfer syntax
needs), and the (T, Z, Y, X) float32 array of a grid of images with RescaleSlope/Intercept
applied.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from ..errors import ImageReadError
from .dicom_frames import FrameInfo, read_dicom
from .dicom_meta import _modality
from .volume import luminance


def _pixels(path: Path) -> tuple[Dataset, np.ndarray]:
    """Full dataset and its pixel array; colour (..., 3) becomes float32 luminance."""
    ds: Dataset | None = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = read_dicom(path)
            arr = _decoded(ds)
    except Exception as e:  # truncated pixel data, missing decoder, ...
        ts = ds.file_meta.get("TransferSyntaxUID") if ds is not None and hasattr(ds, "file_meta") else None
        if ts and _compressed(ts) is None:
            raise _not_a_transfer_syntax(path, ts) from None
        extra = f" (transfer syntax {getattr(ts, 'name', ts)})" if ts else ""
        hint = _decoder_hint(ts) if _compressed(ts) else ""
        import re

        why = re.sub(r" ?<[^<>]* at 0x[0-9a-fA-F]+>", "", " ".join(str(e).split()))  # Pillow's "<_io.BytesIO object at 0x7f...>"
        short = re.search(r"less than expected \((\d+) vs (\d+) bytes\)", why)
        if short:  # pydicom checks the length before it allocates the array
            raise ImageReadError(f"cannot decode pixels of {path}{extra}: the pixel data is truncated ({int(short[1]):,} bytes, where its "
                                 f"header's Rows x Columns x frames need {int(short[2]):,}): a copy cut short, or a wrong header") from None
        raise ImageReadError(f"cannot decode pixels of {path}{extra}: {type(e).__name__}: "
                             f"{why[:160]}{'...' if len(why) > 160 else ''}{hint}") from None
    _check_pixel_length(path, ds)
    _drop_pixel_data(ds)  # the encoded bytes go before the float32 copy is made (the memory guard counts one array and that copy)
    if int(ds.get("SamplesPerPixel", 1) or 1) > 1:
        return ds, luminance(arr)
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "PALETTE COLOR":
        return ds, _palette_luminance(path, arr, ds)
    padding = _padding_mask(ds, arr)
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1" and _modality(ds) != "CT":
        arr = _monochrome1_to_2(arr, ds)
    if padding is not None:
        arr = _fill_padding(arr, padding, in_place=arr.flags.writeable and arr.flags.c_contiguous)  # ours alone now
    return ds, arr


#: JPEG 2000 (lossless, lossy): decoded by Pillow (OpenJPEG) before GDCM, pydicom's first choice;
#: GDCM ends the whole process (a C++ exception nothing catches: abort, rc 134) on some damaged
#: codestreams, where Pillow raises a Python error; both give the same pixels of an intact one
_PILLOW_FIRST = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")
#: what pydicom's Pillow plugin says of an image it does not decode, whatever its data (> 8-bit
#: colour, more than 16 bits): GDCM decodes those, as before
_PILLOW_REFUSES = ("Pillow cannot decode", "'Bits Stored' values of up to 16")


def _decoded(ds: Dataset) -> np.ndarray:
    """``ds.pixel_array``; JPEG 2000 by Pillow when it is installed with OpenJPEG
    (:data:`_PILLOW_FIRST`), by the other decoders (GDCM) only where Pillow refuses the image
    (:data:`_PILLOW_REFUSES`): a damaged codestream is then a Python error, not an abort."""
    ts = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    if ts not in _PILLOW_FIRST or not _has_plugin(ts, "pillow"):
        return ds.pixel_array
    ds.pixel_array_options(decoding_plugin="pillow")
    try:
        return ds.pixel_array
    except Exception as e:  # RuntimeError: "... all available plugins: pillow: broken data stream ..."
        if not any(text in str(e) for text in _PILLOW_REFUSES):
            if not _has_plugin(ts, "gdcm"):
                raise
            return _gdcm_in_child(ds, e)  # OpenJPEG refuses some valid streams GDCM wrote (JP2 boxes, YBR_RCT)
    ds.pixel_array_options(decoding_plugin="")  # every available plugin, GDCM first
    return ds.pixel_array


#: the child of :func:`_gdcm_in_child`: reads the file given, decodes with GDCM, saves the array
_GDCM_CHILD = ("import sys, numpy, pydicom\n"
               "ds = pydicom.dcmread(sys.argv[1], force=True); ds.pixel_array_options(decoding_plugin='gdcm')\n"
               "numpy.save(sys.argv[2], ds.pixel_array)\n")


def _gdcm_in_child(ds: Dataset, pillow_error: Exception) -> np.ndarray:
    """``ds``'s pixels decoded by GDCM in a child process: a JPEG 2000 stream Pillow did not
    decode is valid for GDCM (some it wrote) or damaged, and GDCM aborts the whole process on some
    damaged ones (a C++ exception nothing catches), which in a child ends only the child. Raises
    ``pillow_error`` (the data may be damaged: both decoders failed) when the child fails."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="medseg-j2k-") as tmp:
        src, out = Path(tmp) / "in.dcm", Path(tmp) / "out.npy"
        try:
            ds.save_as(src, enforce_file_format=False)
            done = subprocess.run([sys.executable, "-c", _GDCM_CHILD, str(src), str(out)], capture_output=True, timeout=600)
        except (OSError, ValueError, subprocess.SubprocessError):
            raise pillow_error from None
        if done.returncode != 0 or not out.is_file():  # an abort (rc < 0) or a Python error: not decodable
            raise pillow_error
        return np.load(out, allow_pickle=False)


def _has_plugin(ts: str, name: str) -> bool:
    try:
        from pydicom.pixels import get_decoder

        return name in get_decoder(ts).available_plugins
    except Exception:  # an older pydicom, no decoder for it
        return False


def _palette_luminance(path: Path, arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """PALETTE COLOR (an ultrasound clip with colour flow, as some scanners export it): float32
    luminance of each pixel's colour in the Red/Green/Blue palette LUTs, in their values (0-255 or
    0-65535 as the LUT's entries are 8 or 16 bits). The stored values are indices into the palette:
    read as grey, a colour-flow jet in the LV read brighter than any tissue. Frame by frame: no
    RGB copy of the whole clip."""
    from pydicom.pixels import apply_color_lut

    out = np.empty(arr.shape, dtype=np.float32)
    try:
        for src, dst in zip(arr.reshape(-1, *arr.shape[-2:]), out.reshape(-1, *out.shape[-2:])):
            dst[...] = luminance(apply_color_lut(src, ds))
    except Exception as e:  # a palette missing or malformed (pydicom: ValueError, KeyError, ...)
        why = " ".join(str(e).split())[:160]
        raise ImageReadError(f"{path}: PALETTE COLOR image whose palette cannot be applied ({type(e).__name__}: {why}): its pixels are "
                             "indices into Red/Green/Blue palette lookup tables, which must be present and valid; export it as RGB") from None
    return out


#: the elements that hold an image's pixels
_PIXEL_ELEMENTS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _drop_pixel_data(ds: Dataset) -> None:
    """Delete the pixel data elements of ``ds`` once its pixel array is decoded: their bytes (as
    large as the array for native pixels, a deflated file's too) and pydicom's reference to the
    array would otherwise stay alive beside the float32 copy, a peak of twice the native image
    and the copy, more than :func:`medseg.io.limits.check_decoded_size` lets pass. The header
    elements stay."""
    for name in _PIXEL_ELEMENTS:
        if name in ds:
            delattr(ds, name)


def _compressed(ts: Any) -> bool | None:
    """Whether the transfer syntax ``ts`` encapsulates (compresses) its pixel data; None when
    ``ts`` is no transfer syntax at all (a corrupt file meta: UID 1.2.3)."""
    from pydicom.uid import UID

    try:
        return bool(UID(str(ts)).is_compressed)
    except ValueError:  # pydicom: "UID is not a transfer syntax."
        return None


def _not_a_transfer_syntax(path: Path, ts: Any) -> ImageReadError:
    return ImageReadError(f"cannot decode pixels of {path}: its TransferSyntaxUID {str(ts)!r} is not a transfer syntax (allowed: a DICOM "
                          "transfer syntax UID, e.g. 1.2.840.10008.1.2.1 Explicit VR Little Endian, or a compressed one pydicom decodes): "
                          "the file meta is corrupt; export the file again")


def _check_pixel_length(path: Path, ds: Dataset) -> None:
    """Refuse native (uncompressed) pixel data longer than its header's Rows x Columns x frames x
    samples x BitsAllocated declare by a row or more: pydicom reads the first bytes and ignores
    the rest, so a wrong Columns (255 for 256) gave a sheared image and a wrong Rows a cut one.
    Less than a row more is padding (the one byte to an even length DICOM requires, or the few
    some scanners write), which no wrong Rows or Columns gives. Compressed pixel data is left to
    its decoder (its length says nothing of the image's)."""
    from pydicom.pixels.utils import get_expected_length

    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if "PixelData" not in ds or (ts and _compressed(ts) is not False):
        return
    try:
        expected = int(get_expected_length(ds, "bytes"))
    except Exception:  # a header pydicom decoded the pixels of, but cannot size: nothing to compare
        return
    actual = len(ds.PixelData)
    try:
        row = int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1) * int(ds.BitsAllocated) // 8
    except (TypeError, ValueError, AttributeError):
        row = 1
    if actual - expected >= max(row, 2):
        raise ImageReadError(
            f"{path}: the pixel data holds {actual:,} bytes, more than the {expected:,}{' (+1 padding byte)' if expected % 2 else ''} "
            f"its header declares (Rows {ds.get('Rows')} x Columns {ds.get('Columns')} x {ds.get('NumberOfFrames', 1) or 1} frame(s) x "
            f"{ds.get('SamplesPerPixel', 1)} sample(s) x {ds.get('BitsAllocated')} bits): a wrong Rows or Columns (the image would "
            "read sheared) or extra data; fix the header or export the file again"
        )


def _padding_mask(ds: Dataset, arr: np.ndarray) -> np.ndarray | None:
    """Where a grayscale image holds its PixelPaddingValue (or a value between it and
    PixelPaddingRangeLimit, inclusive), in stored values before the rescale: the pixels
    outside the image (a frame of 4095 around an MR, -2000 outside a CT's circular field of
    view); None when the header declares no padding or no pixel holds it."""
    value = _stored_value(ds, "PixelPaddingValue")
    if value is None or not np.issubdtype(arr.dtype, np.integer):
        return None
    limit = _stored_value(ds, "PixelPaddingRangeLimit")
    lo, hi = (min(value, limit), max(value, limit)) if limit is not None else (value, value)
    info = np.iinfo(arr.dtype)
    if lo > info.max or hi < info.min:  # no stored value can be padding
        return None
    # compared in the array's own type (the range clipped to it): an int64 copy of the image was 4x a uint16 one
    lo_v, hi_v = arr.dtype.type(max(lo, info.min)), arr.dtype.type(min(hi, info.max))
    mask = arr >= lo_v
    mask &= arr <= hi_v
    return mask if mask.any() else None


def _stored_value(ds: Dataset, name: str) -> int | None:
    """A US-or-SS attribute (PixelPaddingValue) as a stored pixel value: signed when
    PixelRepresentation is 1 (a value written as US, 63536 for -2000, read back as its
    two's complement within BitsAllocated or BitsStored), unsigned otherwise."""
    if name not in ds:
        return None
    raw = ds[name].value
    signed = str(ds.get("PixelRepresentation", 0)).strip() == "1"
    if isinstance(raw, (bytes, bytearray)):  # a VR pydicom could not resolve
        if len(raw) < 2:
            return None
        raw = int.from_bytes(bytes(raw[:2]), "little", signed=signed)
    if isinstance(raw, (list, tuple)) or type(raw).__name__ == "MultiValue":
        raw = raw[0] if len(raw) else None
    try:
        v = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    alloc = int(ds.get("BitsAllocated", 16) or 16)
    stored = int(ds.get("BitsStored", alloc) or alloc)
    if signed:
        if v >= 1 << (alloc - 1):
            v -= 1 << alloc
        elif v >= 1 << (stored - 1):
            v -= 1 << stored
    elif v < 0:
        v += 1 << alloc
    return v


def _fill_padding(arr: np.ndarray, mask: np.ndarray, in_place: bool = False) -> np.ndarray:
    """``arr`` (a copy, or ``arr`` itself when ``in_place``) with its padding pixels (``mask``)
    set to the lowest value of the other pixels of their frame (of the file, for a frame that is
    all padding): background, which the intensity scaling then treats as such. Frame by frame:
    no temporary as large as the image."""
    out = arr if in_place else np.array(arr, copy=True)
    frames, masks = out.reshape(-1, *out.shape[-2:]), mask.reshape(-1, *mask.shape[-2:])
    lows = [plane[~m].min() if not m.all() else None for plane, m in zip(frames, masks)]
    known = [v for v in lows if v is not None]
    if not known:
        return out  # nothing but padding: a blank image, as it was
    lowest = min(known)
    for plane, m, low in zip(frames, masks, lows):
        if m.any():
            plane[m] = low if low is not None else lowest
    return out


def _decoder_hint(ts: Any) -> str:
    """What to do about a compressed transfer syntax pydicom could not decode: install the
    package that decodes it, or, when decoders for it are installed and all failed (GDCM and
    Pillow on a damaged JPEG: the hint to install python-gdcm was given with python-gdcm
    installed), copy the file again; a syntax pydicom has no decoder for (MPEG video) is
    converted first."""
    name = str(getattr(ts, "name", "") or "")
    if "2000" in name:
        package = "; JPEG 2000 needs pylibjpeg with pylibjpeg-openjpeg (pip install pylibjpeg pylibjpeg-openjpeg)"
    elif "JPEG" in name:  # baseline, extended (12 bit), lossless, JPEG-LS
        package = "; for JPEG (12-bit and JPEG-LS too) install pylibjpeg with pylibjpeg-libjpeg (pip install pylibjpeg pylibjpeg-libjpeg)"
    else:
        package = "; install python-gdcm, or decompress the series first (e.g. gdcmconv --raw, dcmdjpeg)"
    try:
        from pydicom.pixels import get_decoder

        plugins = tuple(get_decoder(ts).available_plugins)
    except NotImplementedError:  # no decoder exists in pydicom for it (MPEG-2/4, HEVC video)
        return f"; pydicom decodes no {name or 'such'} pixel data: convert the series to uncompressed images first (e.g. gdcmconv --raw)"
    except Exception:  # an older pydicom, an unknown syntax: the package hint
        return package
    if not plugins:
        return package
    import importlib.util

    suggested = "pylibjpeg" if "JPEG" in name else "gdcm"
    tail = "" if importlib.util.find_spec(suggested) is not None else f"; if it is intact,{package[1:]}"
    return (f"; the installed decoder{'s' * (len(plugins) > 1)} for it ({', '.join(plugins)}) could not decode it: its pixel data "
            f"may be damaged (copy the file again from the source){tail}")


def _monochrome1_to_2(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """MONOCHROME1 (the lowest value is shown white) as MONOCHROME2, the way a viewer shows it:
    the stored values mirrored within their bit range, before the rescale. Not for CT, whose
    rescaled values are Hounsfield units whatever their display. In the stored integer type
    when every mirrored value fits it (in place when ``arr`` is writeable: the caller's alone),
    else float32; the same numbers either way."""
    bits = int(ds.get("BitsStored", 0) or 0) or 8 * arr.dtype.itemsize
    top = -1 if int(ds.get("PixelRepresentation", 0) or 0) else (1 << bits) - 1  # signed: -2^(b-1) .. 2^(b-1) - 1
    if np.issubdtype(arr.dtype, np.integer) and arr.size:
        info = np.iinfo(arr.dtype)
        if info.min <= top <= info.max and info.min <= top - int(arr.max()) and top - int(arr.min()) <= info.max:
            # every mirrored value fits the stored type (the usual case): mirrored in it, in place when
            # the array is ours alone, with no copy wider than the image (the float32 comes later)
            out = arr if arr.flags.writeable and arr.flags.c_contiguous else np.empty_like(arr)
            return np.subtract(arr.dtype.type(top), arr, out=out)
    out = np.empty(arr.shape, dtype=np.float32)
    # frame by frame: two int64 copies of the whole image took 8x a uint16 one beside it
    for src, dst in zip(arr.reshape(-1, *arr.shape[-2:]), out.reshape(-1, *out.shape[-2:])):
        dst[...] = top - src.astype(np.int64)
    return out


def _load_pixels(grid: list[list[FrameInfo]]) -> np.ndarray:
    """(T, Z, Y, X) float32 with RescaleSlope/Intercept applied; each file decoded once.

    The output is allocated only once the first file has been decoded: its pixel data, checked
    against the Rows x Columns (x frames) its header declares, shows that size is real (all
    images of a stack have one size). A header declaring 65535 x 65535 over a few bytes of pixel
    data is then the one-line "truncated" error, not a MemoryError or an allocation of gigabytes."""
    ref = grid[0][0]
    out: np.ndarray | None = None
    by_path: dict[Path, list[tuple[int, int, FrameInfo]]] = defaultdict(list)
    for t, row in enumerate(grid):
        for z, f in enumerate(row):
            by_path[f.path].append((t, z, f))
    for path, items in by_path.items():
        _, arr = _pixels(path)
        if out is None:
            out = np.empty((len(grid), len(grid[0]), ref.rows, ref.cols), dtype=np.float32)
        for t, z, f in items:
            plane = arr if f.frame is None else (arr[f.frame] if arr.ndim == 3 else arr)
            if plane.shape != (ref.rows, ref.cols):
                raise ImageReadError(f"{path.name}: pixel data shape {plane.shape} does not match Rows x Columns")
            out[t, z] = plane.astype(np.float32) * np.float32(f.slope) + np.float32(f.intercept)
    assert out is not None  # a grid holds at least one image
    return out
