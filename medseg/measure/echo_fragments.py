"""``fragmented`` for apical echo views (measurement.md's QC flag): an LV or LA mask in more than
one sizeable piece. Zero-click over a whole exported screen (no ultrasound region) found LV in the
RV and beside the sector: the echo report said nothing (:func:`medseg.measure.echo.measure_echo`).

The short-axis rule (:func:`medseg.measure.qc.fragmented`) counts every piece over
:data:`medseg.measure.qc.FRAGMENT_MIN_VOXELS`; apical labels resized with interpolation carry
rims of stray pixels (expert CAMUS-224 labels: second pieces of 11-59 pixels in 638 of 1,600
views, at most 1.4 % of the largest), so a piece counts here when it is also at least
:data:`FRAGMENT_MIN_SHARE` of the largest.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..labels import LabelMap
from .qc import FRAGMENT_MIN_VOXELS, make_flag

#: a piece of an apical LV or LA mask counts when it is at least this share of the largest piece
FRAGMENT_MIN_SHARE = 0.05


def fragmented_views(views: dict[str, Any], lmap: LabelMap) -> list[dict[str, Any]]:
    """One ``fragmented`` flag per LV or LA mask of the apical views (``{"4-chamber ED": (Y, X)
    labels}``) in more than one 8-connected piece over ``FRAGMENT_MIN_VOXELS`` pixels and
    :data:`FRAGMENT_MIN_SHARE` of its largest piece."""
    from scipy import ndimage

    flags = []
    for view, labels in views.items():
        arr = np.asarray(labels)
        for name in ("lv", "la"):
            if name not in lmap:
                continue
            lab, n = ndimage.label(arr == lmap[name], structure=np.ones((3,) * arr.ndim, dtype=bool))
            if n < 2:
                continue
            sizes = np.sort(np.bincount(lab.ravel())[1:])[::-1]
            big = sizes[sizes > max(FRAGMENT_MIN_VOXELS, FRAGMENT_MIN_SHARE * float(sizes[0]))]
            if big.size > 1:
                flags.append(make_flag("fragmented", f"{name} is in {big.size} separate pieces in the {view} view (sizes "
                                       f"{big[:5].tolist()} pixels; pieces of {FRAGMENT_MIN_SHARE:.0%} of the largest or more "
                                       "counted): check the labels", structure=name, view=view, n_components=int(big.size),
                                       sizes_pixels=big[:10].tolist()))
    return flags
