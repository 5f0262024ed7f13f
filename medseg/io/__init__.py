"""Image and label input/output.

Every reader returns a :class:`~medseg.io.volume.Volume`: array ``(T, Z, Y, X)``, affine from
voxel ``(x, y, z)`` to world RAS mm. Importing this package is light: pydicom, nibabel,
SimpleITK, Pillow, imageio and highdicom are imported only when a file of their format is read
or written. See docs/io.md.
"""

from __future__ import annotations

from .geometry import check_same_grid, slice_positions_mm
from .readers import read_label_volume, read_volume
from .seg_writer import write_dicom_seg
from .volume import Volume
from .writers import is_medseg_labels, read_sidecar, sidecar_path, write_labels

__all__ = [
    "Volume",
    "read_volume",
    "read_label_volume",
    "check_same_grid",
    "slice_positions_mm",
    "write_labels",
    "write_dicom_seg",
    "sidecar_path",
    "is_medseg_labels",
    "read_sidecar",
]
