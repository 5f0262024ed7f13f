"""Whole-study segmentation: prompts (file, reference labels, key slice) or zero-click,
through a :class:`medseg.session.Session`, with provenance. Used by ``medseg segment``,
``medseg batch`` and ``medseg evaluate``."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import PromptError
from .io.volume import Volume, require_volume
from .labels import DEFAULT_LABEL_MAP, LabelMap
from .prompt_file import PromptSet

if TYPE_CHECKING:  # torch-free at import time
    from .models.registry import LoadedModel

# zero-click's structures when none are named. CT: the four chambers' tokens that find them on the
# CT-like phantoms (zero-click Dice LV / MYO / RV / LA 0.94 / 0.91 / 0.89 / 0.84); RA 0.47, aorta
# 0.33 and PA 0.00 need a box (0.95 / 0.80 / 0.84 with one), or name them (BENCHMARKS.md, CT)
AUTO_DEFAULTS = {"US": ("lv", "myo", "la"), "CT": ("lv", "myo", "rv", "la")}
AUTO_DEFAULT = ("lv", "myo", "rv")


@dataclass
class SegmentResult:
    labels: np.ndarray  # (T, Z, Y, X) in ``label_map`` values
    label_map: LabelMap
    provenance: dict[str, Any]
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # structure -> "t,z" -> score
    seconds: float = 0.0
    confidence: dict[str, Any] | None = None  # ConfidenceReport.to_json()
    handed_over: list[str] = field(default_factory=list)  # structures left out (below min_confidence)
    confidence_seconds: float = 0.0

    def __repr__(self) -> str:  # not the label array: what a notebook wants to see of a run
        conf = (self.confidence or {}).get("volume")
        review = f", needs_review={bool(self.provenance['needs_review'])}" if "needs_review" in self.provenance else ""
        return (f"SegmentResult(labels={self.labels.shape} {self.labels.dtype}, label_map={self.label_map.to_string()!r}"
                + (f", confidence={conf}" if conf is not None else "") + review
                + (f", handed_over={self.handed_over}" if self.handed_over else "") + f", seconds={self.seconds:.1f})")


def default_auto_structures(volume: Volume) -> tuple[str, ...]:
    return AUTO_DEFAULTS.get(volume.modality, AUTO_DEFAULT)


def asked_structures(volume: Volume, prompts: PromptSet | None, auto: bool, auto_structures: tuple[str, ...] | None) -> set[str]:
    """The structures a run segments: the prompted ones and zero-click's."""
    asked = {p.structure for p in prompts.prompts} if prompts else set()
    if auto:
        asked |= set(auto_structures or default_auto_structures(volume))
    return asked


def _default_map(volume: Volume, prompts: PromptSet | None, auto: bool, auto_structures: tuple[str, ...] | None) -> LabelMap:
    """medseg's label values for the structures this run segments (prompted ones and zero-click's),
    so the sidecar and a DICOM SEG list what was segmented, not every structure medseg knows."""
    asked = asked_structures(volume, prompts, auto, auto_structures)
    names = [n for n in DEFAULT_LABEL_MAP.names if n in asked]
    return DEFAULT_LABEL_MAP.subset(names) if names else DEFAULT_LABEL_MAP


def check_prompts(volume: Volume, prompts: PromptSet | None, auto: bool = False, label_map: LabelMap | None = None,
                  auto_structures: tuple[str, ...] | None = None) -> LabelMap:
    """The label map a run writes (``label_map``, else the prompts', else medseg's values for the
    structures asked for), after checking the prompts against it and the image: PromptError for
    a prompted structure the map does not name, or a prompt whose frame, slice, box or points
    lie outside the ``(T, Z, Y, X)`` image. Needs no model: :func:`segment_volume` runs it, and
    ``medseg segment`` before the model loads."""
    lmap = label_map or (prompts.label_map if prompts and prompts.label_map else None) or _default_map(volume, prompts, auto, auto_structures)
    if prompts:
        missing = sorted({p.structure for p in prompts.prompts} - set(lmap.names))
        if missing:
            raise PromptError(f"prompts name structures not in the label map: {', '.join(missing)} (map: {lmap.to_string()})")
        for p in prompts.prompts:
            p.check_inside(volume.shape)
    return lmap


def segment_volume(
    volume: Volume,
    model: LoadedModel,
    prompts: PromptSet | None = None,
    auto: bool = False,
    propagate: bool = False,
    through: str = "z",
    label_map: LabelMap | str | Mapping[str, int] | None = None,
    auto_structures: tuple[str, ...] | None = None,
    progress: Callable[..., None] | None = None,
    confidence: bool = True,
    min_confidence: float | None = None,
    frames: Any = None,
) -> SegmentResult:
    """Segment a study.

    Args:
        volume: the image, a :class:`~medseg.io.Volume` ``(T, Z, Y, X)`` (``medseg.io.read_volume``);
            an array or a path is a MedsegError.
        model: a loaded model (:func:`medseg.models.load_model`).
        prompts: box/click prompts; prompts whose index is in ``prompts.propagate`` (or all,
            with ``propagate``) are propagated through slices (``through`` "z"), frames ("t") or
            both ("zt").
        auto: zero-click pass first (for ``auto_structures``), then any prompts refine it.
        label_map: values of the written labels (default: the prompts' map, else medseg's values
            for the structures asked for: prompted, and zero-click's).
        progress: called as ``progress(done, total, what)`` while it works: the slices of the
            zero-click pass and of each propagation, the prompts, then the confidence and review
            steps (``total`` None: no count).
        confidence: score every structure (predicted IoU + perturbation agreement, see
            :mod:`medseg.confidence`) and flag what needs review.
        min_confidence: leave out (erase) structures whose volume confidence is below this (a
            structure of specks only scores 0), and list them in ``handed_over`` for manual
            segmentation.
        frames: with ``auto``, the frames of a cine to segment, from 0: numbers, ranges and
            ``"ed"`` / ``"es"`` (``[0, 11]``, ``"0-4"``, ``"ed,es"``; :mod:`medseg.frame_pick`:
            ED and ES found by a quick zero-click LV pass over every frame first); the other
            frames' labels stay empty. None: every frame. The frames and how ED / ES were
            found go in the provenance (``settings.frames``, ``frame_pick``).

    The review (``provenance["review"]``, with ``confidence``) flags a structure asked for
    (prompted, or zero-click's) and found on no slice ``structure_not_found``, from the
    session log (:func:`medseg.review.asked_in_log`).
    Returns: :class:`SegmentResult` with labels on the Volume's grid.
    """
    from .io.readers import _check_finite
    from .session import Session, require_model

    volume = require_volume(volume)
    from .io.us_region import add_screen_note

    add_screen_note(volume)  # its us_region_note (kept in the sidecar): a whole echo screen without a region (batch, the API)
    if prompts is None and not auto:
        raise PromptError("nothing to do: give prompts (--prompts / --prompts-from) or --auto")
    if prompts is not None and not isinstance(prompts, PromptSet):
        raise PromptError(f"prompts must be a PromptSet (medseg.prompt_file: load_prompts_file, parse_prompts, prompts_from_labels), "
                          f"got {type(prompts).__name__}")
    label_map = LabelMap.parse(label_map) if label_map is not None else None
    _check_options(through, auto_structures)
    frame_list = _check_frames(volume, frames, auto)
    if auto and auto_structures:
        known = [s for s in require_model(model, "segment_volume").config.structures if s != "generic"]
        unknown = [s for s in auto_structures if s not in known]
        if unknown:
            raise PromptError(f"--structures: the model has no zero-click prompt for {', '.join(unknown)} (it knows {', '.join(known)})")
    lmap = check_prompts(volume, prompts, auto, label_map, auto_structures)  # said before the model is asked for (the same words as the CLI)
    model = require_model(model, "segment_volume")
    _check_finite(volume.array, "Volume.array", "the array")  # as read_volume does: NaN was made 0 silently
    t0 = time.perf_counter()
    session = Session(volume, model, lmap, undo=False)  # nothing here undoes: no undo copies kept
    picked, chosen = None, None
    if auto:
        names = [s for s in (auto_structures or default_auto_structures(volume)) if s in lmap and s in model.config.structures]
        if not names:
            raise PromptError(f"zero-click mode needs structures the model knows ({', '.join(model.config.structures) or 'none'}) in the label map")
        if frame_list is not None:
            from .frame_pick import resolve_frames

            chosen, picked = resolve_frames(session, frame_list, (lambda d, t: progress(d, t, "finding ED and ES (zero-click LV), slices")) if progress else None)
        session.auto(names, frames=chosen, progress=(lambda d, t: progress(d, t, "zero-click, slices")) if progress else None)
    if prompts:
        _run_prompts(session, prompts, propagate, through, progress)
    settings = {"auto": auto, "propagate": propagate, "through": through, "n_prompts": len(prompts.prompts) if prompts else 0, "min_confidence": min_confidence}
    if frame_list is not None:
        from .frame_pick import frames_text

        settings.update({"frames": chosen, "frames_asked": frames_text(frame_list)})
    result = session_result(session, settings, t0, progress, confidence, min_confidence)
    if picked is not None:
        result.provenance["frame_pick"] = picked
    return result


def session_result(session, settings: dict[str, Any], t0: float, progress: Callable[..., None] | None = None, confidence: bool = True,
                   min_confidence: float | None = None) -> SegmentResult:
    """A segmented :class:`medseg.session.Session` as :class:`SegmentResult`: scores per slice,
    confidence (structures below ``min_confidence`` cleared and handed over), review, and the
    provenance with ``settings``; ``t0``: when segmenting began (``time.perf_counter()``).
    :func:`segment_volume` and :func:`medseg.replay_sidecar.replay_sidecar` end with it."""
    volume, lmap = session.volume, session.label_map
    seg_seconds = time.perf_counter() - t0
    scores: dict[str, dict[str, float]] = {}
    for (name, t, z), res in sorted(session.results.items()):
        scores.setdefault(name, {})[f"{t},{z}"] = round(float(res.score), 4)
    conf_json, handed, conf_s = None, [], 0.0
    if confidence or min_confidence is not None:
        if progress:
            progress(0, None, "confidence (jittered decodes)")
        tick = (lambda d, t: progress(d, t, "confidence (jittered decodes), slices")) if progress else None
        conf_json, handed, conf_s = _confidence(session, min_confidence, tick)
    prov = session.provenance()
    prov["settings"] = settings
    if conf_json is not None:
        from .review import review_segmentation

        prov["confidence"] = conf_json
        if progress:
            progress(0, None, "review (measurements, anatomy)")
        prov["review"] = review_segmentation(session.labels, volume.affine, lmap, conf_json["flags"], measure=volume.spacing_known, actions=prov["actions"],
                                            blank=session.blank_map(), frames=settings.get("frames"))
        prov["needs_review"] = prov["review"]["needs_review"]
    if handed:
        prov["handed_over"] = handed
    return SegmentResult(session.labels, lmap, prov, scores, seg_seconds, conf_json, handed, conf_s)


def _check_frames(volume: Volume, frames: Any, auto: bool) -> tuple[int | str, ...] | None:
    """``frames`` parsed and checked against the image (:mod:`medseg.frame_pick`), None for every frame."""
    if frames is None:
        return None
    from .frame_pick import check_frames, parse_frames

    if not auto:
        raise PromptError("frames picks the frames of the zero-click pass: add --auto (auto=True); prompts name their own frames")
    parsed = parse_frames(frames)
    check_frames(parsed, volume.n_frames)
    return parsed


def _check_options(through: str, auto_structures: tuple[str, ...] | None) -> None:
    """PromptError for a ``through`` or ``auto_structures`` a library caller got wrong (a string
    of names was taken letter by letter)."""
    if through not in ("z", "t", "zt"):
        raise PromptError(f"through must be z, t or zt, got {through!r}")
    if isinstance(auto_structures, str) or not all(isinstance(s, str) for s in auto_structures or ()):
        raise PromptError(f"auto_structures must be a tuple of structure names, e.g. ('lv', 'myo'), got {auto_structures!r}")


def _confidence(session, min_confidence: float | None,
                progress: Callable[[int, int], None] | None = None) -> tuple[dict[str, Any], list[str], float]:
    """(provenance ``confidence``, structures left out, seconds): every structure with voxels
    is scored (one of specks only at 0); those below ``min_confidence`` are erased (a ``clear``
    in the session's log, so a replay of the log gives the labels written) and flagged
    ``handed_over``, their confidence printed with the digits that keep it below the cut-off.
    ``progress(done, total)`` after each slice scored (a long cine: a third of its time)."""
    from .confidence import below, rounded, score_session

    t0 = time.perf_counter()
    rep = score_session(session, progress=progress)
    handed = []
    if min_confidence is not None:
        for name, conf in rep.volume.items():
            if conf < min_confidence:
                session.clear(name)
                session.log[-1]["why"] = f"handed over: confidence below --min-confidence {min_confidence:g}"
                handed.append(name)
    out = rep.to_json()
    if handed:
        out["flags"] = out["flags"] + [{"code": "handed_over", "level": "volume", "structure": n, "confidence": rounded(rep.volume[n], min_confidence),
                                        "threshold": min_confidence,
                                        "message": f"{n} left out: confidence {below(rep.volume[n], min_confidence)} (--min-confidence {min_confidence:g})"}
                                       for n in handed]
    return out, handed, time.perf_counter() - t0


def _run_prompts(session, prompts: PromptSet, propagate: bool, through: str, progress) -> None:
    total = len(prompts.prompts)
    for i, p in enumerate(prompts.prompts):
        session.apply_prompt(p)
        if (propagate or i in prompts.propagate) and (session.labels[p.frame, p.slice] == session.structure(p.structure).value).any():
            step = (lambda d, t, what=f"prompt {i + 1}/{total}: {p.structure} propagated, {'frames' if through == 't' else 'slices'}":
                    progress(d, t, what)) if progress else None
            session.propagate(p.structure, p.frame, p.slice, through=through, progress=step)
        if progress:
            progress(i + 1, total, "prompts")
