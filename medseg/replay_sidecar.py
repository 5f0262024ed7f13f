"""Replaying a segmentation from the provenance sidecar of its labels (``medseg segment IMAGE -o
OUT --replay SIDECAR.json``): the sidecar's actions (prompts, propagation, zero-click, brush
edits, locks, clears, review marks) re-run on the image with its label map, its model and
adapter, and its ``--min-confidence``, giving the labels the original run wrote, voxel for
voxel, when image, model and adapter are the same.

Any medseg label sidecar replays: ``segment``'s, ``batch``'s, napari's (label file or bare
provenance JSON), that of a DICOM SEG (a cine's SEG of one frame holds the whole session).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CheckpointError, LabelMapError, MedsegError
from .io.volume import Volume
from .labels import LabelMap

#: a ``clear`` that ``--min-confidence`` added after the session (:func:`medseg.segment._confidence`)
HANDED_OVER = "handed over:"


@dataclass(frozen=True)
class RecordedSession:
    """A session read from a sidecar: ``provenance`` as recorded, its ``label_map`` and
    ``actions``; ``path`` and ``sha256`` of the file read."""

    path: Path
    sha256: str
    provenance: dict[str, Any]
    label_map: LabelMap
    actions: list[dict[str, Any]]

    @property
    def made_by(self) -> str:
        """``segment``, ``batch``, ``medseg-napari`` (or ``medseg`` when the sidecar does not say)."""
        p = self.provenance
        return str(p.get("command") or p.get("tool") or "medseg")

    @property
    def min_confidence(self) -> float | None:
        """The ``--min-confidence`` the session was run with (None: none, or napari)."""
        settings = self.provenance.get("settings")
        value = settings.get("min_confidence") if isinstance(settings, Mapping) else None
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1 else None

    def session_actions(self) -> list[dict[str, Any]]:
        """The actions to replay: the log without the trailing clears ``--min-confidence`` made
        (the replay scores confidence again and hands over what falls below it)."""
        actions = list(self.actions)
        while actions and isinstance(actions[-1], dict) and actions[-1].get("op") == "clear" \
                and str(actions[-1].get("why", "")).startswith(HANDED_OVER):
            actions.pop()
        return actions


def read_recorded_session(path: str | os.PathLike) -> RecordedSession:
    """Read a medseg sidecar (``OUT.json``; a label file medseg wrote stands for its sidecar; a
    bare provenance JSON, as napari saves one, is read too). MedsegError in one line for a file
    that is missing, not JSON (truncated), not a medseg sidecar, or holds no actions or an
    invalid label map. A cine's DICOM SEG ``OUT.dcm`` (written as ``OUT_frameNN.dcm``, each with
    the whole session in its sidecar) is read from ``OUT_frame00.json``. The actions themselves
    are checked against the image later (:func:`check_recorded`)."""
    from ._files import sha256_file, shown
    from ._json_files import json_file_problem
    from .io import sidecar_path
    from .io.writers import seg_frame_path

    p = Path(path).expanduser()
    if not p.exists() and p.name.lower().endswith((".dcm", ".json")):  # a cine's DICOM SEG, written as OUT_frameNN.dcm + .json
        first = sidecar_path(seg_frame_path(p.with_name(p.name[:-5] + ".dcm") if p.name.lower().endswith(".json") else p, 0))
        p = first if first.is_file() else p
    if not p.name.lower().endswith(".json") and p.is_file():  # a label file: its sidecar
        side = sidecar_path(p)
        if not side.is_file():
            raise MedsegError(f"--replay {shown(p)}: no sidecar {side.name} beside it (give the sidecar JSON medseg wrote with the labels)")
        p = side
    if not p.is_file():
        raise MedsegError(f"--replay {shown(p)}: {'not a file' if p.exists() else 'no such file'}")
    doc, problem = json_file_problem(p, expect=None, allow_nan=True)  # a byte-order mark (Windows Notepad) is fine; a NaN is read, as read_sidecar reads it (each action is checked)
    if problem is not None:
        raise MedsegError(f"--replay {shown(p)}: {problem.removeprefix('is ')}: a truncated or edited sidecar?")
    prov = doc.get("provenance", doc) if isinstance(doc, dict) else None
    if isinstance(doc, dict) and doc.get("status") == "handed_over" and "actions" not in doc:
        raise MedsegError(f"--replay {shown(p)}: batch's record of case {doc.get('case')!r}, handed over with no labels written: it records no session to replay")
    if not isinstance(prov, dict) or not isinstance(prov.get("actions"), list):
        raise MedsegError(f"--replay {shown(p)}: not a medseg sidecar (no provenance with an 'actions' list; give the .json medseg wrote beside the labels)")
    if not prov["actions"]:
        raise MedsegError(f"--replay {shown(p)}: the session it records has no actions to replay")
    raw = doc.get("label_map") or prov.get("label_map")
    if raw is None:
        raise LabelMapError(f"--replay {shown(p)}: it records no label_map (the label values the session wrote)")
    try:
        lmap = LabelMap.parse(raw)
    except (LabelMapError, TypeError, ValueError) as e:
        raise LabelMapError(f"--replay {shown(p)}: its label_map is not valid ({e})") from None
    return RecordedSession(p, sha256_file(p), prov, lmap, prov["actions"])


def check_image(rec: RecordedSession, image: str | os.PathLike, other_image: bool = False) -> list[str]:
    """Notes on the image replayed onto; MedsegError when its sha256 is not the one recorded
    (unless ``other_image``: then a note). A sidecar that records no sha256 (napari's) is a note."""
    from ._files import sha256_path, shown

    want, src = rec.provenance.get("input_sha256"), rec.provenance.get("input") or rec.provenance.get("source")
    of = f" (of {shown(src)})" if src else ""
    if not isinstance(want, str):
        return [f"{rec.path.name} records no image sha256{of}: the image is not checked against it"]
    got = sha256_path(image)
    if got == want:
        return []
    what = f"the sha256 of {shown(image)} ({got[:12]}…) is not the one {rec.path.name} records ({want[:12]}…){of}"
    if not other_image:
        raise MedsegError(f"{what}: not the image the session was recorded on; --other-image replays it anyway (labels may differ)")
    return [f"{what}: replayed anyway (--other-image); labels may differ"]


def check_recorded(rec: RecordedSession, volume: Volume, image_notes: list[str] | None = None) -> list[str]:
    """Check every action against the image (:func:`medseg._session_replay.check_log`: a
    prompt, slice or frame outside it, an unknown structure or operation: PromptError naming the
    action) before any model loads; returns notes (the modality it is read as against the
    recorded one, appended to ``image_notes``)."""
    from ._session_replay import check_log

    check_log(rec.actions, volume.shape, rec.label_map.names, 255 if max(rec.label_map.values.values()) < 256 else 65535)
    notes = list(image_notes or [])
    was = rec.provenance.get("modality")
    if isinstance(was, str) and was != volume.modality:
        notes.append(f"the image reads as {volume.modality}, the session was recorded on {was} (--modality {was} reads it so)")
    return notes


def model_choice(rec: RecordedSession, model: str | None, adapter: str | None) -> tuple[str, str | None, list[str]]:
    """(``--model``, ``--adapter`` to load, notes): the recorded model and adapter unless given
    (``None``: not given; ``adapter`` "": none); the recorded model is found by name (``default``) or as
    ``<id>.safetensors`` with its sha256 in medseg's checkpoint folders ($MEDSEG_HOME first);
    CheckpointError when it cannot be, naming ``--model``."""
    from .models.registry import REGISTRY

    p = rec.provenance
    rec_model, rec_adapter = p.get("model_id"), p.get("adapter_id")
    notes = []
    if model is not None:
        if model != rec_model:
            notes.append(f"--model {model} given: it replaces the recorded model {rec_model}")
    elif rec_model in (None, "default"):  # the shipped one (its sha256 is compared once loaded)
        model = "default"
    else:
        model = _find_checkpoint(str(rec_model), p.get("model_sha256"))
        if model is None:
            raise CheckpointError(f"{rec.path.name} was made with model {rec_model!r} (sha256 {str(p.get('model_sha256'))[:12]}…), which medseg "
                                  f"does not find by name: give it with --model ({f'{rec_model}=PATH' if rec_model in REGISTRY else 'its checkpoint path'})"
                                  + ("" if rec_model in REGISTRY else ", or put its training folder in $MEDSEG_HOME/models"))
    if adapter == "":  # --adapter '': the base model alone
        adapter = None
        if rec_adapter:
            notes.append(f"--adapter '' given: replayed without the recorded adapter {rec_adapter}")
    elif adapter is not None:
        if adapter != rec_adapter:
            notes.append(f"--adapter {adapter} given: it replaces the recorded adapter {rec_adapter or '(none)'}")
    else:
        adapter = rec_adapter if isinstance(rec_adapter, str) and rec_adapter else None
        if adapter is not None and (Path(adapter).name != adapter or adapter in (".", "..")):
            # medseg records an adapter's name (its folder's): a path there would load a folder the sidecar chose
            from ._files import shown

            raise CheckpointError(f"{rec.path.name} records adapter {shown(adapter)!r}, a path where medseg records an adapter's name: "
                                  "it is not loaded from there; give --adapter NAME_OR_FOLDER (or --adapter '' for none)")
    return model, adapter, notes


def _relative_id(model_id: str) -> bool:
    """Whether a recorded model id names a file inside the folder it is looked up in (``NAME``,
    ``FOLDER/STEM``, as medseg records ids): not an absolute path, nor one with ``..``, which
    joined to a checkpoint folder loaded any ``.safetensors`` file a hand-made sidecar named
    (with its sha256 beside it)."""
    path = Path(model_id)
    return not path.is_absolute() and not model_id.startswith("~") and not any(p in ("..", ".") for p in path.parts)


def _find_checkpoint(model_id: str, sha256: Any) -> str | None:
    """The checkpoint of id ``model_id`` and this sha256: ``<id>.safetensors`` in medseg's
    checkpoint folders (an id ``FOLDER/STEM`` there by its stem too), or a lab's model
    ``$MEDSEG_HOME/models/FOLDER/STEM.safetensors`` (:func:`medseg.models.own.find_own_model`)."""
    from ._files import sha256_file
    from .models.own import find_own_model
    from .models.registry import asset_dirs

    try:
        own = [find_own_model(model_id)]
    except CheckpointError:  # a folder of that name without the file: not found, said by the caller
        own = []
    stem = Path(model_id).name
    names = [n for n in dict.fromkeys((model_id, stem)) if n and _relative_id(n)]
    for f in [*(d / f"{n}.safetensors" for d in asset_dirs("checkpoints") for n in names), *own]:
        if f is not None and f.is_file() and sha256_file(f) == sha256:
            return str(f)
    return None


def identity_notes(rec: RecordedSession, loaded: Any) -> list[str]:
    """Where the model, adapter or medseg version replayed with are not the recorded ones
    (labels may then differ)."""
    from . import __version__

    p, out = rec.provenance, []
    if p.get("model_sha256") and p.get("model_sha256") != loaded.sha256:
        out.append(f"the session was recorded with model {p.get('model_id')} ({str(p['model_sha256'])[:12]}…), "
                   f"replayed with {loaded.model_id} ({loaded.sha256[:12]}…): labels may differ")
    if (p.get("adapter_sha256") or None) != (loaded.adapter_sha256 or None):
        out.append(f"the session was recorded with adapter {p.get('adapter_id') or '(none)'}, replayed with "
                   f"{loaded.adapter_id or '(none)'}{' (another file of that name)' * (p.get('adapter_id') == loaded.adapter_id)}: labels may differ")
    if p.get("medseg_version") and p.get("medseg_version") != __version__:
        out.append(f"the session was recorded with medseg {p.get('medseg_version')}, replayed with {__version__}: labels may differ")
    if p.get("device") and p.get("device") != getattr(loaded, "device", None):
        out.append(f"the session was recorded on {p.get('device')}, replayed on {getattr(loaded, 'device', None)}: a few edge voxels may differ")
    return out


def recorded_frame_pick(rec: RecordedSession) -> dict[str, Any] | None:
    """The ``frame_pick`` (ED and ES that ``segment --frames ed,es`` found) ``rec`` records, None
    when it records none or one not of :func:`medseg.frame_pick.pick_ed_es`'s form (hand-edited)."""
    pick, frames = rec.provenance.get("frame_pick"), (rec.provenance.get("settings") or {}).get("frames")
    if not isinstance(pick, Mapping) or not isinstance(frames, list):
        return None

    def ints(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v)

    number = (int, float)
    ok = ints([pick.get("ed"), pick.get("es")]) and ints(pick.get("slices")) and isinstance(pick.get("seconds"), number) \
        and not isinstance(pick.get("seconds"), bool) and {pick["ed"], pick["es"]} <= set(frames)
    return dict(pick) if ok else None


def replay_sidecar(volume: Volume, model: Any, rec: RecordedSession, progress: Callable[..., None] | None = None,
                   min_confidence: float | None = None, confidence: bool = True, frame_pick: bool = True):
    """Replay ``rec`` onto ``volume`` with a loaded ``model``: a
    :class:`medseg.segment.SegmentResult` as :func:`medseg.segment.segment_volume` gives it
    (labels ``(T, Z, Y, X)`` in the recorded label map's values, scores, confidence, review,
    provenance whose ``actions`` are the recorded ones). ``min_confidence``: None takes the
    recorded one; structures below it are handed over again (the clears ``--min-confidence``
    added are not replayed but redone, so a replay reports them as the original run did).
    ``frame_pick``: carry the recorded ED and ES (:func:`recorded_frame_pick`) into the provenance,
    as the original run wrote them (not found again: the replay segments the recorded frames);
    False for another image than the recorded one, where they were not found."""
    import time

    from .io.us_region import add_screen_note
    from .segment import session_result
    from .session import Session

    add_screen_note(volume)  # as segment_volume: a whole echo screen without a region is noted in the sidecar
    cut = rec.min_confidence if min_confidence is None else min_confidence
    actions = rec.session_actions() if cut is not None else list(rec.actions)
    t0 = time.perf_counter()
    session = Session(volume, model, rec.label_map)
    step = (lambda d, t: progress(d, t, "replaying the recorded actions")) if progress else None
    session.replay(actions, progress=step)
    recorded = rec.provenance.get("settings")
    settings = {**(dict(recorded) if isinstance(recorded, Mapping) else {}), "min_confidence": cut}
    result = session_result(session, settings, t0, progress, confidence, cut)
    if frame_pick and (pick := recorded_frame_pick(rec)) is not None:
        result.provenance["frame_pick"] = pick
    return result

