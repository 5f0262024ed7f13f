"""2-D raster images: PNG, JPEG, BMP, TIFF (Pillow).

An image becomes ``(1, 1, Y, X)`` with an identity affine (1 mm per pixel) and
``spacing_known=False``: these files carry no physical pixel size. Grayscale keeps its dtype
(uint8/uint16/int32/float32); RGB(A) becomes float32 luminance (ITU-R BT.601, alpha dropped).
For label reading, palette ('P') images give their palette indices and colour images are
refused. Multi-page TIFFs are refused (one 2-D image per file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .._files import atomic_path
from ..errors import GeometryError, ImageReadError, LabelMapError
from .volume import Volume, luminance

_GRAY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "F")


def read_raster(path: Path, labels: bool = False) -> Volume:
    """Read a 2-D PNG/JPEG/BMP/TIFF file into a ``(1, 1, Y, X)`` :class:`Volume`.

    ``labels=True`` keeps palette indices and refuses colour images (LabelMapError).
    """
    try:
        with Image.open(path) as im:
            n_pages = getattr(im, "n_frames", 1)
            if n_pages > 1:
                raise ImageReadError(f"{path}: multi-page image ({n_pages} pages) is not supported; give one 2-D image per file")
            im.load()
            mode = im.mode
            array = _to_array(im, path, labels)
    except (ImageReadError, LabelMapError):
        raise
    except Exception as e:  # UnidentifiedImageError, truncated data, decompression bombs, ...
        raise ImageReadError(f"cannot read image file {path}: {type(e).__name__}: {str(e).splitlines()[0][:160]}") from None
    if array.ndim != 2:
        raise ImageReadError(f"{path}: expected a 2-D image, got array shape {array.shape}")
    return Volume(
        array=array[None, None],
        affine=np.eye(4),
        modality="OT",
        spacing_known=False,
        meta={"format": "raster", "path": str(path), "source_ndim": 2, "mode": mode},
    )


def _to_array(im: Image.Image, path: Path, labels: bool) -> np.ndarray:
    mode = im.mode
    if mode == "P" and labels:
        return np.asarray(im).astype(np.uint8)
    if mode in _GRAY_MODES:
        a = np.asarray(im)
        return a.astype(np.uint8) if mode == "1" else a
    if labels:
        raise LabelMapError(f"{path}: label image is in colour mode {mode!r}; give integer labels in a grayscale image")
    if mode in ("LA", "PA"):
        return np.asarray(im.convert("LA"))[..., 0]
    return luminance(np.asarray(im.convert("RGB")))


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
