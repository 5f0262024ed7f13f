"""`medseg measure --pdf`: the study on one A4 page (:mod:`medseg.measure.study_pdf`). The
option's checks before any work, and what the page takes besides the report: the slices under
the contours, the model's confidences from the labels' medseg sidecars, the modality."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ImageWriteError, MedsegError
from ..measure.source_images import LABEL_KEYS, overlay_images, sidecar_confidence


def check_pdf(pdf: Path, outputs: dict[str, Path | None], inputs: dict[str, Path]) -> None:
    """Refuse, in one line and before any work, a ``--pdf`` not named ``.pdf``, one that would
    replace an input or another output, or that is a folder."""
    from .._files import check_not_inputs

    if Path(pdf).suffix.lower() != ".pdf":
        raise MedsegError(f"--pdf {pdf}: the study page is a PDF: name it .pdf")
    plots = outputs.get("plots folder")
    if plots is not None and Path(plots).resolve() == Path(pdf).resolve():
        raise ImageWriteError(f"{pdf} is both the plots folder and the study page: choose different names")
    check_not_inputs({"study page": pdf, **{k: v for k, v in outputs.items() if k != "plots folder"}}, inputs)


def write_pdf(report: dict, pdf: Path, phases: dict, frames: dict, lmap: Any, vol: Any, image: list | None, source: str | None = None,
              body: dict | None = None) -> Path:
    """Write the study page of ``report``: contours of ``phases`` over the images ``image``
    (``--image`` paths, or those the labels' sidecars name; ``_write_plots``' rules: a sidecar's
    image that moved is left out, a given one that does not fit is refused); ``source``: the
    report's file name, in the footer; ``body``: height, weight and sex measured with."""
    from ..measure.study_pdf import write_study_pdf

    images = None
    if image:
        try:
            images = overlay_images(image, vol, frames)
        except MedsegError:
            if "image" in report["inputs"]:
                raise
        if images and "image" not in report["inputs"]:
            report["inputs"]["overlay_image"] = [str(p[0]) for p in image]  # found through the labels' sidecars
    modality = getattr(vol, "modality", None)
    return write_study_pdf(report, pdf, labels=phases, label_map=lmap, images=images, frames=frames, confidence=sidecar_confidence(report),
                           modality=modality if modality in ("MR", "CT", "US") else None, source=source,
                           body=body, case=_case(report))


def _case(report: dict) -> str | None:
    """The page's case: the DICOM patient id, else the study the first label file's name gives as
    ``medseg batch`` names studies (``p1_4CH_ED_gt.png`` -> ``p1``, ``patient017_frame01_gt.nii.gz``
    -> ``patient017``, ``001_SA_ED`` -> ``001_SA``), else that name without its extension; None: no file."""
    from ..batch import case_id
    from ..batch.case_names import REFERENCE_SUFFIXES, study_of

    inputs = report.get("inputs") or {}
    if (inputs.get("study") or {}).get("patient_id"):
        return str(inputs["study"]["patient_id"])
    first = next((Path(str(inputs[k])) for k in LABEL_KEYS if inputs.get(k)), None)
    if first is None:
        return None
    name = case_id(first) or first.name
    bare = next((name[: -len(s)] for s in REFERENCE_SUFFIXES if name.lower().endswith(s) and len(name) > len(s)), name)
    return study_of(bare) or bare
