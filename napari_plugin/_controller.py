"""Qt-free glue between napari layers and :class:`medseg.session.Session`.

The segmentation widget (:mod:`medseg_napari._qt.segment_widget`) only turns layer events into
calls on a :class:`SegmentController` and refreshes layers afterwards; everything here runs
(and is tested) without Qt or napari.

Coordinates: the prompt layers (points, shapes) carry the image layer's ``scale`` and
``translate``, so their *data* coordinates are the image's voxel indices
(t, z, y, x) (fewer leading axes for 2-D/3-D layers). :func:`point_index` and
:func:`rectangle_box` (:mod:`medseg_napari._coords`) turn those into medseg's prompt coordinates (pixel indices, inclusive
boxes; see :mod:`medseg.types`).

Threads: :meth:`SegmentController.embed`, :meth:`propagate`, :meth:`auto` and
:meth:`load_session` may run in a worker thread (they write only into the label *buffer*);
the widget refreshes the layer from the main thread when they return. One operation at a
time: the widget serialises them.
"""

from __future__ import annotations

import json
import os
import queue
import re
import sys
import threading
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from medseg.errors import LabelMapError, MedsegError, PromptError
from medseg.labels import DEFAULT_LABEL_MAP, LabelMap
from medseg.session import Change, Session
from medseg.types import Box, Point, SlicePrompt

from ._coords import PromptRecord, box_rectangle, point_index, rectangle_box  # noqa: F401 (also medseg_napari._controller.*)
from ._layers import colour_for, mark_default_rows

T = TypeVar("T")

#: widget choice -> Session.propagate ``through``
THROUGH: dict[str, str] = {"slices": "z", "frames": "t", "slices + frames": "zt"}
DEFAULT_STRUCTURE_NAMES = ("lv", "myo", "rv", "la", "ra")


@dataclass
class StructureSpec:
    """One row of the structures list: name, label value, display colour."""

    name: str
    value: int
    colour: str
    custom: bool = False


def default_structures() -> list[StructureSpec]:
    """LV, MYO, RV, LA, RA with medseg's default label values and the report colours."""
    return [StructureSpec(n, DEFAULT_LABEL_MAP[n], colour_for(n)) for n in DEFAULT_STRUCTURE_NAMES]


def structures_label_map(specs: Iterable[StructureSpec]) -> LabelMap:
    return LabelMap({s.name: s.value for s in specs})


def new_structure(specs: Sequence[StructureSpec], name: str, value: int | None = None) -> StructureSpec:
    """Validate and make a custom structure (value: the next free one when None)."""
    name = name.strip()
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise LabelMapError(f"bad structure name {name!r}; use letters, digits, '_' or '-'")
    if any(s.name == name for s in specs):
        raise LabelMapError(f"structure {name!r} is already in the list")
    used = {s.value for s in specs}
    value = int(value) if value else max(used | {0}) + 1
    if value <= 0 or value > 65535:
        raise LabelMapError(f"label value must be within 1..65535, got {value}")
    if value in used:
        raise LabelMapError(f"label value {value} is already used by {next(s.name for s in specs if s.value == value)!r}")
    return StructureSpec(name, value, colour_for(name, len(specs)), custom=True)


# -- models ----------------------------------------------------------------------------------
def default_threads() -> int:
    """CPU threads for torch in an interactive session: half the CPUs the process may use, 1..4.
    Small decoders gain nothing from more, and oversubscribed cores make torch's thread pool
    spin. The CPUs are those of ``taskset`` or a cpuset, no more than ``$OMP_NUM_THREADS``
    (:func:`medseg._batch_exec.cpu_budget`; ``os.cpu_count()`` counted a 64-core node's every
    core for a job given 2)."""
    from medseg._batch_exec import cpu_budget

    return max(1, min(4, cpu_budget() // 2))


def guard_triton_import() -> None:
    """Keep torch from importing triton in a napari process (call before importing torch).

    With a Mesa OpenGL driver (llvmpipe under Xvfb or in VMs, radeonsi on AMD GPUs) napari's
    canvas loads Mesa's libLLVM; importing triton afterwards (torchvision probes for it when
    segment-anything imports it) loads triton's own LLVM and crashes the process. medseg never
    uses triton, so it is marked unavailable unless already imported or
    ``MEDSEG_ALLOW_TRITON=1`` is set.
    """
    if "triton" not in sys.modules and os.environ.get("MEDSEG_ALLOW_TRITON") != "1":
        sys.modules["triton"] = None  # type: ignore[assignment]  # import triton -> ImportError


class ModelProvider:
    """Loads models (and adapters) on demand and keeps them for the widget's lifetime.

    Args:
        threads: torch CPU threads to set when a CPU model is loaded (None: leave torch's).
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self._cache: dict[tuple[str, str, str | None], Any] = {}
        self._lock = threading.Lock()

    def get(self, model: str = "default", device: str = "cpu", adapter: str | None = None) -> Any:
        """A :class:`medseg.models.LoadedModel` (torch is imported here, never before)."""
        key = (model or "default", device or "cpu", adapter or None)
        with self._lock:
            if key not in self._cache:
                guard_triton_import()
                from medseg.models import load_model

                if self.threads and key[1] == "cpu":
                    import torch

                    torch.set_num_threads(int(self.threads))
                self._cache[key] = load_model(key[0], key[1], adapter=key[2])
            return self._cache[key]


def adapter_names() -> list[str]:
    """Shipped and user adapters by name, those `medseg models` lists as broken left out."""
    try:
        from medseg.adapters import list_adapters

        return [str(a["name"]) for a in list_adapters() if a.get("name") and not str(a.get("source", "")).startswith("broken:")]
    except (MedsegError, OSError, ValueError):
        return []


# -- background jobs -------------------------------------------------------------------------
class OperationCancelled(MedsegError):
    """A propagation or automatic pass stopped by the user (the session's operation is all or
    nothing: the labels and the undo history are as they were before it)."""


def run_with_progress(fn: Callable[..., T], *args: Any, cancel: threading.Event | None = None,
                      **kwargs: Any) -> Generator[tuple[int, int], None, T]:
    """Run ``fn(*args, progress=callback, **kwargs)`` in a helper thread, yield each
    ``(done, total)`` it reports, and return its result (re-raising its exception).

    This turns medseg's progress *callbacks* into a generator, which napari's
    ``thread_worker`` turns into a progress bar; no Qt object is touched here. Once ``cancel``
    is set, the next progress report raises :class:`OperationCancelled` inside ``fn`` (a
    Session operation then puts back what it wrote). A report whose ``done`` does not advance
    is not yielded (napari's bar counts yields): it only checks ``cancel`` (a replay reports
    so between the slices of a long action).
    """
    q: queue.Queue = queue.Queue()
    box: dict[str, Any] = {}
    last = [0]

    def report(done: int, total: int) -> None:
        if cancel is not None and cancel.is_set():
            raise OperationCancelled("cancelled")
        if int(done) > last[0]:
            last[0] = int(done)
            q.put((int(done), int(total)))

    def target() -> None:
        try:
            box["result"] = fn(*args, progress=report, **kwargs)
        except BaseException as e:  # handed to the caller's thread below
            box["error"] = e
        finally:
            q.put(None)

    th = threading.Thread(target=target, name="medseg-job", daemon=True)
    th.start()
    while (item := q.get()) is not None:
        yield item
    th.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


# -- the controller --------------------------------------------------------------------------
def _keeps_edits(method: Callable[..., Any]) -> Callable[..., Any]:
    """A controller operation that first records hand edits (:meth:`SegmentController.record_edits`)
    and afterwards remembers the labels as it left them."""
    import functools

    @functools.wraps(method)
    def wrapper(self: SegmentController, *args: Any, **kwargs: Any) -> Any:
        self.record_edits()
        change = method(self, *args, **kwargs)  # a failed operation leaves the labels as they were
        for t, z in getattr(change, "regions", {}):  # only the slices it changed: cheap on a long cine
            self._shadow[t, z] = self.labels[t, z]
        return change

    return wrapper


class SegmentController:
    """One interactive segmentation of one image, around a :class:`medseg.session.Session`.

    Args:
        volume: the image (T, Z, Y, X) (from :func:`medseg_napari._layers.volume_for_layer`).
        labels: the caller-owned (T, Z, Y, X) label buffer: napari's label layer data (a view).
        model: a :class:`medseg.models.LoadedModel`.
        structures: the structures list (default: LV, MYO, RV, LA, RA).
        source: the image's path, recorded in provenance.
        default_rows: the panel's untouched default rows (None: when no ``structures``): a save cuts them.
    """

    def __init__(self, volume: Any, labels: np.ndarray, model: Any, structures: Sequence[StructureSpec] | None = None,
                 source: str | None = None, default_rows: bool | None = None) -> None:
        self.structures: dict[str, StructureSpec] = {s.name: s for s in (structures or default_structures())}
        self.default_rows = not structures if default_rows is None else bool(default_rows)
        self.session = Session(volume, model, self.label_map, labels=labels)
        self.active = next(iter(self.structures))
        self.source = source
        self._embedded: set[tuple[int, int]] = set()
        self._shadow = labels.copy()  # the labels as the session last left them: what differs was painted by hand
        self._painted = False  # a paint event since the last record (napari's brush): compare before the next operation
        self.saved_digest: str | None = None  # labels_digest of the labels last saved, or replayed from a session file
        self.saved_to: str | None = None  # the name of that file (closing a study with labels changed since names it)
        self.saving = False  # a save runs in a worker (set by the dock): closing the study meanwhile loses nothing

    # -- state -------------------------------------------------------------------------
    @property
    def volume(self) -> Any:
        return self.session.volume

    @property
    def labels(self) -> np.ndarray:
        return self.session.labels

    @property
    def model(self) -> Any:
        return self.session.model

    @property
    def label_map(self) -> LabelMap:
        return structures_label_map(self.structures.values())

    def spec(self, name: str | None = None) -> StructureSpec:
        name = name or self.active
        if name not in self.structures:
            raise LabelMapError(f"structure {name!r} is not in the list ({', '.join(self.structures)})")
        return self.structures[name]

    def set_active(self, name: str) -> StructureSpec:
        self.active = self.spec(name).name
        return self.structures[name]

    def add_structure(self, name: str, value: int | None = None) -> StructureSpec:
        spec = new_structure(list(self.structures.values()), name, value)
        if spec.value > np.iinfo(self.labels.dtype).max:
            raise LabelMapError(f"label value {spec.value} does not fit the {self.labels.dtype} label layer (max {np.iinfo(self.labels.dtype).max})")
        self.structures[spec.name] = spec
        self.session.add_structure(spec.name, spec.value)
        self.default_rows = False  # the user's own rows now: saved as they are
        return spec

    def mark_rows(self, metadata: dict[str, Any]) -> None:
        """Mark (or unmark) the label layer's ``metadata`` as the untouched default rows (napari's save cuts them too)."""
        mark_default_rows(metadata, self.label_map if self.default_rows else None)

    def is_locked(self, name: str | None = None) -> bool:
        return self.session.structure(name or self.active).locked

    def check_index(self, t: int, z: int) -> None:
        T_, Z_ = self.volume.n_frames, self.volume.n_slices
        if not (0 <= t < T_ and 0 <= z < Z_):
            raise PromptError(f"frame {t}, slice {z} is outside the image ({T_} frames, {Z_} slices)")

    # -- embeddings --------------------------------------------------------------------
    def needs_embedding(self, t: int, z: int) -> bool:
        return (t, z) not in self._embedded

    def embed(self, t: int, z: int) -> tuple[int, int]:
        """Compute the slice's embedding (slow: run it in a worker)."""
        self.check_index(t, z)
        self.session.embed_slice(t, z)
        self._embedded.add((t, z))
        return t, z

    # -- prompts -----------------------------------------------------------------------
    @_keeps_edits
    def prompt(self, structure: str, t: int, z: int, box: Box | None = None, points: Sequence[Point] = ()) -> Change:
        """Set the structure's prompts on slice (t, z) and update its mask there (one undo
        step). No box and no points erases the structure on that slice."""
        self.check_index(t, z)
        self.spec(structure)
        if box is None and not points:
            if not (self.labels[t, z] == self.spec(structure).value).any():
                return Change("clear", structure)
            return self.session.clear(structure, t, z)
        change = self.session.apply_prompt(SlicePrompt(structure, t, z, box=box, points=tuple(points)))
        self._embedded.add((t, z))
        return change

    @_keeps_edits
    def click(self, t: int, z: int, y: float, x: float, positive: bool = True, structure: str | None = None) -> Change:
        """One more click for the (active) structure on (t, z), keeping its earlier prompts."""
        self.check_index(t, z)
        return self.session.add_click(structure or self.active, t, z, y, x, positive)

    def prompt_records(self, frame: int | None = None) -> list[PromptRecord]:
        """The current prompts (box and clicks) of every structure and slice, from the
        session (so they follow undo/redo); propagated and automatic results have none."""
        out = []
        for (name, t, z), res in sorted(self.session.results.items(), key=lambda kv: kv[0]):
            if frame is not None and t != frame:
                continue
            p = res.prompt
            if "box" not in p and "points" not in p and "negative_points" not in p:
                continue
            box = Box(*p["box"]) if p.get("box") is not None else None
            pts = tuple(Point(float(a), float(b), True) for a, b in p.get("points", [])) + \
                tuple(Point(float(a), float(b), False) for a, b in p.get("negative_points", []))
            out.append(PromptRecord(name, t, z, box, pts))
        return out

    # -- whole-stack operations --------------------------------------------------------
    @_keeps_edits
    def propagate(self, t: int, z: int, through: str = "z", structure: str | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Change:
        """Propagate the (active) structure from (t, z) through slices "z", frames "t" or
        both "zt" (widget names: :data:`THROUGH`); one undo step."""
        through = THROUGH.get(through, through)
        name = structure or self.active
        self.check_index(t, z)
        if not (self.labels[t, z] == self.spec(name).value).any():
            raise PromptError(f"{name!r} is empty on frame {t}, slice {z}: prompt it there first, then propagate")
        return self.session.propagate(name, t, z, through=through, progress=progress)

    def auto_structures(self) -> list[str]:
        """The structures a zero-click pass segments, in list order: those ``medseg segment
        --auto`` picks for the image's modality (:func:`medseg.segment.default_auto_structures`:
        LV, MYO, RV on MR; LV, MYO, LA on ultrasound; LV, MYO, RV, LA on CT), plus those the
        user prompted or added, each only when unlocked and known to the model's automatic mode.
        (Every known structure put LA and RA over the RV of a short-axis MR.)"""
        from medseg.segment import default_auto_structures

        known = set(self.model.config.structures)
        prompted = {rec.structure for rec in self.prompt_records()}
        wanted = set(default_auto_structures(self.volume)) | prompted | {s.name for s in self.structures.values() if s.custom}
        names = [n for n in self.structures if n in wanted and n in known and not self.is_locked(n)]
        if not names:
            locked = [n for n in self.structures if self.is_locked(n)]
            raise PromptError("no structure left for the automatic pass: it segments "
                              f"{', '.join(default_auto_structures(self.volume))} on {self.volume.modality or 'this'} images"
                              + (f", and {', '.join(locked)} {'is' if len(locked) == 1 else 'are'} locked" if locked else "")
                              + "; prompt the others")
        return names

    @_keeps_edits
    def auto(self, frames: list[int] | None = None, structures: list[str] | None = None,
             progress: Callable[[int, int], None] | None = None) -> Change:
        """Zero-click pass for the listed structures (default: :meth:`auto_structures`) on
        ``frames`` (default: all); one undo step."""
        names = structures or self.auto_structures()
        return self.session.auto(names, frames=frames, progress=progress)

    def toggle_lock(self, name: str | None = None) -> Change:
        name = name or self.active
        self.record_edits()
        return self.session.lock(name, not self.is_locked(name))

    @_keeps_edits
    def undo(self) -> Change:
        return self.session.undo()

    @_keeps_edits
    def redo(self) -> Change:
        return self.session.redo()

    def mark_painted(self) -> None:
        """The label layer was painted on (napari's paint event): the next operation records it."""
        self._painted = True

    def record_edits(self, force: bool = False) -> Change:
        """Log what was painted by hand since the last operation (napari's brush, eraser, fill)
        as an ``edit`` action, so the provenance replays it; one undo step. Every operation of
        the controller calls it first; the labels are compared after a paint event
        (:meth:`mark_painted`), or always with ``force`` (a save)."""
        if not (force or self._painted):
            return Change("edit")
        self._painted = False
        if np.array_equal(self.labels, self._shadow):
            return Change("edit")
        change = self.session.record_edits(self._shadow)
        self._shadow[...] = self.labels
        return change

    # -- provenance, save, load --------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        self.record_edits()
        return {**self.session.provenance(), "tool": "medseg-napari", "source": self.source,
                "structures": {s.name: {"value": s.value, "colour": s.colour} for s in self.structures.values()}}

    def save(self, path: str | os.PathLike) -> list[Path]:
        """Write the labels (source geometry) + provenance sidecar; ``.dcm`` = DICOM SEG. The
        sidecar carries the confidence and review of the labels saved (``confidence``,
        ``review``, ``needs_review``, as ``medseg segment`` writes them; computed here:
        decodes with the cached embeddings)."""
        from medseg.io.writers import check_output

        from ._review import review_provenance
        from ._writer import write_labels_volume

        check_output(path, self.volume)  # a wrong ending, .dcm of a NIfTI: refused before the slow scoring
        self.record_edits(force=True)  # also what changed without a paint event (napari's own undo, code)
        prov = {**self.provenance(), **review_provenance(self.session.review(), self.volume.n_frames)}
        if self.source and Path(self.source).exists():  # as segment records it: a replay checks the image against it
            from medseg._files import sha256_path

            prov["input_sha256"] = sha256_path(self.source)
        digest = labels_digest(self.labels)  # of the labels written: closing the study warns only of labels changed since
        files = write_labels_volume(self.labels, self.volume, path, self.label_map, prov, default_rows=self.default_rows)
        self.saved_digest, self.saved_to = digest, files[0].name
        return files

    def load_session(self, path: str | os.PathLike, progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Replay a saved session (provenance JSON or label sidecar) onto an empty label
        buffer; returns warnings (e.g. another model). Slow: run it in a worker."""
        doc = read_session_file(path)
        name = Path(path).name
        prov = doc.get("provenance", doc)
        if not isinstance(prov, Mapping):
            raise MedsegError(f"{name}: 'provenance' must be an object holding 'actions', got {type(prov).__name__}")
        actions = prov.get("actions")
        if not isinstance(actions, list):
            raise MedsegError(f"{path}: no 'actions' list: not a medseg provenance file")
        specs = prov.get("structures") or {}
        if not isinstance(specs, Mapping):
            raise MedsegError(f"{name}: 'structures' must be an object of name -> {{value, colour}}, got {type(specs).__name__}")
        warnings = _identity_warnings(prov, self.model)
        lmap = LabelMap.parse(doc.get("label_map") or prov.get("label_map") or self.label_map.to_dict())
        colours = {k: v.get("colour") for k, v in specs.items()  # a colour that is no #rrggbb(aa): the default one
                   if isinstance(v, Mapping) and isinstance(v.get("colour"), str) and re.fullmatch(r"#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?", v["colour"])}
        # replayed into a buffer of its own: a session that fails part way leaves the labels,
        # the session and its undo history as they were
        scratch = np.zeros_like(self.labels)
        session = Session(self.volume, self.model, lmap, labels=scratch, cache=self.session.predictor.cache)
        try:
            session.replay(actions, progress=progress)  # every action checked first; typed errors naming its number
        except MedsegError as e:
            raise type(e)(f"{name}: {e}; the labels are as they were") from None
        self.labels[...] = scratch
        session.labels = self.labels  # the layer's buffer again, now holding the replayed labels
        self.session = session
        self._shadow[...] = self.labels
        self.structures = {n: StructureSpec(n, v, colours.get(n) or colour_for(n, i), n not in DEFAULT_STRUCTURE_NAMES)
                           for i, (n, v) in enumerate(lmap.values.items())}
        self.default_rows = False  # the file's map, saved as it is
        if self.active not in self.structures:
            self.active = next(iter(self.structures))
        self.saved_digest, self.saved_to = labels_digest(self.labels), name  # loading the file again rebuilds them
        return warnings


def labels_digest(labels: np.ndarray) -> str:
    """A digest of the session's label buffer as it is (shape, dtype, bytes; 0.05 s a 300-slice
    512 x 512 CT, 0.6 s by :func:`medseg.batch.kept.labels_sha256`'s uint16 copy): labels equal
    to those saved are told apart from labels changed since."""
    import hashlib

    a = np.ascontiguousarray(labels)
    h = hashlib.sha256(repr((a.shape, a.dtype.str)).encode())
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def read_session_file(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError, RecursionError) as e:  # ValueError: not JSON, not UTF-8 text
        raise MedsegError(f"cannot read session file {p}: {e}") from None
    if not isinstance(doc, dict):
        raise MedsegError(f"{p}: expected a JSON object (a medseg provenance or label sidecar)")
    return doc


def _identity_warnings(prov: Mapping[str, Any], model: Any) -> list[str]:
    out = []
    sha = prov.get("model_sha256")
    if sha and sha != getattr(model, "sha256", None):
        out.append(f"the session was made with model {prov.get('model_id')} ({str(sha)[:12]}…), replayed with "
                   f"{getattr(model, 'model_id', '?')} ({str(getattr(model, 'sha256', ''))[:12]}…): labels may differ")
    if prov.get("adapter_id") != getattr(model, "adapter_id", None):
        out.append(f"the session used adapter {prov.get('adapter_id')!r}, now {getattr(model, 'adapter_id', None)!r}")
    return out
