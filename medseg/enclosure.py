"""Anatomical rules applied after propagation or zero-click, on model-written slices only.

In a short-axis stack the LV blood pool is enclosed by myocardium, also at the apex (the cap)
and at the base (where the experts stop): once both were propagated (or found by zero-click)
on a frame, :func:`unenclosed_runs` lists the model-written LV slices beyond the myocardium's
slice range; on each, walking outwards, the myocardium is propagated on (:func:`enclosing_step`)
and kept where it surrounds the LV (its walk had stopped early), else the LV slice and those
beyond it are removed (the LV walk went too far). The mirror at the base: model-written
myocardium slices beyond the LV's basal end (:func:`empty_rings`) get an LV from a box prompt
where the ring surrounds it (:func:`cavity_step`; a decoder fine-tuned on its own propagations
can return an empty LV on a basal slice that has one). Model-written RV slices more than
``BESIDE_MARGIN`` slices beyond the LV and myocardium go (:func:`beyond_heart`: a walk on into
the atria or great vessels). :meth:`medseg.session.Session` applies them (:func:`apply_rules`)
inside its propagation / auto step (one undo step) and lists what they removed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ._ranges import compact_ranges
from .propagation import MIN_PIXELS, _accept, _by_model, _grow, _pixel_mm2, step_from
from .types import Box, Prediction

ENCLOSED_BY = {"lv": "myo"}  # inner structure -> the structure that encloses it on every slice
# a structure -> the structures whose slice range it never leaves by more than BESIDE_MARGIN
# slices: in the expert labels of the 80 ACDC training patients (160 volumes) the RV lies on no
# slice more than one beyond the slices with LV or myocardium
BESIDE = {"rv": ("lv", "myo")}
BESIDE_MARGIN = 1


def _model_frames(session, name: str) -> set[int]:
    """Frames on which ``name`` has slices written by propagation or zero-click."""
    return {t for (n, t, _), res in session.results.items() if n == name and _by_model(res)}


def unenclosed_runs(session, frames: list[int] | None = None, structures: list[str] | None = None) -> list[tuple[str, str, int, int, list[int]]]:
    """``(inner, outer, frame, step, slices)``: per end of the enclosing structure's slice range (the
    myocardium's), the slices beyond it where the enclosed structure (LV blood pool) has a
    model-written mask, in walking order outwards, on frames where both have model-written
    slices. User-prompted or painted slices end a run and are never listed, nor is a locked
    (accepted) inner structure. ``structures``: only
    pairs involving one of them (the structures an operation just wrote)."""
    out = []
    nz = session.volume.n_slices
    for inner, outer, vi, vo, t in _enclosure_frames(session, frames, structures):
        zo = [z for z in range(nz) if (session.labels[t, z] == vo).any()]
        if not zo:
            continue
        for step, side in ((1, range(zo[-1] + 1, nz)), (-1, range(zo[0] - 1, -1, -1))):
            run = []
            for z in side:
                if not (session.labels[t, z] == vi).any() or not _by_model(session.results.get((inner, t, z))):
                    break
                run.append(z)
            if run:
                out.append((inner, outer, t, step, run))
    return out


def _enclosure_frames(session, frames: list[int] | None, structures: list[str] | None) -> Iterator[tuple[str, str, int, int, int]]:
    """``(inner, outer, inner value, outer value, frame)`` for each pair of :data:`ENCLOSED_BY`
    the session has (involving one of ``structures`` when given; never a locked, accepted, inner
    structure) and each of ``frames`` (default all) where both have model-written slices."""
    for inner, outer in ENCLOSED_BY.items():
        if structures is not None and inner not in structures and outer not in structures:
            continue
        if inner not in session.structures or outer not in session.structures or session.structure(inner).locked:
            continue  # an accepted (locked) structure is never changed
        both = _model_frames(session, inner) & _model_frames(session, outer)
        for t in sorted(both if frames is None else both & set(frames)):
            yield inner, outer, session.structure(inner).value, session.structure(outer).value, t


def beyond_heart(session, frames: list[int] | None = None, structures: list[str] | None = None) -> list[tuple[str, int, list[int]]]:
    """``(structure, frame, slices)``: the model-written slices of a structure of :data:`BESIDE`
    (the RV) more than :data:`BESIDE_MARGIN` slices beyond the slice range of its context (LV and
    myocardium) on frames where both it and its context have model-written slices: a walk that
    went on above the base (atria, great vessels) or past the apex. Slices between the context
    and a user-prompted or painted slice of the structure are kept, and a locked structure is
    never changed. ``structures``: only when one of them is involved (what an operation wrote)."""
    out = []
    for name, context in BESIDE.items():
        if structures is not None and name not in structures and not set(context) & set(structures):
            continue
        ctx = [c for c in context if c in session.structures]
        if name not in session.structures or not ctx or session.structure(name).locked:
            continue
        ctx_frames = set().union(*(_model_frames(session, c) for c in ctx))
        frames_ = _model_frames(session, name) & ctx_frames
        v, cv = session.structure(name).value, [session.structure(c).value for c in ctx]
        for t in sorted(frames_ if frames is None else frames_ & set(frames)):
            zc = np.flatnonzero(np.isin(session.labels[t], cv).any(axis=(1, 2)))
            zs = np.flatnonzero((session.labels[t] == v).any(axis=(1, 2)))
            if not len(zc) or not len(zs):
                continue
            model = [int(z) for z in zs if _by_model(session.results.get((name, t, int(z))))]
            user = [int(z) for z in zs if int(z) not in model]
            lo, hi = min([zc[0] - BESIDE_MARGIN, *user]), max([zc[-1] + BESIDE_MARGIN, *user])
            far = [z for z in model if z < lo or z > hi]
            if far:
                out.append((name, t, far))
    return out


def empty_rings(session, frames: list[int] | None = None, structures: list[str] | None = None) -> list[tuple[str, str, int, int, list[int]]]:
    """The mirror of :func:`unenclosed_runs` at the base: ``(inner, outer, frame, step, slices)``
    for the model-written slices of the enclosing structure (myocardium) beyond the enclosed
    one's (LV blood pool's) slice range at its basal end (the end where its area is larger), in
    walking order outwards, on frames where both have model-written slices. There the LV walk
    stopped early (the decoder can return an empty LV on a basal slice), or the myocardium's
    went too far; :func:`cavity_step` tells which. User-prompted or painted slices end a run,
    a slice that already holds the inner structure too, and a locked inner structure is never
    changed."""
    out = []
    nz = session.volume.n_slices
    for inner, outer, vi, vo, t in _enclosure_frames(session, frames, structures):
        area = (session.labels[t] == vi).sum(axis=(1, 2))
        zi = np.flatnonzero(area)
        if len(zi) < 2 or area[zi[0]] == area[zi[-1]]:
            continue
        step = -1 if area[zi[0]] > area[zi[-1]] else 1
        run = []
        for z in range(zi[0] - 1, -1, -1) if step < 0 else range(zi[-1] + 1, nz):
            if not (session.labels[t, z] == vo).any() or not _by_model(session.results.get((outer, t, z))) or (session.labels[t, z] == vi).any():
                break
            run.append(z)
        if run:
            out.append((inner, outer, t, step, run))
    return out


def cavity_step(session, inner: str, outer: str, t: int, z: int, z_prev: int) -> Prediction | None:
    """The enclosed structure (LV) on (t, z), prompted by a box only (its box on ``z_prev``,
    slightly enlarged: the mask prompt is what came back empty) and checked like a propagated
    slice (score, area ratio, leak, overlap); returned when the enclosing structure's mask on
    (t, z) surrounds it (ray coverage >= :data:`medseg.review.MIN_ENCLOSURE`), else None."""
    from .measure.geometry import stack_geometry
    from .measure.qc import coverage_per_slice
    from .review import MIN_ENCLOSURE

    prev = session.labels[t, z_prev] == session.structure(inner).value
    ring = session.labels[t, z] == session.structure(outer).value
    box = Box.from_mask(prev)
    if box is None or not ring.any() or session.blank(t, z):
        return None
    session._set_slice(t, z)
    pred = session.predictor.predict(box=_grow(box, prev.shape), structure=inner)
    if not _accept(pred, prev, check_end=True, pixel_mm2=_pixel_mm2(session)):
        return None
    geom = stack_geometry(session.volume.affine, (1, *ring.shape))
    cov = coverage_per_slice(pred.mask[None], ring[None], geom)[0]
    return pred if cov >= MIN_ENCLOSURE else None


def enclosing_step(session, outer: str, inner: str, t: int, z: int, z_prev: int) -> Prediction | None:
    """The enclosing structure (myocardium) propagated onto (t, z) from its mask on ``z_prev``
    without the end-of-structure checks, returned when it surrounds the inner structure's mask
    there (ray coverage >= :data:`medseg.review.MIN_ENCLOSURE`, the review's rule): its walk had
    stopped too early. None when it does not (the inner structure's walk went too far)."""
    from .measure.geometry import stack_geometry
    from .measure.qc import coverage_per_slice
    from .review import MIN_ENCLOSURE

    prev = session.labels[t, z_prev] == session.structure(outer).value
    inner_mask = session.labels[t, z] == session.structure(inner).value
    if not prev.any() or not inner_mask.any():
        return None
    pred = step_from(session, outer, t, z, prev)
    if pred.mask.sum() < MIN_PIXELS:
        return None
    geom = stack_geometry(session.volume.affine, (1, *inner_mask.shape))
    cov = coverage_per_slice(inner_mask[None], pred.mask[None], geom)[0]
    return pred if cov >= MIN_ENCLOSURE else None


def apply_rules(session, step, change, frames: list[int] | None, structures: list[str] | None) -> list[dict[str, Any]]:
    """Keep the LV blood pool inside the myocardium on frames where both were propagated or
    found by zero-click: on each model-written LV slice beyond the myocardium's slice range
    (walking outwards) the myocardium is propagated on without its stop checks; where it
    surrounds the LV, it is written (its walk had stopped early), else that LV slice and the
    ones beyond it are removed (the LV walk went past the apex or the base). The mirror at
    the base: on each model-written myocardium slice beyond the LV's basal end, the LV is
    prompted with its neighbour's box and written where the ring surrounds it (the LV walk
    had stopped early), until a slice where it does not. Then model-written RV slices more
    than one slice beyond the LV and myocardium are removed (the RV walk went on above the
    base or past the apex). Part of the calling operation's undo step ``step`` (``change``
    collects what changed; :func:`unenclosed_runs`, :func:`empty_rings`, :func:`beyond_heart`);
    returns the removed slices."""
    removed: list[dict[str, Any]] = []
    for inner, outer, t, step_z, run in unenclosed_runs(session, frames, structures):
        for i, z in enumerate(run):
            pred = None if session.structure(outer).locked else enclosing_step(session, outer, inner, t, z, z - step_z)
            if pred is not None:
                session._write(step, change, outer, t, z, pred, {"propagated_from": [t, z - step_z], "encloses": inner})
                continue
            for zz in run[i:]:
                session._erase(step, change, inner, t, zz)
                removed.append({"structure": inner, "frame": t, "slice": zz, "rule": f"{inner}_outside_{outer}"})
            break
    for inner, outer, t, step_z, run in empty_rings(session, frames, structures):
        for z in run:
            pred = cavity_step(session, inner, outer, t, z, z - step_z)
            if pred is None:
                break
            session._write(step, change, inner, t, z, pred, {"propagated_from": [t, z - step_z], "enclosed_by": outer})
    for name, t, far in beyond_heart(session, frames, structures):
        for z in far:
            session._erase(step, change, name, t, z)
            removed.append({"structure": name, "frame": t, "slice": z, "rule": f"{name}_beyond_heart"})
    return removed


def removed_text(removed: list[dict[str, Any]]) -> str:
    """Slices removed by the LV rule / RV end check (``Change.removed`` or the provenance's
    ``actions[].removed``) as one line, "" when none, e.g. "RV end check removed RV on slices
    0, 9 (frame 0)"; runs of slices as ranges ("on slices 12-53, 60": a 300-slice CT listed 40+)."""
    why = {"rv_end_check": "RV end check", "lv_outside_myo": "LV-in-myocardium rule", "rv_beyond_heart": "RV-beside-the-heart rule"}
    groups: dict[tuple[str, str, int], list[int]] = {}
    for r in removed:
        groups.setdefault((r["rule"], r["structure"], r["frame"]), []).append(r["slice"])
    return "; ".join(f"{why.get(rule, rule)} removed {name.upper()} on slice{'s' if len(zs) > 1 else ''} "
                     f"{compact_ranges(zs)} (frame {t})" for (rule, name, t), zs in groups.items())
