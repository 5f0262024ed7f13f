"""Where ITK-based tools (SimpleITK, 3D Slicer, ITK-SNAP) read a NIfTI other than medseg does.

medseg and nibabel take a NIfTI's sform; ITK may take its qform, and it refuses a grid whose axes
are not at right angles. :func:`itk_misplacement` says how far ITK would place an image medseg
read (labels written as .mha / .nrrd would lie off it there); :func:`planes_qform` is the qform
that lets ITK open the labels of a sheared (gantry-tilted) grid.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from .geometry import pixel_axes_angle
from .volume import Volume


def itk_misplacement(like: Volume) -> str | None:
    """Where ITK-based tools (SimpleITK, 3D Slicer, ITK-SNAP) place a NIfTI image other than medseg
    does (its sform, as nibabel), in words ("up to 10.4 mm away", "mirrored in x"), else None:
    labels written as .mha / .nrrd (medseg's grid) would then lie off the image in those tools.
    Only for a header the reader noted (:func:`medseg.io.nifti._xform_note`, :func:`medseg.io.nifti._pixdim_signs`), and then as
    the installed ITK reads that header (SimpleITK 2.5 takes an sform of code 1 over the qform,
    other codes' qform first); None for other images, or a header ITK does not open."""
    from .nifti import _SPACE_UNITS_MM, _xform_note, _xyzt_units

    src = like.meta.get("nifti_header") if like.meta.get("format") == "nifti" else None
    if src is None:
        return None
    raw = like.meta.get("nifti_raw_pixdim")
    space_unit, _, _ = _xyzt_units(src)
    to_mm = _SPACE_UNITS_MM.get(space_unit, 1.0)
    if not raw and _xform_note(src, tuple(int(n) for n in src.get_data_shape()), to_mm) is None:
        return None
    itk = _itk_header_geometry(src, raw)
    if itk is None:
        return None
    ours = like.affine
    dims = [(0, n - 1) for n in like.grid_shape[::-1]]
    corners = np.array([[i, j, k, 1.0] for i in dims[0] for j in dims[1] for k in dims[2]]).T
    apart = float(np.linalg.norm((itk - ours)[:3] @ corners, axis=0).max())
    if not apart > 0.1:
        return None
    n = min(int(like.meta.get("source_ndim", 3)), 3)  # a 2-D file's ITK image has no third axis
    cos = [float(np.dot(itk[:3, i], ours[:3, i]) / (np.linalg.norm(itk[:3, i]) * np.linalg.norm(ours[:3, i]))) for i in range(n)]
    mirrored = [ax for ax, c in zip("xyz", cos) if c < -0.99]
    return f"{'mirrored in ' + ' and '.join(mirrored) + ', ' if mirrored else ''}up to {apart:.1f} mm away"


def _itk_header_geometry(header: nib.Nifti1Header, raw_pixdim: list[float] | None) -> np.ndarray | None:
    """The RAS affine (first 3 axes) SimpleITK reads from ``header`` (with the file's own
    pixdim[0..3], ``raw_pixdim``, when nibabel fixed them), from a copy of the header alone;
    None when it cannot (a header ITK refuses, no writable temporary folder)."""
    import tempfile

    import SimpleITK as sitk

    from .geometry import affine_lps_to_ras

    hdr = header.copy()
    if raw_pixdim:
        hdr["pixdim"][: len(raw_pixdim)] = raw_pixdim
    hdr["magic"], hdr["vox_offset"] = hdr.single_magic, hdr.single_vox_offset  # one .nii file: the header, 4 bytes, no voxels
    hdr.extensions.clear()
    warn = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # "unexpected scales in sform" (ACDC's) on the user's terminal
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "header.nii"
            with open(path, "wb") as f:
                hdr.write_to(f)
                f.write(b"\0" * 4)
            reader = sitk.ImageFileReader()
            reader.SetImageIO("NiftiImageIO")
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            origin, spacing, direction = reader.GetOrigin(), reader.GetSpacing(), reader.GetDirection()
    except (OSError, RuntimeError, ValueError):
        return None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warn)
    # a negative pixdim comes as a negative spacing here (the image read turns it into a mirrored axis): the
    # matrix is the same either way, so it is built here (affine_from_itk refuses a negative spacing)
    n = min(len(origin), 3)
    lps = np.eye(4)
    lps[:n, :n] = np.asarray(direction, dtype=np.float64).reshape(len(origin), len(origin))[:n, :n] * np.asarray(spacing[:n])
    lps[:n, 3] = origin[:n]
    return affine_lps_to_ras(lps) if np.all(np.isfinite(lps)) else None


def planes_qform(affine: np.ndarray) -> np.ndarray | None:
    """The qform of a sheared grid's labels (gantry tilt: the table steps along z while the image
    planes lean), the grid ITK's DICOM series reader (SimpleITK, ITK-SNAP) builds of the same
    images: the rows and columns, the planes' normal as third axis with the step between slices
    (their positions' distance, the sform's third axis length) as its spacing, the first voxel as
    origin. ITK-based tools refused the file before ("ITK only supports orthonormal direction
    cosines"); now they take this qform (the sform is not orthonormal) and show the labels on the
    series as they read it, while nibabel and medseg take the exact sform (code 1, kept), whose
    axis lengths pixdim still gives. None when the rows and columns are not at right angles (no
    rotation holds them: no qform, as before) or the slices lie in one plane."""
    if pixel_axes_angle(affine) is not None:
        return None
    row, col, step = affine[:3, 0], affine[:3, 1], affine[:3, 2]
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    along = float(np.dot(step, normal))
    if abs(along) < 1e-6:
        return None
    q = affine.copy()
    q[:3, 2] = normal * np.sign(along) * np.linalg.norm(step)  # the side of the planes the slices step to
    return q
