"""Options shared by ``segment``, ``batch`` and ``evaluate`` (one definition, the same help everywhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

PromptsFile = Annotated[Path | None, typer.Option("--prompts", help="Prompts file (JSON; see examples/prompts_example.json); "
                                                     "batch: one set for every case, or {\"cases\": {\"<case>\": {...}}}.")]
LabelMapText = Annotated[str | None, typer.Option("--label-map", help="Label values, e.g. 'lv=3,myo=2,rv=1' (of --prompts-from, and of the output), or a file: "
                                                                 "JSON, an ITK-SNAP label description .txt/.label, an nnU-Net dataset.json.")]
KeySlice = Annotated[bool, typer.Option("--key-slice", help="With --prompts-from: one box per structure on its middle slice, then propagate.")]
Auto = Annotated[bool, typer.Option("--auto", help="Zero-click mode (structure prompts learned by the model).")]
Frames = Annotated[str | None, typer.Option("--frames", metavar="LIST", help="With --auto: segment only these frames of a cine, numbered from 0 as in prompts files, "
                                              "medseg measure and napari (ACDC's Info.cfg counts from 1: its ED 1 is frame 0): e.g. 0,11 or 0-4, or ed,es: "
                                              "ED and ES found first by zero-click LV on a few mid-ventricular slices (an apical clip: its one slice) of every frame (largest and "
                                              "smallest LV). Other frames are left empty; medseg measure uses the segmented ones.")]
Structures = Annotated[str | None, typer.Option("--structures", help="Structures for --auto, e.g. 'lv,myo,la' for an apical echo PNG (default by modality: lv,myo,rv; ultrasound lv,myo,la; CT lv,myo,rv,la).")]
Propagate = Annotated[bool, typer.Option("--propagate", help="Propagate every prompted structure from its slice.")]
Through = Annotated[str, typer.Option("--through", help="Propagate through slices (z), frames (t) or both (zt).")]
Model = Annotated[str, typer.Option("--model", help="default, sam_vit_b=PATH (sam_vit_l=, sam_vit_h=), medsam_vit_b=PATH, a checkpoint path or medseg train folder, "
                                                       "or the name of such a folder in $MEDSEG_HOME/models (medseg models lists them).")]
Adapter = Annotated[str | None, typer.Option("--adapter", help="Adapter name (shipped, or in $MEDSEG_HOME/adapters) or folder.")]
Device = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N (the GPU of that index); a GPU is used only when named.")]
MinConfidence = Annotated[float | None, typer.Option("--min-confidence", metavar="X", help="Leave out structures whose confidence (0-1) is below X, e.g. 0.85, "
                                                        "and list them as handed over (nothing is written for a study with none left).")]
ReviewPng = Annotated[bool, typer.Option("--review-png", help="Also write <case>_review.png: every labelled slice (ED and ES of a cine) with "
                                            "contours, confidences, flagged slices framed in thick black.")]
Modality = Annotated[str | None, typer.Option("--modality", help="CT, MR, US or OT (other: PNG, video): segment the image as this modality (CT: the Hounsfield "
                                                "window). Default: the file's; NIfTI, MHA and NRRD record none: CT when the intensities are "
                                                "Hounsfield units, else OT.")]
Series = Annotated[str | None, typer.Option("--series", help="For a DICOM folder holding several series: the one to read, by SeriesNumber, "
                                              "by a part of (or a *glob* for) its SeriesDescription, or by its SeriesInstanceUID or the UID's "
                                              "end after '...' (e.g. ...50405); 'A|B' reads the series either names. medseg info lists them. "
                                              "DICOM only: refused for a NIfTI, MHA, PNG, or a folder or zip of such files.")]

PixelSpacing = Annotated[str | None, typer.Option("--pixel-spacing", metavar="MM[,MM]", help="Pixel size in mm, row[,column] as DICOM "
                                                    "PixelSpacing (one number: square pixels; e.g. 0.3 or 0.7,0.5), for images or labels that "
                                                    "record none (PNG, JPEG, video). A file's own spacing is kept (a different one is refused).")]


def parse_structures(text: str | None, auto: bool) -> tuple[str, ...] | None:
    """``--structures`` as names, checked once before any case is read: known structure names,
    and only with ``--auto`` (prompts name their own structures)."""
    from ..errors import PromptError
    from ..labels import STRUCTURE_NAMES

    if text is None:
        return None
    names = tuple(dict.fromkeys(s.strip().lower() for s in text.split(",") if s.strip()))
    if not names:
        raise PromptError("--structures is empty: name structures, e.g. --structures lv,myo,la")
    if not auto:
        raise PromptError("--structures names the structures for --auto; add --auto (prompts name their own structures)")
    unknown = [s for s in names if s not in STRUCTURE_NAMES]
    if unknown:
        raise PromptError(f"--structures: unknown structure {', '.join(map(repr, unknown))} (medseg's structures: {', '.join(STRUCTURE_NAMES)})")
    return names


def parse_frames(text: str | None, auto: bool) -> str | None:
    """``--frames`` checked before any case is read (:func:`medseg.frame_pick.parse_frames`), as
    its normal text ("ed,es", "0,11"); only with ``--auto``."""
    from ..errors import PromptError

    if text is None:
        return None
    if not auto:
        raise PromptError("--frames picks the frames of the zero-click pass: add --auto (prompts name their own frames)")
    from ..frame_pick import frames_text, parse_frames

    return frames_text(parse_frames(text))


def parse_pixel_spacing(text: str | None, option: str = "--pixel-spacing") -> tuple[float, float] | None:
    """``--pixel-spacing``: :func:`medseg.io.volume.parse_pixel_spacing` (imported when used)."""
    from ..io.volume import parse_pixel_spacing as parse

    return parse(text, option)


def references_map(rows: list) -> Any:
    """Without --label-map (evaluate, adapt): the one label map the references name (DICOM SEGs'
    or 3D Slicer .seg.nrrd segments, medseg sidecars); SEGs / .seg.nrrd files naming different
    segments or values are re-encoded by name into medseg's values (``in_label_map``). ``rows``:
    :class:`medseg.evaluation.Pair` (``case``, ``label``)."""
    from ..errors import LabelMapError
    from ..io.seg_reader import is_dicom_seg
    from ..io.slicer_seg import is_slicer_seg
    from ..io.writers import own_label_map
    from ..labels import DEFAULT_LABEL_MAP

    maps = []
    for r in rows:
        own = own_label_map(r.label)
        if own is None:
            raise LabelMapError(f"give --label-map: the labels of case {r.case} ({Path(r.label).name}) do not name their structures "
                                "(neither a DICOM SEG, a 3D Slicer .seg.nrrd nor labels with a medseg sidecar JSON)")
        maps.append(own[0])
    if all(m.values == maps[0].values for m in maps):
        return maps[0]
    names = list(dict.fromkeys(n for m in maps for n in m.names))
    if all(is_dicom_seg(r.label) or is_slicer_seg(r.label) for r in rows) and all(n in DEFAULT_LABEL_MAP for n in names):
        return DEFAULT_LABEL_MAP.subset(names)
    raise LabelMapError(f"give --label-map: the references name different label maps ({'; '.join(dict.fromkeys(m.to_string() for m in maps))})")


def check_device(device: str) -> str:
    """``--device`` checked before any work: a misspelt device (``gpu``) failed every case of a
    batch, and the demo only after writing its study. One line naming cpu and cuda."""
    from ..models.registry import check_device as check  # imported here: the CLI starts without torch

    return check(device)


def parse_modality(text: str | None) -> str | None:
    """``--modality`` in upper case, checked once before any work (None: the file's / detected)."""
    if not text:
        return None
    from ..io.readers import check_modality

    return check_modality(text)


def with_modality(pairs: list, modality: str | None) -> list:
    """``--modality`` on evaluate: every pair's image read as that modality."""
    import dataclasses

    m = parse_modality(modality)
    return [dataclasses.replace(p, modality=m) for p in pairs] if m else pairs


def note_left_out(flag: str, left_out: list[str]) -> None:
    """Say which images of a ``--pairs`` / ``--val`` folder were left out (no labels beside
    them, or a case that cannot be read as one), in one line: a forgotten label file would
    otherwise shrink a training or validation set unseen."""
    if left_out:
        from .._files import shown
        from ._app import console

        console.print(f"note: {flag}: {len(left_out)} image(s) left out: {'; '.join(shown(c) for c in left_out[:5])}"
                      + (f" and {len(left_out) - 5} more" if len(left_out) > 5 else ""), markup=False, soft_wrap=True)


def note_lines(notes: list[str]) -> None:
    """Print each of ``notes`` (how an input table was read: a subjects or pairs CSV not in
    UTF-8, read in the Windows code page) as a ``note:`` line."""
    if notes:
        from .._files import shown
        from ._app import console

        for note in dict.fromkeys(notes):
            console.print(f"note: {shown(note)}", markup=False, highlight=False, soft_wrap=True)


def note_workers(workers: int, n_cases: int) -> None:
    """Say when ``--workers`` starts more processes than the CPUs this process may use
    (:func:`medseg._batch_exec.cpu_budget`): ``--workers 8`` on a 2-core workstation ran 8
    processes of one torch thread each, 8 copies of the model in memory, with no word (4
    workers on 1 CPU: 4 phantom cases in 61 s and 3.5 GB, against 35 s and 0.9 GB with 1)."""
    from .._batch_exec import cpu_budget

    started, cpus = min(workers, n_cases), cpu_budget()
    if started > cpus:
        from ._app import console

        console.print(f"note: --workers {workers} starts {started} processes on {cpus} CPU{'s' if cpus != 1 else ''}: they share "
                      f"{'them' if cpus != 1 else 'it'}, one torch thread each, and each holds its own model in memory; "
                      f"more processes than CPUs add memory and time, not speed: --workers {max(cpus, 1)}", markup=False, highlight=False, soft_wrap=True)


def note_gpu_unused(device: str) -> None:
    """Say when a run on the cpu (``--device``'s default: a GPU is used only when named) could
    have used a CUDA GPU here: on a workstation with one, a 30-frame cine ran its minutes on the
    CPU with no word of the GPU. Called where torch is loaded anyway (the model's loading, a batch's first
    case segmented in its own process: a ``--resume`` with nothing left to segment imports no torch for it)."""
    if device != "cpu":
        return
    import torch

    if torch.cuda.is_available():
        from ._app import console

        console.print("note: a CUDA GPU is available here and this run uses the cpu: --device cuda runs on the GPU",
                      markup=False, highlight=False, soft_wrap=True)


def train_val_pairs(pairs: Any, val: Any, label_map: str | None) -> tuple[list, list, Any]:
    """``--pairs`` / ``--val`` / ``--label-map`` as ``adapt`` and ``train`` take them: the
    training and validation pairs (CSV or folder; images left out said), refused when the
    validation holds a training image (the same file or a copy), and the label map (without
    ``--label-map``: the one the label files name)."""
    from ..errors import MedsegError
    from ..labels import LabelMap
    from ..pairs import read_pairs, shared_images

    left_train, left_val, notes = [], [], []
    train_pairs = read_pairs(pairs, left_train, notes)
    val_pairs = read_pairs(val, left_val, notes) if val else []
    note_lines(notes)
    both = shared_images(train_pairs, val_pairs)  # the same files, or copies of them
    if both:  # its before/after Dice and the step kept would be measured on what it learnt
        raise MedsegError(f"--val holds images --pairs trains on, the same files or copies ({len(both)}: {', '.join(both[:5])}"
                          f"{', ...' if len(both) > 5 else ''}): validate on other subjects, or leave --val out (the last step is then kept, unscored)")
    lmap = LabelMap.parse(label_map) if label_map else references_map(train_pairs + val_pairs)
    note_left_out("--pairs", left_train)
    note_left_out("--val", left_val)
    return train_pairs, val_pairs, lmap
