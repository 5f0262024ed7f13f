"""Echo video clips: AVI/MP4 (imageio v3 with the pyav plugin).

A clip becomes ``(T, 1, Y, X)`` uint8 grayscale (luma decoded by FFmpeg), ``modality="US"``,
``spacing_known=False`` (identity affine, 1 mm per pixel), ``frame_times_s = t / fps``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ImageReadError
from .volume import Volume


def read_video(path: Path) -> Volume:
    """Read all frames of an AVI/MP4 clip into a ``(T, 1, Y, X)`` uint8 :class:`Volume`."""
    import imageio.v3 as iio

    try:
        frames = iio.imread(path, plugin="pyav", format="gray")
        meta = iio.immeta(path, plugin="pyav")
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
        affine=np.eye(4),
        frame_times_s=times,
        modality="US",
        spacing_known=False,
        meta={"format": "video", "path": str(path), "source_ndim": 3, "fps": fps or None, "codec": meta.get("codec")},
    )
