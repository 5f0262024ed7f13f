"""AHA 17-segment model (Cerqueira et al., Circulation 2002) on short-axis labels.

* Slices whose cavity is surrounded by myocardium (ray coverage >= 95%) are split into basal,
  mid and apical thirds along the long axis, from the base found by
  :func:`medseg.measure.geometry.detect_base`.
* Orientation comes from the RV, per slice: the RV-LV epicardial contact arc gives the two
  insertion points. Angles are taken counter-clockwise about the apex->base axis ``b``; with
  the septum direction ``s`` (LV centre -> middle of the contact arc), anterior is
  ``b x s`` (the heart's handedness; exact for any rotation, axis permutation or flip of a
  correct affine). So the anterior insertion point is the arc end at larger angle.
* ``psi`` = angle from the anterior insertion point towards the septum (degrees).
  "uniform": 60 degree sectors from the anterior insertion point (segment 2 starts there);
  apical 90 degree sectors centred on psi = 60 (a 120 degree septum).
  "septum_split": the septum between the insertion points split in two (2 | 3), the rest in
  four equal parts (4, 5, 6, 1); apical 90 degree sectors centred on the middle of the arc.
* Segment 17 (apex cap): myocardium beyond the last cavity slice; its thickness is measured
  through-plane, per pixel, as the length of the myocardial run along the stack axis.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .geometry import BaseEnd, MeasurementError, StackGeometry
from .qc import RING_COVERAGE_MIN, make_flag
from .thickness import SliceThickness, rv_contact_arc, slice_thickness

AHA_METHODS = ("uniform", "septum_split")
LEVELS = ("basal", "mid", "apical")
ASSUMED_SEPTUM_DEG = 120.0
SEGMENT_NAMES = {
    1: "basal anterior", 2: "basal anteroseptal", 3: "basal inferoseptal", 4: "basal inferior",
    5: "basal inferolateral", 6: "basal anterolateral", 7: "mid anterior", 8: "mid anteroseptal",
    9: "mid inferoseptal", 10: "mid inferior", 11: "mid inferolateral", 12: "mid anterolateral",
    13: "apical anterior", 14: "apical septal", 15: "apical inferior", 16: "apical lateral", 17: "apex",
}


def aha_segment(psi_deg: np.ndarray | float, level: str, septum_deg: float = ASSUMED_SEPTUM_DEG, method: str = "uniform") -> np.ndarray:
    """AHA segment number (1-16) for angles ``psi_deg`` from the anterior insertion point.

    Args:
        psi_deg: angle(s) in degrees measured from the anterior RV insertion point towards
            the septum (so the inferior insertion point is at ``septum_deg``).
        level: "basal", "mid" or "apical".
        septum_deg: angular length of the septum (RV contact arc), used by "septum_split".
        method: "uniform" or "septum_split".
    """
    if method not in AHA_METHODS:
        raise MeasurementError(f"unknown AHA method {method!r}; allowed: {', '.join(AHA_METHODS)}")
    if level not in LEVELS:
        raise MeasurementError(f"unknown level {level!r}; allowed: {', '.join(LEVELS)}")
    psi = np.asarray(psi_deg, dtype=np.float64) % 360.0
    if level == "apical":
        centre = 60.0 if method == "uniform" else septum_deg / 2.0
        k = np.floor(((psi - centre + 45.0) % 360.0) / 90.0).astype(int) % 4
        return np.array([14, 15, 16, 13])[k]
    offset = 0 if level == "basal" else 6
    if method == "uniform":
        k = np.floor(psi / 60.0).astype(int) % 6
    else:
        s = float(np.clip(septum_deg, 1.0, 359.0))
        rest = (360.0 - s) / 4.0
        k = np.where(psi < s, np.floor(psi / (s / 2.0)), 2 + np.floor((psi - s) / rest)).astype(int)
        k = np.clip(k, 0, 5)
    return (k + 1) % 6 + 1 + offset


def slice_levels(slices: list[int], geom: StackGeometry, base: BaseEnd) -> dict[int, str]:
    """Level (basal / mid / apical thirds along the long axis) of each AHA slice."""
    if not slices:
        return {}
    pos = geom.positions_mm[slices]
    depth = -pos if base.base_at_high_index else pos  # 0 at the base, growing towards the apex
    span = depth.max() - depth.min()
    t = (depth - depth.min()) / span if span > 0 else np.full(len(slices), 0.5)
    return {z: LEVELS[min(int(np.floor(3 * ti + 1e-6)), 2)] for z, ti in zip(slices, t)}


def wall_thickness(
    lv: np.ndarray, myo: np.ndarray, rv: np.ndarray, geom: StackGeometry, base: BaseEnd,
    coverage: np.ndarray, method: str = "uniform", ring_min: float = RING_COVERAGE_MIN,
) -> tuple[dict[str, Any], list[dict]]:
    """Wall thickness (mm) per AHA segment (mean, max), global and per slice, plus flags.

    Args:
        lv, myo, rv: (Z, Y, X) boolean masks (LV cavity, LV myocardium, RV cavity).
        geom, base: stack geometry and detected base end.
        coverage: (Z,) myocardial ray coverage per slice (qc.coverage_per_slice).
        method: "uniform" or "septum_split" (see module docstring).
    """
    if method not in AHA_METHODS:
        raise MeasurementError(f"unknown AHA method {method!r}; allowed: {', '.join(AHA_METHODS)}")
    flags: list[dict] = []
    ring = [z for z in range(geom.n_slices) if np.isfinite(coverage[z]) and coverage[z] >= ring_min and myo[z].any()]
    levels = slice_levels(ring, geom, base)
    samples = {z: s for z in ring if (s := slice_thickness(lv[z], myo[z], geom, z)) is not None}
    sign = 1.0 if base.base_at_high_index else -1.0  # angles about b (apex -> base)
    handed = display_handedness(geom, base)
    if handed is not None:  # the affine is no patient geometry: orient as the image is displayed
        sign = handed
        flags.append(make_flag(
            "aha_orientation_from_display",
            f"the affine puts the apex above the base (base->apex {_sup(base):+.2f} superior): not a patient geometry, as in "
            "converted files such as ACDC's; AHA segments are oriented as the slices are displayed (rows down, columns "
            "right: a short-axis view from the apex, anterior up, RV on the left)", severity="info"))
    arcs = {z: rv_contact_arc(s, rv[z], geom) for z, s in samples.items()}
    orient, oflags = _orientations(arcs, samples, rv, geom, sign)
    flags += oflags
    values: dict[int, list[np.ndarray]] = {k: [] for k in range(1, 17)}
    per_slice = []
    for z, s in samples.items():
        t = s.thickness_mm[s.valid]
        row: dict[str, Any] = {"slice": z, "level": levels[z], "mean": _mean(t), "max": _max(t)}
        if z in orient:
            a_ip, septum, source = orient[z]
            psi = (a_ip - sign * s.angles_deg[s.valid]) % 360.0
            seg = aha_segment(psi, levels[z], septum, method)
            for k in np.unique(seg):
                values[int(k)].append(t[seg == k])
            row.update({"anterior_ip_deg": round(float(a_ip), 1), "septum_deg": round(float(septum), 1), "orientation": source})
        per_slice.append(row)
    allv = np.concatenate([s.thickness_mm[s.valid] for s in samples.values()]) if samples else np.zeros(0)
    segments = {str(k): _stats(np.concatenate(v) if v else np.zeros(0)) for k, v in values.items()}
    segments["17"] = apex_cap(lv, myo, geom, base)
    result = {"global_mean": _mean(allv), "global_max": _max(allv), "segments": segments, "method": method,
              "angle_convention": "counter-clockwise about the apex->base axis; anterior = base_axis x septum",
              "slices": per_slice}
    return result, flags


#: base->apex direction's superior component above which an affine is no patient geometry
#: (in a patient the apex lies below the base; a horizontal heart's axis still points down)
APEX_SUPERIOR_MIN = 0.2


def _sup(base: BaseEnd) -> float:
    return float(base.base_to_apex[2])  # RAS: +z = superior


def display_handedness(geom: StackGeometry, base: BaseEnd) -> float | None:
    """``sign`` of :func:`wall_thickness` (angles about ``b`` = sign x normal) that orients the
    heart as its slices are displayed, when the affine cannot be a patient's: the base->apex
    direction points up (superior component > ``APEX_SUPERIOR_MIN``), as converted files with a
    placeholder affine give (ACDC's NIfTI: diag(-1, -1, 1) x spacing with the base at slice 0,
    which is the mirror of the heart). The display convention: a short-axis slice shown with rows
    down and columns right is seen from the apex (anterior up, the RV on the left), so ``b``
    points along column x row. None when the affine is plausible (then it decides)."""
    if _sup(base) <= APEX_SUPERIOR_MIN:
        return None
    cols = geom.affine[:3, :3]
    raw = np.cross(cols[:, 0], cols[:, 1])  # column x row direction in the world
    along = 1.0 if float(raw @ geom.normal) > 0 else -1.0  # geom.normal = along x raw
    return along  # b = sign x normal = column x row  <=>  sign = along


def _orientations(arcs: dict[int, tuple[float, float] | None], samples: dict[int, SliceThickness],
                  rv: np.ndarray, geom: StackGeometry, sign: float) -> tuple[dict[int, tuple[float, float, str]], list[dict]]:
    """Per slice (anterior IP angle about b, septum length, source); nearest slice fills gaps."""
    found: dict[int, tuple[float, float, str]] = {}
    for z, arc in arcs.items():
        if arc is not None:
            start, length = arc
            # The arc runs CCW about n from start; about b (= sign * n) the anterior end is the
            # end at the larger angle: start + length when b = n, -start when b = -n.
            a_ip = start + length if sign > 0 else -start
            found[z] = (a_ip % 360.0, length, "detected")
    flags: list[dict] = []
    if not found:
        if not rv.any() or not samples:
            if samples:
                flags.append(make_flag("aha_orientation_unknown", "no RV labels: AHA segments cannot be oriented (segment values are NaN)"))
            return {}, flags
        found = _assumed_from_rv_centroid(samples, rv, geom, sign)
        flags.append(make_flag("insertion_points_assumed",
                               f"the RV never touches the LV epicardium: septum centred on the RV centroid with an assumed {ASSUMED_SEPTUM_DEG:.0f} degree arc"))
        return found, flags
    out = dict(found)
    for z in samples:
        if z not in out:
            near = min(found, key=lambda k: abs(geom.positions_mm[k] - geom.positions_mm[z]))
            out[z] = (found[near][0], found[near][1], f"from slice {near}")
    return out, flags


def _assumed_from_rv_centroid(samples: dict[int, SliceThickness], rv: np.ndarray, geom: StackGeometry, sign: float) -> dict[int, tuple[float, float, str]]:
    rv_uv = geom.to_inplane_mm(np.argwhere(rv)[:, 1:].astype(np.float64)).mean(axis=0)
    out = {}
    for z, s in samples.items():
        d = rv_uv - s.centre_uv
        septum_dir = sign * np.degrees(np.arctan2(d[1], d[0]))
        out[z] = ((septum_dir + ASSUMED_SEPTUM_DEG / 2.0) % 360.0, ASSUMED_SEPTUM_DEG, "assumed")
    return out


def apex_cap(lv: np.ndarray, myo: np.ndarray, geom: StackGeometry, base: BaseEnd) -> dict[str, float]:
    """Segment 17: through-plane thickness (mm) of the myocardium beyond the last cavity slice.

    For each pixel of the first cap slice's myocardium, the run of myocardium along the stack
    axis (towards the apex) is summed with the slice weights. NaN when there is no cap.
    """
    order = base.order_from_base(geom.n_slices)
    has_cav = lv.reshape(lv.shape[0], -1).any(axis=1)
    cav_slices = [z for z in order if has_cav[z]]
    if not cav_slices:
        return _stats(np.zeros(0))
    pos_in_order = list(order).index(cav_slices[-1])
    cap = [int(z) for z in order[pos_in_order + 1:]]
    if not cap or not myo[cap[0]].any():
        return _stats(np.zeros(0))
    run = np.zeros(myo.shape[1:], dtype=np.float64)
    alive = myo[cap[0]].copy()
    for z in cap:
        alive &= myo[z]
        if not alive.any():
            break
        run[alive] += geom.weights_mm[z]
    return _stats(run[myo[cap[0]]])


def _mean(v: np.ndarray) -> float:
    return float(np.mean(v)) if v.size else float("nan")


def _max(v: np.ndarray) -> float:
    return float(np.max(v)) if v.size else float("nan")


def _stats(v: np.ndarray) -> dict[str, float]:
    return {"mean": _mean(v), "max": _max(v)}


def wall_thickening(ed: Mapping[str, Any], es: Mapping[str, Any]) -> dict[str, Any]:
    """Systolic wall thickening (%) = 100 x (ES - ED) / ED of the mean wall thickness, per AHA
    segment 1-16 and global, from the ED and ES ``wall_thickness_mm`` reports (each phase
    divided into segments by its own slices). Normal myocardium thickens by roughly 40 % or more;
    a scar or a dilated ventricle far less. Segment 17 (apex cap, measured through-plane in
    whole slices) is left out: NaN. NaN where a phase has no value for the segment."""
    def pct(a: Any, b: Any) -> float:
        ok = all(isinstance(v, (int, float)) and np.isfinite(v) for v in (a, b)) and a > 0
        return float(100.0 * (b - a) / a) if ok else float("nan")

    seg_ed, seg_es = ed.get("segments") or {}, es.get("segments") or {}
    segments = {str(k): pct((seg_ed.get(str(k)) or {}).get("mean"), (seg_es.get(str(k)) or {}).get("mean")) for k in range(1, 17)}
    segments["17"] = float("nan")
    return {"global": pct(ed.get("global_mean"), es.get("global_mean")), "segments": segments,
            "definition": "100 x (ES - ED) / ED of the mean wall thickness; segment 17 not measured"}
