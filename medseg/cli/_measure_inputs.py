"""Where `medseg measure` finds what the labels do not hold: the label map (``--label-map``, a
DICOM SEG's segments, the labels' medseg sidecar JSON, or medseg's default), the notes and source
images that the sidecars record, the height, weight and sex of the source image's DICOM header,
and the ``inputs`` section of the report that says which of them were taken. Helpers of
:mod:`medseg.cli.measure_cmd`; the I/O modules are imported inside the functions that read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._files import shown
from ..errors import LabelMapError


def _record_inputs(report: dict, paths: dict[str, Path | None], lmap: Any, map_from: Path | None, label_map: str | None,
                   from_header: list[str], vol: Any, image: list[Path] | None) -> None:
    """The report's ``inputs``: the label files (``paths``: labels, ed, es, a2c_ed, a2c_es), the
    label map and where it came from, the body data taken from a DICOM header, the geometry and
    image notes, and ``--image``; the notes that change how to read the numbers are printed too."""
    report["inputs"] = {k: str(v) for k, v in paths.items() if v is not None}
    report["inputs"]["label_map"] = lmap.to_string()
    if map_from is not None:
        report["inputs"]["label_map_from"] = str(map_from)
    elif not label_map:  # nothing says which value is which: say which map was taken
        report["inputs"]["label_map_from"] = "medseg default"
        from ._app import console

        console.print(f"note: no --label-map and the labels name no structures: read with medseg's map ({lmap.to_string()}); "
                      "another data set's values need --label-map (ACDC rv=1,myo=2,lv=3; CAMUS lv=1,myo=2,la=3)", markup=False, highlight=False)
    if from_header:
        report["inputs"]["body_from_dicom"] = from_header
    if study := _segmented_study([p for p in paths.values() if p is not None]):
        report["inputs"]["study"] = study
    if vol is not None and vol.meta.get("geometry_conflict"):  # volumes depend on which of two voxel sizes is taken
        report["inputs"]["geometry_note"] = vol.meta["geometry_note"]
        from ._app import console

        console.print(f"note: {vol.meta['geometry_note']}", markup=False, highlight=False, soft_wrap=True)
    from ..measure.input_notes import input_notes  # the sidecars' notes on how the images were read, missing slices

    report["inputs"].update(input_notes(p for p in paths.values() if p is not None))
    from ..measure.compare import segmentation_record  # the model and adapter of each label file ({}: none recorded)

    report["inputs"]["segmentation"] = segmentation_record([(k, p) for k, p in paths.items() if p is not None])
    _note_edited(report, paths)
    if image:
        report["inputs"]["image"] = [str(p) for p in image]


def _note_edited(report: dict, paths: dict[str, Path | None]) -> None:
    """``inputs.labels_edited``: the label files (keyed as ``paths``) whose labels are no longer
    those their medseg sidecar records as written (``segment``, ``batch``): changed by hand since,
    the sidecar left as it was, so its model, prompts and review flags are those of the labels
    before the change; said on the console too."""
    from ..batch.kept import labels_differ
    from ..errors import ImageWriteError
    from ..io.writers import output_kind

    edited = []
    for key, p in paths.items():
        try:
            kind = output_kind(p) if p is not None else None
        except ImageWriteError:
            continue
        if kind in ("nifti", "itk") and labels_differ(p):  # a DICOM SEG's sidecar records its whole study's labels
            edited.append(key)
    if edited:
        from ._app import console

        report["inputs"]["labels_edited"] = edited
        names = ", ".join(shown(p.name) for k, p in paths.items() if k in edited and p is not None)
        console.print(f"note: {names}: labels changed since medseg wrote them (their sidecar records other labels): edited by hand; "
                      "the sidecar's model, prompts and review flags are those of the labels before (inputs.labels_edited)",
                      markup=False, highlight=False, soft_wrap=True)


def _segmented_study(paths: list[Path]) -> dict[str, str]:
    """The patient id, study date, study UID and series description of the DICOM image the
    first label file was segmented from (its sidecar names it), as ``cohort.csv`` has them: the
    reports of a patient's baseline and follow-up told apart and paired; {} for other images."""
    images = _segmented_images(paths[:1])
    if not images:
        return {}
    from ..io.dicom import dicom_study

    return dicom_study(images[0][0])


def frame_pick(path: Path) -> dict[str, Any] | None:
    """The ``frame_pick`` a label file's medseg sidecar records (``segment --frames ed,es``: ED and
    ES found on every frame before only some were segmented), for :func:`medseg.measure.measure_cine`'s
    ``picked_phases``; None without one, or when the labels were changed since (edited by hand)."""
    from ..batch.kept import labels_differ
    from ..io import read_sidecar

    pick = ((read_sidecar(path) or {}).get("provenance") or {}).get("frame_pick")
    return pick if isinstance(pick, dict) and not labels_differ(path) else None


def _in_use(lmap: Any, vols: Any) -> Any:
    """medseg's default map cut to lv, myo, rv and the other structures whose values the labels hold."""
    present: set[int] = set()
    for v in vols:
        present |= {int(x) for x in np.unique(v.array)}
    return lmap.in_use(present)


def _label_map(text: str | None, paths: list[Path]) -> tuple[Any, Path | None]:
    """The label map: ``--label-map``, else a DICOM SEG's (or a 3D Slicer .seg.nrrd's) segments, else the one in the first
    input's medseg sidecar JSON (``labels.nii.gz`` -> ``labels.json``, written with the labels
    by ``medseg segment``; inputs whose sidecars give other values are re-encoded into it by
    structure name, :func:`_read_labels`), else medseg's default; and the file it came from
    (None when it did not)."""
    from ..io.writers import own_label_map
    from ..labels import LabelMap

    if text:
        return LabelMap.parse(text), None
    found = [(where, lm) for lm, where in filter(None, (own_label_map(p) for p in paths))]
    if found and any(lm.values != found[0][1].values and not set(lm.names) & set(found[0][1].names) for _, lm in found[1:]):
        raise LabelMapError(f"the inputs' sidecars give label maps with no structure in common ({', '.join(f'{s.name}: {lm.to_string()}' for s, lm in found)}); "
                            "give --label-map")
    # different values for the same structures (ED segmented with ACDC's values, ES with medseg's):
    # each input is re-encoded by its own map into the first's (_read_labels)
    return (found[0][1], found[0][0]) if found else (LabelMap.parse(None), None)


def _header_body(body: dict, paths: list[Path]) -> list[str]:
    """Fill the height, weight and sex not given from the DICOM header of the image the labels
    were segmented from (their sidecar names it); the fields taken."""
    missing = [k for k in ("height_cm", "weight_kg", "sex") if body.get(k) is None]
    images = _segmented_images(paths) if missing else None
    if not images:
        return []
    from ..io.dicom import dicom_body

    found = dicom_body(images[0][0])
    taken = [k for k in missing if k in found]
    body.update({k: found[k] for k in taken})
    return taken


def _segmented_images(paths: list[Path], say: bool = False) -> list[tuple[Path, str | None, int | None]] | None:
    """:func:`medseg.measure.source_images.segmented_images`; ``say``: print a note naming an
    image a sidecar names that is gone."""
    from ..measure.source_images import segmented_images

    def gone(p: Path, src: str) -> None:
        from ._app import console

        console.print(f"note: {shown(p)}'s sidecar names the image {shown(src)}, which is not there (from this folder); "
                      "overlay.png shows contours alone: pass --image", markup=False, highlight=False, soft_wrap=True)

    return segmented_images(paths, gone if say else None)
