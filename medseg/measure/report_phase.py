"""One-phase measurement reports: :func:`measure_phase` turns one (Z, Y, X) phase into
``volumes_ml``, ``lv_mass_g``, ``wall_thickness_mm``, ``flags``, ``spacing_mm``, ``label_map``
(+ details), from :func:`phase_volumes` (the volumes and QC flags of one phase's masks, also used
per frame of a cine), the label value check (:func:`check_values`), the slice-axis check
(:func:`check_slice_axis`) and the papillary muscle statement; :mod:`medseg.measure.report`
re-exports them and builds the ED + ES and cine reports on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import LabelMapError
from ..labels import LabelMap
from . import qc
from .aha import AHA_METHODS, wall_thickness
from .geometry import BaseEnd, MeasurementError, StackGeometry, as_label_array, detect_base, given_base, resolve_affine, stack_geometry
from .volumes import lv_mass_g, slice_areas_mm2

SAX_STRUCTURES = ("lv", "myo", "rv")

def measure_phase(
    labels: Any, affine: np.ndarray | None = None, label_map: Any = None, *,
    slice_positions_mm: Sequence[float] | None = None, aha_method: str = "uniform",
    interpolate_missing: bool = False, basal_rule: bool = True, base_end: str | BaseEnd | None = None,
) -> dict[str, Any]:
    """Measure one phase of short-axis (or 3-D) labels.

    Args:
        labels: (Z, Y, X) integer label array, or a one-frame label Volume.
        affine: (4, 4) voxel (x, y, z) -> world mm; taken from ``labels`` when it is a Volume.
        label_map: LabelMap or its text (``lv=3,myo=2,rv=1``); None = medseg's default map.
        slice_positions_mm: (Z,) slice-centre positions for unevenly spaced stacks.
        aha_method: "uniform" or "septum_split" (see :mod:`medseg.measure.aha`).
        interpolate_missing: fill empty slices between labelled slices with the interpolated
            area (still flagged ``missing_slice``, with the added mL).
        basal_rule: apply the SCMR 50% rule to basal LV slices (flagged ``basal_partial``).
        base_end: "low_index" / "high_index" to state where the base is; None = detect it
            from the anatomy (:func:`medseg.measure.geometry.detect_base`).

    Returns:
        The one-phase report dict (volumes mL, mass g, thickness mm, flags, spacing, map).
    """
    lmap = LabelMap.parse(label_map)
    if aha_method not in AHA_METHODS:
        raise MeasurementError(f"unknown AHA method {aha_method!r}; allowed: {', '.join(AHA_METHODS)}")
    arr = as_label_array(labels, 3)
    geom = stack_geometry(resolve_affine(labels, affine), arr.shape, slice_positions_mm)
    if arr.shape[0] < 2:
        raise MeasurementError("a volume needs at least 2 slices; got a single slice (use medseg.measure.echo for 2-D views)")
    check_slice_axis(geom)
    check_values(arr, lmap)
    base = given_base(base_end, geom) if isinstance(base_end, str) else base_end
    return _phase(arr, geom, lmap, aha_method, interpolate_missing, basal_rule, base)


def check_values(arr: np.ndarray, lmap: LabelMap) -> None:
    """Raise LabelMapError when the labels hold values that the label map does not name."""
    _, unknown = lmap.fit(arr)
    if unknown:
        shown = ", ".join(map(str, unknown[:8])) + (f", ... ({len(unknown)} values)" if len(unknown) > 8 else "")
        raise LabelMapError(f"label values {shown} are not in the label map ({lmap.to_string()}); "
                            + ("is this an image rather than labels?" if len(unknown) > 8 else
                               "give the right --label-map or add them, e.g. other=" + str(unknown[0])))


#: structures whose masks are read as shapes in the slice plane (LV coverage, wall thickness, RV contact, papillary muscles)
GEOMETRY_STRUCTURES = ("lv", "myo", "rv")


def phase_masks(arr: np.ndarray, lmap: LabelMap) -> dict[str, np.ndarray]:
    """One boolean mask per structure of ``lmap`` from a (Z, Y, X) label array: those of
    :data:`GEOMETRY_STRUCTURES` on the whole (Z, Y, X) grid; every other structure cut in-plane to
    the rows and columns it occupies (all Z slices kept), since it is only counted (per-slice
    areas, presence per slice, connected parts), which the cut leaves as they are. On a
    320 x 512 x 512 CT the atria, aorta and pulmonary artery then hold their own boxes, not four
    more 84 MB copies of the grid (BENCHMARKS.md, "Large inputs"). Don't read these masks'
    rows and columns as the grid's."""
    masks: dict[str, np.ndarray] = {}
    for name, v in lmap.values.items():
        m = arr == v
        if name not in GEOMETRY_STRUCTURES:  # a copy: a view would keep the whole grid's mask alive
            _, rows, cols = qc.bounding_box(m)
            m = m[:, rows, cols].copy() if rows.stop > rows.start else np.zeros((m.shape[0], 1, 1), dtype=bool)
        masks[name] = m
    return masks


def _phase(arr: np.ndarray, geom: StackGeometry, lmap: LabelMap, aha_method: str, interpolate: bool, basal_rule: bool,
           base: BaseEnd | None) -> dict[str, Any]:
    masks = phase_masks(arr, lmap)
    vols, flags, detail = phase_volumes(masks, geom, lmap, interpolate, basal_rule, base)
    for name in qc.ATRIA:  # an atrium cut off by the field of view is a lower bound, not a small atrium
        if name in lmap:  # from the grid (the atria's masks are cut to their boxes)
            flags += qc.truncated(arr, lmap[name], name, vols[name])
    empty = np.zeros(geom.shape, dtype=bool)
    if "lv" in masks and "myo" in masks and masks["lv"].any() and masks["myo"].any():
        wt, wflags = wall_thickness(masks["lv"], masks["myo"], masks.get("rv", empty), geom, detail["base_obj"],
                                    detail["coverage"], method=aha_method)
        flags += wflags
    else:
        wt = _empty_thickness(aha_method)
    myo_ml = vols.get("myo", math.nan)
    base = detail.pop("base_obj")
    report: dict[str, Any] = {
        "volumes_ml": vols,
        "lv_mass_g": lv_mass_g(myo_ml),
        "wall_thickness_mm": wt,
        "flags": flags,
        "spacing_mm": [round(s, 6) for s in geom.spacing_mm],
        "label_map": lmap.to_dict(),
        "slice_positions_mm": np.round(geom.positions_mm, 4).tolist(),
        "base": {"end": "high_index" if base.base_at_high_index else "low_index", "method": base.method, "confident": base.confident},
        "lv_coverage_pct": [None if not np.isfinite(c) else round(100 * float(c), 1) for c in detail["coverage"]],
        "excluded_basal_slices": detail["excluded"],
        "papillary_muscles": papillary_statement(masks.get("lv", empty), masks.get("myo", empty), geom),
    }
    return report


def phase_volumes(masks: dict[str, np.ndarray], geom: StackGeometry, lmap: LabelMap, interpolate: bool = False,
                  basal_rule: bool = True, base: BaseEnd | None = None) -> tuple[dict[str, float], list[dict], dict[str, Any]]:
    """Volumes (mL) of every structure of one phase, with QC flags and per-slice details.

    ``base``: the base end of the stack (default: detected from this phase's masks).
    """
    flags: list[dict] = []
    empty = np.zeros(geom.shape, dtype=bool)
    lv, myo = masks.get("lv", empty), masks.get("myo", empty)
    base = base if base is not None else detect_base(masks, geom)
    if not base.confident and lv.any():
        flags.append(qc.make_flag("base_ambiguous", f"the base end could not be told from anatomy (cue: {base.method}); "
                                  "assumed at the low slice indices" if not base.base_at_high_index else
                                  f"the base end could not be told from anatomy (cue: {base.method}); assumed at the high slice indices",
                                  severity="info"))
    coverage = qc.coverage_per_slice(lv, myo, geom) if myo.any() else np.full(geom.n_slices, np.nan)
    lv_area = slice_areas_mm2(lv, geom)
    lv_ml_slice = lv_area * geom.weights_mm / 1000.0
    flags += qc.long_axis_stack(lv, masks.get("la", empty), coverage, lv_area)
    excluded: list[int] = []
    if basal_rule and myo.any() and lv.any():
        excluded, bflags = qc.basal_partial(coverage, base.order_from_base(geom.n_slices), lv_ml_slice)
        flags += bflags
    vols: dict[str, float] = {}
    for name, mask in masks.items():
        if not mask.any():
            vols[name] = math.nan
            flags.append(qc.absent(name, lmap[name]))
            continue
        contrib = slice_areas_mm2(mask, geom) * geom.weights_mm / 1000.0
        if name == "lv":
            contrib[excluded] = 0.0
        gaps: list[int] = []
        if name in SAX_STRUCTURES:
            gaps, gflags = qc.missing_slices(mask, name)
            if interpolate and gaps:
                contrib, gflags = _interpolate_gaps(mask, geom, contrib, gaps, gflags)
            flags += gflags
        # parts apart only across an empty slice (flagged missing_slice above) are one structure, not fragments
        flags += qc.fragmented(np.delete(mask, gaps, axis=0) if gaps else mask, name)
        vols[name] = float(contrib.sum())
    if lv.any():
        flags += qc.incomplete_coverage(lv, base.base_at_high_index)
    return vols, flags, {"coverage": coverage, "excluded": excluded, "base_obj": base}


def _interpolate_gaps(mask: np.ndarray, geom: StackGeometry, contrib: np.ndarray, gaps: list[int], flags: list[dict]) -> tuple[np.ndarray, list[dict]]:
    """Fill empty in-between slices with the area interpolated along the slice positions."""
    areas = slice_areas_mm2(mask, geom)
    have = np.flatnonzero(areas > 0)
    out = contrib.copy()
    for z, f in zip(gaps, flags):
        a = float(np.interp(geom.positions_mm[z], geom.positions_mm[have], areas[have]))
        out[z] = a * geom.weights_mm[z] / 1000.0
        f["interpolated_ml"] = round(float(out[z]), 3)
        f["message"] += f"; interpolated area adds {out[z]:.1f} mL"
    return out, flags


def papillary_statement(lv: np.ndarray, myo: np.ndarray, geom: StackGeometry) -> dict[str, Any]:
    """Whether papillary muscles / trabeculae are counted in the LV blood pool, from the labels.

    Holes inside the (per-slice hole-filled) LV cavity are papillary muscles or trabeculae
    the labeller excluded from the blood pool; labelled myocardium there counts in LV mass.
    """
    from scipy import ndimage

    in_myo, in_bg = np.zeros(lv.shape[0]), np.zeros(lv.shape[0])  # voxels per slice: one slice's holes at a time, not a grid's
    for z in range(lv.shape[0]):
        if lv[z].any():
            holes = ndimage.binary_fill_holes(lv[z]) & ~lv[z]
            in_myo[z], in_bg[z] = np.count_nonzero(holes & myo[z]), np.count_nonzero(holes & ~myo[z])
    as_myo = float((in_myo * geom.pixel_area_mm2 * geom.weights_mm).sum() / 1000.0)  # slice_areas_mm2's sum, slice by slice
    as_bg = float((in_bg * geom.pixel_area_mm2 * geom.weights_mm).sum() / 1000.0)
    if as_myo + as_bg < 0.05:
        text = ("papillary muscles and trabeculae are counted in the LV blood pool (no myocardium or gaps inside the "
                "cavity): they add to LV volumes, not to LV mass (the UK Biobank reference convention)")
        where = "blood_pool"
    elif as_myo >= as_bg:
        text = f"{as_myo:.1f} mL inside the LV cavity is labelled myocardium (papillary muscles): counted in LV mass, not in LV volumes"
        where = "myocardium"
    else:
        text = f"{as_bg:.1f} mL inside the LV cavity is unlabelled (papillary muscles excluded): in neither LV volumes nor LV mass"
        where = "excluded"
    return {"counted_in": where, "inside_cavity_as_myo_ml": round(as_myo, 3), "inside_cavity_unlabelled_ml": round(as_bg, 3),
            "statement": text + "; the labels are used as given"}


def _empty_thickness(method: str) -> dict[str, Any]:
    nan = math.nan
    return {"global_mean": nan, "global_max": nan, "segments": {str(k): {"mean": nan, "max": nan} for k in range(1, 18)},
            "method": method, "slices": []}


#: in-plane pixels this many times coarser than the slice step: the stack's slices are not on Z
SLICE_AXIS_RATIO = 2.0
#: the widest slice step a short-axis stack has (cardiac MR: 5-10 mm, gaps included up to ~20):
#: an in-plane step wider, that the slice-axis check would take for one, is a wrong pixel spacing
SLICE_STEP_MAX_MM = 50.0


def check_slice_axis(geom: StackGeometry) -> None:
    """Refuse a short-axis stack whose slice axis is not the array's Z: an array axis in the
    slice plane with a step ``SLICE_AXIS_RATIO`` times the slice step is the real slice axis
    (labels reoriented after segmentation, e.g. by nibabel's ``as_closest_canonical``), and the
    through-plane weights, the basal rule and the AHA rings would be taken across it. An
    in-plane step of ``SLICE_STEP_MAX_MM`` or more is no slice step either: the message then
    names the pixel spacing (a DICOM PixelSpacing of 1e30 read as reoriented labels)."""
    dz, dy, dx = geom.spacing_mm
    if max(dy, dx) >= SLICE_AXIS_RATIO * dz and max(dy, dx) >= SLICE_STEP_MAX_MM:
        raise MeasurementError(
            f"the pixel spacing is {dy:.3g} x {dx:.3g} mm (rows x columns), slices {dz:.3g} mm apart: pixels of "
            f"{SLICE_STEP_MAX_MM:g} mm or more are no heart image's, nor a slice step (labels reoriented); check the image's pixel spacing "
            "(DICOM PixelSpacing, NIfTI pixdim) and its unit")
    if max(dy, dx) >= SLICE_AXIS_RATIO * dz:
        raise MeasurementError(
            f"the array's Z steps {dz:.3g} mm but its {'rows' if dy >= dx else 'columns'} {max(dy, dx):.3g} mm: the short-axis slices "
            "lie along another array axis (labels reoriented after segmentation, e.g. to a canonical orientation?); "
            "measure them as acquired, slices on the first array axis (NIfTI: the third)")
