"""Review flags: what a human should look at before a segmentation or a number is trusted.

Joins three sources into one list of flags (dicts with ``code``, ``level``, ``message``):

* low confidence (:mod:`medseg.confidence`): ``needs_review`` per slice or volume;
* anatomical plausibility of the labels: ``myo_not_enclosing_lv`` (a mid-ventricular LV cavity
  not ringed by myocardium), ``rv_not_adjacent_septum`` (an RV that on no slice comes within
  :data:`RV_ADJACENT_MM` of the myocardium in-plane), ``lv_mass_implausible`` (outside 20-400 g), ``ef_implausible`` (LV or RV EF outside 5-90 %),
  ``volume_implausible`` (a chamber over 800 mL: a leak);
* the measurement QC flags of measurement.md that point at segmentation errors
  (``missing_slice``, ``fragmented``, ``esv_exceeds_edv``, ``ef_undefined``, and a cine's
  ``volume_outlier_frame``: one frame's volume far off its neighbours', left out of ED/ES);
* a structure a cine's propagation left out of some frames (``missing_frame``: found on most
  frames, missing on one with signal: the ES frame may be among them);
* a structure that was asked for (prompted, or zero-click's) and is on no slice of any frame
  (``structure_not_found``);
* how a structure was found: ``found_by_probe`` (zero-click's prompt missed it on a frame and
  clicks beside the myocardium found it, :func:`medseg.propagation.probe_beside`).

``needs_review(flags)`` is True when any of them is present; informational flags (such as
``incomplete_coverage``, a property of the acquisition) are kept but do not trigger review.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._ranges import compact_ranges
from .errors import LabelMapError
from .labels import LabelMap

REVIEW_CODES = {"needs_review", "myo_not_enclosing_lv", "rv_not_adjacent_septum", "lv_mass_implausible", "ef_implausible",
                "missing_slice", "fragmented", "esv_exceeds_edv", "ef_undefined", "handed_over", "measurement_failed",
                "found_by_probe", "volume_implausible", "missing_frame", "structure_not_found", "volume_outlier_frame"}
MASS_RANGE_G = (20.0, 400.0)
#: a heart chamber larger than this (mL) is a leak into the body, not a dilated chamber (the
#: largest ventricles of dilated cardiomyopathy are 400-500 mL, giant atria 300)
CHAMBER_MAX_ML = 800.0
EF_RANGE_PCT = (5.0, 90.0)
MIN_ENCLOSURE = 0.75
#: the RV is adjacent to the septum on a slice when a pixel of it lies within this distance (mm,
#: pixel centre to pixel centre, in-plane) of the myocardium, or within two pixels on a grid
#: coarser than 1.5 mm (a one-pixel gap between separately predicted structures is no gap)
RV_ADJACENT_MM = 3.0


def needs_review(flags: list[dict[str, Any]]) -> bool:
    return any(f.get("code") in REVIEW_CODES for f in flags)


def review_summary(flags: list[dict[str, Any]]) -> str:
    """One short line of why a segmentation needs review: low-confidence structures (by volume,
    or by how many slices), then the other review codes, e.g. ``"low confidence: myo (0.84),
    rv (2 slices); lv_mass_implausible"``."""
    low: dict[str, list[str]] = {}
    for f in flags:
        if f.get("code") == "needs_review" and f.get("structure"):
            low.setdefault(f["structure"], [])
    for name in low:
        vol = [f for f in flags if f.get("code") == "needs_review" and f.get("structure") == name and f.get("level") == "volume"]
        at = [f for f in flags if f.get("code") == "needs_review" and f.get("structure") == name and f.get("level") == "slice"]
        n = len(at)
        # frames of one slice (an echo or long-axis clip) are counted as frames, not slices
        unit = "frame" if n > 1 and len({f.get("slice") for f in at}) == 1 and len({f.get("frame") for f in at}) == n else "slice"
        low[name] = ([_conf_text(vol[0])] if vol and "confidence" in vol[0] else []) + ([f"{n} {unit}{'s' * (n != 1)}"] if n else [])
    parts = [("low confidence: " + ", ".join(f"{k} ({', '.join(v)})" if v else k for k, v in low.items()))] if low else []
    missing = sorted({f["structure"] for f in flags if f.get("code") == "structure_not_found" and f.get("structure")})
    parts += sorted({f"structure_not_found ({', '.join(missing)})" if f["code"] == "structure_not_found" and missing else f["code"]
                     for f in flags if f.get("code") in REVIEW_CODES and f.get("code") != "needs_review"})
    return "; ".join(parts)


def _conf_text(flag: dict[str, Any]) -> str:
    """A low confidence for the summary line: two decimals, more where two would print it
    equal to the threshold it is below (:func:`medseg.confidence.digits_below`)."""
    from .confidence import digits_below

    c, th = flag["confidence"], flag.get("threshold")
    return f"{c:.{digits_below(c, th)}f}"


def _flag(code: str, message: str, **where: Any) -> dict[str, Any]:
    return {"code": code, "level": where.pop("level", "volume"), "message": message, **where}


def anatomy_flags(labels: np.ndarray, label_map: LabelMap, frame: int = 0, affine: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Plausibility of one frame's (Z, Y, X) labels: myocardium around the LV cavity on
    mid-ventricular slices (only for stacks of >= 3 LV slices, i.e. short-axis: in long-axis
    and apical echo views the myocardium is open at the valve plane), and RV next to the
    myocardium on some slice (in-plane, :func:`rv_adjacent`). Enclosure is the ray coverage of
    measurement.md's basal rule (rays from the cavity centroid meeting myocardium within 3 mm),
    so one-pixel gaps between separately predicted structures do not count. ``affine``: voxel
    (x, y, z) -> mm (None: 1 mm pixels)."""
    from .measure.geometry import stack_geometry
    from .measure.qc import coverage_per_slice

    out: list[dict[str, Any]] = []
    lv = labels == label_map["lv"] if "lv" in label_map else None
    myo = labels == label_map["myo"] if "myo" in label_map else None
    has_myo = myo is not None and myo.any()
    rv = labels == label_map["rv"] if "rv" in label_map and has_myo else None
    if not has_myo or not ((lv is not None and lv.any()) or (rv is not None and rv.any())):
        return out
    geom = stack_geometry(np.eye(4) if affine is None else affine, labels.shape)
    if lv is not None and lv.any():
        # mid-ventricular by the LV's own slices: a mid slice with no myocardium at all (the LV
        # propagated through the stack, the myocardium prompted on one slice) is 0 % ringed
        zs = [z for z in range(lv.shape[0]) if lv[z].any()]
        mid = zs[len(zs) // 4: len(zs) - len(zs) // 4] if len(zs) >= 3 else []
        cov = coverage_per_slice(lv[mid], myo[mid], geom) if mid else []
        for z, frac in zip(mid, cov):
            if frac < MIN_ENCLOSURE:
                text = "no myocardium around the LV cavity" if not myo[z].any() else f"myocardium surrounds only {100 * frac:.0f}% of the LV cavity"
                out.append(_flag("myo_not_enclosing_lv", f"frame {frame}, slice {z}: {text}",
                                 level="slice", frame=frame, slice=z, value=round(frac, 3)))
    if rv is not None and rv.any():
        spacing = geom.spacing_mm[1:]
        if not rv_adjacent(rv, myo, spacing):
            out.append(_flag("rv_not_adjacent_septum", f"frame {frame}: the RV never touches the myocardium (septum): on no slice is it within "
                             f"{_reach_mm(spacing):.1f} mm of it", frame=frame))
    return out


def _reach_mm(spacing_yx: tuple[float, float]) -> float:
    return max(RV_ADJACENT_MM, 2.0 * max(spacing_yx))


def rv_adjacent(rv: np.ndarray, myo: np.ndarray, spacing_yx: tuple[float, float] = (1.0, 1.0)) -> bool:
    """Whether the RV lies next to the myocardium on at least one slice of (Z, Y, X) masks,
    judged in-plane (slices 5-10 mm apart do not touch): a pixel of the RV within
    :data:`RV_ADJACENT_MM` (or two pixels, on a coarse grid) of a myocardium pixel of the same
    slice. ``spacing_yx``: the in-plane pixel size (mm)."""
    from scipy import ndimage

    reach = _reach_mm(spacing_yx) + 1e-6
    both = rv.any(axis=(1, 2)) & myo.any(axis=(1, 2))
    for z in np.flatnonzero(both):
        dist = ndimage.distance_transform_edt(~myo[z], sampling=spacing_yx)
        if dist[rv[z]].min() <= reach:
            return True
    return False


def measurement_flags(report: dict[str, Any], segmented: set[str] | None = None) -> list[dict[str, Any]]:
    """Implausible values and segmentation-related QC flags of a medseg.measure report; flags
    about a structure that was not segmented at all (``segmented`` given) are dropped."""
    out = [dict(f, level=f.get("level", "measurement")) for f in report.get("flags", [])
           if f.get("code") in REVIEW_CODES and (segmented is None or f.get("structure") in (None, *segmented))]
    # one apical view over time stored as a stack (CAMUS *_half_sequence): its "LV mass" sums frames of a long-axis view, no
    # short-axis mass to judge; the note (informational, not a review code) says what the stack looks like and how to measure it
    phase_flags = [f for p in (report.get("phases") or {}).values() if isinstance(p, dict) for f in p.get("flags") or []]
    long_axis = [dict(f, level="measurement") for f in [*report.get("flags", []), *phase_flags] if f.get("code") == "long_axis_stack"][:1]
    out += long_axis
    mass = report.get("lv_mass_g")
    if not long_axis and mass is not None and np.isfinite(mass) and not MASS_RANGE_G[0] <= mass <= MASS_RANGE_G[1]:
        out.append(_flag("lv_mass_implausible", f"LV mass {mass:.0f} g is outside {MASS_RANGE_G[0]:.0f}-{MASS_RANGE_G[1]:.0f} g", level="measurement", value=round(float(mass), 1)))
    phases = [("", report.get("volumes_ml") or {})] + [(f"{ph.upper()} ", p.get("volumes_ml") or {}) for ph, p in (report.get("phases") or {}).items()]
    seen = set()
    for where, volumes in phases:
        for name in ("lv", "rv", "la", "ra"):
            v = volumes.get(name)
            if name not in seen and v is not None and np.isfinite(v) and v > CHAMBER_MAX_ML:
                seen.add(name)
                out.append(_flag("volume_implausible", f"{where}{name.upper()} {v:.0f} mL is larger than any heart chamber ({CHAMBER_MAX_ML:.0f} mL): "
                                 "a leak into the body?", level="measurement", structure=name, value=round(float(v), 1)))
    for name in ("lv", "rv"):  # an RV found at ED and missed at ES reads as an RVEF of 100 %
        ef = (report.get(name) or {}).get("ef_pct")
        if ef is not None and np.isfinite(ef) and not EF_RANGE_PCT[0] <= ef <= EF_RANGE_PCT[1]:
            out.append(_flag("ef_implausible", f"{name.upper()}EF {ef:.1f}% is outside {EF_RANGE_PCT[0]:.0f}-{EF_RANGE_PCT[1]:.0f}%",
                             level="measurement", structure=name, value=round(float(ef), 1)))
    return out


def probe_flags(actions: list[dict[str, Any]], labels: np.ndarray, label_map: LabelMap) -> list[dict[str, Any]]:
    """``found_by_probe`` for every structure and frame a zero-click probe found (the session
    log's ``probed`` entries) that the (T, Z, Y, X) labels still hold (not undone or erased)."""
    return [_flag("found_by_probe", f"{p['structure'].upper()} on frame {p['frame']}: not found by its zero-click prompt, found by clicks beside the myocardium",
                  structure=p["structure"], frame=p["frame"], slices=p["slices"])
            for a in actions for p in a.get("probed", [])
            if p["structure"] in label_map and p["frame"] < labels.shape[0] and (labels[p["frame"]] == label_map[p["structure"]]).any()]


def frame_flags(labels: np.ndarray, label_map: LabelMap, blank: np.ndarray | None = None,
                frames: list[int] | None = None) -> list[dict[str, Any]]:
    """``missing_frame``: a structure found on at least half of a cine's frames (propagated
    through time, not prompted on ED and ES alone) and missing on others that have signal
    (``blank``: (T, Z) True where a slice has none; a dropped frame has nothing to find). The
    volume curve then leaves those frames out, and ED or ES may be among them. ``frames``: the
    frames that were segmented (``--frames ed,es``); the others are empty by request, not missing."""
    n = labels.shape[0]
    judged = list(range(n)) if frames is None else sorted({int(t) for t in frames if 0 <= int(t) < n})
    if len(judged) < 3:
        return []
    out = []
    for name, v in label_map.values.items():
        on = {t: bool((labels[t] == v).any()) for t in judged}
        missing = [t for t in judged if not on[t] and not (blank is not None and np.asarray(blank)[t].all())]
        if missing and 2 * sum(on.values()) >= len(judged):
            shown = compact_ranges(missing, most=12)  # "5-34", not 30 frame numbers
            out.append(_flag("missing_frame", f"{name.upper()} missing on {len(missing)} of {len(judged)} frames ({shown}), found on the others",
                             structure=name, frame=missing[0], frames=missing))
    return out


def asked_in_log(actions: list[dict[str, Any]]) -> list[str]:
    """The structures a session log asked for, in order: zero-click's, prompted and propagated
    ones; a structure cleared as a whole (no frame, no slice) afterwards is no longer asked for."""
    asked: dict[str, None] = {}
    for a in actions:
        op = a.get("op")
        if op == "auto":
            names = list(a.get("structures") or [])
        elif op == "prompt":
            names = [(a.get("prompt") or {}).get("structure")]
        else:
            names = [a.get("structure")] if op == "propagate" else []
        asked.update(dict.fromkeys(n for n in names if n))
        if op == "clear" and a.get("frame") is None and a.get("slice") is None:
            asked.pop(a.get("structure"), None)
    return list(asked)


def not_found_flags(labels: np.ndarray, label_map: LabelMap, asked: list[str], skip: set[str] | None = None) -> list[dict[str, Any]]:
    """``structure_not_found`` for each structure of ``asked`` (in the label map, not in ``skip``)
    that the (T, Z, Y, X) labels hold on no slice of any frame."""
    return [_flag("structure_not_found", f"{name.upper()} was asked for and not found on any slice{' of any frame' * (labels.shape[0] > 1)}",
                  structure=name)
            for name in dict.fromkeys(asked) if name in label_map and name not in (skip or set()) and not (labels == label_map[name]).any()]


def review_segmentation(labels: np.ndarray, affine: np.ndarray, label_map: LabelMap, confidence_flags: list[dict[str, Any]] | None = None,
                        measure: bool = True, actions: list[dict[str, Any]] | None = None,
                        blank: np.ndarray | None = None, asked: list[str] | None = None, frames: list[int] | None = None) -> dict[str, Any]:
    """All review flags of a (T, Z, Y, X) segmentation (``actions``: the session log, for how
    structures were found; ``blank``: (T, Z) True where the image has no signal). Measures a single phase (or a cine) when the labels have LV +
    myocardium and at least two slices; of one view over the cycle (one slice, an echo clip) only
    looks for a frame where the LV was lost (:func:`clip_outlier_flags`).

    ``asked``: the structures the segmentation was asked for; each one on no slice is flagged
    ``structure_not_found`` (unless handed over by ``--min-confidence``: ``handed_over`` in
    ``confidence_flags``). None: those the ``actions`` asked for (:func:`asked_in_log`), or with
    no ``actions`` either (a label file on its own), every structure of ``label_map``.
    ``frames``: the frames segmented when only some were (``settings.frames``); None: all."""
    label_map = LabelMap.parse(label_map)
    labels = np.asarray(labels)
    if labels.ndim == 3:
        labels = labels[None]  # one phase
    if labels.ndim != 4:
        raise LabelMapError(f"labels must be (T, Z, Y, X) or (Z, Y, X), got shape {labels.shape}")
    flags = list(confidence_flags or []) + probe_flags(actions or [], labels, label_map) + frame_flags(labels, label_map, blank, frames)
    if asked is None:
        asked = asked_in_log(actions) if actions is not None else list(label_map.names)
    flags += not_found_flags(labels, label_map, asked, skip={f.get("structure") for f in flags if f.get("code") == "handed_over"})
    for t in range(labels.shape[0]):
        flags += anatomy_flags(labels[t], label_map, frame=t, affine=affine)
    if measure and labels.shape[1] >= 2 and "lv" in label_map and (labels == label_map["lv"]).any():
        try:
            from .measure import measure_cine, measure_phase

            labelled = [t for t in range(labels.shape[0]) if labels[t].any()]
            # one labelled frame (a cine prompted on one frame) is a phase: no EF to check
            rep = measure_phase(labels[labelled[0]], affine, label_map) if len(labelled) == 1 else measure_cine(labels, affine, label_map)
            segmented = {n for n, v in label_map.values.items() if (labels == v).any()}
            flags += measurement_flags(rep, segmented)
        except ValueError as e:  # a measurement that cannot be made is itself worth a look
            flags.append(_flag("measurement_failed", f"measurement failed: {e}", level="measurement"))
    elif measure and labels.shape[1] == 1 and "lv" in label_map:
        flags += clip_outlier_flags(labels[:, 0], affine, label_map)
    return {"needs_review": needs_review(flags), "flags": flags}


def clip_outlier_flags(labels_tyx: np.ndarray, affine: np.ndarray, label_map: LabelMap) -> list[dict[str, Any]]:
    """``volume_outlier_frame`` of one view over the cycle (an apical echo clip, a long-axis cine;
    :func:`medseg.measure.echo.measure_echo_clip`): the frame where the LV was lost. Only that flag:
    its other measurements are the report's; a clip that cannot be measured as one is not judged."""
    from .measure.echo import measure_echo_clip
    from .measure.geometry import stack_geometry
    from .measure.qc import OUTLIER_MIN_FRAMES

    if sum(bool((f == label_map["lv"]).any()) for f in labels_tyx) < OUTLIER_MIN_FRAMES:
        return []
    spacing = tuple(float(s) for s in stack_geometry(affine, (1, *labels_tyx.shape[1:])).spacing_mm[1:])
    try:
        rep = measure_echo_clip(labels_tyx, label_map=label_map, spacing_mm=spacing)
    except ValueError:
        return []
    return [dict(f, level="measurement") for f in rep["flags"] if f.get("code") == "volume_outlier_frame"]


def review_png(volume, labels: np.ndarray, label_map: LabelMap, provenance: dict[str, Any], path, title: str = ""):
    """Write the review sheet of a segmentation (:func:`medseg.measure.sheets.review_sheet_png`):
    its labelled slices with contours, confidences and flags, from the provenance it was
    written with."""
    from .measure.sheets import review_sheet_png

    spacing = tuple(volume.spacing[1:]) if volume.spacing_known else (1.0, 1.0)
    return review_sheet_png(display_array(volume), labels, label_map, path, provenance.get("review"), provenance.get("confidence"),
                            spacing_yx=spacing, title=title, phases=provenance.get("frame_pick"))


def display_array(volume) -> np.ndarray:
    """The image as a figure shows it: a CT clipped to the cardiac window the model sees
    (percentile scaling of the slice would span air to bone); other modalities as they are."""
    if volume.modality == "CT":
        from .preprocess import CT_WINDOW_HU

        return np.clip(volume.array, *CT_WINDOW_HU)
    return volume.array


#: review rules (:func:`medseg.review.measurement_flags`) that `measure` applies to its own numbers
IMPLAUSIBLE = ("lv_mass_implausible", "ef_implausible", "volume_implausible")


def add_implausible(report: dict) -> None:
    """The review's implausibility flags on the report's numbers (LV mass outside 20-400 g, EF
    outside 5-90 %, a chamber larger than any heart's), as `segment` and `batch` raise them:
    `measure` on labels from elsewhere reported a 5 g or a 1,314 g LV mass unflagged; `batch --measure`
    rows and pages get them too (:func:`medseg.batch.measure_rows._child_ranges`)."""
    have = {f.get("code") for f in report.get("flags", [])}
    report["flags"] = list(report.get("flags", [])) + [
        {k: v for k, v in f.items() if k != "level"} | {"severity": "warning"}
        for f in measurement_flags(report) if f.get("code") in IMPLAUSIBLE and f.get("code") not in have]
