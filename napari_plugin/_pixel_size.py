"""A pixel size the user gives in napari for labels whose image records none (a PNG, an AVI/MP4
echo clip), as ``--pixel-spacing ROW_MM[,COL_MM]`` does on the command line
(:func:`medseg.io.volume.with_pixel_spacing`). Qt-free.

The size goes into the :class:`~medseg.io.Volume` kept in the layers' metadata (the measured
label layers', the image's they were drawn on) and into the segmentation session's volume:
the measurement then reports volumes in mL and ``inputs.spacing_from`` ``--pixel-spacing``, and
labels saved afterwards carry it (the NIfTI header; the sidecar's ``spacing_from`` and
``pixel_spacing_mm``, as ``medseg segment --pixel-spacing`` writes them). The layers' ``scale``
is left at 1 per pixel: the image, its labels, clicks and boxes and any layer opened over it
(a ground-truth PNG) stay on one pixel grid, and prompts are read in data coordinates anyway.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from medseg.io.volume import GIVEN_SPACING, Volume

#: the report's ``inputs.spacing_from`` of a layer whose spacing comes from its scale (no file)
FROM_LAYER = "layer scale"


def parse_pixel_size(text: str) -> tuple[float, float] | None:
    """The panel's text as (row, column) mm, one number for both; None when empty. A ValueError
    in one line for anything but one or two positive finite numbers."""
    from medseg.errors import MedsegError
    from medseg.io.volume import parse_pixel_spacing

    if not text.strip():
        return None
    try:
        return parse_pixel_spacing(text.strip(), "Pixel size")
    except MedsegError as e:
        raise ValueError(str(e)) from None


def size_text(vol: Volume) -> str | None:
    """What the pixel size field shows for labels on ``vol``: None when the file records its own
    spacing (no field), "" when it records none, the size given ("0.3", "0.7,0.5") otherwise."""
    if vol.meta.get("spacing_from") == GIVEN_SPACING:
        dy, dx = (float(f"{v:.6g}") for v in vol.spacing[1:])
        return f"{dy:g}" if dy == dx else f"{dy:g},{dx:g}"
    return None if vol.spacing_known else ""


def with_size(vol: Volume, row_col: tuple[float, float] | None, what: str) -> Volume:
    """``vol`` with the pixel size ``row_col`` (None: none, as its file), replacing one given
    before. A file's own spacing is kept (the same size passes, another is a ValueError), and a
    stack of several slices without spacing is refused (a pixel size gives no slice distance)."""
    from medseg.io.volume import with_pixel_spacing

    if vol.meta.get("spacing_from") == GIVEN_SPACING:
        vol = _unknown(vol)
    if row_col is None:
        return vol
    if vol.spacing_known:
        if np.allclose(row_col, vol.spacing[1:], rtol=1e-4, atol=1e-9):
            return vol
        raise ValueError(f"{what} records its pixel size ({vol.spacing[1]:.6g} x {vol.spacing[2]:.6g} mm): "
                         "leave the pixel size empty")
    if vol.n_slices > 1:
        raise ValueError(f"{what} is a stack of {vol.n_slices} slices that records no spacing: a pixel size gives no "
                         "slice distance; open it saved with its spacing (NIfTI, MHA, NRRD)")
    return with_pixel_spacing(vol, row_col, what)


def _unknown(vol: Volume) -> Volume:
    """A Volume given a pixel size as it was read: 1 mm pixels nobody measured."""
    aff = vol.affine.copy()
    aff[:3, :3] /= np.linalg.norm(aff[:3, :3], axis=0)
    meta = {k: v for k, v in vol.meta.items() if k != "spacing_from"}
    return replace(vol, affine=aff, spacing_known=False, meta=meta)


def spacing_from(like: Volume) -> str | None:
    """The report's ``inputs.spacing_from`` for labels on ``like``, in ``medseg measure``'s terms:
    ``--pixel-spacing`` (given in the panel), ``file``, ``file (segment --pixel-spacing)`` (labels
    saved with a given size: their sidecar says so), ``layer scale`` (a layer made in the
    console), or None (no pixel size)."""
    from medseg.io.volume import spacing_source

    if like.spacing_known and like.meta.get("spacing_from") != GIVEN_SPACING and like.meta.get("format") == "napari-layer":
        return FROM_LAYER
    return spacing_source(like)


def spacing_inputs(like: Volume) -> dict[str, Any]:
    """The report's ``inputs``: ``spacing_from``, and ``settings.pixel_spacing`` [row, column] mm
    when the size was given (as ``medseg measure --pixel-spacing`` reports it)."""
    out: dict[str, Any] = {"spacing_from": spacing_from(like)}
    if out["spacing_from"] == GIVEN_SPACING:
        out["settings"] = {"pixel_spacing": [round(float(v), 6) for v in like.spacing[1:]]}
    return out
