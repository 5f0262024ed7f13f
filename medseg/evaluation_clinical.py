"""Clinical errors of ``medseg evaluate`` (:mod:`medseg.evaluation`): LVEF, LV mass, EDV (and
the RV's) of the prediction against the reference, both measured by :mod:`medseg.measure`, for
short-axis ED + ES stacks of one case, studies whose frames are cases of their own (ACDC), and
apical echo studies whose views are one image each (method of disks); other one-view ED + ES
pairs (long-axis MR) by single-plane disks, apart (``long_axis_lvef_mae``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import MedsegError
from .evaluation_keep import labels
from .labels import LabelMap


def nanmean(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return float(np.mean(xs)) if xs else math.nan


def _shape(a) -> tuple[int, ...]:
    """The shape of a row's ``_ref`` / ``_pred`` (packed or an array), without unpacking it."""
    return tuple(a.shape) if hasattr(a, "shape") else np.shape(a)


def _stack_pair(ed, es) -> bool:
    """ED and ES labels that give volumes: one grid, a stack of slices (a single long-axis or
    echo view gives no volume by slice summation)."""
    ed, es = (s[1:] if len(s) == 4 else s for s in (_shape(ed), _shape(es)))
    return ed == es and ed[0] >= 2


def clinical_errors(cases: list[dict], label_map: LabelMap) -> dict[str, Any]:
    """LVEF, LV mass, EDV and systolic wall thickening errors, and with an RV in the label map RVEF and RV EDV errors
    (pred vs reference, both measured by medseg.measure), for cases that have both an ED and an
    ES row on one grid with at least 2 slices (short-axis stacks) or whose frames are cases of
    their own (:func:`_frame_studies`, ACDC); LVEF (and EDV with pixel spacing) of echo studies
    whose apical views are separate cases (:func:`_echo_studies`). Measures that need a
    structure a batch handed over for manual review in either phase (a row's ``handed_over``,
    not segmented) are left out: the LV's all, the myocardium's the mass and wall thickening,
    the RV's RVEF and RV EDV."""
    from ._nfc import nfc  # one case's ED and ES named in two Unicode forms (one copied from a Mac: NFD) are one case's

    by_case: dict[str, dict[str, dict]] = {}
    for c in cases:
        if c.get("phase"):
            by_case.setdefault(nfc(c["case"]), {})[c["phase"]] = c
    pairs = {k: v for k, v in by_case.items() if "ED" in v and "ES" in v and _stack_pair(v["ED"]["_ref"], v["ES"]["_ref"])}
    pairs.update({k: v for k, v in _frame_studies(cases, label_map).items() if k not in pairs})
    pairs = {k: v for k, v in pairs.items() if "lv" not in _handed(v.values())}
    echo = {k: v for k, v in _echo_studies(cases).items() if "lv" not in _handed(v.values())}
    view_pairs = {k: {("4ch", "ED"): v["ED"], ("4ch", "ES"): v["ES"]} for k, v in by_case.items()
             if k not in pairs and "ED" in v and "ES" in v and all(_one_view(v[p]) for p in ("ED", "ES")) and "lv" not in _handed(v.values())
             and not any(v[p] is r for st in echo.values() for r in st.values() for p in ("ED", "ES"))}
    if not pairs and not echo:
        return _view_pair_errors(view_pairs, label_map)
    from .measure import measure_ed_es

    err_ef, err_mass, err_edv, err_rvef, err_rvedv, err_thick, err_esv, err_rvesv = [], [], [], [], [], [], [], []
    has_rv = "rv" in label_map.values
    for ph in pairs.values():
        left = _handed(ph.values())
        vals, flags = {}, {}
        for which in ("_pred", "_ref"):
            ed, es = labels(ph["ED"], which), labels(ph["ES"], which)
            rep = measure_ed_es(ed[0] if ed.ndim == 4 else ed, es[0] if es.ndim == 4 else es, ph["ED"]["_vol"].affine, label_map)
            vals[which] = (rep["lv"]["ef_pct"], rep.get("lv_mass_g"), rep["lv"]["edv_ml"], rep["rv"]["ef_pct"], rep["rv"]["edv_ml"],
                           rep["wall_thickening_pct"]["global"], rep["lv"]["esv_ml"], rep["rv"]["esv_ml"])
            flags[which] = {f["code"] for f in rep.get("flags", ()) if f.get("severity") in ("warning", "error")}
        p, r = vals["_pred"], vals["_ref"]
        ph["ED"]["clinical"] = {"lvef_pred": p[0], "lvef_ref": r[0], "lv_mass_pred_g": p[1], "lv_mass_ref_g": r[1], "edv_pred_ml": p[2], "edv_ref_ml": r[2],
                                "esv_pred_ml": p[6], "esv_ref_ml": r[6]}
        one_sided = {who: sorted(flags[which] - flags[other]) for who, which, other in (("predicted", "_pred", "_ref"), ("reference", "_ref", "_pred"))}
        if any(one_sided.values()):  # an ESV above the EDV, a slice left empty ... in one label set: a number to check, not a reader difference
            ph["ED"]["measure_flags"] = {k: v for k, v in one_sided.items() if v}
        err_ef.append(abs(p[0] - r[0]))
        if "myo" in left:  # not segmented: no mass or wall thickening of the prediction
            del ph["ED"]["clinical"]["lv_mass_pred_g"], ph["ED"]["clinical"]["lv_mass_ref_g"]
        elif p[1] is not None and r[1] is not None:
            err_mass.append(abs(p[1] - r[1]))
        err_edv.append(abs(p[2] - r[2]))
        err_esv.append(abs(p[6] - r[6]))
        if "myo" not in left and math.isfinite(p[5]) and math.isfinite(r[5]):  # needs myocardium all round the cavity on some slices
            ph["ED"]["clinical"].update({"wall_thickening_pred_pct": p[5], "wall_thickening_ref_pct": r[5]})
            err_thick.append(abs(p[5] - r[5]))
        if has_rv and "rv" not in left:
            ph["ED"]["clinical"].update({"rvef_pred": p[3], "rvef_ref": r[3], "rv_edv_pred_ml": p[4], "rv_edv_ref_ml": r[4],
                                           "rv_esv_pred_ml": p[7], "rv_esv_ref_ml": r[7]})
            err_rvef.append(abs(p[3] - r[3]))
            err_rvedv.append(abs(p[4] - r[4]))
            err_rvesv.append(abs(p[7] - r[7]))
    for views in echo.values():
        err = _echo_clinical(views, label_map)
        if err is not None:
            err_ef.append(err[0])
            if err[1] is not None:
                err_edv.append(err[1])
    out = {"lvef_mae": nanmean(err_ef), "lv_mass_mae_g": nanmean(err_mass), "edv_mae_ml": nanmean(err_edv),
           "esv_mae_ml": nanmean(err_esv), "n_clinical_cases": len(pairs) + len(echo)}  # ESV: short-axis ED/ES pairs (an echo study records none)
    if echo:
        out["n_echo_studies"] = len(echo)
    out.update(_view_pair_errors(view_pairs, label_map))
    if has_rv:
        out.update({"rvef_mae": nanmean(err_rvef), "rv_edv_mae_ml": nanmean(err_rvedv), "rv_esv_mae_ml": nanmean(err_rvesv)})
    if err_thick:
        out["wall_thickening_mae_pct"] = nanmean(err_thick)
    from .evaluation_report import agreement

    out["agreement"] = agreement([ph["ED"] for ph in pairs.values()] + [v[("4ch", "ED")] for v in echo.values()])
    return out


def _one_view(row: dict) -> bool:
    """A row whose reference is one 2-D image (a long-axis or echo view: one frame, one slice)."""
    return _shape(row["_ref"])[:2] == (1, 1)


def _view_pair_errors(views: dict[str, dict[tuple[str, str], dict]], label_map: LabelMap) -> dict[str, Any]:
    """LVEF (and EDV with pixel spacing) errors of studies whose ED and ES are one 2-D view each
    and not named as apical echo views (M&Ms-2's long-axis ``001_LA_ED`` / ``001_LA_ES``): by
    single-plane disks, as ``medseg measure --ed --es`` measures them, in keys of their own
    (``long_axis_lvef_mae``): a single-plane EF is not averaged with short-axis stacks' EFs, which
    an M&Ms-2 cohort holds beside them. A pair that is no long-axis view (a short-axis slice) gives
    none. The ED row's ``clinical`` holds the numbers, named ``long_axis_lvef_pred`` ... so that
    the Bland-Altman plot and ``summary.agreement`` (short-axis and echo) leave them out."""
    err_ef, err_edv = [], []
    for v in views.values():
        err = _echo_clinical(v, label_map)
        if err is not None:
            row = v[("4ch", "ED")]
            row["clinical"] = {("method" if k == "method" else f"long_axis_{k}"): x for k, x in row["clinical"].items()}
            err_ef.append(err[0])
            if err[1] is not None:
                err_edv.append(err[1])
    if not err_ef:
        return {}
    return {"long_axis_lvef_mae": nanmean(err_ef), "long_axis_edv_mae_ml": nanmean(err_edv), "n_long_axis_studies": len(err_ef)}


def _handed(rows) -> set[str]:
    """The structures a batch handed over (not segmented) in any of ``rows``."""
    return {n for r in rows for n in r.get("handed_over", ())}


def _frame_studies(cases: list[dict], label_map: LabelMap) -> dict[str, dict[str, dict]]:
    """Studies whose frames are cases of their own without a phase (ACDC's ``patient001_frame01``
    and ``patient001_frame12``, :data:`medseg.batch.FRAME_CASE`), two or more stacks on one
    grid: study -> {"ED": row, "ES": row}, ED and ES the frames of largest and smallest
    reference LV (as for a cine); their rows get that ``phase``."""
    from ._nfc import nfc
    from .batch import FRAME_CASE

    groups: dict[str, list[dict]] = {}
    for c in cases:
        m = FRAME_CASE.match(c["case"])
        if m and not c.get("phase") and "lv" in label_map.values:
            groups.setdefault(nfc(m["study"]), []).append(c)
    out = {}
    for study, rows in groups.items():
        if len(rows) < 2 or not all(_stack_pair(rows[0]["_ref"], r["_ref"]) for r in rows[1:]):  # one grid, >= 2 slices
            continue
        lv = [int((labels(r, "_ref") == label_map["lv"]).sum()) for r in rows]
        ed, es = rows[int(np.argmax(lv))], rows[int(np.argmin(lv))]
        if ed is not es:
            ed["phase"], es["phase"] = "ED", "ES"
            out[study] = {"ED": ed, "ES": es}
    return out


def _echo_studies(cases: list[dict]) -> dict[str, dict[tuple[str, str], dict]]:
    """Apical echo views of one study as separate one-image cases (CAMUS: ``patient0001_4CH_ED``,
    by case name + phase or by image file name): study -> {(view, phase): row}, for studies with
    both 4-chamber phases."""
    from ._nfc import nfc
    from .batch import case_id, echo_view

    groups: dict[str, dict[tuple[str, str], dict]] = {}
    for c in cases:
        if _shape(c["_ref"])[:2] != (1, 1):
            continue
        names = [f"{c['case']}_{c['phase']}" if c.get("phase") else c["case"], case_id(c["image"]) or ""]
        ev = next((ev for n in names if (ev := echo_view(n))), None)
        if ev:
            groups.setdefault(nfc(ev[0]), {})[ev[1:]] = c
    return {k: v for k, v in sorted(groups.items()) if ("4ch", "ED") in v and ("4ch", "ES") in v}


def _echo_clinical(views: dict[tuple[str, str], dict], label_map: LabelMap) -> tuple[float, float | None] | None:
    """EF (and EDV with pixel spacing) by the method of disks, biplane with both 2-chamber views,
    on the model's and the expert's labels (:func:`medseg.measure.echo.measure_echo`); stored in
    the 4-chamber ED row's ``clinical``; returns the absolute errors (EF, EDV or None)."""
    from .batch import echo_view_keys
    from .measure.echo import measure_echo

    if "lv" not in label_map:
        return None
    keys = echo_view_keys(views)
    known = all(getattr(views[k]["_vol"], "spacing_known", True) for k in keys)
    yx = {k: (float(views[k]["_vol"].spacing[1]), float(views[k]["_vol"].spacing[2])) for k in keys}
    if known and not all(np.allclose(yx[(v, "ED")], yx[(v, "ES")], rtol=1e-4) for v, _ in keys):
        return None  # a view's ED and ES at other pixel sizes (as `medseg measure` refuses): the ED size was taken for both
    spacing = {v: yx[(v, "ED")] if known else None for v in {k[0] for k in keys}}
    vals = {}
    try:
        for which in ("_pred", "_ref"):
            a = [labels(views[k], which)[0, 0] for k in keys]
            rep = measure_echo(a[0], a[1], *(a[2:] or [None, None]), label_map=label_map, spacing_a4c_mm=spacing["4ch"],
                               spacing_a2c_mm=spacing.get("2ch"))
            vals[which] = (rep["lv"]["ef_pct"], rep["lv"]["edv_ml"])
    except MedsegError:
        return None
    p, r = vals["_pred"], vals["_ref"]
    if not (math.isfinite(p[0]) and math.isfinite(r[0])):
        return None
    clin = {"lvef_pred": p[0], "lvef_ref": r[0], "method": "biplane_disks" if len(keys) == 4 else "single_plane_disks"}
    if known and math.isfinite(p[1]) and math.isfinite(r[1]):
        clin.update({"edv_pred_ml": p[1], "edv_ref_ml": r[1]})
    views[("4ch", "ED")]["clinical"] = clin
    return abs(p[0] - r[0]), (abs(p[1] - r[1]) if "edv_pred_ml" in clin else None)
