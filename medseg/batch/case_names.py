"""What a batch case's name says: an apical echo view (``<study>_<view>_<phase>``) or clip (``<study>_<view>``), an ED or ES
stack (``<study>_ED``), a frame of a cine (``<study>_frameNN``), and the study it is part of.
Pure string functions, used by the cohort tables, ``evaluate`` and napari's measurement panel."""

from __future__ import annotations

import re
from collections.abc import Iterable

#: suffixes of a reference label file's name after its image's (``p01_gt.nii.gz`` beside ``p01.nii.gz``)
REFERENCE_SUFFIXES = ("_gt", "_labels", "_label", "_seg", "_segmentation", "_mask", "_manual")
#: the apical view a name says (any case): 4-chamber ``4CH``/``A4C``, 2-chamber ``2CH``/``A2C`` (:func:`view_key`)
ECHO_VIEWS = r"(?P<view>2CH|4CH|A2C|A4C)"
#: an apical echo view image: ``<study>_<view>_<phase>`` (CAMUS: ``patient0001_4CH_ED``)
ECHO_VIEW_CASE = re.compile(rf"^(?P<study>.+?)[_-]{ECHO_VIEWS}[_-](?P<phase>ED|ES)$", re.IGNORECASE)
#: an apical echo clip (one view over the cycle): ``<study>_<view>`` (``p1_A4C.dcm``, ``p1_A2C.dcm``)
ECHO_CLIP_CASE = re.compile(rf"^(?P<study>.+?)[_-]{ECHO_VIEWS}$", re.IGNORECASE)
#: a file name that says its view: ``[<study>_]<view>`` and anything after it (CAMUS
#: ``patient0451_4CH_half_sequence_gt.nii.gz``; ``a4c.nii.gz``, ``A2C_clip.nii.gz`` name no study)
_VIEW_IN_NAME = re.compile(rf"^(?:(?P<study>.+?)[_-])?{ECHO_VIEWS}(?:[._-]|$)", re.IGNORECASE)
#: one frame of a cine saved as a stack of its own: ``<study>_frame<NN>`` (ACDC: ``patient001_frame01``)
FRAME_CASE = re.compile(r"^(?P<study>.+?)[_-]frame[_-]?(?P<frame>\d+)$", re.IGNORECASE)


def split_phase(name: str) -> tuple[str, str] | None:
    """(study, "ED" or "ES") for a name with one ED or ES part (M&Ms-2's ``001_SA_ED`` ->
    ``("001_SA", "ED")``, ``p1_es``), else None."""
    parts = name.split("_")
    hits = [i for i, p in enumerate(parts) if p.upper() in ("ED", "ES")]
    if len(hits) != 1 or len(parts) == 1:
        return None
    i = hits[0]
    return "_".join(parts[:i] + parts[i + 1:]), parts[i].upper()


def study_of(case: str) -> str | None:
    """The study a case is one part of by its name (an echo view or clip, an ED or ES stack, a frame), or None."""
    part = echo_view(case) or split_phase(case) or echo_clip(case)
    m = FRAME_CASE.match(case)
    return part[0] if part else m["study"] if m else None


def view_key(view: str) -> str:
    """"4ch" or "2ch" for a view as a name says it (:data:`ECHO_VIEWS`: ``4CH``, ``a2c``, ...)."""
    return "4ch" if "4" in view else "2ch"


def echo_clip(name: str) -> tuple[str, str] | None:
    """(study, "4ch" or "2ch") for an apical clip case named ``<study>_<view>``
    (:data:`ECHO_CLIP_CASE`: ``p1_A4C``), else None."""
    m = ECHO_CLIP_CASE.match(name)
    return (m["study"], view_key(m["view"])) if m else None


def file_view(file_name: str) -> tuple[str | None, str] | None:
    """(study or None, "4ch" or "2ch") for a file whose name says its view: ``<study>_<view>``
    and anything after it, or the view first with no study (:data:`_VIEW_IN_NAME`), else None."""
    m = _VIEW_IN_NAME.match(file_name)
    return (m["study"], view_key(m["view"])) if m else None


def echo_view(name: str) -> tuple[str, str, str] | None:
    """(study, "4ch" or "2ch", "ED" or "ES") for an apical view named ``<study>_<view>_<phase>``
    (:data:`ECHO_VIEW_CASE`, CAMUS's ``patient0001_4CH_ED``), else None."""
    m = ECHO_VIEW_CASE.match(name)
    if not m:
        return None
    return m["study"], view_key(m["view"]), m["phase"].upper()


def labels_echo_view(name: str) -> tuple[str, str, str] | None:
    """:func:`echo_view` of a label file or layer name: also ``<study>_<view>_<phase>`` with
    a reference suffix (CAMUS's ``patient0001_4CH_ED_gt``, ``..._labels``) or napari's
    `` labels`` after it."""
    found = echo_view(name)
    if found is None:
        low = name.lower()
        for suffix in (*REFERENCE_SUFFIXES, " labels"):
            if low.endswith(suffix) and len(name) > len(suffix):
                found = echo_view(name[: -len(suffix)])
                break
    return found


def echo_view_keys(views: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The views an echo study is measured from: both 4-chamber phases, and both 2-chamber
    phases when they are there (biplane disks)."""
    have = set(views)
    return [("4ch", "ED"), ("4ch", "ES")] + ([("2ch", "ED"), ("2ch", "ES")] if {("2ch", "ED"), ("2ch", "ES")} <= have else [])
