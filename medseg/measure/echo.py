"""Echocardiographic LV and LA volumes from apical 4- and 2-chamber label images (Lang 2015).

* Long axis: from the mitral-annulus midpoint to the apex (the LV contour point farthest
  from it). The annulus is the LV-LA boundary when the LA is labelled (its two extreme
  contact points are the hinge points); otherwise the basal chord: the long axis of the LV
  mask (principal axis) is oriented by its wider end (the base; the apex tapers) and the
  hinge points are the extreme contour points, across the axis, within 2% of the length of
  the basal end, placed on the basal-most line of the contour (the annulus chord).
* Method of disks: 20 disks perpendicular to the long axis; each diameter is the chord of
  the sub-pixel LV contour at the disk middle. Biplane: V = pi/4 sum a_i b_i L/20 with
  L the longer of the two views; single plane: V = pi/4 sum d_i^2 L/20.
* Area-length: V = 8/(3 pi) A^2 / L (biplane: A1 A2 / L). LA at LV end-systole:
  0.85 A1 A2 / L with L the shorter LA length (single view: 0.85 A^2 / L).
* Without pixel spacing only EF is reported (a ratio of volumes in pixel units), and the
  report says so.

Label images are 2-D ``(Y, X)`` integer arrays; spacing is ``(dy, dx)`` mm per pixel.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ..io.volume import Volume
from ..labels import LabelMap
from .echo_fragments import fragmented_views
from .geometry import MeasurementError, StackGeometry, stack_geometry
from .qc import make_flag, phase_at_clip_end, ray_coverage, truncated, volume_outlier_flags, volume_outlier_frames
from .reference import adult_ranges_only, check_sex, range_flag
from .report import check_values
from .thickness import outer_contour_mm
from .volumes import atrium, detect_ed_es, function_from_volumes, report_bsa

N_DISKS = 20
LA_AREA_LENGTH_K = 0.85  # ~ 8 / (3 pi)
ECHO_LABEL_MAP = "lv=1,myo=2,la=3"  # CAMUS
#: myocardium around at least this share of the LV cavity = a short-axis section, not a long-axis
#: view (expert labels: 400 CAMUS apical views <= 0.85, M&Ms-2 4-chamber 0.83-0.86; 716 of 717
#: ACDC short-axis slices >= 0.95)
SHORT_AXIS_COVERAGE = 0.95
#: an echo report's ``method`` -> its readable name
ECHO_METHODS = {"biplane_disks": "biplane method of disks", "single_plane_disks_a4c": "single-plane method of disks",
                "single_plane_disks_clip": "single-plane method of disks, one view over the cycle"}


def is_echo_report(report: Any) -> bool:
    """Whether a measurement report came from :func:`measure_echo` / :func:`measure_echo_clip`."""
    return report.get("method") in ECHO_METHODS


def echo_method_text(method: str) -> str:
    """Readable name of an echo report's ``method``."""
    return ECHO_METHODS.get(method, method.replace("_", " "))


@dataclass(frozen=True)
class LongAxis:
    """LV long axis of one view, in millimetres of the image plane (u = column, v = row).

    Attributes:
        hinge: (2, 2) the two mitral-annulus hinge points.
        mid: (2,) annulus midpoint; apex: (2,) apex; length_mm: |apex - mid|.
        method: "lv_la_boundary" or "basal_chord".
    """

    hinge: np.ndarray
    mid: np.ndarray
    apex: np.ndarray
    length_mm: float
    method: str


def plane_geometry(shape_yx: tuple[int, int], spacing_mm: tuple[float, float] | None) -> StackGeometry:
    """Geometry of a 2-D image with pixel spacing (dy, dx) mm (1 mm when unknown)."""
    if spacing_mm is not None and (np.ndim(spacing_mm) != 1 or len(spacing_mm) != 2):
        raise MeasurementError(f"pixel spacing must be (dy, dx) mm, got {spacing_mm!r}")
    dy, dx = spacing_mm if spacing_mm is not None else (1.0, 1.0)
    if not (dy > 0 and dx > 0):
        raise MeasurementError(f"pixel spacing must be positive, got {spacing_mm}")
    return stack_geometry(np.diag([float(dx), float(dy), 1.0, 1.0]), (1, *shape_yx))


def long_axis(lv: np.ndarray, geom: StackGeometry, la: np.ndarray | None = None) -> LongAxis:
    """Find the annulus hinge points, midpoint and apex of a 2-D LV mask (see module doc)."""
    contour = outer_contour_mm(lv, geom)
    if len(contour) < 8:
        raise MeasurementError("the LV label is too small to find its long axis")
    method = "basal_chord"
    hinge = None
    if la is not None and la.any():
        hinge = _lv_la_hinges(largest_part(lv), la, geom)
        method = "lv_la_boundary" if hinge is not None else method
    if hinge is None:
        hinge = _basal_chord(lv, contour, geom)
    mid = hinge.mean(axis=0)
    far = np.linalg.norm(contour - mid, axis=1)
    apex = contour[int(np.argmax(far))]
    return LongAxis(hinge=hinge, mid=mid, apex=apex, length_mm=float(far.max()), method=method)


def largest_part(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected part of a 2-D mask. Labels resized with interpolation carry rims
    of stray values along other structures' edges (CAMUS-224: about 50-90 pieces of LV, mostly
    1-2 pixels, around the LA); the LV-LA boundary of such pieces put the "annulus" inside the LA, and the LA
    length measured from it came out 0.57 of its own (LA volume 1.75 times too large, median of
    100 CAMUS-224 studies)."""
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    return lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1)


def _lv_la_hinges(lv: np.ndarray, la: np.ndarray, geom: StackGeometry) -> np.ndarray | None:
    """The two farthest-apart points of the LV-LA boundary (edge midpoints between pixels)."""
    pts = []
    for axis in (0, 1):
        a, b = np.swapaxes(lv, 0, axis), np.swapaxes(la, 0, axis)
        for first, second in ((a[:-1], b[1:]), (b[:-1], a[1:])):
            idx = np.argwhere(first & second).astype(np.float64)
            idx[:, 0] += 0.5
            pts.append(idx[:, ::-1] if axis == 1 else idx)
    rc = np.concatenate(pts) if pts else np.zeros((0, 2))
    if len(rc) < 2:
        return None
    uv = geom.to_inplane_mm(rc)
    from scipy.spatial.distance import pdist, squareform

    if len(uv) > 2000:
        uv = uv[np.linspace(0, len(uv) - 1, 2000).astype(int)]
    d = squareform(pdist(uv))
    i, j = np.unravel_index(int(np.argmax(d)), d.shape)
    return np.stack([uv[i], uv[j]])


def _basal_chord(lv: np.ndarray, contour: np.ndarray, geom: StackGeometry) -> np.ndarray:
    """Hinge points at the wider end of the principal axis (the base)."""
    uv = geom.to_inplane_mm(np.argwhere(lv).astype(np.float64))
    centre = uv.mean(axis=0)
    _, vecs = np.linalg.eigh(np.cov((uv - centre).T))
    axis, perp = vecs[:, 1], vecs[:, 0]
    p = (contour - centre) @ axis
    q = (contour - centre) @ perp
    span = p.max() - p.min()
    near_hi, near_lo = p > p.max() - 0.1 * span, p < p.min() + 0.1 * span
    width_hi = np.ptp(q[near_hi]) if near_hi.sum() > 1 else 0.0
    width_lo = np.ptp(q[near_lo]) if near_lo.sum() > 1 else 0.0
    sign = -1.0 if width_lo > width_hi else 1.0
    p = sign * p
    qb = q[p > p.max() - 0.02 * span]
    # Hinges: the extreme points across the axis, placed on the basal-most line of the contour.
    return np.stack([centre + p.max() * sign * axis + qb.min() * perp, centre + p.max() * sign * axis + qb.max() * perp])


def disk_diameters(contour: np.ndarray, ax: LongAxis, n: int = N_DISKS) -> np.ndarray:
    """(n,) chord lengths (mm) of a closed contour perpendicular to the long axis at disk middles."""
    u = (ax.apex - ax.mid) / ax.length_mm
    w = np.array([-u[1], u[0]])
    closed = np.vstack([contour, contour[:1]])
    along = (closed - ax.mid) @ u
    across = (closed - ax.mid) @ w
    out = np.zeros(n)
    for i in range(n):
        s = (i + 0.5) * ax.length_mm / n
        f0, f1 = along[:-1] - s, along[1:] - s
        cross = np.flatnonzero((f0 <= 0) != (f1 <= 0))
        if cross.size < 2:
            continue
        t = f0[cross] / (f0[cross] - f1[cross])
        hits = across[cross] + t * (across[cross + 1] - across[cross])
        out[i] = hits.max() - hits.min()
    return out


def check_long_axis_view(labels: np.ndarray, lmap: LabelMap, geom: StackGeometry) -> None:
    """MeasurementError when the myocardium surrounds the LV cavity (a short-axis section): the
    method of disks needs a long-axis view, where the myocardium is open at the mitral annulus."""
    if "myo" not in lmap:
        return
    myo = labels == lmap["myo"]
    if not myo.any():
        return
    cover = ray_coverage(ndimage.binary_fill_holes(labels == lmap["lv"]), myo, geom)
    if cover >= SHORT_AXIS_COVERAGE:
        raise MeasurementError(f"the myocardium surrounds the LV cavity ({cover:.0%} of it): this is a short-axis section, "
                               "not an apical (long-axis) view, and one short-axis slice gives no volume; measure the "
                               "short-axis stack")


def _echo_array(labels: Any, want: str, cut: str) -> np.ndarray:
    """Echo labels as an array of ``want`` axes; a MeasurementError naming what is allowed for a
    path, a Volume (which of its axes to take, and that its spacing goes in separately) or
    another shape."""
    if isinstance(labels, (str, bytes, os.PathLike)):
        raise MeasurementError(f"echo labels must be a {want} label array, got the path {os.fsdecode(labels)!r}: read it "
                               f"with medseg.io.read_label_volume(path) and pass vol.array{cut}, spacing vol.spacing[1:]")
    if isinstance(labels, Volume):
        raise MeasurementError(f"echo labels must be a {want} label array, got a Volume of shape {labels.shape}: pass "
                               f"vol.array{cut}, and its pixel spacing as vol.spacing[1:] when vol.spacing_known")
    arr = np.asarray(labels)
    if arr.ndim != len(want.split(",")):
        raise MeasurementError(f"echo labels must be a {want} label array, got shape {arr.shape}")
    return arr


def view_measures(labels: np.ndarray, lmap: LabelMap, spacing_mm: tuple[float, float] | None) -> dict[str, Any]:
    """Per view and phase: long axis, disk diameters (mm), LV and LA areas (mm^2) and lengths."""
    arr = _echo_array(labels, "(Y, X)", "[0, 0]")
    geom = plane_geometry(arr.shape, spacing_mm)
    check_values(arr, lmap)
    lv = arr == lmap["lv"]
    if not lv.any():
        raise MeasurementError(f"the echo labels contain no LV (label {lmap['lv']})")
    check_long_axis_view(arr, lmap, geom)
    la = (arr == lmap["la"]) if "la" in lmap else None
    ax = long_axis(lv, geom, la)
    contour = outer_contour_mm(lv, geom)
    out: dict[str, Any] = {"axis": ax, "diameters_mm": disk_diameters(contour, ax),
                           "area_mm2": float(lv.sum()) * geom.pixel_area_mm2, "la_area_mm2": math.nan, "la_length_mm": math.nan,
                           "la_at_edge": la is not None and bool(truncated(arr, lmap["la"], "la"))}
    if la is not None and la.any():
        la_contour = outer_contour_mm(la, geom)
        out["la_area_mm2"] = float(la.sum()) * geom.pixel_area_mm2
        out["la_length_mm"] = float(np.linalg.norm(la_contour - ax.mid, axis=1).max())
    return out


def lv_volumes_ml(v4: dict[str, Any], v2: dict[str, Any] | None) -> dict[str, float]:
    """LV volume (mL) by disks (biplane when ``v2`` is given) and by area-length."""
    l4 = v4["axis"].length_mm
    if v2 is None:
        disks = math.pi / 4 * float((v4["diameters_mm"] ** 2).sum()) * l4 / N_DISKS
        al = 8.0 / (3.0 * math.pi) * v4["area_mm2"] ** 2 / l4
        return {"disks_ml": disks / 1000.0, "area_length_ml": al / 1000.0, "length_mm": l4}
    length = max(l4, v2["axis"].length_mm)
    disks = math.pi / 4 * float((v4["diameters_mm"] * v2["diameters_mm"]).sum()) * length / N_DISKS
    al = 8.0 / (3.0 * math.pi) * v4["area_mm2"] * v2["area_mm2"] / length
    return {"disks_ml": disks / 1000.0, "area_length_ml": al / 1000.0, "length_mm": length}


def la_volume_ml(v4: dict[str, Any], v2: dict[str, Any] | None) -> float:
    """LA volume (mL) by area-length: 0.85 A1 A2 / L (L the shorter), single view 0.85 A^2 / L."""
    if v2 is None or not math.isfinite(v2["la_area_mm2"]):
        return LA_AREA_LENGTH_K * v4["la_area_mm2"] ** 2 / v4["la_length_mm"] / 1000.0
    length = min(v4["la_length_mm"], v2["la_length_mm"])
    return LA_AREA_LENGTH_K * v4["la_area_mm2"] * v2["la_area_mm2"] / length / 1000.0


#: the echo report's ``la_method``: the views the LA volume came from
LA_METHODS = {"biplane": "biplane_area_length", "a4c": "single_plane_area_length_a4c"}
_VIEW_NAMES = {"a4c": "4-chamber", "a2c": "2-chamber"}


def la_measures(v: dict[str, dict[str, Any]], lmap: LabelMap, biplane: bool) -> tuple[dict[str, Any], list[dict], list[str]]:
    """The LA by area-length at LV ES (its maximum) and at LV ED (its minimum), from the views
    that hold it at ES: both (biplane) or the 4-chamber alone (single plane); its minimum by
    the same views, or NaN. Returns ({"la_method", "atria": {"la": :func:`atrium`}}, flags, notes):
    ``absent_structure`` for a view without LA, ``truncated`` for an LA that reaches the image
    border (cut off: its volume is a lower bound). Volumes in mL of the given pixel size."""
    if "la" not in lmap:
        return {"la_method": None, "atria": {}}, [], ["no la in the label map: no LA volume"]
    flags: list[dict] = []
    has = {k: math.isfinite(m["la_area_mm2"]) for k, m in v.items()}
    for k in [k for k in v if not has[k]]:
        view, phase = _VIEW_NAMES[k[:3]], k[4:].upper()
        alone = k == "a2c_es" and has["a4c_es"]
        flags.append(make_flag("absent_structure", f"no LA (label {lmap['la']}) in the {view} {phase} labels" + (
            ": the LA volume is from the 4-chamber view alone (single plane)" if alone else ""),
            severity="info" if k.endswith("ed") or alone else "warning", structure="la", view=f"{view} {phase}"))
    if not has["a4c_es"]:
        return {"la_method": None, "atria": {"la": atrium(math.nan, math.nan)}}, flags, []
    views = ["a4c", "a2c"] if biplane and has["a2c_es"] else ["a4c"]
    la_es = la_volume_ml(v["a4c_es"], v["a2c_es"] if len(views) == 2 else None)
    same_at_ed = all(has[f"{k}_ed"] for k in views)  # the minimum by the same views, or none
    la_ed = la_volume_ml(v["a4c_ed"], v["a2c_ed"] if len(views) == 2 else None) if same_at_ed else math.nan
    for phase in ("es", "ed"):
        cut = [_VIEW_NAMES[k] for k in views if v[f"{k}_{phase}"]["la_at_edge"]]
        if cut:
            said = "maximum, at LV ES" if phase == "es" else "minimum, at LV ED (and the emptying fraction)"
            flags.append(make_flag("truncated", f"la reaches the image border in the {' and '.join(cut)} {phase.upper()} view"
                                   f"{'s' if len(cut) > 1 else ''}: it is cut off by the field of view, and the LA volume ({said}) "
                                   "is a lower bound", structure="la", phase=phase, edge="the image border", view=" and ".join(cut)))
    return {"la_method": LA_METHODS["biplane" if len(views) == 2 else "a4c"], "atria": {"la": atrium(la_es, la_ed)}}, flags, []


def measure_echo(
    a4c_ed: np.ndarray, a4c_es: np.ndarray, a2c_ed: np.ndarray | None = None, a2c_es: np.ndarray | None = None, *,
    label_map: Any = ECHO_LABEL_MAP, spacing_a4c_mm: tuple[float, float] | None = None,
    spacing_a2c_mm: tuple[float, float] | None = None, height_cm: float | None = None,
    weight_kg: float | None = None, bsa_method: str = "mosteller", sex: str | None = None,
) -> dict[str, Any]:
    """LV volumes/EF (biplane or single-plane disks, area-length) and LA volume at LV ES.

    Args:
        a4c_ed, a4c_es, a2c_ed, a2c_es: (Y, X) label images (A2C optional: single plane).
        label_map: needs ``lv``; ``la`` (optional) gives the annulus and the LA volume.
        spacing_a4c_mm, spacing_a2c_mm: (dy, dx) mm per pixel; None = unknown (EF only).

    Returns:
        {"method", "lv": {edv_ml, esv_ml, sv_ml, ef_pct}, "lv_area_length": {...},
        "la_volume_ml", "bsa_m2", "indexed", "lengths_mm", "annulus_method", "spacing_known",
        "notes", "flags"}; volumes are NaN when the spacing is unknown.
    """
    lmap = LabelMap.parse(label_map)
    sex = check_sex(sex)
    biplane = a2c_ed is not None and a2c_es is not None
    known = spacing_a4c_mm is not None and (not biplane or spacing_a2c_mm is not None)
    v = {"a4c_ed": view_measures(a4c_ed, lmap, spacing_a4c_mm), "a4c_es": view_measures(a4c_es, lmap, spacing_a4c_mm)}
    if biplane:
        v["a2c_ed"] = view_measures(a2c_ed, lmap, spacing_a2c_mm)
        v["a2c_es"] = view_measures(a2c_es, lmap, spacing_a2c_mm)
    ed = lv_volumes_ml(v["a4c_ed"], v.get("a2c_ed"))
    es = lv_volumes_ml(v["a4c_es"], v.get("a2c_es"))
    lv = function_from_volumes(ed["disks_ml"], es["disks_ml"])
    al = function_from_volumes(ed["area_length_ml"], es["area_length_ml"])
    la_rep, flags, notes = la_measures(v, lmap, biplane)
    la = la_rep["atria"]["la"]["max_ml"] if la_rep["atria"] else math.nan
    bsa = report_bsa(height_cm, weight_kg, bsa_method)  # one of the two alone: refused
    if biplane and (spacing_a4c_mm is None) != (spacing_a2c_mm is None):
        raise MeasurementError("biplane: give the pixel spacing of both views or of neither (the two views' lengths and "
                               "diameters are combined, and millimetres do not mix with pixels)")
    if not known:
        notes.append("no pixel spacing: volumes are not reported; EF and the LA emptying fraction are ratios of volumes and are reported")
        if biplane:  # the views are combined in pixels: right only when both have one pixel size
            flags.append(make_flag("biplane_without_spacing", "biplane EF without pixel spacing assumes the two views have the same "
                                   "pixel size; check it, or measure label files that carry their pixel spacing (NIfTI, MHA, DICOM)",
                                   severity="warning", structure="lv"))
        for fn in (lv, al):
            fn.update(edv_ml=math.nan, esv_ml=math.nan, sv_ml=math.nan)
        for a in la_rep["atria"].values():  # the emptying fraction is a ratio of volumes, as EF
            a.update(max_ml=math.nan, min_ml=math.nan)
        la = math.nan
    lavi = la / bsa if (math.isfinite(la) and math.isfinite(bsa)) else math.nan
    # biplane: one view's ED and ES swapped reads as a low positive EF (single plane: a negative one)
    swapped = [name for key, name in (("a4c", "4-chamber"), ("a2c", "2-chamber"))
               if biplane and v[f"{key}_es"]["area_mm2"] > v[f"{key}_ed"]["area_mm2"]]
    if lv["ef_pct"] < 0 or swapped:  # ED and ES (of one view) given the wrong way round, not a low EF
        flags.append(_swapped_flag(lv["ef_pct"], swapped))
    else:
        flags += range_flag("echo_lvef_pct", lv["ef_pct"], sex, structure="lv")
    cut = any(f["code"] == "truncated" and f.get("phase") == "es" for f in flags)
    # an LA cut off by the field of view is a lower bound: below the range says nothing
    flags += [f for f in range_flag("echo_lavi_ml_m2", lavi, sex, structure="la") if not (cut and f["code"].endswith("_low"))]
    flags = adult_ranges_only(flags, height_cm)
    views = {"4-chamber ED": a4c_ed, "4-chamber ES": a4c_es, **({"2-chamber ED": a2c_ed, "2-chamber ES": a2c_es} if biplane else {})}
    flags += fragmented_views(views, lmap)  # LV or LA in sizeable pieces (zero-click over a whole screen)
    if not math.isfinite(lv["ef_pct"]):
        flags.append(make_flag("ef_undefined", "LV EF is undefined (EDV is zero)", structure="lv"))
    report = {
        "method": "biplane_disks" if biplane else "single_plane_disks_a4c",
        "lv": lv, "lv_area_length": al, "la_volume_ml": la, **la_rep, "bsa_m2": bsa, "bsa_method": bsa_method if bsa is not None and bsa == bsa else None,
        "indexed": {"lv_edv_ml_m2": lv["edv_ml"] / bsa if math.isfinite(bsa) else math.nan,
                    "lv_esv_ml_m2": lv["esv_ml"] / bsa if math.isfinite(bsa) else math.nan, "la_volume_ml_m2": lavi},
        "lengths_mm": {k: (m["axis"].length_mm if known else math.nan) for k, m in v.items()},
        "annulus_method": {k: m["axis"].method for k, m in v.items()},
        "spacing_known": known, "notes": notes, "flags": flags,
    }
    if np.array_equal(a4c_ed, a4c_es) and (not biplane or np.array_equal(a2c_ed, a2c_es)):  # one file given as ED and ES
        _no_end_systole(report, "LV EF is undefined: the ED and ES labels are the same (one image given for both phases?): "
                                "no ED and ES to tell apart")
    return report


def _swapped_flag(ef_pct: float, views: list[str]) -> dict[str, Any]:
    """``esv_exceeds_edv``: the LV larger at ES than at ED, in the study (EF < 0) or in ``views``
    (one view's ED and ES swapped reads as a low, positive biplane EF: 7 % for 25 %)."""
    said = f"LV ESV exceeds EDV (EF {ef_pct:.0f} %)" if ef_pct < 0 else f"LV EF {ef_pct:.0f} % cannot be trusted"
    if not views:
        return make_flag("esv_exceeds_edv", f"{said}: are ED and ES swapped?", structure="lv")
    where = " and ".join(views)
    return make_flag("esv_exceeds_edv", f"{said}: the LV is larger at ES than at ED in the {where} view{'s' if len(views) > 1 else ''}: "
                     f"are {'its' if len(views) == 1 else 'their'} ED and ES swapped?", structure="lv", view=where)


def measure_echo_clip(
    labels_tyx: np.ndarray, *, label_map: Any = ECHO_LABEL_MAP, spacing_mm: tuple[float, float] | None = None,
    frame_times_s: Sequence[float] | np.ndarray | None = None, height_cm: float | None = None, weight_kg: float | None = None,
    bsa_method: str = "mosteller", sex: str | None = None,
) -> dict[str, Any]:
    """One apical view over the cardiac cycle (an echo clip, or a long-axis MR cine), single plane.

    The LV's disk volume on every frame with an LV; ED = the frame of the largest, ES of the
    smallest (measurement.md: never frame 0 by assumption), a frame whose volume is an isolated
    outlier (:func:`medseg.measure.qc.volume_outlier_frames`: the LV lost on one frame) left out of
    that choice and flagged ``volume_outlier_frame``; then :func:`measure_echo` on those two
    frames, plus the curve.

    Args:
        labels_tyx: (T, Y, X) label images of one view (frames without LV are left out of the curve).
        spacing_mm: (dy, dx) mm per pixel; None = unknown (EF and the relative curve only).

    Returns:
        :func:`measure_echo`'s report with ``method`` "single_plane_disks_clip", ``ed_frame``,
        ``es_frame``, ``volume_curve_ml`` ({"lv": mL or None per frame}; None everywhere without
        spacing), ``volume_curve_rel`` ({"lv": volume / EDV or None per frame}) and
        ``frame_times_s`` when given.
    """
    arr = _echo_array(labels_tyx, "(T, Y, X)", "[:, 0]")
    lmap = LabelMap.parse(label_map)
    check_values(arr, lmap)
    if frame_times_s is not None and len(frame_times_s) != arr.shape[0]:
        raise MeasurementError(f"frame_times_s has {len(frame_times_s)} value(s) for {arr.shape[0]} frames")
    disks, outliers, ed, es = clip_ed_es(arr, lmap, spacing_mm)
    labelled = [t for t, v in enumerate(disks) if v is not None]
    report = measure_echo(arr[ed], arr[es], label_map=lmap, spacing_a4c_mm=spacing_mm, height_cm=height_cm,
                          weight_kg=weight_kg, bsa_method=bsa_method, sex=sex)
    edv = disks[ed]
    if es == ed:  # the same volume on every frame (no motion, or one frame's labels copied): no ES, no EF
        es = None
        shown = ", ".join(map(str, labelled[:8])) + (", ..." if len(labelled) > 8 else "")
        each = f"; {edv:.1f} mL on each" if spacing_mm is not None and math.isfinite(edv) else ""
        _no_end_systole(report, f"LV EF is undefined: the LV volume does not change over its {len(labelled)} labelled frames "
                                f"({shown}{each}): no ED and ES to tell apart")
    else:
        report["flags"] += phase_at_clip_end(disks, {"ed": ed, "es": es}, "lv")
    if outliers:
        report["flags"] += volume_outlier_flags(disks, "lv", outliers, {"ed": ed, "es": es}, None if spacing_mm is not None else edv)
    report.update(
        method="single_plane_disks_clip", ed_frame=ed, es_frame=es,
        volume_curve_ml={"lv": [v if (v is not None and spacing_mm is not None) else None for v in disks]},
        volume_curve_rel={"lv": [None if v is None else round(v / edv, 4) for v in disks]},
    )
    if frame_times_s is not None:
        report["frame_times_s"] = [float(x) for x in frame_times_s]
    return report


def clip_ed_es(arr: np.ndarray, lmap: LabelMap, spacing_mm: tuple[float, float] | None) -> tuple[list[float | None], dict, int, int]:
    """ED and ES of one view's (T, Y, X) labels: (single-plane disk volume per frame, None
    without LV; :func:`medseg.measure.qc.volume_outlier_frames`; ED = the largest, ES = the
    smallest, outliers left out). MeasurementError with the LV on fewer than two frames."""
    disks: list[float | None] = []
    for t in range(arr.shape[0]):
        if (arr[t] == lmap["lv"]).any():
            disks.append(lv_volumes_ml(view_measures(arr[t], lmap, spacing_mm), None)["disks_ml"])
        else:
            disks.append(None)
    labelled = [t for t, v in enumerate(disks) if v is not None]
    if len(labelled) < 2:
        raise MeasurementError(f"EF over a clip needs the LV (label {lmap['lv']}) on at least two frames; it is on {len(labelled)}")
    outliers = volume_outlier_frames(disks)  # one frame where the LV was lost is not ES (measurement.md)
    ed, es = detect_ed_es([math.nan if v is None else v for v in disks], outliers)
    if ed is None or es is None:
        raise MeasurementError("the LV has no volume on any labelled frame of the clip; nothing to measure")
    return disks, outliers, ed, es


#: flags of an EF or an LA volume at end-systole, which a clip without an ES does not have
_ES_FLAGS = ("esv_exceeds_edv", "ef_undefined", "lvef_low", "lvef_high", "la_volume_index_low", "la_volume_index_high")


def _no_end_systole(report: dict[str, Any], message: str) -> None:
    """ED and ES that cannot be told apart (a clip whose LV volume is the same on every labelled
    frame, or the same labels given as ED and ES): ESV, SV, EF and the LA volume (at LV ES) are
    undefined (``ef_undefined`` with ``message``), not an EF of 0 % (as
    :func:`medseg.measure.measure_cine` does)."""
    nan = math.nan
    for key in ("lv", "lv_area_length"):
        report[key].update(esv_ml=nan, sv_ml=nan, ef_pct=nan)
    report["la_volume_ml"] = nan
    for a in report["atria"].values():
        a.update(max_ml=nan, emptying_fraction_pct=nan)
    report["indexed"].update(lv_esv_ml_m2=nan, la_volume_ml_m2=nan)
    report["flags"] = [f for f in report["flags"] if f["code"] not in _ES_FLAGS] + [make_flag("ef_undefined", message, structure="lv")]
