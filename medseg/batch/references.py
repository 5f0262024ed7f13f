"""Reference labels of a batch's cases: :func:`find_reference` looks up a case's labels (``C_gt``,
``C_label``, ... beside it or in ``--prompts-from``), :func:`reference_without_image` tells reference
labels copied without their image apart from an image (moved out of :mod:`.cases`); :func:`missing_reference`
tells a case's error of no reference labels."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._files import resolved
from .._nfc import same_name_entries
from ..errors import PromptError
from .case_names import REFERENCE_SUFFIXES

if TYPE_CHECKING:
    from .cases import CaseSpec


def find_reference(case: str, ref_dir: str | os.PathLike, image: str | os.PathLike | None = None) -> Path:
    """The reference label file of ``case`` in ``ref_dir`` (rules: :mod:`medseg.batch`; names in Unicode NFC:
    :mod:`medseg._nfc`). Label files only: no video, and no zip (read as an image's folder)."""
    from ..io.readers import EXTENSIONS

    ref_dir = Path(ref_dir)
    own = resolved(image) if image is not None else None
    endings = [e for e, kind in EXTENSIONS.items() if kind not in ("video", "archive")]
    for suffix in (*REFERENCE_SUFFIXES, ""):
        stem = case + suffix
        hits = [q for e in endings for q in same_name_entries(ref_dir / (stem + e)) if q.is_file() and resolved(q) != own]
        if len(hits) > 1:
            raise PromptError(f"reference labels for case {case!r} are ambiguous: {', '.join(h.name for h in hits)}")
        if hits:
            return hits[0]
    # the bare name is the image itself when the labels are looked for beside it: not named as a place looked
    bare = "" if own is not None and any(resolved(q) == own for e in endings for q in same_name_entries(ref_dir / (case + e))) else " or nothing"
    raise PromptError(f"{NO_REFERENCE} {case!r} in {ref_dir} (looked for {case} + {', '.join(REFERENCE_SUFFIXES)}{bare}, + .nii.gz etc.)")


#: how the error of a case without reference labels begins (:func:`find_reference`)
NO_REFERENCE = "no reference labels for case"


def missing_reference(error: str | None) -> bool:
    """Whether a case's ``error`` (:attr:`~medseg.batch.cases.CaseSpec.error`) is that of
    :func:`find_reference` finding no label file: the batch reads its image first, so that an
    image that cannot be read fails as such (not for the labels it lacks)."""
    return isinstance(error, str) and error.startswith(NO_REFERENCE)


#: at most this many distinct values, all whole and >= 0: a label map (no MR, CT or echo image holds so few)
LABEL_LIKE_VALUES = 16


def reference_without_image(case: CaseSpec, array: Any) -> str | None:
    """Why ``case`` is reference labels whose image is missing, else None. Discovery takes ``C_gt``
    (any of :data:`REFERENCE_SUFFIXES`) for C's reference only when C is a case beside it; with C
    gone (a study copied without its image) ``C_gt`` is a case of its own, and its label map was
    segmented as an image and measured into the cohort. ``array``: its (T, Z, Y, X) image; a name
    with the suffix holding few whole values >= 0 fails."""
    import numpy as np

    suffix = next((s for s in REFERENCE_SUFFIXES if case.case.endswith(s) and len(case.case) > len(s)), None)
    if suffix is None:
        return None
    values = np.unique(np.asarray(array))
    if values.size > LABEL_LIKE_VALUES or values.min() < 0 or not np.array_equal(values, np.round(values)):
        return None
    held = ", ".join(f"{v:g}" for v in values.tolist())
    return (f"{Path(case.input).name} holds only the values {held}: reference labels, not an image; their image "
            f"{case.case[: -len(suffix)]} is not beside them (copy it there, or move the labels out of INPUT_DIR)")
