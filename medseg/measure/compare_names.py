"""Whose study a measurement report is, from its label files' names (`medseg compare`).

Two reports given to ``compare`` without DICOM patient ids are paired as given; their label files'
names (``patient0451_4CH_ED``, ``sub01_visit2_A4C``) are all that says whose heart it is.
:func:`_labels_study` reads the study a report's labels are named for, :func:`_other_subject`
whether two such names are other subjects rather than one subject's visits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .source_images import LABEL_KEYS


def _labels_study(inputs: dict[str, Any]) -> str:
    """The one study the report's label files are named for (``<study>_<view>_<phase>``, ``<study>_<view>``,
    ``<study>_ED``, ``<study>_frameNN``, a reference suffix such as ``_gt`` after it), or "" (names that say no study, or several)."""
    from .._nfc import nfc
    from ..batch.case_names import REFERENCE_SUFFIXES, file_view, study_of
    from ..io.readers import EXTENSIONS

    found = set()
    for key in LABEL_KEYS:
        if not isinstance(inputs.get(key), str) or not inputs[key]:
            continue
        name = Path(inputs[key]).name
        case = next((name[: -len(e)] for e in sorted(EXTENSIONS, key=len, reverse=True) if name.lower().endswith(e) and len(name) > len(e)), name)
        low = case.lower()
        bare = next((case[: -len(s)] for s in REFERENCE_SUFFIXES if low.endswith(s) and len(case) > len(s)), case)
        study = study_of(bare) or study_of(case) or (file_view(name) or (None, ""))[0]
        if not study:
            return ""
        found.add(nfc(study))
    return found.pop() if len(found) == 1 else ""


#: parts of a study name that say the visit, not the subject: ``visit2``, ``v2``, ``ses-02``, ``fu``, ``baseline``, ``tp1``, ``m6``
_VISIT_PART = r"(visit|v|ses|session|tp|timepoint|scan|fu|followup|follow|up|bl|baseline|base|pre|post|m|month|y|year|w|week)\d*"


def _subject_part(name: str) -> list[str]:
    """A study name without its visit parts and dates: ``sub01_visit2`` -> [sub01], ``sub-01_ses-02``
    -> [sub, 01], ``HCM_001_fu`` -> [hcm, 001], ``2024-01-05`` -> []."""
    import re

    text = re.sub(r"(?<!\d)\d{4}[-_.]?\d{2}[-_.]?\d{2}(?!\d)", " ", name.strip().casefold())  # a date
    parts, out, skip = [p for p in re.split(r"[_\-. ]+", text) if p], [], False
    for p in parts:
        if skip and p.isdigit():  # the number of a bare visit word: ses-02
            skip = False
            continue
        skip = False
        if re.fullmatch(_VISIT_PART, p):
            skip = not any(c.isdigit() for c in p)
            continue
        out.append(p)
    return out


def _other_subject(a: str, b: str) -> bool:
    """Whether two label files' study names (:func:`_labels_study`) name other subjects: they differ
    once the parts that say the visit or a date are left out (``patient0451`` / ``patient0455``,
    ``sub-01`` / ``sub-02``, ``HCM_001`` / ``HCM_002``), not as one subject's visits do
    (``sub01_visit1`` / ``sub01_visit2``, ``HCM_001_baseline`` / ``HCM_001_fu``); names that say no
    study, or only a visit or a date, are not judged."""
    if not a or not b or a == b:
        return False
    sa, sb = _subject_part(a), _subject_part(b)
    return bool(sa and sb) and sa != sb
