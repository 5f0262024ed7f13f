"""Quality-control checks. They report, they never silently fix.

A flag is a plain dict: ``{"code": str, "severity": "warning" | "info", "message": str}``
plus where it applies: ``"structure"``, ``"slice"``, ``"frame"``, ``"phase"`` and any values
(e.g. ``"coverage_pct"``). Codes used here: ``missing_slice``, ``incomplete_coverage``,
``basal_partial``, ``fragmented``, ``absent_structure``, ``phase_at_clip_end``,
``long_axis_stack``, ``truncated``, ``volume_outlier_frame``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from .geometry import StackGeometry

BASAL_COVERAGE_MIN = 0.5  # SCMR: a basal slice counts as LV only if >= 50% is surrounded
RING_COVERAGE_MIN = 0.95  # "myocardium all around the cavity" (AHA slices)
FRAGMENT_MIN_VOXELS = 10
#: a stack of at least this many slices, the LV on every one, is checked for being one long-axis
#: view over time (:func:`long_axis_stack`)
CLIP_MIN_SLICES = 5
#: myocardium around less of the LV cavity than this = open at the mitral annulus, a long-axis
#: view (expert labels: 400 CAMUS apical views <= 0.85; 716 of 717 ACDC short-axis slices >= 0.95)
LONG_AXIS_COVERAGE = 0.9
#: the most samples along one ray of :func:`ray_coverage` (its memory: ~50 bytes x rays x this):
#: a quarter of the smaller pixel side apart as far as the image reaches, for any image of square
#: pixels up to 700 x 700; further apart only in larger ones and for pixels far from square
RAY_SAMPLES_MAX = 4096


def digits_apart(value: float, threshold: float, least: int = 0) -> int:
    """Decimals to print ``value`` with so that it reads on its side of ``threshold`` (both printed
    with as many): ``least`` where they suffice, else more (coverage 0.4972 is "49.7%", not "50%",
    against 50 %; an EF of 47.96 is "47.96", not "48.0", below a range from 48)."""
    if not (np.isfinite(value) and np.isfinite(threshold)) or value == threshold:
        return least
    for d in range(least, 17):
        v, t = float(f"{value:.{d}f}"), float(f"{threshold:.{d}f}")
        if (v < t) == (value < threshold) and v != t:
            return d
    return 17


def basal_rule_off_flag(how: str = "--no-basal-rule") -> dict[str, Any]:
    """The info flag ``basal_rule_off`` of a report measured without the SCMR basal rule by
    choice (``how``: the option that chose it, e.g. ``--no-basal-rule``; axial CT labels, whose
    LV volume is all its voxels): the LV volumes include every labelled slice."""
    return make_flag("basal_rule_off", f"{how}: the SCMR basal rule was not applied (LV volumes include every labelled slice)",
                     severity="info", structure="lv")


def make_flag(code: str, message: str, severity: str = "warning", **where: Any) -> dict[str, Any]:
    """A QC flag dict: code, severity, one-line message and location/value fields."""
    flag: dict[str, Any] = {"code": code, "severity": severity}
    flag.update({k: v for k, v in where.items() if v is not None})
    flag["message"] = message
    return flag


def ray_coverage(cavity: np.ndarray, myo: np.ndarray, geom: StackGeometry, n_rays: int = 360) -> float:
    """Fraction of rays from the cavity centroid that meet myocardium just outside the cavity.

    Rays are cast in millimetres (anisotropic pixels honoured). A ray "meets myocardium" when
    a myocardium pixel lies within ``reach`` = max(3 mm, 2 pixels) beyond the ray's last
    cavity sample. NaN when the cavity is empty. Samples lie a quarter of the smaller pixel side
    apart, up to the image's edge, at most :data:`RAY_SAMPLES_MAX` a ray (memory bounded for any
    spacing).

    Args:
        cavity, myo: (Y, X) boolean masks of one slice.
    """
    if not cavity.any():
        return float("nan")
    if not myo.any():
        return 0.0
    rc = np.argwhere(cavity).astype(np.float64)
    uv = geom.to_inplane_mm(rc)
    centre = uv.mean(axis=0)
    dy, dx = geom.pixel_mm
    step = 0.25 * min(dy, dx)
    reach = max(3.0, 2.0 * max(dy, dx))
    r_max = float(np.linalg.norm(uv - centre, axis=1).max()) + max(dy, dx) + reach
    # no sample beyond the image (none there is cavity or myocardium): a reach of 3 mm is 10000
    # pixels of 0.0003 mm; and at most RAY_SAMPLES_MAX a ray, so that pixels far from square
    # (1.5 x 1e5 mm: 4.7 million quarter pixels a ray, 25 GiB) take bounded memory
    corners = geom.to_inplane_mm(np.array([[-0.5, -0.5], [-0.5, cavity.shape[1] - 0.5],
                                           [cavity.shape[0] - 0.5, -0.5], [cavity.shape[0] - 0.5, cavity.shape[1] - 0.5]]))
    r_max = min(r_max, float(np.linalg.norm(corners - centre, axis=1).max()) + max(dy, dx))
    if r_max / step < RAY_SAMPLES_MAX - 1:
        radii = np.arange(0.0, r_max + step, step)
    else:
        radii = np.linspace(0.0, r_max, RAY_SAMPLES_MAX)
    ang = np.linspace(0.0, 2 * np.pi, n_rays, endpoint=False)
    dirs = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    pts = centre[None, None, :] + radii[None, :, None] * dirs[:, None, :]
    far = float(max(cavity.shape) + 1)  # an index beyond the image, within int64 however far the point
    idx = np.clip(np.rint(geom.to_index(pts.reshape(-1, 2))), -far, far).astype(np.int64)
    inside = (idx[:, 0] >= 0) & (idx[:, 0] < cavity.shape[0]) & (idx[:, 1] >= 0) & (idx[:, 1] < cavity.shape[1])
    r_i, c_i = np.clip(idx[:, 0], 0, cavity.shape[0] - 1), np.clip(idx[:, 1], 0, cavity.shape[1] - 1)
    cav_s = (cavity[r_i, c_i] & inside).reshape(n_rays, -1)
    myo_s = (myo[r_i, c_i] & inside).reshape(n_rays, -1)
    last_cav = np.where(cav_s.any(axis=1), cav_s.shape[1] - 1 - np.argmax(cav_s[:, ::-1], axis=1), -1)
    k = np.arange(cav_s.shape[1])[None, :]
    window = (k > last_cav[:, None]) & (radii[None, :] <= radii[np.maximum(last_cav, 0)][:, None] + reach)
    hit = (myo_s & window).any(axis=1) & (last_cav >= 0)
    return float(hit.mean())


def coverage_per_slice(lv: np.ndarray, myo: np.ndarray, geom: StackGeometry) -> np.ndarray:
    """(Z,) myocardial ray coverage of the LV cavity per slice (NaN where no cavity)."""
    return np.array([ray_coverage(ndimage.binary_fill_holes(s), m, geom) for s, m in zip(lv, myo)])  # one filled slice at a time


def basal_partial(coverage: np.ndarray, order_from_base: np.ndarray, lv_ml_per_slice: np.ndarray) -> tuple[list[int], list[dict]]:
    """SCMR 50% rule from the base: slices with coverage < 50% are excluded from the LV.

    Walks from the basal end towards the apex over slices with cavity and stops at the first
    slice with coverage >= 50%. Returns (excluded slice indices, ``basal_partial`` flags).
    """
    excluded: list[int] = []
    flags: list[dict] = []
    for z in order_from_base:
        c = coverage[z]
        if not np.isfinite(c):
            continue
        if c >= BASAL_COVERAGE_MIN:
            break
        excluded.append(int(z))
        pct, limit = 100 * float(c), 100 * BASAL_COVERAGE_MIN
        d = digits_apart(pct, limit)
        flags.append(make_flag(
            "basal_partial",
            f"basal slice {z}: myocardium surrounds {pct:.{d}f}% of the LV cavity (< {limit:g}%); "
            f"its {lv_ml_per_slice[z]:.1f} mL of cavity is not counted as LV",
            structure="lv", slice=int(z), coverage_pct=round(pct, max(1, d)),
            excluded_ml=round(float(lv_ml_per_slice[z]), 3),
        ))
    return excluded, flags


def missing_slices(mask: np.ndarray, structure: str) -> tuple[list[int], list[dict]]:
    """Empty slices between the first and last labelled slice of a (Z, Y, X) mask."""
    present = mask.reshape(mask.shape[0], -1).any(axis=1)
    idx = np.flatnonzero(present)
    if idx.size < 2:
        return [], []
    gaps = [int(z) for z in range(idx[0] + 1, idx[-1]) if not present[z]]
    flags = [make_flag("missing_slice", f"{structure}: slice {z} is empty between labelled slices {idx[0]}..{idx[-1]}",
                       structure=structure, slice=z) for z in gaps]
    return gaps, flags


def incomplete_coverage(lv: np.ndarray, base_at_high_index: bool) -> list[dict]:
    """``incomplete_coverage`` flags when the first or last slice of the stack has LV cavity."""
    flags = []
    z_n = lv.shape[0]
    for z in sorted({0, z_n - 1}):
        if lv[z].any():
            end = "base" if (z == z_n - 1) == base_at_high_index else "apex"
            flags.append(make_flag("incomplete_coverage",
                                   f"end slice {z} ({end} end of the stack) still contains LV cavity: the LV may extend beyond the stack",
                                   structure="lv", slice=z, end=end))
    return flags


def bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """Slices of the smallest box that holds every True of ``mask`` (any number of axes)."""
    box = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1) if hit.size else slice(0, 0))
    return tuple(box)


def fragmented(mask: np.ndarray, structure: str, min_voxels: int = FRAGMENT_MIN_VOXELS) -> list[dict]:
    """``fragmented`` when a 3-D mask has more than one connected component over ``min_voxels``."""
    if not mask.any():
        return []
    mask = mask[bounding_box(mask)]  # the structure, not the field of view (a CT's 512 x 512 x 250 grid)
    lab, n = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, dtype=bool))
    sizes = np.bincount(lab.ravel())[1:]
    big = np.sort(sizes[sizes > min_voxels])[::-1]
    if big.size <= 1:
        return []
    return [make_flag("fragmented", f"{structure} has {big.size} separate parts over {min_voxels} voxels (sizes {big[:5].tolist()})",
                      structure=structure, n_components=int(big.size), sizes_voxels=big[:10].tolist())]


def absent(structure: str, value: int) -> dict:
    """``absent_structure``: a label-map entry with no voxels (warning for lv/myo/rv, else info)."""
    core = structure in ("lv", "myo", "rv")
    return make_flag("absent_structure", f"{structure} (label {value}) has no voxels",
                     severity="warning" if core else "info", structure=structure)


#: structures whose volume is checked for being cut off by the field of view (:func:`truncated`)
ATRIA = ("la", "ra")


def truncated(labels: np.ndarray, value: int, structure: str, volume_ml: float | None = None, **where: Any) -> list[dict]:
    """``truncated`` (warning) when the voxels of ``value`` in ``labels`` ((Z, Y, X) or (Y, X))
    reach the edge of the grid: the first or last slice of a stack of more than one, or the image
    border (rows, columns) of any slice. The structure goes on beyond the field of view and its
    volume is a lower bound (an atrium cut off by the imaging depth read as a small atrium), or
    the labels run on into a vessel (zero-click CT labels drew the RA up the superior vena cava to
    the top slice: 14.2 mL for 9.4 mL).
    Only the grid's faces are compared (no whole-grid mask)."""
    a = np.asarray(labels)
    if a.ndim == 2:
        a = a[None]
    at = {face: bool((a[idx] == value).any()) for face, idx in (("first", (0,)), ("last", (-1,)))} if a.shape[0] > 1 else {}
    border = any(bool((a[idx] == value).any()) for idx in ((slice(None), 0), (slice(None), -1), (Ellipsis, 0), (Ellipsis, -1)))
    ends = [face for face, hit in at.items() if hit]
    edges = ([f"the {' and '.join(ends)} slice{'s' if len(ends) > 1 else ''} of the stack"] if ends else []) + (["the image border"] if border else [])
    if not edges:
        return []
    vol = f" ({volume_ml:.1f} mL)" if volume_ml is not None and np.isfinite(volume_ml) else ""
    return [make_flag("truncated", f"{structure} reaches {' and '.join(edges)}: cut off by the field of view (its volume{vol} a "
                      "lower bound), or drawn on into a vessel that leaves it (a vein labelled as atrium); check the labels",
                      structure=structure, edge=" and ".join(edges), **where)]


def curve_closes(curve: Any) -> bool | None:
    """Whether the frames of a volume curve cover a whole cycle, from the labels alone: the
    volume of the last labelled frame differs from the first's by no more than the largest step
    between neighbouring labelled frames (:func:`medseg.propagation.cycle_closes`' rule, on the
    volume instead of the image). None when it cannot be told: fewer than three labelled frames
    (ED and ES picked by hand), or labelled frames too sparse for the steps between them to be
    steps between neighbours: fewer than half the frames from the first labelled one to the last
    (``segment --frames ed,es,5``: ED and ES found on the whole cine, frame 5 beside ES, would
    otherwise read as a clip ending at ES). ``curve``: one volume per frame, None or NaN where
    unlabelled."""
    c = np.array([np.nan if v is None else float(v) for v in curve], dtype=np.float64)
    have = np.flatnonzero(np.isfinite(c))
    v = c[have]
    if v.size < 3 or 2 * v.size < have[-1] - have[0] + 1:
        return None
    return bool(abs(v[-1] - v[0]) <= np.abs(np.diff(v)).max())


#: a frame is a volume outlier when its volume is at most 1/OUTLIER_RATIO or at least OUTLIER_RATIO
#: times the mean of its two neighbours (:func:`volume_outlier_frames`)
OUTLIER_RATIO = 2.0
#: ... and departs from that mean by at least this many times the largest such departure of the
#: other frames (the curve's own sharpest bend: a real end-systole, however narrow, is one of them)
OUTLIER_BEND_FACTOR = 2.0
#: ... and its neighbours differ from each other by at most this fraction of that departure
OUTLIER_NEIGHBOUR_AGREEMENT = 0.5
#: the fewest labelled frames a curve needs for outliers to be looked for (under 10 frames a cycle,
#: a frame lasts 100 ms or more and a real systole can halve the volume from one frame to the next)
OUTLIER_MIN_FRAMES = 10


def volume_outlier_frames(curve: Any) -> dict[int, tuple[float, float]]:
    """The frames of a volume curve whose volume is an isolated outlier against its neighbours:
    {frame: (previous, next neighbour's volume)}. A frame ``t`` (volume ``v``, neighbours ``a`` =
    ``t - 1`` and ``b`` = ``t + 1``, cyclic when the frames close the cycle (:func:`curve_closes`),
    else the first and last frame have one neighbour and are not judged; both must be labelled)
    is one when all hold, with ``m = (a + b) / 2``:

    * ``v <= m / OUTLIER_RATIO`` or ``v >= OUTLIER_RATIO * m`` (half, or twice, its neighbours' mean);
    * ``|a - b| <= OUTLIER_NEIGHBOUR_AGREEMENT * |v - m|`` (the neighbours agree with each other);
    * ``|v - m| >= OUTLIER_BEND_FACTOR`` x the largest ``|v - m|`` of the other frames (the curve's
      sharpest bend elsewhere; candidate frames and their neighbours left out).

    A real end-systole, however narrow, is a bend like the curve's others and fails the last tests;
    one frame where the segmentation collapsed (an RV of 1.5 mL between 58 and 61 mL) passes all
    three. Two outlier frames in a row are not found (each has a bad neighbour). Fewer than
    :data:`OUTLIER_MIN_FRAMES` labelled frames: none. ``curve``: mL per frame, None/NaN unlabelled."""
    c = np.array([np.nan if v is None else float(v) for v in curve], dtype=np.float64)
    n = c.size
    if np.isfinite(c).sum() < OUTLIER_MIN_FRAMES:
        return {}
    cyclic = bool(curve_closes(c))
    inner = range(n) if cyclic else range(1, n - 1)
    bend = {t: c[t] - (c[(t - 1) % n] + c[(t + 1) % n]) / 2.0 for t in inner}  # NaN where a frame is unlabelled
    cand: dict[int, tuple[float, float]] = {}
    for t, d in bend.items():
        v, a, b = c[t], c[(t - 1) % n], c[(t + 1) % n]
        m = (a + b) / 2.0
        if np.isfinite(d) and m > 0 and (v * OUTLIER_RATIO <= m or v >= OUTLIER_RATIO * m) and abs(a - b) <= OUTLIER_NEIGHBOUR_AGREEMENT * abs(d):
            cand[t] = (float(a), float(b))
    if not cand:
        return {}
    near = {(t + k) % n for t in cand for k in (-1, 0, 1)}
    largest = max((abs(d) for t, d in bend.items() if t not in near and np.isfinite(d)), default=0.0)
    return {t: ab for t, ab in cand.items() if abs(bend[t]) >= OUTLIER_BEND_FACTOR * largest}


def volume_outlier_flags(curve: Any, structure: str, outliers: dict[int, tuple[float, float]], phases: dict[str, int | None],
                         scale: float | None = None) -> list[dict]:
    """``volume_outlier_frame`` for each frame of ``outliers`` (:func:`volume_outlier_frames` of
    ``curve``): what the volume is against its neighbours, and that ED and ES (``phases``:
    {"ed": frame, "es": frame}, chosen among the other frames) are not on it. ``curve`` in mL
    (``value_ml``, ``neighbours_ml``), or, with ``scale`` (the EDV in the curve's own units: an echo
    clip without pixel spacing), reported in % of EDV (``value_pct_edv``, ``neighbours_pct_edv``)."""
    k, unit, key = (1.0, "mL", "ml") if scale is None else (100.0 / scale, "% of EDV", "pct_edv")
    c = [np.nan if v is None else float(v) * k for v in curve]
    n = len(c)
    out = []
    for t, (a, b) in sorted(outliers.items()):
        a, b = a * k, b * k
        side = "below" if c[t] < (a + b) / 2 else "above"
        chosen = ", ".join(f"{structure.upper()} {ph.upper()} frame {f}" for ph, f in phases.items() if f is not None)
        out.append(make_flag("volume_outlier_frame", f"{structure.upper()} volume on frame {t} ({c[t]:.1f} {unit}) is far {side} both neighbours "
                             f"(frames {(t - 1) % n} and {(t + 1) % n}: {a:.1f} and {b:.1f} {unit}): a segmentation error on that frame? "
                             f"Left out of the ED/ES choice ({chosen or 'none'})", structure=structure, frame=t,
                             **{f"value_{key}": round(c[t], 2), f"neighbours_{key}": [round(a, 2), round(b, 2)]}))
    return out


def phase_at_clip_end(curve: Any, phases: dict[str, int | None], structure: str = "lv") -> list[dict]:
    """``phase_at_clip_end``: ED or ES (``phases``: {"ed": frame, "es": frame}) on the first or
    last labelled frame of a curve whose frames do not close the cycle (:func:`curve_closes`):
    the true extreme may lie outside the frames, and the EF with it (a cine cropped to
    mid-diastole .. ED read 27 % for 55 %). A whole cycle that starts anywhere (at ED, at ES)
    closes and is not flagged."""
    c = np.array([np.nan if v is None else float(v) for v in curve], dtype=np.float64)
    have = np.flatnonzero(np.isfinite(c))
    if curve_closes(c) is not False:
        return []
    ends = {int(have[0]): "first", int(have[-1]): "last"}
    names = {"ed": ("ED", "end-diastole"), "es": ("ES", "end-systole")}
    return [make_flag("phase_at_clip_end", f"{structure.upper()} {names[ph][0]} on the {ends[f]} labelled frame ({f}) of frames that do not close the "
                      f"cycle: the true {names[ph][1]} may lie outside them, and the EF with it", structure=structure, phase=ph, frame=f)
            for ph, f in phases.items() if f is not None and f in ends]



def labelled_frames_only(n_frames: int, unlabelled: list[int]) -> list[dict]:
    """``labelled_frames_only`` (info, with ``frames``: the labelled ones) when some frames of a
    cine hold labels and others none (``segment --frames ed,es`` leaves those empty): ED, ES and
    EF come from the labelled frames alone; the empty ones are unknown, never 0 mL."""
    from .._ranges import compact_ranges

    skip = set(unlabelled)
    have = [t for t in range(n_frames) if t not in skip]
    if not skip or not have:
        return []
    return [make_flag("labelled_frames_only", f"ED, ES and EF are from the {len(have)} labelled frame{'s' * (len(have) != 1)} of {n_frames} "
                      f"({compact_ranges(have, 6)}); the other {len(skip)} hold no labels (e.g. segment --frames) and are left out, not read "
                      "as 0 mL", severity="info", frames=have)]

def long_axis_stack(lv: np.ndarray, la: np.ndarray, coverage: np.ndarray, lv_area_mm2: np.ndarray) -> list[dict]:
    """``long_axis_stack`` when a (Z, Y, X) stack looks like one long-axis view over time, not
    slices through the heart: a 2-D echo clip stored as a 3-D file (CAMUS ``*_half_sequence``;
    nothing in a NIfTI says its third axis is time), whose "volumes" would sum its frames. The
    signs: the LV on every one of at least :data:`CLIP_MIN_SLICES` slices, its area within a
    factor of 3 from slice to slice (a stack through the heart tapers to the apex), and on most
    slices its myocardium open (coverage below :data:`LONG_AXIS_COVERAGE`) or, without
    myocardium, the left atrium beside it. ``coverage``: (Z,) myocardial ray coverage of the
    LV cavity (NaN without myocardium); ``lv_area_mm2``: (Z,) LV area per slice."""
    n = lv.shape[0]
    if n < CLIP_MIN_SLICES or not all(lv[z].any() for z in range(n)):
        return []
    if lv_area_mm2.min() < lv_area_mm2.max() / 3.0:
        return []
    with_myo = np.isfinite(coverage) & (coverage > 0)
    if with_myo.sum() >= n / 2:
        open_slices = int((coverage[with_myo] < LONG_AXIS_COVERAGE).sum())
        if open_slices <= with_myo.sum() / 2:
            return []
        sign = f"its myocardium open (not around the cavity) on {open_slices} of them"
    else:
        with_la = sum(bool(la[z].any()) for z in range(n))
        if with_la < n / 2:
            return []
        sign = f"the left atrium beside it on {with_la} of them"
    return [make_flag("long_axis_stack", f"the LV is on all {n} slices with about the same area and {sign}: these look like one "
                      "long-axis (apical) view over time, not slices through the heart, and their volumes sum frames; if the "
                      "third axis is time (a 2-D clip stored as 3-D, e.g. CAMUS *_half_sequence), measure with `medseg measure --clip`",
                      structure="lv", n_slices=n)]
