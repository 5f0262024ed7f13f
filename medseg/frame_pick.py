"""Which frames of a cine to segment (``medseg segment --auto --frames``, ``segment_volume(frames=...)``).

Frames are numbered from 0, as everywhere in medseg (prompts files, error messages, ``medseg
measure``'s ``ed_frame`` / ``es_frame``, napari's frame slider); ACDC's ``Info.cfg`` counts from
1, so its ``ED: 1`` is frame 0. A frame list is numbers and ranges (``0,11``, ``0-4``) and the
phases ``ed`` and ``es``: those are found before the full pass by a cheap one, zero-click LV on a
few mid-ventricular slices of every frame (:func:`pick_ed_es`), ED the frame of the largest LV,
ES of the smallest (docs/measurement.md's definitions, on the LV area of those slices). On an
echo screen with an ultrasound region (``meta["us_region"]``) that pass, as all zero-click, looks
only inside the region (:mod:`medseg.io.us_region`)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import MedsegError, PromptError

PHASES = ("ed", "es")
#: mid-ventricular slices whose zero-click LV area is followed through the frames to find ED and ES
PICK_SLICES = 3
METHOD = "zero-click LV area on mid-ventricular slices"
#: the method of a single-slice view over time (an apical echo clip): its one slice
METHOD_ONE_SLICE = "zero-click LV area on the view's one slice"


def parse_frames(spec: Any) -> tuple[int | str, ...]:
    """``spec`` ("0,11", "0-4", "ed,es", or a sequence of ints and "ed" / "es") as frame numbers
    and phases, in order, repeats dropped; PromptError in one line for anything else."""
    if isinstance(spec, str):
        tokens: list[Any] = [s.strip() for s in spec.split(",")]
    elif isinstance(spec, (list, tuple, range, np.ndarray)):
        tokens = list(spec)
    else:
        raise PromptError(f"frames must be frame numbers and ranges from 0, ed and es (e.g. '0,11', '0-4' or 'ed,es'), got {spec!r}")
    out: list[int | str] = []
    for tok in tokens:
        if isinstance(tok, (int, np.integer)) and not isinstance(tok, (bool, np.bool_)):
            if tok < 0:
                raise PromptError(f"frames count from 0, got {int(tok)}")
            out.append(int(tok))
            continue
        text = tok.lower() if isinstance(tok, str) else None
        run = re.fullmatch(r"(\d+)\s*-\s*(\d+)", text) if text is not None else None
        if text in PHASES:
            out.append(text)
        elif text is not None and text.isdigit():
            out.append(int(text))
        elif run and int(run[1]) <= int(run[2]):
            out.extend(range(int(run[1]), int(run[2]) + 1))
        elif run:
            raise PromptError(f"--frames {spec if isinstance(spec, str) else list(spec)}: the range {tok} runs backwards: write {run[2]}-{run[1]}")
        else:
            why = f"{tok!r} is not a frame number (from 0), a range such as 0-4, ed or es" if tok != "" else "an empty entry"
            raise PromptError(f"--frames {spec if isinstance(spec, str) else list(spec)}: {why}")
    return tuple(dict.fromkeys(out))


def check_frames(frames: tuple[int | str, ...], n_frames: int) -> None:
    """PromptError when a frame number lies outside an image of ``n_frames`` frames."""
    from ._ranges import compact_ranges

    outside = [f for f in frames if isinstance(f, int) and f >= n_frames]
    if outside:
        raise PromptError(f"--frames: frame{'s' * (len(outside) > 1)} {compact_ranges(outside, 4)} outside the image: it has {n_frames} "
                          f"frame{'s' * (n_frames != 1)}, numbered from 0 (0-{n_frames - 1})")


def frames_text(frames: tuple[int | str, ...]) -> str:
    """A parsed frame list as the text that gives it back ("ed,es", "0,11")."""
    return ",".join(map(str, frames))


def resolve_frames(session, frames: tuple[int | str, ...], progress: Callable[[int, int], None] | None = None) -> tuple[list[int], dict[str, Any] | None]:
    """(sorted frame indices, :func:`pick_ed_es`'s record or None) for a parsed frame list on a
    :class:`medseg.session.Session`: ``ed`` / ``es`` found first when named."""
    if session.volume.n_frames == 1:  # one frame is ED and ES (a 3-D study in a batch of cines): nothing to find
        return [0], None
    picked = pick_ed_es(session, progress=progress) if any(f in PHASES for f in frames) else None
    out = {picked[f] if f in PHASES else f for f in frames}
    return sorted(out), picked


def _mid_slices(found: list[int], n: int) -> list[int]:
    """The ``n`` slices nearest the middle of the LV's extent (first to last slice it was found on)."""
    mid = (found[0] + found[-1]) / 2.0
    inside = list(range(found[0], found[-1] + 1))
    return sorted(sorted(inside, key=lambda z: (abs(z - mid), z))[:n])


def pick_ed_es(session, n_slices: int = PICK_SLICES, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """ED and ES of a cine without segmenting it: zero-click LV on every slice of the first frame
    where it is found (the next frames when not), then on the ``n_slices`` slices nearest the
    middle of its extent in every frame; a slice where it is missed on a frame takes the area
    interpolated from that slice's other frames (round the cycle). ED = the frame of the largest
    summed LV area, ES of the smallest. Reads the session, writes nothing (its embedding cache
    keeps the slices for the full pass). Returns ``{"ed", "es", "method", "slices", "lv_area_px"
    (per frame), "missed" (slice-frames where the LV was not found), "seconds"}``, and
    ``"us_region"`` (the box it looked in) on an echo screen with an ultrasound region;
    MedsegError when the LV is found on no frame."""
    from .propagation import AUTO_MIN_SCORE, MIN_PIXELS

    t0 = time.perf_counter()
    nt, nz = session.volume.n_frames, session.volume.n_slices
    if "lv" not in session.model.config.structures:
        raise PromptError("--frames ed,es finds ED and ES by zero-click LV: this model has no LV prompt; give the frames by number")
    done, total = 0, nz + (nt - 1) * min(n_slices, nz)

    def area(tz: tuple[int, int]) -> float:
        if session.blank(*tz):
            return np.nan
        session._set_slice(*tz)
        p = session.predictor.predict_auto("lv")
        px = int(p.mask.sum())
        return float(px) if px >= MIN_PIXELS and p.score >= AUTO_MIN_SCORE else np.nan

    def tick(_: int) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    survey, found = 0, []
    for survey in range(nt):
        first = session.parallel_map(area, [(survey, z) for z in range(nz)], done=tick)
        found = [z for z, a in enumerate(first) if np.isfinite(a)]
        if found:
            break
        total += nz
    if not found:
        raise MedsegError("--frames ed,es: zero-click found the LV on no frame, so ED and ES cannot be told; give the frames by number (e.g. --frames 0,11)")
    slices = _mid_slices(found, n_slices)
    areas = np.full((nt, len(slices)), np.nan)
    areas[survey] = [first[z] for z in slices]
    todo = [(t, z) for t in range(nt) if t != survey for z in slices]
    for (t, z), a in zip(todo, session.parallel_map(area, todo, done=tick), strict=True):
        areas[t, slices.index(z)] = a
    missed = int((~np.isfinite(areas)).sum())
    keep = [j for j in range(len(slices)) if 2 * np.isfinite(areas[:, j]).sum() >= nt] or [int(np.argmax(np.isfinite(areas).sum(0)))]
    curve = np.zeros(nt)
    for j in keep:
        col, have = areas[:, j], np.flatnonzero(np.isfinite(areas[:, j]))
        curve += np.interp(np.arange(nt), have, col[have], period=nt) if have.size < nt else col
    region = getattr(session, "us_region", None)
    return {"ed": int(np.argmax(curve)), "es": int(np.argmin(curve)), "method": METHOD if nz > 1 else METHOD_ONE_SLICE, "slices": [slices[j] for j in keep],
            "lv_area_px": [round(float(v), 1) for v in curve], "missed": missed, **({"us_region": list(region)} if region is not None else {}),
            "seconds": round(time.perf_counter() - t0, 3)}
