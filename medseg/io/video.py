"""Echo video clips: AVI/MP4 (imageio v3 with the pyav plugin).

A clip becomes ``(T, 1, Y, X)`` uint8 grayscale (luma decoded by FFmpeg), ``modality="US"``,
``spacing_known=False`` (1 mm per pixel), ``frame_times_s = t / fps``. It is placed as a PNG
is (:data:`medseg.io.geometry.RASTER_AFFINE`: origin 0, identity direction in LPS, where ITK
places an image without geometry), so a frame saved as PNG and the clip's labels written as
NIfTI overlay in ITK tools; the frames keep the file's rows and columns. Earlier medseg placed a
clip at RAS identity: :func:`medseg.io.geometry.same_placement` still pairs labels written so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageReadError
from .geometry import RASTER_AFFINE
from .volume import Volume


def read_video(path: Path) -> Volume:
    """Read all frames of an AVI/MP4 clip into a ``(T, 1, Y, X)`` uint8 :class:`Volume`."""
    import imageio.v3 as iio

    try:
        with iio.imopen(path, "r", plugin="pyav") as f:
            meta = f.metadata()
            frames = _decode(f, path)
    except ImageReadError:
        raise
    except Exception as e:  # av/FFmpeg raise several error types for corrupt files
        first = str(e).splitlines()[0][:160] if str(e) else ""
        raise ImageReadError(f"cannot read video file {path}: {type(e).__name__}: {first}") from None
    frames = np.asarray(frames)
    if frames.ndim == 4:  # some decoders keep a channel axis
        frames = frames[..., 0]
    if frames.ndim != 3 or frames.shape[0] == 0:
        raise ImageReadError(f"{path}: video holds no frames (decoded shape {frames.shape})")
    fps = float(meta.get("fps") or 0.0)
    times = np.arange(frames.shape[0], dtype=np.float64) / fps if fps > 0 and np.isfinite(fps) else None
    return Volume(
        array=frames[:, None],
        affine=RASTER_AFFINE.copy(),
        frame_times_s=times,
        modality="US",
        spacing_known=False,
        meta={"format": "video", "path": str(path), "source_ndim": 3, "fps": fps or None, "codec": meta.get("codec")},
    )


def _decode(f: Any, path: Path) -> np.ndarray:
    """All frames of an opened clip (imageio's pyav plugin), in grey, within the memory guard
    (:func:`medseg.io.limits.check_decoded_size`): the frame count the container declares is
    checked before any frame is decoded, and frames beyond it (a count that is wrong, or none
    given) as they come. A clip of a few hundred kB (black 1080p frames) may decode to tens of
    GB: imageio allocated them all, whatever ``$MEDSEG_MAX_IMAGE_GB`` said."""
    from .limits import available_bytes, check_decoded_size, decoded_bytes, format_gb, over_limit

    props = f.properties(format="gray")
    shape, dtype = tuple(int(n) for n in props.shape), np.dtype(props.dtype)
    if shape[0] > 0:
        check_decoded_size(path, shape, dtype, what="video")
    limit = available_bytes()
    frames = np.empty(shape, dtype) if shape[0] > 0 else None
    extra: list[np.ndarray] = []
    n = 0
    for frame in f.iter(format="gray", thread_type="FRAME"):
        if frames is not None and n < len(frames) and frame.shape == frames.shape[1:]:
            frames[n] = frame
        else:
            if frames is not None and n < len(frames):  # a frame of another size: imageio's error
                raise ImageReadError(f"cannot read video file {path}: frame {n} is {frame.shape}, the clip's {frames.shape[1:]}")
            need = decoded_bytes((n + 1, *frame.shape), frame.itemsize)
            if limit is not None and need > limit:
                raise ImageReadError(f"{path}: the video (more than {n} frames of {frame.shape}, {frame.dtype}) would need more than "
                                     f"{format_gb(need)} of memory, {over_limit(limit)}")
            extra.append(frame)
        n += 1
    if frames is None:
        return np.stack(extra) if extra else np.zeros((0, *shape[1:]), dtype)
    if n < len(frames):  # fewer frames than the container declared
        frames = frames[:n]
    return np.concatenate([frames, np.stack(extra)]) if extra else frames
