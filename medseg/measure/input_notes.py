"""The notes on how the segmented images were read that label files' medseg sidecars keep, for
a report's ``inputs``: ``medseg measure``'s (:mod:`medseg.cli._measure_inputs`) and ``batch
--measure``'s pages and cohort rows (:mod:`medseg.batch.pages`, :mod:`medseg.batch.measure_rows`)
take them from here, so a batch page says what ``medseg measure --pdf`` says of the same labels.
Plain functions of the sidecars; :func:`medseg.io.read_sidecar` is imported inside them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: the sidecar's ``provenance.image_notes`` keys that go into a report's ``inputs`` (not its
#: ``geometry_note``: a slice the series lacked is said by ``missing_slices``, and a report's
#: ``geometry_note`` is the label file's own voxel-size conflict)
IMAGE_NOTE_KEYS = ("time_note", "cardiac_timing_note", "frame_of_reference_note", "us_region_note")


def image_notes(paths: Iterable[str | Path]) -> dict[str, Any]:
    """The notes on how the labels' images were read that their medseg sidecars keep
    (``provenance.image_notes``): ``time_note`` (frames ordered without trigger times, phase
    images left out), ``cardiac_timing_note`` (which heart rate was taken) and
    ``frame_of_reference_note`` (a series whose images carry different FrameOfReferenceUIDs,
    stacked as one) and ``us_region_note`` (an echo screen's ultrasound region clipped, ignored
    or one of several: :mod:`medseg.io.us_region`); each a string, or a list when the inputs'
    images give different ones. Files without a sidecar (or with none of these) add nothing."""
    from ..io import read_sidecar

    found: dict[str, list[str]] = {}
    for p in paths:
        notes = _provenance(read_sidecar(Path(p))).get("image_notes")
        for key in IMAGE_NOTE_KEYS:
            note = notes.get(key) if isinstance(notes, dict) else None
            if isinstance(note, str) and note and note not in found.setdefault(key, []):
                found[key].append(note)
    return {k: v[0] if len(v) == 1 else v for k, v in found.items() if v}


def missing_slices(paths: Iterable[str | Path]) -> list[int]:
    """The slices the labels' DICOM series lacked (read as blank ones: :mod:`medseg.io.dicom_gaps`),
    as their sidecars record them (``provenance.missing_slices``), sorted, each once: what the
    ``missing_slice`` flags of those slices come from."""
    from ..io import read_sidecar

    found: set[int] = set()
    for p in paths:
        got = _provenance(read_sidecar(Path(p))).get("missing_slices")
        if isinstance(got, list):
            found |= {int(z) for z in got if isinstance(z, int) and not isinstance(z, bool)}
    return sorted(found)


def input_notes(paths: Iterable[str | Path]) -> dict[str, Any]:
    """:func:`image_notes` and, when there are any, ``missing_slices`` (:func:`missing_slices`),
    as a report's ``inputs`` holds them."""
    paths = list(paths)
    missing = missing_slices(paths)
    return {**image_notes(paths), **({"missing_slices": missing} if missing else {})}


def _provenance(sidecar: dict[str, Any] | None) -> dict[str, Any]:
    """A sidecar's ``provenance`` object; {} without one (no sidecar, or one edited into a list)."""
    prov = (sidecar or {}).get("provenance")
    return prov if isinstance(prov, dict) else {}
