"""Where a DICOM image read without a stack lies, and its pixel size (a helper of
:mod:`medseg.io.dicom`): a single image that lacks part of the geometry a stack needs, or a
legacy multi-frame clip (frames = time, e.g. ultrasound).

* With ImagePositionPatient, ImageOrientationPatient and PixelSpacing: placed by them.
* Without PixelSpacing, the pixel size is the first calibrated 2-D ultrasound region's
  (:func:`medseg.io.us_region.region_spacing_mm`), else (not MR or CT) ImagerPixelSpacing's
  (with ``geometry_note``: it is the size at the detector), else unknown: 1 mm with
  ``spacing_known=False``. MR and CT images without PixelSpacing or a region are refused
  (:class:`~medseg.errors.GeometryError`).
* A single image with ImagePositionPatient and ImageOrientationPatient but no PixelSpacing lies
  where ITK (GDCM, so SimpleITK and 3D Slicer) puts it: origin at the position, row and column
  directions from the orientation; ITK gives it 1 mm pixels (ImagerPixelSpacing's for CR, DX
  and the like), medseg the pixel size above, so origin and directions agree. A position or
  orientation that is not valid is passed over, with ``geometry_note``.
* Otherwise (no position or orientation, a clip) it lies at origin 0 with identity direction in
  LPS (:data:`medseg.io.geometry.RASTER_AFFINE`, as a PNG or a video; the pixel size scales its
  axes); earlier medseg used RAS identity, the x/y mirror that
  :func:`medseg.io.geometry.same_placement` still accepts for labels written then.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from pydicom.dataset import Dataset

from .dicom_frames import FrameInfo, _floats, orientation_problem, require_geometry
from .dicom_meta import _modality
from .geometry import RASTER_AFFINE, affine_from_dicom, dicom_directions
from .us_region import region_spacing_mm

#: modalities whose images must carry PixelSpacing (or a calibrated ultrasound region): refused without
NEEDS_PIXEL_SPACING = ("MR", "CT")


class SingleGeometry(NamedTuple):
    """Where an image read without a stack lies: its RAS ``affine``, whether its pixel size is
    known, a ``note`` for ``meta["geometry_note"]`` (or None), and whether its position and
    orientation ``placed`` it (a single image so placed is written as a 3-D NIfTI, as a
    positioned one: ITK refuses a 2-D NIfTI whose plane is oblique)."""

    affine: np.ndarray
    spacing_known: bool
    note: str | None
    placed: bool


def single_image_geometry(ds: Dataset, info: FrameInfo, n_frames: int) -> SingleGeometry:
    """The :class:`SingleGeometry` of an image read without a stack (see the module docstring);
    ``info`` is its :class:`FrameInfo`, ``n_frames`` its frame count."""
    if info.ipp and info.iop and info.pixel_spacing:
        require_geometry([info])  # a position that is not finite, an orientation that is not one: GeometryError
        return SingleGeometry(_placed(info, info.pixel_spacing), True, None, True)
    size, note = pixel_size(ds)
    if size is None and _modality(ds) in NEEDS_PIXEL_SPACING:
        require_geometry([info])  # raises GeometryError naming what is missing
    if n_frames == 1 and info.ipp and info.iop:
        why = placement_problem(info)
        if why is None:
            return SingleGeometry(_placed(info, size or (1.0, 1.0)), size is not None, note, True)
        note = "; ".join(n for n in (f"{why}: placed at origin 0 as an image without position", note) if n)
    dy, dx = size or (1.0, 1.0)
    return SingleGeometry(RASTER_AFFINE @ np.diag([dx, dy, 1.0, 1.0]), size is not None, note, False)


def pixel_size(ds: Dataset) -> tuple[tuple[float, float] | None, str | None]:
    """((dy, dx) mm, note) of an image without PixelSpacing: the first calibrated 2-D ultrasound
    region's (note None), else ImagerPixelSpacing's where the modality is not MR or CT (the
    note says so), else (None, None)."""
    region = region_spacing_mm(ds)  # the region whose box is meta["us_region"] (medseg.io.us_region)
    if region is not None:
        return region, None
    if _modality(ds) in NEEDS_PIXEL_SPACING:
        return None, None
    imager = _floats(ds.get("ImagerPixelSpacing"), 2)
    if imager is None or not all(math.isfinite(v) and v > 0 for v in imager):
        return None, None
    dy, dx = float(imager[0]), float(imager[1])
    return (dy, dx), (f"no PixelSpacing: the pixel size is ImagerPixelSpacing's, {dy:.4g} x {dx:.4g} mm, measured at the "
                      "detector (a projection's sizes in the patient are smaller by its magnification)")


def placement_problem(info: FrameInfo) -> str | None:
    """Why ``info``'s ImagePositionPatient / ImageOrientationPatient cannot place it, or None."""
    if not all(math.isfinite(v) for v in info.ipp or ()):
        return f"ImagePositionPatient {list(info.ipp or ())} is not finite"
    why = orientation_problem(info.iop) if info.iop else "missing"
    return f"ImageOrientationPatient {list(info.iop or ())} {why}" if why else None


def _placed(info: FrameInfo, spacing: tuple[float, float]) -> np.ndarray:
    """The RAS affine of one image at ImagePositionPatient with ImageOrientationPatient and
    (dy, dx) ``spacing``; its slice axis SliceThickness (1 mm when absent) along the normal."""
    normal = dicom_directions(info.iop)[2]  # type: ignore[arg-type]
    return affine_from_dicom(info.ipp, info.iop, spacing, normal * (info.thickness or 1.0))  # type: ignore[arg-type]
