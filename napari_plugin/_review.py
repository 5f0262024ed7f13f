"""Qt-free logic of the review list: what a human should look at before the labels are trusted.

:meth:`ReviewList.check` runs :meth:`medseg.session.Session.review` (confidence per slice and
structure, anatomical plausibility, measurement QC; see :mod:`medseg.confidence` and
:mod:`medseg.review`) and turns its flags into :class:`ReviewRow` s, worst first;
:meth:`ReviewList.mark_reviewed` records a human's look at a row with
:meth:`Session.mark_reviewed`, so the session's provenance (and the sidecar written with the
labels) carries a ``{"op": "review", ...}`` action naming the row's place and, in its note, its
flag code. Rows marked earlier (also in a replayed session) come back already reviewed: a mark
applies to the flag it names, not to the other flags at the same place (a volume-level
``needs_review la`` and ``fragmented la`` share the place "la, whole volume").

The review widget (:mod:`medseg_napari._qt.review_widget`) only shows the rows, moves the
viewer to :meth:`ReviewList.target` and calls these methods. ``check`` decodes with the
session's predictor: run it in a worker, never while another operation uses the session.
A review holds for the labels it checked: once they change (a prompt, an undo, a brush stroke
on the layer) it is :attr:`ReviewList.stale`, and saving its sheet or marking one of its rows
is refused until the next check.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medseg.errors import MedsegError

if TYPE_CHECKING:
    from medseg.session import Session

#: flags that name no structure: the structure to select when jumping to them
CODE_STRUCTURE: dict[str, str] = {"myo_not_enclosing_lv": "myo", "rv_not_adjacent_septum": "rv",
                                  "lv_mass_implausible": "myo", "ef_implausible": "lv"}
CONFIDENCE_CODE = "needs_review"  # the flag of a low confidence (slice or volume)


@dataclass(frozen=True)
class ReviewRow:
    """One flag of the review.

    Attributes:
        code: the flag code (``needs_review`` = low confidence; else an anatomical or
            measurement inconsistency, e.g. ``myo_not_enclosing_lv``, ``missing_slice``).
        level: "slice", "volume" or "measurement".
        structure: the structure concerned (named by the flag, or implied by its code), or None.
        frame, slice: 0-based indices of the flagged slice; None for a whole volume or frame.
        confidence: estimated Dice in [0, 1] of the structure there (the slice's, or the
            volume's for a volume-level flag); None when not scored.
        reviewed: a human marked this flag (code at this structure/frame/slice) reviewed.
        threshold: the confidence threshold a low-confidence flag is below (its confidence is
            shown with the digits that keep it below: 0.9196 is "0.9196", not "0.92").
    """

    code: str
    level: str
    message: str
    structure: str | None = None
    frame: int | None = None
    slice: int | None = None
    confidence: float | None = None
    reviewed: bool = False
    threshold: float | None = None

    @property
    def key(self) -> tuple[str | None, int | None, int | None]:
        """(structure, frame, slice): what a review entry of the provenance log refers to."""
        return self.structure, self.frame, self.slice

    @property
    def ident(self) -> tuple[str, str | None, int | None, int | None]:
        """(code, structure, frame, slice): the flag itself; two flags can share a :attr:`key`."""
        return self.code, self.structure, self.frame, self.slice

    @property
    def where(self) -> str:
        if self.slice is not None:
            return f"frame {self.frame if self.frame is not None else '–'}, slice {self.slice}"
        return f"frame {self.frame}" if self.frame is not None else self.level

    def cells(self) -> tuple[str, str, str, str, str, str]:
        """(flag, structure, frame, slice, confidence, message) as table text."""
        def idx(v: int | None) -> str:
            return "–" if v is None else str(v)

        from medseg.confidence import digits_below

        conf = "–" if self.confidence is None else f"{self.confidence:.{digits_below(self.confidence, self.threshold)}f}"
        return self.code, self.structure or "–", idx(self.frame), idx(self.slice), conf, self.message


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def severity_key(row: ReviewRow) -> tuple[int, float, str, int, int]:
    """Sort key, worst first: definite inconsistencies (anatomy, measurement) before low
    confidence; then the lowest confidence (unscored first); then structure, frame, slice."""
    conf = -1.0 if row.confidence is None else row.confidence
    return (int(row.code == CONFIDENCE_CODE), conf, row.structure or "", -1 if row.frame is None else row.frame,
            -1 if row.slice is None else row.slice)


def review_rows(review: Mapping[str, Any], n_frames: int | None = None) -> list[ReviewRow]:
    """One :class:`ReviewRow` per flag of a :meth:`Session.review` result, worst first.

    Args:
        review: ``{"flags": [...], "confidence": ConfidenceReport.to_json(), "reviewed": [...]}``.
        n_frames: the image's frame count; a single-frame study gives flags without a frame
            (measurement QC of one phase) frame 0.
    """
    conf = review.get("confidence") or {}
    by_slice = {(s["structure"], int(s["frame"]), int(s["slice"])): float(s["confidence"]) for s in conf.get("slices") or []}
    by_volume = {k: float(v) for k, v in (conf.get("volume") or {}).items()}
    rows = []
    for f in review.get("flags") or []:
        code = str(f.get("code"))
        structure = f.get("structure") or CODE_STRUCTURE.get(code)
        frame, slice_ = _int(f.get("frame")), _int(f.get("slice"))
        if frame is None and slice_ is not None and n_frames == 1:
            frame = 0
        c = f.get("confidence")
        if c is None and structure is not None:
            c = by_slice.get((structure, frame, slice_)) if slice_ is not None else by_volume.get(structure) if frame is None else None
        th = f.get("threshold")
        row = ReviewRow(code, str(f.get("level", "volume")), str(f.get("message", code)), structure, frame, slice_,
                        None if c is None or not math.isfinite(float(c)) else float(c),
                        threshold=float(th) if isinstance(th, (int, float)) else None)
        rows.append(row)
    return sorted(_with_marks(rows, review.get("reviewed") or []), key=severity_key)


def _with_marks(rows: list[ReviewRow], marks: list[Mapping[str, Any]]) -> list[ReviewRow]:
    """``rows`` with ``reviewed`` set from the session's review marks: a mark whose note starts
    with a flag code (what :meth:`ReviewList.mark_reviewed` writes) marks that flag at its place;
    one naming no flag there (an older log, a note of another tool) marks every flag there."""
    codes: dict[tuple[str | None, int | None, int | None], set[str]] = {}
    for r in rows:
        codes.setdefault(r.key, set()).add(r.code)
    done: set[tuple[str, str | None, int | None, int | None]] = set()
    for a in marks:
        place = (a.get("structure"), _int(a.get("frame")), _int(a.get("slice")))
        code = str(a.get("note") or "").split(":", 1)[0].strip()
        here = codes.get(place, set())
        done |= {(c, *place) for c in ([code] if code in here else here)}
    return [replace(r, reviewed=r.ident in done) for r in rows]


def review_provenance(review: Mapping[str, Any], n_frames: int | None = None) -> dict[str, Any]:
    """A :meth:`Session.review` result as the provenance keys ``medseg segment`` writes (and
    :func:`medseg.review.review_png` reads): ``confidence`` (ConfidenceReport.to_json()),
    ``review`` (:func:`medseg.review.review_segmentation`'s ``flags`` and ``needs_review``, as
    the model and checks found them) and ``needs_review``: whether a flag that asks for review
    is still without a human's review mark (the marks stay in the provenance's ``actions``;
    ``flags_reviewed`` counts the flags they cover), so that labels whose flags were all marked
    reviewed no longer say they need review (``medseg batch``'s summary reads it)."""
    from medseg.review import REVIEW_CODES

    flags = {k: v for k, v in review.items() if k not in ("confidence", "reviewed")}
    rows = review_rows(review, n_frames)
    open_flags = any(r.code in REVIEW_CODES and not r.reviewed for r in rows)
    return {"confidence": review.get("confidence"), "review": flags, "needs_review": bool(flags.get("needs_review")) and open_flags,
            "flags_reviewed": sum(r.reviewed for r in rows)}


def confidence_summary(volume_confidence: Mapping[str, float]) -> str:
    """``"lv 0.95, myo 0.88, rv 0.72"``: each structure's volume confidence (estimated Dice)."""
    return ", ".join(f"{k} {float(v):.2f}" for k, v in volume_confidence.items())


class ReviewList:
    """The review of one :class:`medseg.session.Session` (the segmentation widget's
    ``controller.session``): rows, per-structure confidence, marking rows reviewed."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.rows: list[ReviewRow] = []
        self.volume_confidence: dict[str, float] = {}
        self.needs_review = False
        self._worst_slice: dict[str, tuple[int, int]] = {}
        self._review: dict[str, Any] = {}
        self.checked = False
        self._checked_labels: bytes | None = None  # digest of the labels the check scored

    def _labels_digest(self) -> bytes:
        import numpy as np

        labels = np.ascontiguousarray(self.session.labels)
        return hashlib.blake2b(memoryview(labels).cast("B"), digest_size=16).digest()

    @property
    def stale(self) -> bool:
        """The labels changed since :meth:`check`: its rows and confidences describe other labels."""
        return self.checked and self._labels_digest() != self._checked_labels

    def _refuse_stale(self, what: str) -> None:
        if self.stale:
            raise MedsegError(f"the segmentation changed since the check: Check again, then {what}")

    def slices_to_score(self) -> int:
        """How many (structure, frame, slice) :meth:`check` scores: the slices holding a structure."""
        return sum(1 for name in self.session.structures for _ in self.session.iter_structure_slices(name))

    def check(self, progress: Callable[[int, int], None] | None = None) -> list[ReviewRow]:
        """Compute the review of the current labels (slow: decodes; run it in a worker).

        Args:
            progress: called with (slices scored, :meth:`slices_to_score`) as each is scored.
        """
        digest = self._labels_digest()
        review = self.session.review(progress=progress)
        self._review, self._checked_labels = review, digest
        conf = review.get("confidence") or {}
        self.volume_confidence = {k: float(v) for k, v in (conf.get("volume") or {}).items()}
        worst: dict[str, tuple[float, int, int]] = {}
        for s in conf.get("slices") or []:
            c = (float(s["confidence"]), int(s["frame"]), int(s["slice"]))
            if s["structure"] not in worst or c < worst[s["structure"]]:
                worst[s["structure"]] = c
        self._worst_slice = {k: (t, z) for k, (_, t, z) in worst.items()}
        self.rows = review_rows(review, self.session.volume.n_frames)
        self.needs_review = bool(review.get("needs_review"))
        self.checked = True
        return self.rows

    @property
    def summary(self) -> str:
        """Per-structure volume confidence and the number of flags left to review."""
        if not self.checked:
            return "Not checked yet."
        left = sum(not r.reviewed for r in self.rows)
        conf = confidence_summary(self.volume_confidence) or "no structure scored"
        flags = f"{left} of {len(self.rows)} flags to review" if self.rows else "no flags"
        return f"Confidence: {conf}. {flags.capitalize()}."

    def row(self, index: int) -> ReviewRow:
        if not 0 <= index < len(self.rows):
            raise IndexError(f"review row {index} does not exist ({len(self.rows)} rows)")
        return self.rows[index]

    def target(self, row: ReviewRow) -> tuple[int | None, int | None]:
        """(frame, slice) to show for a row; None keeps the viewer's. A volume-level flag goes
        to the structure's lowest-confidence slice."""
        if row.slice is None and row.frame is None and row.structure in self._worst_slice:
            return self._worst_slice[row.structure]
        return row.frame, row.slice

    def save_sheet(self, path: str | Path) -> Path:
        """Write the review sheet of the checked labels (:func:`medseg.review.review_png`):
        every labelled slice with contours, confidence and the flagged slices framed in thick black."""
        from medseg.review import review_png

        if not self.checked:
            raise MedsegError("check the segmentation first (Check), then save its review sheet")
        self._refuse_stale("save its review sheet")
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        return review_png(self.session.volume, self.session.labels, self.session.label_map, review_provenance(self._review), path)

    def mark_reviewed(self, row: ReviewRow | int, note: str | None = None) -> ReviewRow:
        """Record that a human looked at the row's flag (:meth:`Session.mark_reviewed`, kept in
        the provenance: its structure/frame/slice, and the flag code as the note, ``"code: note"``
        with a ``note``); only that flag is shown reviewed, not another flag at the same place.
        Returns the updated row. Refused (MedsegError) when the labels changed since the check.
        """
        r = self.row(row) if isinstance(row, int) else row
        self._refuse_stale("mark what it flags")
        self.session.mark_reviewed(r.structure, r.frame, r.slice, r.code if note is None else f"{r.code}: {note}")
        self.rows = [replace(x, reviewed=True) if x.ident == r.ident else x for x in self.rows]
        return replace(r, reviewed=True)
