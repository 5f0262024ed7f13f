"""napari data coordinates <-> medseg prompts: a point layer's (…, z, y, x) to (t, z, y, x), a
shapes-layer rectangle to a pixel Box and back, and the prompts behind one slice's mask."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medseg.errors import PromptError
from medseg.types import Box, Point


def point_index(coord: Sequence[float]) -> tuple[int, int, float, float]:
    """A prompt-layer data coordinate (…, z, y, x) -> (t, z, y, x) with integer t, z."""
    c = [0.0] * max(0, 4 - len(coord)) + [float(v) for v in coord][-4:]
    return int(round(c[0])), int(round(c[1])), c[2], c[3]


def rectangle_box(vertices: np.ndarray, shape_yx: tuple[int, int] | None = None) -> tuple[int, int, Box]:
    """Rectangle vertices (4, ndim) in data coordinates -> (t, z, inclusive pixel Box).

    A rectangle from pixel edge to edge ((y0 - 0.5, x0 - 0.5) to (y1 + 0.5, x1 + 0.5)) and one
    from pixel centre to centre both give Box(y0, x0, y1, x1); clipped to the slice.
    """
    v = np.asarray(vertices, dtype=float)
    t, z, _, _ = point_index(v[0])
    ys, xs = v[:, -2], v[:, -1]
    y0, x0 = math.floor(ys.min() + 0.5), math.floor(xs.min() + 0.5)
    y1, x1 = math.ceil(ys.max() - 0.5), math.ceil(xs.max() - 0.5)
    y1, x1 = max(y1, y0), max(x1, x0)
    if shape_yx is not None:
        h, w = shape_yx
        y0, x0, y1, x1 = max(0, y0), max(0, x0), min(h - 1, y1), min(w - 1, x1)
        if y1 < y0 or x1 < x0:
            raise PromptError(f"box lies outside the {h}x{w} slice")
    return t, z, Box(float(y0), float(x0), float(y1), float(x1))


def box_rectangle(box: Box, t: int, z: int, ndim: int = 4) -> np.ndarray:
    """Inverse of :func:`rectangle_box`: the (4, ndim) pixel-edge rectangle of a Box."""
    y0, x0, y1, x1 = box.y0 - 0.5, box.x0 - 0.5, box.y1 + 0.5, box.x1 + 0.5
    lead = [float(t), float(z)][-(ndim - 2):] if ndim > 2 else []
    return np.array([lead + [y0, x0], lead + [y0, x1], lead + [y1, x1], lead + [y1, x0]])


@dataclass(frozen=True)
class PromptRecord:
    """The prompts behind one structure's mask on one slice (what the prompt layers show)."""

    structure: str
    frame: int
    slice: int
    box: Box | None
    points: tuple[Point, ...]
