"""What ``medseg evaluate`` (:mod:`medseg.evaluation`) keeps of a scored case until the
clinical errors (:mod:`medseg.evaluation_clinical`), which pair a study's ED and ES rows only
once every case is in: the label arrays compressed (label maps are mostly zeros, a cine's
~100 MB of labels a few MB), and of the image only its grid (affine, spacing), not its voxels.
A cohort of thousands of studies then holds kilobytes per case, not the images."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


class PackedLabels:
    """A label array held zlib-compressed; ``shape`` as the array's, :meth:`unpack` gives it back."""

    __slots__ = ("_data", "dtype", "shape")

    def __init__(self, arr: np.ndarray):
        arr = np.ascontiguousarray(arr)  # a broadcast view (labels of one phase for a cine) becomes a copy for a moment
        self.shape, self.dtype = arr.shape, arr.dtype
        self._data = zlib.compress(arr.tobytes(), 1)

    def unpack(self) -> np.ndarray:
        return np.frombuffer(zlib.decompress(self._data), dtype=self.dtype).reshape(self.shape)

    @property
    def nbytes_packed(self) -> int:
        return len(self._data)


@dataclass(frozen=True)
class Grid:
    """The geometry of a case's image the clinical errors read (``Volume.affine``, ``.spacing``,
    ``.spacing_known``), without its voxels."""

    affine: np.ndarray
    spacing: tuple[float, float, float]
    spacing_known: bool = True


def kept_for_clinical(pred: np.ndarray, ref: np.ndarray, vol) -> dict:
    """The ``_pred``, ``_ref`` and ``_vol`` entries of a row: packed labels and the image's grid."""
    grid = Grid(np.array(vol.affine), tuple(vol.spacing), bool(getattr(vol, "spacing_known", True)))
    return {"_pred": PackedLabels(pred), "_ref": PackedLabels(ref), "_vol": grid}


def labels(row: dict, which: str) -> np.ndarray:
    """A row's ``_pred`` or ``_ref`` label array (unpacked when packed)."""
    a = row[which]
    return a.unpack() if isinstance(a, PackedLabels) else np.asarray(a)
