"""2-D raster images: PNG, JPEG, BMP, TIFF (Pillow).

An image becomes ``(1, 1, Y, X)`` with 1 mm pixels and ``spacing_known=False``: these files
carry no physical pixel size. It is placed where ITK (SimpleITK, 3D Slicer, ITK-SNAP) places it,
origin 0 and identity direction in LPS (:data:`medseg.io.geometry.RASTER_AFFINE`), so labels
written for it as NIfTI, MHA or NRRD overlay it in those tools; the array keeps the file's rows
and columns. Grayscale keeps its dtype (uint8/uint16/int32/float32); RGB(A) becomes float32 luminance (ITU-R BT.601, alpha dropped).
For label reading, palette ('P') images give their palette indices and colour images are
refused. Multi-page TIFFs are refused (one 2-D image per file).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .._files import atomic_path
from ..errors import GeometryError, ImageReadError, LabelMapError
from .geometry import RASTER_AFFINE
from .volume import Volume, luminance

_GRAY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "F")


def read_raster(path: Path, labels: bool = False) -> Volume:
    """Read a 2-D PNG/JPEG/BMP/TIFF file into a ``(1, 1, Y, X)`` :class:`Volume`.

    ``labels=True`` keeps palette indices and refuses colour images (LabelMapError).
    """
    try:
        # Pillow's DecompressionBombWarning (over 89 M pixels; 179 M and more are refused, its
        # DecompressionBombError) came as a two-line warning: medseg's own memory guard decides
        with _no_bomb_warning(), Image.open(path) as im:
            n_pages = getattr(im, "n_frames", 1)
            if n_pages > 1:
                raise ImageReadError(f"{path}: multi-page image ({n_pages} pages) is not supported; give one 2-D image per file")
            _check_raster_memory(path, im)
            im.load()
            if im.format == "PNG":
                _check_png_rows(path)
            mode = im.mode
            array = _to_array(im, path, labels)
    except (ImageReadError, LabelMapError):
        raise
    except UnidentifiedImageError:  # its message, "cannot identify image file 'x.png'", said no more than the class name
        raise ImageReadError(f"cannot read image file {path}: not an image Pillow recognises (corrupt, or another format "
                             f"under a {Path(path).suffix or 'raster'} name?)") from None
    except Exception as e:  # truncated data, decompression bombs, ...
        msg = (str(e).strip().splitlines() or [""])[0][:160]
        what = msg if msg and isinstance(e, OSError | ValueError) else f"{type(e).__name__}: {msg}"  # Pillow's own words: "image file is truncated"
        raise ImageReadError(f"cannot read image file {path}: {what}") from None
    if array.ndim != 2:
        raise ImageReadError(f"{path}: expected a 2-D image, got array shape {array.shape}")
    return Volume(
        array=array[None, None],
        affine=RASTER_AFFINE.copy(),
        modality="OT",
        spacing_known=False,
        meta={"format": "raster", "path": str(path), "source_ndim": 2, "mode": mode},
    )


@contextlib.contextmanager
def _no_bomb_warning() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _check_raster_memory(path: Path, im: Image.Image) -> None:
    """The memory guard every reader has (:func:`medseg.io.limits.check_decoded_size`), from the
    header's size before any pixel is decoded: a PNG of a few kB may declare 10000 x 10000
    pixels, and raster images were read whatever ``$MEDSEG_MAX_IMAGE_GB`` said. Pillow keeps a
    colour pixel in 4 bytes."""
    from PIL import ImageMode

    from .limits import check_decoded_size

    try:
        mode = ImageMode.getmode(im.mode)
        itemsize: Any = np.dtype(mode.typestr) if len(mode.bands) == 1 else 4
    except (KeyError, TypeError, ValueError):  # a mode Pillow has no array type for
        itemsize = 4
    width, height = im.size
    check_decoded_size(path, (height, width), itemsize)


#: PNG colour type -> samples per pixel (gray, RGB, palette, gray+alpha, RGBA)
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: Adam7 interlace passes: (first column, first row, column step, row step)
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _check_png_rows(path: Path) -> None:
    """ImageReadError unless a PNG's image data (its IDAT chunks, inflated) are as long as its
    IHDR header's size needs. Pillow stops at the end of the compressed stream and leaves the
    rows it did not get at zero: a header one row taller than the data read as an image with a
    black row added, a truncated or damaged file as a whole one."""
    import struct
    import zlib

    raw = Path(path).read_bytes()
    pos, header, z, got, need = 8, None, zlib.decompressobj(), 0, 0
    while pos + 8 <= len(raw):
        n, kind = struct.unpack(">I", raw[pos:pos + 4])[0], raw[pos + 4:pos + 8]
        data = raw[pos + 8:pos + 8 + n]
        if kind == b"IHDR" and header is None:
            header = struct.unpack(">IIBBBBB", data[:13])
            need = _png_data_bytes(*header)
        elif kind == b"IDAT" and header is not None:
            while data and not z.eof and got <= need:  # no further than past what the header needs: a deflate bomb
                out = z.decompress(data, 1 << 20)       # (1 MB inflating to 1 GB of rows) was inflated to its end
                got, data = got + len(out), z.unconsumed_tail
        elif kind == b"IEND":
            break
        if got > need:
            break
        pos += 12 + n
    if header is None:
        return
    got += len(z.flush()) if not z.eof and got <= need else 0
    width, height, depth, colour, _, _, interlace = header
    bits = depth * _PNG_SAMPLES.get(colour, 1)
    if got < need:
        rows = f"{got // (1 + (width * bits + 7) // 8)} of the {height} rows" if not interlace else f"{got} of the {need} bytes"
        raise ImageReadError(f"{path}: truncated or damaged PNG: its image data end after {rows} its header gives ({width}x{height})")
    if got > need:  # a header narrower or shorter than the data: Pillow reads them skewed, or drops rows
        raise ImageReadError(f"{path}: damaged PNG: its image data hold more than the {width}x{height} pixels its header gives")


def _png_data_bytes(width: int, height: int, depth: int, colour: int, _compression: int, _filter: int, interlace: int) -> int:
    """Bytes of a PNG's inflated image data (rows with their filter bytes, Adam7 passes) for its IHDR values."""
    bits = depth * _PNG_SAMPLES.get(colour, 1)
    passes = [((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy) for x0, y0, dx, dy in _ADAM7] if interlace else [(width, height)]
    return sum(rows * (1 + (cols * bits + 7) // 8) for cols, rows in passes if cols > 0 and rows > 0)


def _to_array(im: Image.Image, path: Path, labels: bool) -> np.ndarray:
    mode = im.mode
    if mode == "P" and labels:
        return np.asarray(im).astype(np.uint8)
    if mode in _GRAY_MODES:
        a = np.asarray(im)
        return a.astype(np.uint8) if mode == "1" else a
    if labels:
        raise LabelMapError(f"{path}: label image is in colour mode {mode!r}{_colours(im)}; medseg reads labels as integer "
                            "values in a grayscale image: give one value per structure (0 background), e.g. a colour-coded "
                            "mask (HVSMR-2.0's) converted colour by colour: examples/annotation_references.py colours")
    if mode in ("LA", "PA"):
        return np.asarray(im.convert("LA"))[..., 0]
    return luminance(np.asarray(im.convert("RGB")))


def _colours(im: Image.Image, shown: int = 8) -> str:
    """" with N colours (r, g, b), ..." for a colour label image: what a user must map to values."""
    rgb = np.asarray(im.convert("RGB")).reshape(-1, 3).astype(np.uint32)
    cols = np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2])  # one number per colour: a 1-D unique
    listed = ", ".join(str((int(c) >> 16, int(c) >> 8 & 255, int(c) & 255)) for c in cols[:shown]) + (", ..." if len(cols) > shown else "")
    return f" with {len(cols)} colours {listed}"


def write_png_labels(labels: np.ndarray, like: Volume, path: Path) -> Path:
    """Write a single-slice, single-frame integer label image as PNG (uint8, or uint16 when a
    value exceeds 255), atomically. Refuses stacks (use NIfTI)."""
    a = np.asarray(labels)
    if a.ndim > 2 and int(np.prod(a.shape[:-2])) != 1:
        raise GeometryError(f"{path.name}: PNG holds one 2-D slice, labels have shape {a.shape}; write .nii.gz instead")
    a = a.reshape(a.shape[-2:])
    a = a.astype(np.uint8 if a.max(initial=0) < 256 else np.uint16)
    with atomic_path(path) as tmp:
        Image.fromarray(a).save(tmp, format="PNG")
    return Path(path)
