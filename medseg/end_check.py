"""A learned check of the last slices of a propagated right ventricle.

Propagation stops where the model's own signals say the structure ends (low predicted IoU,
area collapse or leak, no overlap: :mod:`medseg.propagation`). For the RV that is not enough at
the two ends of the short-axis stack: on the ACDC training patients, the key-slice propagation
went one slice too far at the base in 58 of 78 end-systolic volumes (the tricuspid annulus
descends towards the apex in systole, so the most basal slice shows the right atrium, which
looks like RV on one slice) and at the apex in 69 of 158 volumes, and the model's predicted IoU
there is as high as on correct slices.

This module decides per end slice whether it is RV with a small logistic model per end
(``base`` = the end where the LV is larger, ``apex`` = the other) on features of that slice in
the context of the frame: its RV area relative to the largest RV slice and to its inner
neighbour, the predicted IoU and the agreement under prompt perturbation (the confidence
signals), and the LV and myocardium areas on it relative to their largest slices. The weights
(``medseg/_end_check.json``) were fitted by ``benchmarks/fit_end_check.py`` on the ACDC
*training* patients only (area-weighted, so a large wrong basal slice counts more than a few
apical pixels; the shipped weights on all 80, for the current default; a re-fit uses the 20 kept
out of the on-policy decoder fine-tune's recordings, and writes weights only when they gain
out-of-fold RV Dice: without the file nothing is checked). An end slice judged not-RV is
removed and the new end is judged again, at most ``max_trim`` slices per end.

It touches only slices written by propagation or zero-click; only on frames where the LV and
myocardium are segmented too (the features need them); never while the RV is locked
(accepted); and only with the model the weights were fitted on (``model_sha256``: another
checkpoint's predicted IoU and agreement mean something else; an adapter on that model is
fine). A kept end is marked (``end_checked`` in its provenance), so the check never runs twice
on the same walk: a later operation on another structure does not trim it further.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .propagation import _by_model

_WEIGHTS = Path(__file__).with_name("_end_check.json")
FEATURES = ("area_to_max", "log_area_to_inner", "predicted_iou", "agreement", "lv_to_max", "myo_to_max")
MIN_RUN = 3  # shorter runs are left alone (nothing to compare an end with)


def weights() -> dict[str, Any] | None:
    """The fitted weights, or None when the file is absent (then nothing is checked)."""
    return _read_weights()


@lru_cache(maxsize=1)
def _read_weights() -> dict[str, Any] | None:
    return json.loads(_WEIGHTS.read_text()) if _WEIGHTS.is_file() else None


def _areas(session, name: str, t: int) -> np.ndarray:
    return (session.labels[t] == session.structure(name).value).sum(axis=(1, 2))


def run_ends(session, structure: str, context: tuple[str, str], t: int) -> list[tuple[str, int, int]] | None:
    """``[(end, slice, inner neighbour)]`` for the two ends (``base``, ``apex``) of the
    structure's slice run on frame t, or None when the run is shorter than MIN_RUN, not
    contiguous, or the context structures are missing on the frame."""
    a = _areas(session, structure, t)
    zs = np.flatnonzero(a)
    if len(zs) < MIN_RUN or zs[-1] - zs[0] + 1 != len(zs):
        return None
    lv = _areas(session, context[0], t)
    if not lv.any() or not _areas(session, context[1], t).any():
        return None
    lo, hi = int(zs[0]), int(zs[-1])
    base_lo = lv[lo : lo + 2].mean() >= lv[hi - 1 : hi + 1].mean()
    ends = [(lo, lo + 1), (hi, hi - 1)]
    if not base_lo:
        ends.reverse()
    return [("base", *ends[0]), ("apex", *ends[1])]


def features(session, structure: str, context: tuple[str, str], t: int, z: int, z_inner: int) -> list[float] | None:
    """The FEATURES of the end slice (t, z); None when it has no model result or is too small
    to score."""
    from .confidence import slice_signals

    res = session.results.get((structure, t, z))
    if res is None:
        return None
    a = _areas(session, structure, t)
    lv, myo = _areas(session, context[0], t), _areas(session, context[1], t)
    sig = slice_signals(session, structure, t, z)
    if sig is None:
        return None
    return [
        a[z] / a.max(),
        math.log(a[z] / a[z_inner]) if a[z_inner] else 0.0,
        float(res.score),
        sig[1],
        lv[z] / lv.max(),
        myo[z] / max(myo.max(), 1),
    ]


def probability(w: dict[str, Any], end: str, x: list[float]) -> float:
    m = w["ends"][end]
    s = m["w0"] + sum(c * v for c, v in zip(m["w"], x, strict=True))
    return 1.0 / (1.0 + math.exp(-s))


def check_ends(session, step, change, frames: list[int] | None = None) -> list[dict[str, Any]]:
    """Run the check on the given frames (default all) as part of the calling operation's undo
    step; returns what it removed (structure, frame, slice, end, probability of not-RV)."""
    w = weights()
    if w is None:
        return []
    name, context = w["structure"], tuple(w["context"])
    if w.get("model_sha256") not in (None, session.model.sha256):
        return []  # fitted on another model's predicted IoU and agreement: not transferable
    if any(n not in session.structures for n in (name, *context)) or session.structure(name).locked:
        return []  # an accepted (locked) structure is never changed
    removed = []
    for t in range(session.volume.n_frames) if frames is None else frames:
        done: set[str] = set()
        for _ in range(int(w["max_trim"])):
            ends = run_ends(session, name, context, t)
            if ends is None:
                break
            trimmed = False
            for end, z, z_inner in ends:
                res = session.results.get((name, t, z))
                if end in done or not _by_model(res) or res.prompt.get("end_checked"):
                    continue
                x = features(session, name, context, t, z, z_inner)
                p = probability(w, end, x) if x is not None else 0.0
                if p > w["threshold"]:
                    session._erase(step, change, name, t, z)
                    removed.append({"structure": name, "frame": t, "slice": z, "rule": "rv_end_check", "end": end, "p_not_rv": round(p, 3)})
                    trimmed = True
                else:
                    done.add(end)
            if not trimmed:
                break
        ends = run_ends(session, name, context, t)
        for _, z, _ in ends or []:
            res = session.results.get((name, t, z))
            if _by_model(res) and not res.prompt.get("end_checked"):
                step.results.setdefault((name, t, z), res)
                session.results[(name, t, z)] = replace(res, prompt={**res.prompt, "end_checked": True})
    return removed
