"""The state of one interactive segmentation of one Volume.

A :class:`Session` owns (or borrows) a multi-label map ``labels`` (T, Z, Y, X), one entry per
structure (label value, lock), and per-slice model results (ROI + low-res logits) used to
settle overlaps: where two unlocked structures both claim a pixel, the one with the higher
logit keeps it; a **locked** (accepted) structure is never overwritten.

Every operation returns the :class:`Change` it made (changed slices and the bounding box of
changed pixels), is undoable (multi-level undo/redo, propagation and auto included: one
operation = one undo step), and is appended to ``log`` — a provenance record that
:meth:`Session.replay` re-runs to reproduce the labels bit for bit.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ._memory import HeapTrimmer
from ._session_replay import SessionReplay
from ._session_undo import Change, UndoHistory, _UndoStep
from ._threads import ThreadedPredictions
from .enclosure import removed_text  # noqa: F401 (medseg.session.removed_text, as before)
from .errors import EmptyImageError, GeometryError, LabelMapError, MedsegError, PromptError
from .io.volume import Volume, require_volume
from .labels import LabelMap
from .preprocess import hounsfield_problem, normalize_intensity
from .types import Box, Point, Prediction, SlicePrompt, index

if TYPE_CHECKING:  # torch-free at import time
    from .confidence import ConfidenceReport
    from .embeddings import EmbeddingCache
    from .models.registry import LoadedModel


@dataclass
class StructureState:
    name: str
    value: int
    locked: bool = False


@dataclass
class SliceResult:
    """What the model last said for one structure on one slice."""

    roi: tuple[float, float, float, float]
    logits: np.ndarray  # (h, w) low-res logits inside roi
    score: float
    prompt: dict[str, Any]


#: Slices narrower than this (pixels) cannot hold a heart: usually a volume with its axes mixed up.
MIN_SLICE_SIDE = 16


def require_model(model: Any, who: str = "a Session") -> Any:
    """``model`` when it is a loaded model, else a one-line MedsegError (a name or path given)."""
    if model is None or not hasattr(model, "config"):
        given = type(model).__name__ + (f" {str(model)!r}"[:80] if isinstance(model, str) or hasattr(model, "__fspath__") else "")
        raise MedsegError(f"{who} needs a loaded model (medseg.models.load_model), got {given}")
    return model


def _require_prompt(prompt: Any) -> SlicePrompt:
    if not isinstance(prompt, SlicePrompt):
        raise PromptError(f"prompt must be a medseg.types.SlicePrompt(structure, frame, slice, box=..., points=...) "
                          f"(a prompts-file entry: medseg.types.prompt_from_json), got {type(prompt).__name__}")
    return prompt


def _as_logged(prompt: SlicePrompt) -> SlicePrompt:
    """``prompt`` with its box as its log entry holds it (rounded to 3 decimals): a box dragged in
    napari (corners like 20.6235327) gave another mask than its replay (20.624)."""
    if prompt.box is None:
        return prompt
    box = Box(*prompt.to_json()["box"])
    return prompt if box == prompt.box else replace(prompt, box=box)


class Session(ThreadedPredictions, SessionReplay, UndoHistory):
    """Interactive multi-structure segmentation of one Volume.

    Args:
        volume: the image (T, Z, Y, X).
        model: a :class:`medseg.models.LoadedModel`.
        label_map: structure -> label value of ``labels`` (default: medseg's map).
        labels: optional caller-owned uint8/uint16 buffer of the Volume's shape (napari's
            label layer data); a new zero buffer otherwise.
        cache: optional :class:`medseg.embeddings.EmbeddingCache` shared between sessions.
        undo: keep an undo step per operation (napari's undo and redo). False for a run that never
            undoes (:func:`medseg.segment.segment_volume`: ``segment``, ``batch``, ``evaluate``):
            no copies of the slices an operation wrote are kept after it (on a 320 x 512 x 512 CT
            with 7 structures some 0.4 GB); an operation cut short is put back all the same.

    Prompts are :class:`~medseg.types.SlicePrompt` s in voxel indices (frame, slice, then
    row y, column x); a volume that is not a Volume (an array, a path) is a MedsegError.
    """

    def __init__(self, volume: Volume, model: LoadedModel, label_map: LabelMap | str | Mapping[str, int] | None = None, labels: np.ndarray | None = None, cache: EmbeddingCache | None = None,
                 undo: bool = True) -> None:
        from .predictor import SlicePredictor

        self.volume = volume = require_volume(volume)
        self.model: LoadedModel = require_model(model)
        self.label_map = LabelMap.parse(label_map)
        if labels is None:
            labels = np.zeros(volume.shape, dtype=np.uint8 if max(self.label_map.values.values()) < 256 else np.uint16)
        if not isinstance(labels, np.ndarray) or not labels.flags.writeable:
            raise LabelMapError("the label buffer must be a writable numpy array (the session writes into it)")
        if labels.shape != volume.shape:
            raise LabelMapError(f"label buffer shape {labels.shape} != image shape {volume.shape}")
        self.labels = labels
        self.structures = {n: StructureState(n, v) for n, v in self.label_map.values.items()}
        self.results: dict[tuple[str, int, int], SliceResult] = {}
        self.log: list[dict[str, Any]] = []
        self._undo: list[_UndoStep] = []
        self._last_after: dict[tuple[int, int], np.ndarray] = {}  # (t, z) -> latest undo "after" copy (_undo_copy)
        self._redo: list[_UndoStep] = []
        self._keep_undo = bool(undo)
        ny, nx = volume.shape[-2:]
        if min(ny, nx) < MIN_SLICE_SIDE:
            raise GeometryError(
                f"slices are {ny} x {nx} pixels, too small to hold a heart (at least {MIN_SLICE_SIDE} on each "
                f"side): is an image axis in the wrong place (array {list(volume.array.shape)}, axes t, z, y, x)?"
            )
        problem = hounsfield_problem(volume.array) if volume.modality == "CT" else None
        if problem is not None:  # raw CT values in the HU window: a silent, confident failure
            raise MedsegError(f"{volume.meta.get('path') or 'the image'}: segmented as CT but {problem}")
        self._norm = normalize_intensity(volume.array, volume.modality)
        flat = self._norm.reshape(volume.n_frames * volume.n_slices, -1)
        self._blank = flat.max(axis=1) == flat.min(axis=1)  # (frame * slice) -> no signal on it
        if self._blank.all():
            raw = np.asarray(volume.array)
            why = f"every voxel is {float(raw.flat[0]):g}" if raw.min() == raw.max() else f"no contrast inside the {volume.modality} intensity window"
            raise EmptyImageError(f"the image holds no signal: {why}; nothing to segment")
        from .embeddings import array_key

        self._data_key = array_key(volume.array[:, :, ::4, ::4])
        from .io.us_region import volume_region

        #: an echo screen's ultrasound image region (meta["us_region"], medseg.io.us_region): zero-click looks only there
        self.us_region = volume_region(volume.meta, (ny, nx))
        self._auto_inside: np.ndarray | None = None  # while zero-click writes: the region's (Y, X) mask
        self._predictor = SlicePredictor(model, cache=cache, modality=volume.modality)
        self._tls = threading.local()  # a worker thread's own predictor (parallel_map)
        self._heap = HeapTrimmer()  # freed pages back to the OS every few slices (medseg._memory)

    def __repr__(self) -> str:  # what a notebook shows: the study, the model, what is segmented
        done = {n: sum(1 for k in self.results if k[0] == n) for n in self.structures}
        structs = ", ".join(f"{n}={s.value} ({done[n]} slices)" for n, s in self.structures.items())
        return (f"Session(image={self.volume.shape} {self.volume.modality}, model={getattr(self.model, 'model_id', None)!r}, "
                f"structures: {structs}; {len(self.log)} actions)")

    def __reduce__(self):  # pickle, a process pool's result: "cannot pickle '_thread.RLock' object" said nothing useful
        raise TypeError("a medseg Session cannot be pickled (it holds its model, caches and threads): from a worker process "
                        "return session.labels and session.provenance(), or a SegmentResult of medseg.segment.segment_volume")

    # -- structures -------------------------------------------------------------------
    def structure(self, name: str) -> StructureState:
        if name not in self.structures:
            raise LabelMapError(f"structure {name!r} is not in this session ({', '.join(self.structures)})")
        return self.structures[name]

    def add_structure(self, name: str, value: int) -> StructureState:
        """Add a custom structure (e.g. ``thrombus``) with its label value (it must fit the
        label buffer's type)."""
        lm = LabelMap.parse({**self.label_map.values, name: value})  # the name and value rules of every label map
        top = np.iinfo(self.labels.dtype).max
        if lm[name] > top:
            raise LabelMapError(f"label value {lm[name]} of {name!r} does not fit this session's {self.labels.dtype} labels (at most {top})")
        self.label_map = lm
        self.structures[name] = StructureState(name, int(value))
        return self.structures[name]

    def lock(self, name: str, locked: bool = True) -> Change:
        """Accept (lock) or unlock a structure: a locked structure is never overwritten."""
        st = self.structure(name)
        if not isinstance(locked, (bool, np.bool_)):
            raise PromptError(f"locked must be true or false, got {locked!r}")
        locked = bool(locked)
        step = _UndoStep("lock", {}, {}, locks={name: st.locked}, after_locks={name: locked})
        st.locked = locked
        self._push(step)
        self.log.append({"op": "lock", "structure": name, "locked": locked})
        return Change("lock", name)

    def _where(self, frame: Any, slice_: Any) -> tuple[int, int]:
        """(frame, slice) as indices inside the Volume, else PromptError."""
        t, z = index(frame, "frame"), index(slice_, "slice")
        if t >= self.volume.n_frames or z >= self.volume.n_slices:
            raise PromptError(f"frame {t}, slice {z} lies outside the image's {self.volume.n_frames} frame(s) x {self.volume.n_slices} slice(s)")
        return t, z

    # -- slices -----------------------------------------------------------------------
    def _set_slice(self, t: int, z: int) -> None:
        key = (self._data_key, t, z)
        if self.predictor.key != key or getattr(self.predictor, "region", None) != self.us_region:
            region = {"region": self.us_region} if self.us_region is not None else {}  # a predictor of another make need not know it
            self.predictor.set_image(self._norm[t, z], key=key, **region)

    def embed_slice(self, frame: int, slice_: int) -> None:
        """Compute (and cache) the whole-slice embedding ahead of the first prompt."""
        from .preprocess import full_image_roi

        self._set_slice(frame, slice_)
        self.predictor.embedding(full_image_roi(*self.volume.shape[2:]))

    def blank(self, frame: int, slice_: int) -> bool:
        """True when the slice holds no signal (every pixel has the same value): propagation
        and zero-click write nothing there, and a prompt on it is refused."""
        return bool(self._blank[frame * self.volume.n_slices + slice_])

    def blank_map(self) -> np.ndarray:
        """(T, Z) booleans: True where a slice holds no signal (:meth:`blank`)."""
        return self._blank.reshape(self.volume.n_frames, self.volume.n_slices)

    def predict(self, prompt: SlicePrompt, mask_logits: bool = True, multimask: bool = False) -> Prediction:
        """Run the model for a prompt (no state change). With ``mask_logits`` and an earlier
        result for this structure on this slice, refinement clicks reuse its logits and ROI."""
        _require_prompt(prompt)
        prompt.check_inside(self.volume.shape)
        if self.blank(prompt.frame, prompt.slice):
            raise EmptyImageError(f"frame {prompt.frame}, slice {prompt.slice} holds no signal (every pixel has the same value): nothing to segment there")
        self._set_slice(prompt.frame, prompt.slice)
        prev = self.results.get((prompt.structure, prompt.frame, prompt.slice)) if mask_logits and prompt.points and prompt.mask is None else None
        ml = (np.array(prev.roi), prev.logits) if prev is not None else None
        return self.predictor.predict(box=prompt.box, points=prompt.points, structure=prompt.structure, mask_prompt=prompt.mask, mask_logits=ml, multimask=multimask)

    def apply_prompt(self, prompt: SlicePrompt, multimask: bool = False) -> Change:
        """Predict ``prompt`` and write the structure's mask on that slice (one undo step). The
        box is used as the log records it (3 decimals, :meth:`SlicePrompt.to_json`), so a
        replay predicts from the same box."""
        prompt = _as_logged(_require_prompt(prompt))
        self.structure(prompt.structure)
        pred = self.predict(prompt, multimask=multimask)
        with self._operation("prompt", prompt.structure) as (step, change):
            self._write(step, change, prompt.structure, prompt.frame, prompt.slice, pred, prompt.to_json())
        self.log.append({"op": "prompt", "prompt": prompt.to_json(), "multimask": multimask})
        return change

    def add_click(self, structure: str, frame: int, slice_: int, y: float, x: float, positive: bool = True) -> Change:
        """Add a click to the structure's prompts on this slice (keeping its box) and update."""
        prev = self.results.get((structure, frame, slice_))
        box, points = None, ()
        if prev is not None:
            p = prev.prompt
            box = Box(*p["box"]) if "box" in p else None
            points = tuple(Point(a, b, True) for a, b in p.get("points", [])) + tuple(Point(a, b, False) for a, b in p.get("negative_points", []))
        return self.apply_prompt(SlicePrompt(structure, frame, slice_, box=box, points=points + (Point(y, x, positive),)))

    # -- writing ----------------------------------------------------------------------
    def _write(self, step: _UndoStep, change: Change, name: str, t: int, z: int, pred: Prediction, prompt: dict[str, Any]) -> None:
        """Write one structure's prediction on one slice, resolving overlaps by logits."""
        if self.structure(name).locked:
            raise PromptError(f"structure {name!r} is locked (accepted); unlock it to change it")
        key = (name, t, z)
        if (t, z) not in step.slices:
            step.slices[(t, z)] = self._undo_copy(t, z)
        if key not in step.results:
            step.results[key] = self.results.get(key)
        v = self.structure(name).value
        sl = self.labels[t, z]
        before = sl.copy()
        mine = pred.mask.copy()
        if self._auto_inside is not None:  # zero-click labels nothing outside the ultrasound region
            mine &= self._auto_inside
        others = [s for s in self.structures.values() if s.name != name]
        for other in others:
            theirs = sl == other.value
            clash = mine & theirs
            if not clash.any():
                continue
            if other.locked:
                mine &= ~theirs
                continue
            res = self.results.get((other.name, t, z))
            if res is None:
                mine &= ~theirs  # manual paint without model logits keeps its pixels
                continue
            their_logit = self._full_logits(res)
            my_logit = self._full_logits_pred(pred)
            mine &= ~(clash & (their_logit >= my_logit))
        sl[sl == v] = 0
        sl[mine] = v
        self._record_change(change, t, z, before, sl)
        self._heap.tick()
        if pred.logits is not None and pred.roi is not None:
            self.results[key] = SliceResult(pred.roi, pred.logits, pred.score, prompt)
        else:
            self.results.pop(key, None)
        change.scores[key] = pred.score

    def _full_logits(self, res: SliceResult) -> np.ndarray:
        from .roi_ops import paste_roi_logits

        return paste_roi_logits(res.logits, res.roi, self.volume.shape[2:])

    def _full_logits_pred(self, pred: Prediction) -> np.ndarray:
        if pred.logits is None or pred.roi is None:
            return np.where(pred.mask, 20.0, -20.0)
        from .roi_ops import paste_roi_logits

        return paste_roi_logits(pred.logits, pred.roi, self.volume.shape[2:])

    def clear(self, name: str, frame: int | None = None, slice_: int | None = None) -> Change:
        """Erase a structure (everywhere, in one frame, or on one slice); a locked one is refused."""
        v = self.structure(name).value
        if self.structure(name).locked:
            raise PromptError(f"{name} is locked (accepted): unlock it to erase it")
        if frame is not None:
            frame = self._where(frame, 0)[0]
        if slice_ is not None:
            slice_ = self._where(0, slice_)[1]
        with self._operation("clear", name) as (step, change):
            for t in range(self.volume.n_frames) if frame is None else [frame]:
                for z in range(self.volume.n_slices) if slice_ is None else [slice_]:
                    if (self.labels[t, z] == v).any():
                        self._erase(step, change, name, t, z)
        self.log.append({"op": "clear", "structure": name, "frame": frame, "slice": slice_})
        return change

    # -- propagation and auto (see medseg.propagation) -------------------------------------
    def propagate(self, structure: str, frame: int, slice_: int, through: str = "z", direction: str = "both", progress: Callable[[int, int], None] | None = None) -> Change:
        """Propagate the structure from (frame, slice) through slices ("z"), frames ("t") or
        both ("zt"); one undo step. See :func:`medseg.propagation.propagate`; the LV is then
        kept inside the myocardium (:func:`medseg.enclosure.apply_rules`) and the RV's end slices are checked
        (:mod:`medseg.end_check`) on the frames it touched."""
        from .enclosure import apply_rules
        from .end_check import check_ends
        from .propagation import propagate

        frame, slice_ = self._where(frame, slice_)
        self.structure(structure)
        with self._operation("propagate", structure) as (step, change):
            frames = {frame}
            for t, z, pred in propagate(self, structure, frame, slice_, through=through, direction=direction, progress=progress):
                self._write(step, change, structure, t, z, pred, {"propagated_from": [frame, slice_]})
                frames.add(t)
            change.removed += apply_rules(self, step, change, sorted(frames), [structure])
            change.removed += check_ends(self, step, change, sorted(frames))
        self.log.append({"op": "propagate", "structure": structure, "frame": frame, "slice": slice_, "through": through, "direction": direction,
                         **({"removed": change.removed} if change.removed else {})})
        return change

    def auto(self, structures: list[str] | None = None, frames: list[int] | None = None, progress: Callable[[int, int], None] | None = None) -> Change:
        """Zero-click first pass for the given structures (default: all known to the model that
        are not locked; a locked one named is refused before any runs), with the same LV enclosure and RV end check as :meth:`propagate`. On a cine, a
        structure found on some frames and missed on others is carried over to those from the
        nearest frame that has it (:func:`medseg.propagation.fill_missing_frames`; listed under
        ``filled`` in the log); an RV found on no frame is looked for with clicks around the
        myocardium (:func:`medseg.propagation.probe_beside`; listed under ``probed``)."""
        from .enclosure import apply_rules
        from .end_check import check_ends
        from .propagation import auto_segment, fill_missing_frames

        known = [s for s in self.structures if s in self.model.config.structures]
        names = structures or [s for s in known if not self.structures[s].locked]
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise LabelMapError(f"structures must be a list of names, got {names!r}")
        for name in names:
            if self.structure(name).locked:  # refused at its first write, after the model ran on a frame
                raise PromptError(f"{name} is locked (accepted): unlock it or leave it out of the automatic pass")
        if not names and known:
            raise PromptError(f"every structure the automatic pass segments is locked ({', '.join(known)}): unlock one")
        if frames is not None:
            if isinstance(frames, str) or not isinstance(frames, (list, tuple, range, np.ndarray)):
                raise PromptError(f"frames must be a list of frame indices, got {frames!r}")
            frames = [self._where(t, 0)[0] for t in frames]
        filled: list[dict[str, Any]] = []
        probed: list[dict[str, Any]] = []
        self._auto_inside = self._region_mask()  # every write of the pass (walks, probes, rules) kept inside it
        try:
            with self._operation("auto", None) as (step, change):
                for name, t, z, pred in auto_segment(self, names, frames=frames, progress=progress, probed=probed):
                    self._write(step, change, name, t, z, pred, {"auto": True})
                for name, t, z, src, pred in fill_missing_frames(self, names, frames):
                    self._write(step, change, name, t, z, pred, {"auto": True, "propagated_from": [src, z]})
                    filled.append({"structure": name, "frame": t, "slice": z, "from_frame": src})
                change.removed += apply_rules(self, step, change, frames, names)
                change.removed += check_ends(self, step, change, frames)
        finally:
            self._auto_inside = None
        self.log.append({"op": "auto", "structures": names, "frames": frames, **({"filled": filled} if filled else {}),
                         **({"probed": probed} if probed else {}),
                         **({"removed": change.removed} if change.removed else {}),
                         **({"us_region": list(self.us_region)} if self.us_region is not None else {})})
        return change

    @contextlib.contextmanager
    def zero_click_region(self, region: Any) -> Iterator[None]:
        """Zero-click inside ``region`` (an ``auto`` action's recorded ``us_region``; None: the
        whole image, as a log from before medseg knew ultrasound regions ran) while it lasts."""
        from .io.us_region import volume_region

        saved, box = self.us_region, volume_region({"us_region": region}, self.volume.shape[2:]) if region is not None else None
        if region is not None and (box is None or list(box) != list(region)):
            raise PromptError(f"us_region {region!r} is no box [row0, col0, row1, col1] inside the {self.volume.shape[2]}x{self.volume.shape[3]} image")
        self.us_region = box
        try:
            yield
        finally:
            self.us_region = saved

    def _region_mask(self) -> np.ndarray | None:
        """The (Y, X) mask of :attr:`us_region`, None without one."""
        if self.us_region is None:
            return None
        r0, c0, r1, c1 = self.us_region
        mask = np.zeros(self.volume.shape[2:], bool)
        mask[r0 : r1 + 1, c0 : c1 + 1] = True
        return mask

    def _erase(self, step: _UndoStep, change: Change, name: str, t: int, z: int) -> None:
        """Erase one structure on one slice as part of an undoable operation."""
        sl = self.labels[t, z]
        if (t, z) not in step.slices:
            step.slices[(t, z)] = self._undo_copy(t, z)
        step.results.setdefault((name, t, z), self.results.get((name, t, z)))
        before = sl.copy()
        sl[sl == self.structure(name).value] = 0
        self.results.pop((name, t, z), None)
        self._record_change(change, t, z, before, sl)

    # -- review ---------------------------------------------------------------------------
    def confidence(self, structures: list[str] | None = None, progress: Callable[[int, int], None] | None = None) -> ConfidenceReport:
        """Confidence per slice and volume and review flags (:mod:`medseg.confidence`) of the
        current labels; decodes only (cached embeddings), nothing is changed. ``progress(done,
        total)`` after each slice scored."""
        from .confidence import score_session

        return score_session(self, structures, progress=progress)

    def review(self, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """All review flags of the current labels (confidence, anatomy, measurements);
        ``progress`` as for :meth:`confidence`."""
        from .review import review_segmentation

        rep = self.confidence(progress=progress)
        out = review_segmentation(self.labels, self.volume.affine, self.label_map, rep.to_json()["flags"], measure=self.volume.spacing_known,
                                  actions=self.log, blank=self.blank_map())
        out["confidence"] = rep.to_json()
        out["reviewed"] = [a for a in self.log if a.get("op") == "review"]
        return out

    def mark_reviewed(self, structure: str | None, frame: int | None, slice_: int | None, note: str = "") -> None:
        """Record that a human looked at (and accepted) a flagged structure/slice."""
        from ._runinfo import utc_timestamp

        self.log.append({"op": "review", "structure": structure, "frame": frame, "slice": slice_, "note": note,
                         "time": utc_timestamp()})

    # -- provenance ---------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        from ._runinfo import run_environment, utc_timestamp
        from .predictor import mask_thresholds

        return {**run_environment(self.model.device), **self.model.provenance(), "mask_thresholds": mask_thresholds(self.model, self.volume.modality),
                "label_map": self.label_map.to_dict(), "actions": list(self.log), "locked": [s.name for s in self.structures.values() if s.locked],
                **self._region_provenance(), "created": utc_timestamp()}

    def _region_provenance(self) -> dict[str, Any]:
        """``zero_click_region`` when a zero-click pass of the log ran in an ultrasound region
        (its ``auto`` actions' ``us_region``: a replayed log says what it did, not what this
        image's region is), the last such box; and how many other passes ran on the whole
        image, saying so when the last pass was one of them."""
        autos = [a for a in self.log if a.get("op") == "auto"]
        boxes = [a["us_region"] for a in autos if a.get("us_region") is not None]
        if not boxes:
            return {}
        from .io.us_region import region_text

        whole = len(autos) - len(boxes)
        last = " (the last one)" if autos[-1].get("us_region") is None else ""
        also = f"; {whole} other automatic pass{'es' * (whole > 1)}{last} ran on the whole image" if whole else ""
        return {"zero_click_region": {"us_region": list(boxes[-1]), "convention": "[row0, col0, row1, col1], inclusive pixel indices",
                                      "note": f"zero-click looked only inside the ultrasound image region "
                                              f"(SequenceOfUltrasoundRegions), {region_text(boxes[-1])}{also}; prompts are not restricted"}}

    def record_edits(self, before: np.ndarray) -> Change:
        """Log the changes made to ``labels`` by hand since they were ``before`` (napari's brush)
        as ``edit`` actions, one undo step (:mod:`medseg.edits`)."""
        from .edits import record_edits

        return record_edits(self, before)

    def iter_structure_slices(self, name: str) -> Iterator[tuple[int, int]]:
        v = self.structure(name).value
        for t in range(self.volume.n_frames):
            for z in range(self.volume.n_slices):
                if (self.labels[t, z] == v).any():
                    yield t, z
