"""Measurement reports with the fixed JSON keys of docs/measurement.md.

* :func:`measure_phase`: one (Z, Y, X) phase -> ``volumes_ml``, ``lv_mass_g``,
  ``wall_thickness_mm``, ``flags``, ``spacing_mm``, ``label_map`` (+ details).
* :func:`measure_ed_es`: ED and ES phases -> the above for ED plus ``lv``, ``rv``, ``bsa_m2``,
  ``indexed``, ``co_l_min`` (+ ``phases``, ``atria``, ...).
* :func:`measure_cine`: (T, Z, Y, X) -> volume curves, ED/ES detected from them (LV and RV
  separately), then as :func:`measure_ed_es`.

A structure with no voxels gives NaN plus an ``absent_structure`` flag; in an ED/ES pair a
chamber labelled in one phase only is 0 mL in the other (so an empty ED gives EDV 0, EF NaN
and ``ef_undefined``), while the myocardium stays NaN (an ED without it has no LV mass, not
0 g). Nothing is silently fixed.

The one-phase pieces (:func:`measure_phase`, :func:`phase_volumes`, :func:`check_values`, ...)
live in :mod:`medseg.measure.report_phase` and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import GeometryError
from ..labels import LabelMap
from . import qc
from .aha import wall_thickening
from .geometry import BaseEnd, MeasurementError, StackGeometry, as_label_array, detect_base, given_base, resolve_affine, stack_geometry
from .reference import adult_ranges_only, check_sex, range_flag
from .report_phase import (  # noqa: F401  (re-exported: imported from medseg.measure.report)
    SAX_STRUCTURES,
    SLICE_AXIS_RATIO,
    check_slice_axis,
    check_values,
    measure_phase,
    papillary_statement,
    phase_volumes,
)
from .volumes import (
    HEART_RATE_RANGE_BPM,
    atrium,
    cardiac_output_l_min,
    detect_ed_es,
    function_from_volumes,
    heart_rate_bpm,
    indexed,
    report_bsa,
)


def measure_ed_es(
    labels_ed: Any, labels_es: Any, affine: np.ndarray | None = None, label_map: Any = None, *,
    height_cm: float | None = None, weight_kg: float | None = None, heart_rate: float | None = None,
    nominal_interval_ms: float | None = None, bsa_method: str = "mosteller", sex: str | None = None,
    slice_positions_mm: Sequence[float] | None = None, aha_method: str = "uniform",
    interpolate_missing: bool = False, basal_rule: bool = True, base_end: str | None = None,
) -> dict[str, Any]:
    """Measure an end-diastolic and an end-systolic phase on the same grid.

    Args:
        labels_ed, labels_es: (Z, Y, X) label arrays or one-frame label Volumes.
        affine: (4, 4) voxel -> world mm (or taken from the Volumes, which must agree).
        height_cm, weight_kg: for BSA (``bsa_method`` "mosteller" (default) or "dubois").
        heart_rate: beats/min; or ``nominal_interval_ms`` (RR, DICOM NominalInterval).
        sex: "M"/"F" for sex-specific reference ranges (None: the union of both ranges).
        base_end: "low_index" / "high_index", or None to detect the base once from both
            phases together (the same base end is used for ED and ES).

    Returns:
        The ED phase report keys plus ``lv``/``rv`` {edv_ml, esv_ml, sv_ml, ef_pct},
        ``bsa_m2``, ``indexed``, ``co_l_min``, ``atria``, ``phases`` {ed, es}.
    """
    lmap = LabelMap.parse(label_map)
    aff = _common_affine(labels_ed, labels_es, affine)
    ed_arr, es_arr = as_label_array(labels_ed, 3), as_label_array(labels_es, 3)
    if ed_arr.shape != es_arr.shape:
        raise GeometryError(f"ED and ES labels have different shapes {ed_arr.shape} and {es_arr.shape}")
    base = study_base(np.stack([ed_arr, es_arr]), stack_geometry(aff, ed_arr.shape, slice_positions_mm), lmap, base_end)
    basal_rule, rule_flags = study_basal_rule(np.stack([ed_arr, es_arr]), lmap, basal_rule, ("ED", "ES"))
    opts = dict(slice_positions_mm=slice_positions_mm, aha_method=aha_method, interpolate_missing=interpolate_missing,
                basal_rule=basal_rule, base_end=base)
    ed = measure_phase(ed_arr, aff, lmap, **opts)
    es = measure_phase(es_arr, aff, lmap, **opts)
    _zero_where_labelled_elsewhere(ed, es)
    rv = (ed["volumes_ml"].get("rv", math.nan), es["volumes_ml"].get("rv", math.nan))
    out = combine_ed_es(ed, es, rv, height_cm=height_cm, weight_kg=weight_kg, heart_rate=heart_rate,
                        nominal_interval_ms=nominal_interval_ms, bsa_method=bsa_method, sex=sex)
    out["flags"] += rule_flags
    return out


def study_basal_rule(arr_tzyx: np.ndarray, lmap: LabelMap, basal_rule: bool, names: Sequence[str] | None = None) -> tuple[bool, list[dict]]:
    """Whether the phases of a study apply the SCMR basal rule, decided once for all of them
    (with the flag that says why not): the rule needs the myocardium around the LV, and a phase
    whose LV has none (endocardium-only labels, as Sunnybrook's ES frames) kept its basal slices
    while the others lost theirs. On Sunnybrook SCD0000501 the trimmed frame read the smaller,
    ED and ES swapped places and the EF read 11.7 % for about 25 %. ``names``: the phases' names
    (default "frame N")."""
    if not basal_rule or "myo" not in lmap or "lv" not in lmap:
        return basal_rule, []
    bare = [t for t in range(arr_tzyx.shape[0]) if (arr_tzyx[t] == lmap["lv"]).any() and not (arr_tzyx[t] == lmap["myo"]).any()]
    if not bare or len(bare) == sum((arr_tzyx[t] == lmap["lv"]).any() for t in range(arr_tzyx.shape[0])):
        return basal_rule, []  # every phase with an LV has its myocardium, or none has: each phase alike
    if names:
        which = ", ".join(names[t] for t in bare)
    else:  # a cine with the myocardium on one frame: "frames 0-8, 10-19", not twenty names
        from .._ranges import compact_ranges

        which = f"frame{'s' if len(bare) > 1 else ''} {compact_ranges(bare)}"
    return False, [qc.make_flag("basal_rule_off", f"{which}: the LV without myocardium (endocardium only), where the SCMR basal "
                                "rule cannot be applied; no phase applies it, so that all are measured alike (LV volumes include "
                                "the basal slices the rule would have left out)", severity="warning", structure="lv")]


def study_base(arr_tzyx: np.ndarray, geom: StackGeometry, lmap: LabelMap, base_end: str | BaseEnd | None = None) -> BaseEnd:
    """One base end for all phases of a study: given, or detected from all frames together."""
    if isinstance(base_end, BaseEnd):
        return base_end
    if base_end is not None:
        return given_base(base_end, geom)
    masks = {n: np.moveaxis(arr_tzyx == v, 0, -1) for n, v in lmap.values.items() if n in ("lv", "myo", "rv", "la", "ra")}
    return detect_base(masks, geom)


def _zero_where_labelled_elsewhere(ed: dict[str, Any], es: dict[str, Any]) -> None:
    """A chamber labelled in one phase but empty in the other measured 0 mL there (not NaN):
    EDV = 0 then gives EF NaN + ``ef_undefined``. Never labelled at all stays NaN. The
    myocardium stays NaN where its phase has none: it has no EF, only the ED mass, and an ED
    without myocardium (handed over, not segmented) has no mass, as one phase alone (a mass of
    0 g was reported, flagged ``lv_mass_implausible`` and counted in a cohort's mean)."""
    for a, b in ((ed, es), (es, ed)):
        for name, v in a["volumes_ml"].items():
            if name != "myo" and math.isnan(v) and math.isfinite(b["volumes_ml"].get(name, math.nan)):
                a["volumes_ml"][name] = 0.0


def _common_affine(a: Any, b: Any, affine: np.ndarray | None) -> np.ndarray:
    if affine is not None:
        return resolve_affine(a, affine)
    aff_a, aff_b = resolve_affine(a, None), resolve_affine(b, None)
    if not np.allclose(aff_a, aff_b, atol=1e-3):
        raise GeometryError("ED and ES labels have different geometry (affines differ); they must share one grid")
    return aff_a


#: flags about the stack's geometry, not a phase: reported once for ED + ES
STACK_FLAGS = ("aha_orientation_from_display",)


def combine_ed_es(ed: dict[str, Any], es: dict[str, Any], rv_ed_es_ml: tuple[float, float], *, height_cm: float | None = None,
                  weight_kg: float | None = None, heart_rate: float | None = None, nominal_interval_ms: float | None = None,
                  bsa_method: str = "mosteller", sex: str | None = None) -> dict[str, Any]:
    """Build the ED + ES report from two phase reports (RV ED/ES volumes may come from other frames)."""
    sex = check_sex(sex)
    lv_fn = function_from_volumes(ed["volumes_ml"].get("lv", math.nan), es["volumes_ml"].get("lv", math.nan))
    rv_fn = function_from_volumes(*rv_ed_es_ml)
    bsa = report_bsa(height_cm, weight_kg, bsa_method)  # one of the two alone: refused
    hr = heart_rate_bpm(heart_rate, nominal_interval_ms)
    swapped = lv_fn["esv_ml"] > lv_fn["edv_ml"]  # ED and ES swapped (flagged below): no cardiac output from a negative SV
    co = math.nan if swapped else cardiac_output_l_min(lv_fn["sv_ml"], hr)
    to_index = {f"lv_{k}": v for k, v in lv_fn.items() if k != "ef_pct"}
    to_index.update({f"rv_{k}": v for k, v in rv_fn.items() if k != "ef_pct"})
    to_index["lv_mass_g"] = ed["lv_mass_g"]
    atria = {n: atrium(es["volumes_ml"][n], ed["volumes_ml"][n]) for n in ("la", "ra") if n in ed["volumes_ml"]}
    for n, a in atria.items():
        to_index[f"{n}_max_ml"] = a["max_ml"]
    to_index["co_l_min"] = co
    idx = indexed(to_index, bsa)
    idx["ci_l_min_m2"] = idx.pop("co_l_min_m2")
    flags = [dict(f, phase=ph, message=f"{ph.upper()}: {f.get('message', f['code'])}") for ph, fl in (("ed", ed["flags"]), ("es", es["flags"]))
             for f in fl if f["code"] not in STACK_FLAGS]
    flags += list({f["code"]: f for f in es["flags"] + ed["flags"] if f["code"] in STACK_FLAGS}.values())  # once, not per phase
    flags += _function_flags(lv_fn, "lv") + (_function_flags(rv_fn, "rv") if "rv" in ed["label_map"] else [])  # no RV labelled: no RV flag
    if not swapped:  # a negative EF is ED and ES swapped (flagged above), not a low EF
        flags += range_flag("cmr_lvef_pct", lv_fn["ef_pct"], sex, structure="lv")
    flags += range_flag("cmr_lv_mass_index_g_m2", idx["lv_mass_g_m2"], sex, structure="myo")
    if "rv" in ed["label_map"] and not rv_fn["esv_ml"] > rv_fn["edv_ml"]:  # RV swapped or not labelled: no RV range flag
        flags += range_flag("cmr_rvef_pct", rv_fn["ef_pct"], sex, structure="rv")
        flags += range_flag("cmr_rv_edv_index_ml_m2", idx["rv_edv_ml_m2"], sex, structure="rv")
    flags = adult_ranges_only(flags, height_cm)
    keys = ("volumes_ml", "lv_mass_g", "wall_thickness_mm", "spacing_mm", "label_map")
    out: dict[str, Any] = {k: ed[k] for k in keys}
    out.update({
        "flags": flags, "lv": lv_fn, "rv": rv_fn, "bsa_m2": bsa, "bsa_method": bsa_method if bsa is not None and bsa == bsa else None, "indexed": idx,
        "co_l_min": co, "heart_rate_bpm": hr, "height_cm": height_cm, "weight_kg": weight_kg, "sex": sex,
        "atria": atria, "papillary_muscles": ed["papillary_muscles"], "phases": {"ed": ed, "es": es},
        "wall_thickening_pct": wall_thickening(ed["wall_thickness_mm"], es["wall_thickness_mm"]),
    })
    return out


def _function_flags(fn: dict[str, float], name: str) -> list[dict]:
    flags = []
    if not math.isfinite(fn["ef_pct"]):
        if not math.isfinite(fn["edv_ml"]):
            why = "no labels at ED"
        elif not math.isfinite(fn["esv_ml"]):
            why = "no labels at ES"
        else:
            why = f"EDV is {fn['edv_ml']:.1f} mL"
        flags.append(qc.make_flag("ef_undefined", f"{name.upper()} EF is undefined: {why}", structure=name))
    elif fn["esv_ml"] > fn["edv_ml"]:
        flags.append(qc.make_flag("esv_exceeds_edv", f"{name.upper()} ESV {fn['esv_ml']:.1f} mL exceeds EDV {fn['edv_ml']:.1f} mL: "
                                  "are ED and ES swapped?", structure=name))
    return flags


def heart_rate_options(vol: Any, heart_rate: float | None = None) -> dict[str, Any]:
    """The cardiac-output keyword of :func:`measure_ed_es` / :func:`measure_cine`: ``heart_rate``
    when given, else the image's DICOM HeartRate, else its NominalInterval (RR, ms), from the
    Volume's ``meta`` (labels carry them in their medseg sidecar); {} when none is known, or
    when the header's value is no heart rate (outside 20-300 beats/min: a placeholder)."""
    if heart_rate is not None:
        return {"heart_rate": heart_rate}
    meta = getattr(vol, "meta", {}) or {}
    lo, hi = HEART_RATE_RANGE_BPM
    hr = float(meta.get("heart_rate") or 0)
    if lo <= hr <= hi:
        return {"heart_rate": hr}
    rr = float(meta.get("nominal_interval") or 0)
    if rr > 0 and lo <= 60000.0 / rr <= hi:
        return {"nominal_interval_ms": rr}
    return {}


def measure_cine(
    labels: Any, affine: np.ndarray | None = None, label_map: Any = None, *,
    frame_times_s: Sequence[float] | np.ndarray | None = None, picked_phases: dict[str, Any] | None = None, **options: Any,
) -> dict[str, Any]:
    """Measure a (T, Z, Y, X) cine: volume curves, ED/ES from them, then the ED + ES report.

    ED = frame of maximum LV volume, ES = minimum (never frame 0 by assumption); the RV gets
    its own ED/ES from its own curve; a frame whose volume is an isolated outlier against its
    neighbours is flagged ``volume_outlier_frame`` and left out of that choice
    (:func:`medseg.measure.qc.volume_outlier_frames`). Frames without any label are NaN in the curves and
    flagged ``unlabelled_frame``. With the LV on only one frame that frame is reported as ED,
    ES is unknown (``es_frame`` None; ESV, SV, EF and CO NaN, flagged ``ef_undefined``), and so
    it is when the LV volume is the same on every labelled frame; the same for the RV on its own
    (``rv_es_frame`` None, RV EF undefined). A frame with labels but without the LV (RV) is a gap
    in its curve (NaN, ``absent_structure`` with the frame); ED or ES on the first or last
    labelled frame of frames that do not close the cycle: ``phase_at_clip_end``
    (:func:`medseg.measure.qc.phase_at_clip_end`), unless ``picked_phases`` (the labels' sidecar's
    ``frame_pick`` of ``segment --frames ed,es``: ED and ES found on every frame of the image,
    only some frames segmented) found that phase on that frame.
    ``options`` are those of :func:`measure_ed_es`.
    """
    lmap = LabelMap.parse(label_map)
    arr = as_label_array(labels, 4)
    aff = resolve_affine(labels, affine)
    times = frame_times_s if frame_times_s is not None else getattr(labels, "frame_times_s", None)
    if times is not None and np.asarray(times).size != arr.shape[0]:
        raise MeasurementError(f"frame_times_s has {np.asarray(times).size} value(s) for {arr.shape[0]} frames")
    geom = stack_geometry(aff, arr.shape[1:], options.get("slice_positions_mm"))
    if arr.shape[1] < 2:
        raise MeasurementError("a volume needs at least 2 slices; got a single slice")
    check_slice_axis(geom)  # before the volume curves (33 s of every frame measured on a stack that is refused)
    check_values(arr, lmap)
    base = study_base(arr, geom, lmap, options.pop("base_end", None))
    options["basal_rule"], rule_flags = study_basal_rule(arr, lmap, options.get("basal_rule", True))
    curves, flags = volume_curves(arr, geom, lmap, options.get("interpolate_missing", False), options["basal_rule"], base)
    flags = rule_flags + flags
    outliers = {n: qc.volume_outlier_frames(c) for n, c in curves.items()}
    ed_f, es_f, rv_ed, rv_es = _cine_ed_es(arr, lmap, curves, outliers)
    phase_opts = {k: options[k] for k in ("slice_positions_mm", "aha_method", "interpolate_missing", "basal_rule") if k in options}
    ed = measure_phase(arr[ed_f], aff, lmap, **phase_opts, base_end=base)
    # the LV on one frame (the only labelled one, or the others hold other structures): that frame
    # is ED or ES, not both
    single = es_f == ed_f
    if single:
        es_f = None
        es = {**measure_phase(np.zeros_like(arr[ed_f]), aff, lmap, **phase_opts, base_end=base), "flags": []}
    else:
        es = measure_phase(arr[es_f], aff, lmap, **phase_opts, base_end=base)
        _zero_where_labelled_elsewhere(ed, es)
    rv = (curves["rv"][rv_ed], curves["rv"][rv_es] if rv_es is not None else math.nan) if rv_ed is not None else (math.nan, math.nan)
    combine_opts = {k: v for k, v in options.items() if k not in phase_opts}
    out = combine_ed_es(ed, es, rv, **combine_opts)
    _cine_flags(out, flags, curves, (ed_f, es_f), (rv_ed, rv_es), single)
    out["flags"] += qc.labelled_frames_only(arr.shape[0], [f["frame"] for f in flags if f["code"] == "unlabelled_frame"])
    for name, phases in (("lv", {"ed": ed_f, "es": es_f}), ("rv", {"ed": rv_ed, "es": rv_es})):
        out["flags"] += qc.volume_outlier_flags(curves[name], name, outliers[name], phases) if outliers.get(name) else []
    out.update({"ed_frame": ed_f, "es_frame": es_f, "rv_ed_frame": rv_ed, "rv_es_frame": rv_es,
                "volume_curve_ml": {k: [None if not np.isfinite(v) else float(v) for v in c] for k, c in curves.items()},
                "frame_times_s": None if times is None else [float(t) for t in np.asarray(times).reshape(-1)]})
    _picked_not_clip_end(out, picked_phases, arr.shape[0])
    return out


def _cine_ed_es(arr: np.ndarray, lmap: LabelMap, curves: dict[str, np.ndarray],
                outliers: dict[str, dict] | None = None) -> tuple[int, int | None, int | None, int | None]:
    """The cine's (LV ED, LV ES, RV ED, RV ES) frames from the volume curves, ``outliers`` (structure
    -> frames, :func:`qc.volume_outlier_frames`) left out; RV ES None where the RV is on one
    frame. Raises LVOutsideMyocardium or MeasurementError when no frame has the LV."""
    outliers = outliers or {}
    ed_f, es_f = detect_ed_es(curves["lv"], outliers.get("lv", ())) if "lv" in curves else (None, None)
    if ed_f is None:
        if "myo" in lmap and (arr == lmap["lv"]).any():  # labelled, but left out as basal on every slice
            raise LVOutsideMyocardium(lmap)
        raise MeasurementError("no frame of the cine contains LV labels; nothing to measure")
    rv_ed, rv_es = detect_ed_es(curves["rv"], outliers.get("rv", ())) if "rv" in curves else (None, None)
    if rv_es is not None and rv_es == rv_ed:
        rv_es = None  # the RV on one frame: its EF is undefined, not 0 %
    return ed_f, es_f, rv_ed, rv_es


def _cine_flags(out: dict[str, Any], flags: list[dict], curves: dict[str, np.ndarray], lv_ed_es: tuple[int, int | None],
                rv_ed_es: tuple[int | None, int | None], single: bool) -> None:
    """The cine report's flags, in ``out``: the ED/ES phases' with their frames, the curves'
    ``flags`` (an absent structure said once), ED or ES at a clip end, and an ``ef_undefined``
    of a structure on one frame (``single``: the LV) that says why (:func:`_one_phase_text`)."""
    (ed_f, es_f), (rv_ed, rv_es) = lv_ed_es, rv_ed_es
    out["flags"] = [dict(f, frame=ed_f) if f.get("phase") == "ed" else dict(f, frame=es_f) if f.get("phase") == "es" else f
                    for f in out["flags"]]
    said = {(f.get("structure"), f.get("frame")) for f in out["flags"] if f["code"] == "absent_structure"}
    out["flags"] += [f for f in flags if not (f["code"] == "absent_structure" and (f.get("structure"), f.get("frame")) in said)]
    out["flags"] += qc.phase_at_clip_end(curves["lv"], {"ed": ed_f, "es": es_f}, "lv")
    if rv_ed is not None:
        out["flags"] += qc.phase_at_clip_end(curves["rv"], {"ed": rv_ed, "es": rv_es}, "rv")
    one_frame = {"lv": ed_f if single else None, "rv": rv_ed if rv_ed is not None and rv_es is None else None}
    for f in out["flags"]:
        if f["code"] == "ef_undefined" and one_frame.get(f.get("structure")) is not None:
            name = f["structure"]
            f["message"] = _one_phase_text(name, one_frame[name], curves[name])


def _picked_not_clip_end(out: dict[str, Any], picked: dict[str, Any] | None, n_frames: int) -> None:
    """Drop the LV's ``phase_at_clip_end`` where ``picked`` (``frame_pick``: {"ed": frame, "es":
    frame, ...}, found on all ``n_frames`` frames before some were segmented) found that phase on
    that frame: the labelled frames end there by choice, not because the image does; say so in
    ``labelled_frames_only``."""
    if not isinstance(picked, dict):
        return
    same = {ph for ph in ("ed", "es") if isinstance(picked.get(ph), int) and picked[ph] == out.get(f"{ph}_frame")}
    out["flags"] = [f for f in out["flags"] if not (f["code"] == "phase_at_clip_end" and f.get("structure") == "lv" and f.get("phase") in same)]
    if same:
        said = ", ".join(f"{ph.upper()} (frame {picked[ph]})" for ph in ("ed", "es") if ph in same)
        for f in out["flags"]:
            if f["code"] == "labelled_frames_only":
                f["message"] += f"; {said} found on all {n_frames} frames before segmenting (segment --frames)"
                f["picked_phases"] = sorted(same)


def _one_phase_text(name: str, frame: int, curve: np.ndarray) -> str:
    """Why a cine gives no EF for a structure whose ED and ES are one frame: it is on that frame
    alone, or its volume does not change over the frames it is on (the same labels copied)."""
    on = [int(t) for t in np.flatnonzero(np.isfinite(curve) & (curve > 0))]
    if len(on) > 1:
        shown = ", ".join(map(str, on[:8])) + (", ..." if len(on) > 8 else "")
        return (f"{name.upper()} EF is undefined: the {name.upper()} volume does not change over its {len(on)} labelled frames ({shown}; "
                f"{float(curve[frame]):.1f} mL on each): no ED and ES to tell apart")
    return f"{name.upper()} EF is undefined: only frame {frame} has the {name.upper()} labelled (label ED and ES, or the whole cine)"


def volume_curves(arr: np.ndarray, geom: StackGeometry, lmap: LabelMap, interpolate: bool = False,
                  basal_rule: bool = True, base: BaseEnd | None = None) -> tuple[dict[str, np.ndarray], list[dict]]:
    """(T,) LV and RV volume curves (mL). Frames with no labels at all are NaN and flagged
    ``unlabelled_frame``; a frame that has labels but not the LV (or the RV) is NaN in that
    structure's curve (a gap, never 0 mL) and flagged ``absent_structure`` with its frame, when
    the structure is on another frame (a warning when it is on at least half of the labelled
    frames, i.e. was followed through the cycle and lost there; else info)."""
    names = [n for n in ("lv", "rv") if n in lmap]
    curves = {n: np.full(arr.shape[0], np.nan) for n in names}
    flags: list[dict] = []
    labelled: list[int] = []
    for t in range(arr.shape[0]):
        frame = arr[t]
        if not frame.any():
            flags.append(qc.make_flag("unlabelled_frame", f"frame {t} has no labels; left out of the volume curves", severity="info", frame=t))
            continue
        labelled.append(t)
        masks = {n: frame == v for n, v in lmap.values.items() if n in ("lv", "myo", "rv", "la", "ra")}
        vols, _, _ = phase_volumes(masks, geom, lmap.subset(masks), interpolate, basal_rule, base)
        for n in names:
            curves[n][t] = vols.get(n, math.nan)  # NaN: not on this frame (left out of ED/ES like an unlabelled frame)
    for n in names:
        missing = [t for t in labelled if not np.isfinite(curves[n][t])]
        if not missing or len(missing) == len(labelled):  # never labelled: absent_structure of the phases says so
            continue
        severity = "warning" if 2 * (len(labelled) - len(missing)) >= len(labelled) else "info"
        flags += [qc.make_flag("absent_structure", f"frame {t}: no {n.upper()} (label {lmap[n]}) on a labelled frame; left out of the "
                               f"{n.upper()} volume curve (a gap, not 0 mL)", severity=severity, structure=n, frame=t) for t in missing]
    return curves, flags


def check_lv_measured(report: dict[str, Any], label_map: Any, map_named: bool = False) -> None:
    """Refuse a short-axis report whose LV is labelled but measures 0 mL because the basal rule
    left out every slice: no slice has the LV inside the myocardium, which is what another data
    set's label map gives (the RV read as the LV; ACDC's references have lv=3, myo=2, rv=1).
    ``map_named``: the labels name their own map (medseg's sidecar, a DICOM SEG), so the map is
    right and the segmentation is what fails."""
    from .echo import is_echo_report

    lmap = LabelMap.parse(label_map)
    if "myo" not in lmap or "lv" not in lmap or is_echo_report(report):
        return
    ed = (report.get("phases") or {}).get("ed") or report
    if ed.get("volumes_ml", {}).get("lv") == 0.0 and ed.get("excluded_basal_slices"):
        raise LVOutsideMyocardium(lmap, map_named)


def check_reference_lv(labels: np.ndarray, label_map: Any, affine: np.ndarray, what: str) -> None:
    """Refuse reference labels (T, Z, Y, X) of a short-axis stack (Z >= 2) whose LV lies inside
    their myocardium on no slice (ray coverage >= 50 %, the basal rule's, on the first frame that
    has both), as :func:`check_lv_measured` refuses their report: another data set's label map
    (M&Ms-2's lv=1, rv=3 read with ACDC's lv=3, rv=1 took the RV for the LV). ``what`` starts the
    message (e.g. "reference labels of case p1"). Labels without the LV or the myocardium pass."""
    from ..errors import LabelMapError

    lmap = LabelMap.parse(label_map)
    if "lv" not in lmap or "myo" not in lmap or labels.ndim != 4 or labels.shape[1] < 2:
        return
    lv, myo = labels == lmap["lv"], labels == lmap["myo"]
    t = next((t for t in range(labels.shape[0]) if lv[t].any() and myo[t].any()), None)
    if t is None or np.any(qc.coverage_per_slice(lv[t], myo[t], stack_geometry(affine, labels.shape[1:])) >= 0.5):
        return
    raise LabelMapError(f"{what}: the LV (label {lmap['lv']}) is inside the myocardium (label {lmap['myo']}) on no slice: is the "
                        f"label map right ({lmap.to_string()}; ACDC: lv=3,myo=2,rv=1; M&Ms: lv=1,myo=2,rv=3)?")


class LVOutsideMyocardium(MeasurementError):
    """The LV is labelled but lies inside the myocardium on no slice (every slice left out as
    basal): a mix-up of label values, or, ``map_named`` (the labels name their map), a failed
    segmentation; :meth:`named` gives the error for labels whose map is known to be right."""

    def __init__(self, lmap: LabelMap, map_named: bool = False):
        super().__init__(_lv_outside_myo(lmap, map_named))
        self.lmap = lmap

    def named(self) -> LVOutsideMyocardium:
        return LVOutsideMyocardium(self.lmap, map_named=True)


def _lv_outside_myo(lmap: LabelMap, map_named: bool = False) -> str:
    start = (f"the LV (label {lmap['lv']}) is not inside the myocardium (label {lmap['myo']}) on any slice, so every slice was "
             "left out as basal and it measures 0 mL")
    if map_named:  # the labels' own map: not a mix-up of values
        return (f"{start}: the labels name their structures ({lmap.to_string()}), so the segmentation itself fails here; "
                "look at its review flags or sheet (an LGE image needs --adapter cmr-lge)")
    return f"{start}: is the label map right ({lmap.to_string()}; ACDC: lv=3,myo=2,rv=1; M&Ms: lv=1,myo=2,rv=3)?"
