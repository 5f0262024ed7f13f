"""Propagation through slices and cine frames, and the zero-click pass, as generators.

The previous result prompts the next slice or frame: its box (slightly enlarged) and its mask
as the dense prompt, with the structure token. Slice propagation stops where the structure
ends: an empty prediction, a predicted IoU below ``min_score``, an area that collapses below
``MIN_AREA_RATIO`` or explodes above ``MAX_AREA_RATIO`` times the previous slice's (a leak out
of the structure; the previous area counts as at least ``LEAK_FLOOR_MM2``), no overlap with the
previous mask. A slice or frame without signal (every pixel the same value: a padding slice, a
dropped frame) is stepped over, as zero-click skips it: the one before prompts the one after.
Zero-click keeps a per-slice finding beyond the propagated slices when it touches its
neighbour's mask, is no leak, and does not regrow past an end where the structure narrows
(``REGROW_RATIO``: a ventricle tapers to its apex); never for the RV (``WALK_ONLY``), whose
findings beyond its walk are mostly the right atrium at the base.
An RV that zero-click finds on no slice of a frame is looked for with clicks around the
myocardium it found (:func:`probe_beside`; a small end-systolic RV can escape the RV token).
The anatomical rules the session applies after a walk (the LV enclosed by myocardium, the RV
beside the heart) are in :mod:`medseg.enclosure`; then it checks the RV's end slices
(:mod:`medseg.end_check`).
Generators yield ``(frame, slice, Prediction)`` as results come, so a UI can show progress.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .errors import PromptError
from .types import Box, Point, Prediction

MIN_SCORE = 0.45
MIN_AREA_RATIO = 0.12
MAX_AREA_RATIO = 3.0  # a structure never triples from one slice to the next: that is a leak
# ... unless it is small: below this area (mm^2, ~ a 28 mm disc) the previous slice's mask does
# not bound the next one (the slit-like end-systolic LV cavity of a thick-walled ventricle
# widens 3-5x within one slice towards the base; a small RV at the apex likewise)
LEAK_FLOOR_MM2 = 600.0
REGROW_RATIO = 1.5  # zero-click: past a narrowing end (the apex) a structure does not grow again by more than this
MIN_PIXELS = 6
AUTO_MIN_SCORE = 0.35
# zero-click: structures whose extent is their walk's alone. An RV finding beyond the slices its
# propagation reached is, at the base, mostly the right atrium (at end-systole the tricuspid
# annulus descends): on the 20 ACDC `end-check` training patients 6 of the 10 RV slices so added
# lay where the expert drew no RV (RV Dice 0.884 -> 0.890 without them); for LV and myocardium
# 12 of 13 were right, so they keep theirs
WALK_ONLY = ("rv",)


def _grow(box: Box, shape: tuple[int, int], frac: float = 0.05) -> Box:
    dy, dx = box.height * frac, box.width * frac
    h, w = shape
    return Box(max(0.0, box.y0 - dy), max(0.0, box.x0 - dx), min(h - 1.0, box.y1 + dy), min(w - 1.0, box.x1 + dx))


REFINE_ITERS = 1  # re-prompt once with the box of the propagated mask (+0.007 mean Dice on ACDC val)


def step_from(session, structure: str, t: int, z: int, prev_mask: np.ndarray) -> Prediction:
    """Predict ``structure`` on (t, z) prompted by the mask of a neighbouring slice/frame."""
    box = Box.from_mask(prev_mask)
    if box is None:
        raise PromptError(f"cannot propagate {structure!r}: the previous mask is empty")
    session._set_slice(t, z)
    pred = session.predictor.predict(box=_grow(box, prev_mask.shape), structure=structure, mask_prompt=prev_mask)
    for _ in range(REFINE_ITERS):
        b = Box.from_mask(pred.mask)
        if b is None:
            break
        pred = session.predictor.predict(box=b, structure=structure, mask_prompt=pred.mask)
    return pred


def _accept(pred: Prediction, prev_mask: np.ndarray, check_end: bool, pixel_mm2: float) -> bool:
    area = int(pred.mask.sum())
    if area < MIN_PIXELS:
        return False
    if not check_end:
        return True
    if pred.score < MIN_SCORE:
        return False
    if area < MIN_AREA_RATIO * max(int(prev_mask.sum()), 1) or _leaks(area, prev_mask, pixel_mm2):
        return False
    return bool((pred.mask & prev_mask).any())


def _leaks(area: int, prev_mask: np.ndarray, pixel_mm2: float) -> bool:
    """True when ``area`` (pixels) is more than MAX_AREA_RATIO times the neighbouring slice's
    mask, counted as at least LEAK_FLOOR_MM2 (``pixel_mm2``: the area of one pixel)."""
    floor = LEAK_FLOOR_MM2 / pixel_mm2 if pixel_mm2 > 0 else 0.0
    return area > MAX_AREA_RATIO * max(int(prev_mask.sum()), 4 * MIN_PIXELS, floor)


def _pixel_mm2(session) -> float:
    """In-plane area of one pixel (mm^2) of the session's volume."""
    _, dy, dx = session.volume.spacing
    return float(dy * dx)


def propagate_slices(session, structure: str, t: int, z0: int, direction: str = "both", seed_mask: np.ndarray | None = None) -> Iterator[tuple[int, int, Prediction]]:
    """From slice ``z0`` (whose current mask seeds it) up and/or down the stack of frame t."""
    seed = seed_mask if seed_mask is not None else session.labels[t, z0] == session.structure(structure).value
    if not seed.any():
        raise PromptError(f"nothing to propagate: {structure!r} is empty on frame {t}, slice {z0}")
    nz = session.volume.n_slices
    dirs = {"both": (1, -1), "up": (1,), "down": (-1,)}
    if direction not in dirs:
        raise PromptError(f"direction must be one of {', '.join(dirs)}, got {direction!r}")
    yield from _in_turn(session, [lambda d=d: _walk(session, structure, ((t, z) for z in range(z0 + d, nz if d > 0 else -1, d)), seed, check_end=True)
                                  for d in dirs[direction]])


def _user_mask(session, structure: str, t: int, z: int) -> np.ndarray | None:
    """The structure's mask on (t, z) when the user prompted it there (not propagation or
    zero-click), else None."""
    res = session.results.get((structure, t, z))
    if res is None or _by_model(res):
        return None
    mask = session.labels[t, z] == session.structure(structure).value
    return mask if mask.any() else None


def _walk(session, structure: str, steps, seed: np.ndarray, check_end: bool) -> Iterator[tuple[int, int, Prediction]]:
    """Follow ``steps`` ((frame, slice) pairs), each prompted by the previous result, until a
    prediction is not accepted. A slice or frame the user prompted the structure on is kept as
    it is and prompts the next one (so a correction re-propagates up to the user's other
    prompts, which it never overwrites)."""
    prev = seed
    px = _pixel_mm2(session) if check_end else 1.0
    for t, z in steps:
        if session.blank(t, z):
            continue  # no signal (a dropped frame, a blanked slice): stepped over, the one before prompts the one after
        anchor = _user_mask(session, structure, t, z)
        if anchor is not None:  # the user prompted the structure here: kept, and it prompts the next
            prev = anchor
            continue
        pred = step_from(session, structure, t, z, prev)
        if not _accept(pred, prev, check_end=check_end, pixel_mm2=px):
            return
        yield t, z, pred
        prev = pred.mask


def frame_orders(t0: int, n_frames: int, cyclic: bool) -> list[list[int]]:
    """The two walks through the frames from key frame ``t0``. ``cyclic`` (the frames cover one
    cardiac cycle, the last followed by the first: :func:`cycle_closes`): half way round the cycle
    each way (from frame 0 of 25: 1..12 and 24..13), so no frame is more than half the cycle
    from the key frame and the two halves run at once. Otherwise up to the last frame and down
    to the first."""
    if not cyclic:
        return [list(range(t0 + 1, n_frames)), list(range(t0 - 1, -1, -1))]
    ahead = n_frames // 2
    return [[(t0 + k) % n_frames for k in range(1, ahead + 1)], [(t0 - k) % n_frames for k in range(1, n_frames - ahead)]]


def cycle_closes(volume: Any) -> bool:
    """Whether the last frame follows the first: the image changes from the last frame to the
    first no more than in the largest step between neighbouring frames (mean absolute
    difference on 4 x 4 pixel blocks, against noise, of up to three slices). A gated cine of one
    whole cycle does (M&Ms-2 001's 25-frame 4-chamber cine: 0.87 of its largest step); a clip
    that stops part way (an echo half cycle from ED to ES: 3.6; that cine's first 9 frames: 3.8,
    its first 23 of 25: 1.4) does not."""
    nz = volume.n_slices
    zs = sorted({nz // 4, nz // 2, (3 * nz) // 4})
    a = np.asarray(volume.array[:, zs], dtype=np.float32)
    # a dropped frame (no signal on a sampled slice) is no step of the cycle: left out, the
    # jump to and from it would pass for the largest step and any clip for a closed cycle
    a = a[~(a.max(axis=(2, 3)) == a.min(axis=(2, 3))).any(axis=1)]
    nt = a.shape[0]
    if nt < 3:
        return False
    k = 4 if min(a.shape[-2:]) >= 32 else 1
    y, x = a.shape[-2] // k * k, a.shape[-1] // k * k
    a = a[..., :y, :x].reshape(nt, len(zs), y // k, k, x // k, k).mean(axis=(3, 5))
    steps = np.abs(np.diff(a, axis=0)).mean(axis=(1, 2, 3))
    return bool(np.abs(a[-1] - a[0]).mean() <= steps.max())


def _cyclic(session) -> bool:
    """:func:`cycle_closes` for the session's volume, computed once."""
    known = getattr(session, "_cycle_closes", None)
    if known is None:
        known = session._cycle_closes = cycle_closes(session.volume)
    return known


def propagate_frames(session, structure: str, t0: int, z: int, seed_mask: np.ndarray | None = None) -> Iterator[tuple[int, int, Prediction]]:
    """From frame ``t0`` through all other frames of slice z, both ways: round the cycle when
    the frames cover one (:func:`cycle_closes`), else to the first and last frames."""
    seed = seed_mask if seed_mask is not None else session.labels[t0, z] == session.structure(structure).value
    if not seed.any():
        raise PromptError(f"nothing to propagate: {structure!r} is empty on frame {t0}, slice {z}")
    orders = frame_orders(t0, session.volume.n_frames, cyclic=_cyclic(session))
    yield from _in_turn(session, [lambda o=o: _walk(session, structure, ((t, z) for t in o), seed, check_end=False) for o in orders])


def _in_turn(session, walks: list[Callable[[], Iterator[tuple[int, int, Prediction]]]]) -> Iterator[tuple[int, int, Prediction]]:
    """Yield from each walk in turn. With spare CPU threads (:meth:`Session.spare_threads`)
    walks run at once in worker threads: walks from their own seeds are independent (the two
    directions from a key slice, each slice's walk through the frames; a walk only predicts,
    the caller writes), so the results, and their order, are those of one walk after another.
    With a thread for every walk the calling thread takes the first, whose results then
    stream as they come."""
    n = min(session.spare_threads(), len(walks))
    if n < 2:
        for walk in walks:
            yield from walk()
        return
    from concurrent.futures import ThreadPoolExecutor

    from ._threads import split_torch_threads

    here = walks[0] if len(walks) <= n else None
    with split_torch_threads(n), ThreadPoolExecutor(n - 1 if here else n, thread_name_prefix="medseg") as pool:
        later = [pool.submit(session._in_worker, lambda w=w: list(w())) for w in (walks[1:] if here else walks)]
        if here is not None:
            yield from here()
        for fut in later:
            done, err = fut.result()
            if err is not None:
                raise err
            yield from done


def propagate(session, structure: str, frame: int, slice_: int, through: str = "z", direction: str = "both", progress: Callable[[int, int], None] | None = None) -> Iterator[tuple[int, int, Prediction]]:
    """Slices ("z"), frames ("t"), or both ("zt": slices on the key frame, then every slice
    through the cine)."""
    if through not in ("z", "t", "zt"):
        raise PromptError(f"through must be z, t or zt, got {through!r}")
    total = {"z": session.volume.n_slices, "t": session.volume.n_frames, "zt": session.volume.n_slices * session.volume.n_frames}[through]
    done = 0
    key_masks: dict[int, np.ndarray] = {slice_: session.labels[frame, slice_] == session.structure(structure).value}
    if through in ("z", "zt"):
        for t, z, pred in propagate_slices(session, structure, frame, slice_, direction):
            key_masks[z] = pred.mask
            done += 1
            if progress:
                progress(done, total)
            yield t, z, pred
    if through in ("t", "zt"):  # each slice's walk through the frames starts from its own seed
        for z in range(session.volume.n_slices) if through == "zt" else ():
            if z not in key_masks and (anchor := _user_mask(session, structure, frame, z)) is not None:
                key_masks[z] = anchor  # a slice the user prompted on the key frame
        for t, zz, pred in _in_turn(session, [lambda z=z: propagate_frames(session, structure, frame, z, seed_mask=key_masks[z]) for z in sorted(key_masks)]):
            done += 1
            if progress:
                progress(done, total)
            yield t, zz, pred


def auto_segment(
    session,
    structures: list[str],
    frames: list[int] | None = None,
    min_score: float = AUTO_MIN_SCORE,
    progress: Callable[[int, int], None] | None = None,
    probed: list[dict] | None = None,
) -> Iterator[tuple[str, int, int, Prediction]]:
    """Zero-click: the structure prompts run on every slice (an RV finding away from the
    myocardium found on its slice is dropped, :func:`_drop_detached`); per frame and
    structure the most confident finding becomes the key slice, and propagation from it (up and down the stack)
    gives the structure's extent — a single missed or spurious slice cannot break the stack.
    Slices the propagation did not reach keep a confident zero-click finding when it overlaps
    the propagated mask of a neighbouring slice (not for the structures in :data:`WALK_ONLY`).
    A structure of :data:`PROBE_BESIDE` found on no slice of any of ``frames`` is looked for
    with clicks beside its neighbour (:func:`probe_beside`); found on other frames, it is left
    to :func:`fill_missing_frames`. What the probes found is appended to ``probed``
    (``{"structure", "frame", "slices"}``)."""
    frames = list(range(session.volume.n_frames)) if frames is None else frames
    nz = session.volume.n_slices
    total, done = len(frames) * nz, 0
    unfound: list[tuple[int, str, dict[int, Prediction], list[dict[int, Prediction]]]] = []
    found_on_a_frame: set[str] = set()

    def scan(tz: tuple[int, int]) -> dict[str, Prediction]:
        if session.blank(*tz):  # a slice without signal has nothing to find
            return {}
        session._set_slice(*tz)
        preds = {s: session.predictor.predict_auto(s) for s in structures}
        return {s: p for s, p in preds.items() if p.mask.sum() >= MIN_PIXELS and p.score >= min_score}

    def tick(_: int) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    for t in frames:
        found: dict[str, dict[int, Prediction]] = {s: {} for s in structures}
        for z, hits in enumerate(session.parallel_map(scan, [(t, z) for z in range(nz)], done=tick)):  # slices at once
            for s, pred in hits.items():
                found[s][z] = pred
        _drop_detached(found)
        for s, near in PROBE_BESIDE.items():
            if s in found and not found[s] and found.get(near):
                unfound.append((t, s, found[near], [f for o, f in found.items() if o not in (s, near)]))
        for s, per_slice in found.items():
            if per_slice:
                found_on_a_frame.add(s)
                yield from ((s, tt, zz, p) for tt, zz, p in _auto_stack(session, s, t, per_slice))
    # probes last, and only where no other frame has the structure: on a cine the session
    # carries a frame's miss over from the nearest frame that has it (fill_missing_frames)
    for t, s, near, others in unfound:
        if s not in found_on_a_frame:
            per_slice = probe_beside(session, s, t, near, others)
            if per_slice:
                if probed is not None:
                    probed.append({"structure": s, "frame": t, "slices": sorted(per_slice)})
                yield from ((s, tt, zz, p) for tt, zz, p in _auto_stack(session, s, t, per_slice))


def fill_missing_frames(session, structures: list[str], frames: list[int] | None = None) -> Iterator[tuple[str, int, int, int, Prediction]]:
    """Zero-click on a cine: a structure found on some of ``frames`` and on none of the others
    (its token missed it there, e.g. a small end-systolic RV) is carried over from the nearest
    frame that has it (round the cycle when the frames cover one, :func:`cycle_closes`), slice
    by slice, as frame propagation does (that frame's mask prompts the same slice). Missing frames are filled nearest first, so a run of them is walked from its
    ends. Yields ``(structure, frame, slice, source frame, Prediction)``."""
    frames = list(range(session.volume.n_frames)) if frames is None else list(frames)
    nz, nt = session.volume.n_slices, session.volume.n_frames
    cyclic = _cyclic(session)  # as frame_orders: a whole cycle's last frame neighbours its first

    def apart(a: int, b: int) -> int:
        return min(abs(a - b), nt - abs(a - b)) if cyclic else abs(a - b)

    for s in structures:
        v = session.structure(s).value
        masks = {t: {z: session.labels[t, z] == v for z in range(nz) if (session.labels[t, z] == v).any()} for t in frames}
        missing = [t for t in frames if not masks[t]]
        if len(missing) in (0, len(frames)):
            continue
        while missing:
            t = min(missing, key=lambda f: (min(apart(f, h) for h in frames if masks[h]), f))
            missing.remove(t)
            src = min((h for h in frames if masks[h]), key=lambda h: (apart(t, h), h))
            for z, prev in sorted(masks[src].items()):
                for _, _, pred in _walk(session, s, [(t, z)], prev, check_end=False):
                    masks[t][z] = pred.mask
                    yield s, t, z, src, pred


ADJACENT_TO = {"rv": ("myo",)}  # structure -> what it abuts on every short-axis slice (the septum)
ADJACENT_PX = 3


def _drop_detached(found: dict[str, dict[int, Prediction]]) -> None:
    """Drop zero-click findings of a structure that must abut another (the RV lies against the
    septal myocardium) on slices where that other structure was found and the finding does not
    come within ``ADJACENT_PX`` pixels of it: a fluid-filled stomach or bowel loop in a wide field
    of view is not the RV. Slices without a finding of the neighbour are left alone (the LV
    cavity is no substitute: the septum, 8-15 mm, lies between it and the RV)."""
    from scipy import ndimage

    for s, near in ADJACENT_TO.items():
        others = [found[o] for o in near if o in found]
        if s not in found or not others:
            continue
        for z in list(found[s]):
            nb = [o[z].mask for o in others if z in o]
            if not nb:
                continue
            grown = ndimage.binary_dilation(found[s][z].mask, iterations=ADJACENT_PX)
            if not any((grown & m).any() for m in nb):
                del found[s][z]


# zero-click: a structure found on no slice of a frame, whose neighbour was found, is looked for
# beside it. The RV token alone can miss a small end-systolic RV on every slice (ACDC patient037
# ES; M&Ms-2 subject 001, both frames), while the same token with one click in the RV finds it:
# clicks on a ring around the myocardium (PROBE_DIRECTIONS directions, PROBE_DIST x its extent
# from its centre), on the middle half of the slices where the myocardium was found; a result
# must abut the myocardium, lie outside it, the cavity it encloses and the other structures'
# findings (the LV; in a long-axis view the atria), score PROBE_MIN_SCORE and be
# found by another click too (PROBE_MIN_SUPPORT: a single click's finding was another structure
# on 4 of 80 ACDC volumes with the token's RV withheld, none with it); the best-scoring one
# becomes the key slice of the RV's walk.
PROBE_BESIDE = {"rv": "myo"}
PROBE_DIRECTIONS = 8
PROBE_DIST = 0.75
PROBE_MIN_SCORE = 0.6
PROBE_MIN_SUPPORT = 2  # clicks on the slice (itself included) that must find the same mask (IoU > 0.5)
PROBE_MAX_INSIDE = 0.1  # share of a probe's mask that may lie on the neighbour, inside it or on another structure's finding


def probe_beside(session, structure: str, t: int, near: dict[int, Prediction], others: Sequence[dict[int, Prediction]] = ()) -> dict[int, Prediction]:
    """Click-probe ``structure`` around the neighbour's per-slice findings ``near`` (slice ->
    Prediction) on frame ``t``, never into them, what they enclose (the LV cavity) or what
    ``others`` (per-slice findings of the other structures: LV, atria, great vessels) found;
    returns the best accepted probe per slice (slice -> Prediction)."""
    from scipy import ndimage

    zs = sorted(near)
    q = len(zs) // 4
    zs = zs[q : len(zs) - q] or zs
    h, w = session.volume.array.shape[-2:]

    def probe(z: int) -> Prediction | None:
        ring = near[z].mask
        if not ring.any():
            return None
        taken = [o[z].mask for o in others if z in o]
        inside = ndimage.binary_fill_holes(ring)
        for m in taken:
            inside |= m
        ys, xs = np.nonzero(ring)
        cy, cx = ys.mean(), xs.mean()
        extent = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
        session._set_slice(t, z)
        ok: list[Prediction] = []
        for k in range(PROBE_DIRECTIONS):
            a = 2 * np.pi * k / PROBE_DIRECTIONS
            py, px = cy + np.sin(a) * PROBE_DIST * extent, cx + np.cos(a) * PROBE_DIST * extent
            if not (0 <= py <= h - 1 and 0 <= px <= w - 1):
                continue
            pred = session.predictor.predict(points=[Point(float(py), float(px))], structure=structure)
            m = pred.mask
            area = int(m.sum())
            if area < MIN_PIXELS or pred.score < PROBE_MIN_SCORE or (m & inside).sum() > PROBE_MAX_INSIDE * area:
                continue
            if not (ndimage.binary_dilation(m, iterations=ADJACENT_PX) & ring).any():
                continue
            ok.append(pred)
        best = None
        for pred in ok:  # another click must find the same structure (IoU > 0.5)
            support = sum((pred.mask & o.mask).sum() > 0.5 * (pred.mask | o.mask).sum() for o in ok)
            if support >= PROBE_MIN_SUPPORT and (best is None or pred.score > best.score):
                best = pred
        return best

    return {z: best for z, best in zip(zs, session.parallel_map(probe, zs)) if best is not None}  # slices at once


def _auto_stack(session, structure: str, t: int, per_slice: dict[int, Prediction]) -> Iterator[tuple[int, int, Prediction]]:
    nz = session.volume.n_slices
    mid = (nz - 1) / 2
    # most confident finding, preferring the middle of the stack (mid-ventricular slices are
    # the least ambiguous)
    key = max(per_slice, key=lambda z: per_slice[z].score - 0.3 * abs(z - mid) / max(nz, 1))
    out = {key: per_slice[key]}
    px = _pixel_mm2(session)
    for _, z, pred in propagate_slices(session, structure, t, key, seed_mask=per_slice[key].mask):
        out[z] = pred
    for z in sorted(per_slice):
        if z in out or structure in WALK_ONLY:
            continue
        nb = out.get(z - 1) or out.get(z + 1)
        area = int(per_slice[z].mask.sum())
        if nb is not None and (per_slice[z].mask & nb.mask).any() and not _leaks(area, nb.mask, px) and not _regrows(area, z, out):
            out[z] = per_slice[z]
    for z in sorted(out):
        yield t, z, out[z]


def _regrows(area: int, z: int, out: dict[int, Prediction]) -> bool:
    """True when slice ``z`` (not in ``out``) lies beyond an end of ``out`` (slice -> prediction) where the
    structure tapers (its end slice smaller than the one inside it) and ``area`` is more than
    REGROW_RATIO times that end slice's: at the apex the ventricle narrows to its tip, so a
    zero-click finding there that is several times the last slice's area (under the leak
    floor, which keeps small apical masks from counting as leaks) is something else."""
    for end, inner in ((z - 1, z - 2), (z + 1, z + 2)):
        if end in out and inner in out:
            a_end, a_inner = int(out[end].mask.sum()), int(out[inner].mask.sum())
            if a_end < a_inner and area > REGROW_RATIO * a_end:
                return True
    return False


_MODEL_WRITTEN = ("propagated_from", "auto")


def _by_model(res) -> bool:
    """True for a slice result written by propagation or zero-click (not prompted by the user)."""
    return res is not None and any(k in res.prompt for k in _MODEL_WRITTEN)
