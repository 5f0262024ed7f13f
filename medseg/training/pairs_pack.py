"""``medseg train --pairs``: a lab's own image / label pairs packed as the shared data are.

The pairs are read and checked as ``medseg adapt`` reads them (:func:`medseg.adapt.read_labelled_pair`:
the same CSV or folder, label map, grid and map checks, per-study intensity normalisation) and
each slice goes through the shared pack's :class:`medseg.training.pack.Packer` (256 canvas,
JPEG q=85, medseg's default label map), so the training code reads the pack unchanged. Their
dataset name in the pack is ``own`` (its sampling share: :data:`medseg.training.data.DATASET_WEIGHTS`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import MedsegError
from ..labels import LabelMap
from ..pairs import Pair
from .pack import MODALITY_CODES, Packer, SliceRecord

OWN = "own"


def kept_slices(lab: np.ndarray) -> list[int]:
    """The slices of one (Z, Y, X) label stack that are packed: those holding labels, and the
    empty slice beyond each end of them (where propagation must stop); empty slices between
    labelled ones are left out (a stack labelled on every few slices has no labels there, not
    no heart)."""
    held = np.flatnonzero(lab.reshape(len(lab), -1).any(axis=1))
    if not len(held):
        return []
    ends = {int(held[0]) - 1, int(held[-1]) + 1}
    return sorted({int(z) for z in held} | {z for z in ends if 0 <= z < len(lab)})


def pair_name(p: Pair) -> str:
    return f"{p.case}_{p.phase}" if p.phase else p.case


def pack_pairs(train: list[Pair], val: list[Pair], label_map: LabelMap, canvas: int = 256, quality: int = 85,
               progress: Callable[[str, int], None] | None = None, notes: list[str] | None = None) -> Packer:
    """Read and pack ``train`` (split 0) and ``val`` (split 1); the returned :class:`Packer`
    (not yet saved) carries ``source``: what the pack holds, for the checkpoints' cards. A
    structure of the map counts as labelled on the slices of the volumes that hold it (a case
    without the RV is not taught that the RV is absent), as ``medseg adapt`` takes it; ``notes``
    gets a line naming such cases, and one per label value the map does not name.

    Raises:
        MedsegError: no training pairs, a label map naming a structure the model does not learn,
            images of more than one modality, or a pair :func:`read_labelled_pair` refuses."""
    from ..adapt import _pair_hashes, _recorded_modality, check_all_seen, check_structures, read_labelled_pair

    if not train:
        raise MedsegError("--pairs: no training pairs")
    check_structures(label_map)
    packer = Packer(canvas=canvas, quality=quality)
    seen: set[str] = set()
    recorded: set[str] = set()
    by_modality: dict[str, list[str]] = {}
    counts = [0, 0]
    said: list[str] = []
    lacking: list[str] = []
    for split, pairs in ((0, train), (1, val)):
        for i, pair in enumerate(pairs):
            vol, norm, lab, held = read_labelled_pair(pair, label_map, said)
            seen |= held
            if set(label_map.names) - held:
                lacking.append(f"{pair.case} ({', '.join(n for n in label_map.names if n not in held)})")
            name = pair_name(pair)
            by_modality.setdefault(vol.modality, []).append(name)
            recorded.add(_recorded_modality(vol).replace(" (--modality)", ""))  # adapt's words; train has no --modality
            _check_one_modality(by_modality)
            modality = vol.modality if vol.modality in MODALITY_CODES else "OT"
            px_mm = float(vol.spacing[2]) if vol.spacing_known else 0.0
            for t in range(vol.n_frames):
                for z in kept_slices(lab[t]):
                    packer.add(SliceRecord(norm[t, z], lab[t, z], tuple(n for n in label_map.names if n in held), modality,
                                           f"{OWN}/{'val' if split else 'train'}{i:04d}_{name}/t{t}", z, split, px_mm))
                    counts[split] += 1
            if progress:
                progress(name, len(packer.records))
    check_all_seen(label_map, seen)
    if lacking:
        said.append(f"{'; '.join(lacking[:5])}{f' and {len(lacking) - 5} more' if len(lacking) > 5 else ''}: "
                    "a structure of the label map not labelled, left out there (not taught or scored as absent)")
    if notes is not None:
        notes += said
    packer.source = source_record(train, val, label_map, sorted(recorded), counts, _pair_hashes(train + val))
    return packer


def _check_one_modality(by_modality: dict[str, list[str]]) -> None:
    """One modality per run: two that the files state (MR and US DICOM), or CT beside an image
    that states none ("OT": a NIfTI not in Hounsfield units), which is normalised as MR is
    while CT gets the HU window: mostly a wrong file in the set."""
    stated = [m for m in by_modality if m != "OT"]
    if len(stated) > 1 or ("CT" in stated and "OT" in by_modality):
        said = "; ".join(f"{m if m != 'OT' else 'not recorded, not in Hounsfield units'}: {', '.join(by_modality[m][:3])}"
                         + (" ..." if len(by_modality[m]) > 3 else "") for m in sorted(by_modality))
        raise MedsegError(f"the images are of more than one modality ({said}): train on one modality per run")


def source_record(train: list[Pair], val: list[Pair], label_map: LabelMap, modalities: list[str], counts: list[int],
                  hashes: list[dict[str, str]]) -> dict[str, Any]:
    """What an own-data pack holds (its meta ``source``; the checkpoints' info and card)."""
    return {"kind": "pairs", "pairs": [pair_name(p) for p in train], "val_pairs": [pair_name(p) for p in val],
            "label_map": label_map.to_dict(), "modality": ", ".join(modalities), "n_slices": {"train": counts[0], "val": counts[1]},
            "signature": signature(train, val, label_map), "data_sha256": hashes,
            "labelled_per_case": True}  # each case's slices labelled for the structures it holds (older packs: all of the map)


def signature(train: list[Pair], val: list[Pair], label_map: LabelMap) -> list:
    """The files and map a pack was made from: a pack in OUT made from the same is used again."""
    def files(p: Pair) -> list:  # and the frame of a cine a row's labels segment (PAIRS.csv's frame column), when given
        return [str(p.image), str(p.label)] + ([p.frame] if p.frame is not None else [])

    return [[files(p) for p in train], [files(p) for p in val], label_map.to_dict()]


def pack_source(path) -> dict[str, Any] | None:
    """The ``source`` of a pack's meta (None for a shared-data pack or an unreadable file)."""
    import json

    try:
        with np.load(str(path), allow_pickle=False) as z:
            return json.loads(z["meta"].tobytes().decode()).get("source")
    except (OSError, ValueError, KeyError):
        return None
