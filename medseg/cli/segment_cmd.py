"""`medseg segment IMAGE -o OUT`: prompts file, reference labels, key slice, or zero-click."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from . import _options as o
from ._app import app, console, progress_bar


@app.command("segment")
def segment_command(
    ctx: typer.Context,
    image: Path = typer.Argument(..., metavar="IMAGE", help="Image file, DICOM folder, or a .zip of either."),
    out: Path = typer.Option(..., "-o", "--out", help="Output label file (.nii.gz, .nii, .mha, .nrrd, .seg.nrrd for 3D Slicer, .png for a 2-D image, or .dcm for DICOM SEG)."),
    prompts: o.PromptsFile = None,
    prompts_from: Path | None = typer.Option(None, "--prompts-from", help="Reference labels on the image's grid: one box per structure per slice is simulated from them "
                                                "(--label-map names their values, unless a DICOM SEG, a 3D Slicer .seg.nrrd or the medseg sidecar JSON of labels medseg wrote does)."),
    label_map: o.LabelMapText = None,
    key_slice: o.KeySlice = False,
    auto: o.Auto = False,
    structures: o.Structures = None,
    frames: o.Frames = None,
    propagate: o.Propagate = False,
    through: o.Through = "z",
    model: o.Model = "default",
    adapter: o.Adapter = None,
    device: o.Device = "cpu",
    min_confidence: o.MinConfidence = None,
    series: o.Series = None,
    modality: o.Modality = None,
    pixel_spacing: o.PixelSpacing = None,
    review_png: Path | None = typer.Option(None, "--review-png", help="Also write this PNG: every labelled slice (ED and ES of a cine) with "
                                           "contours, confidences, flagged slices framed in thick black."),
    replay: Path | None = typer.Option(None, "--replay", metavar="SIDECAR.json", help="Replay the session a label file's sidecar JSON records (prompts, "
                                       "propagation, zero-click, edits; its label map, model, adapter, --min-confidence) onto IMAGE: the same labels "
                                       "for the same image, model and adapter. No prompt options with it."),
    other_image: bool = typer.Option(False, "--other-image", help="With --replay: replay onto an image whose sha256 is not the one the sidecar records."),
) -> None:
    """Segment one study; write its labels and a provenance sidecar JSON."""
    from ..errors import PromptError
    from ..labels import LabelMap

    spacing = o.parse_pixel_spacing(pixel_spacing)
    if (replay is not None or other_image) and spacing is not None:
        raise PromptError("--replay writes the labels with the pixel spacing the sidecar records (if any): leave --pixel-spacing out")
    if replay is not None or other_image:
        from ._segment_replay import replay_command

        replay_command(ctx, image, out, replay, other_image, model, adapter, device, min_confidence, review_png, series, modality)
        return
    if prompts and prompts_from:
        raise PromptError("give either --prompts or --prompts-from, not both")
    if key_slice and not prompts_from:
        raise PromptError("--key-slice works with --prompts-from")
    if through not in ("z", "t", "zt"):
        raise PromptError(f"--through must be z, t or zt, got {through!r}")
    lmap = LabelMap.parse(label_map) if label_map else None
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise PromptError(f"--min-confidence must be in [0, 1], got {min_confidence}")
    if review_png is not None and review_png.suffix.lower() != ".png":
        raise PromptError(f"--review-png must name a .png file, got {review_png}")
    structures = ",".join(o.parse_structures(structures, auto) or ()) or None
    frame_list = _parse_frames_option(frames, auto)
    modality = o.parse_modality(modality)
    o.check_device(device)
    from .batch_cmd import EXIT_SIGTERM, _sigterm_as_interrupt, _Terminated

    with _sigterm_as_interrupt():  # kill PID: writes cut short are undone as on Ctrl-C (it left a review sheet without labels, temporary files)
        try:
            run_segment(image, out, prompts, prompts_from, lmap, key_slice, auto, structures, propagate, through, model, adapter, device,
                        min_confidence, review_png, series, modality, spacing, frame_list)
        except _Terminated:
            console.print("interrupted (SIGTERM): no output is left half-written", markup=False, highlight=False)
            raise typer.Exit(EXIT_SIGTERM) from None


def _parse_frames_option(frames: str | None, auto: bool):
    """``--frames`` parsed (:func:`medseg.frame_pick.parse_frames`), only with ``--auto``."""
    from ..frame_pick import parse_frames

    text = o.parse_frames(frames, auto)
    return parse_frames(text) if text is not None else None


def frames_line(prov: dict, n_frames: int) -> str | None:
    """What ``--frames`` segmented, and how ED and ES were found (the provenance's ``frame_pick``)."""
    from .._ranges import compact_ranges

    frames = (prov.get("settings") or {}).get("frames")
    if frames is None:
        return None
    pick = prov.get("frame_pick")
    from ..frame_pick import METHOD_ONE_SLICE

    where = ("its one slice" if pick.get("method") == METHOD_ONE_SLICE else f"slices {compact_ranges(pick['slices'])}") if pick else ""
    how = (f"ED frame {pick['ed']}, ES frame {pick['es']} by zero-click LV area on {where} of every frame "
           f"({pick['seconds']:.1f} s); " if pick else "")
    if len(set(frames)) >= n_frames:  # ED and ES of a 2-frame cine (ACDC-, Sunnybrook-style): no frame left out
        return f"frames: {how}segmented all {n_frames} ({compact_ranges(frames)}): the cine has no other frames"
    return f"frames: {how}segmented {compact_ranges(frames)} of {n_frames} (frames from 0; the others are left empty)"


def probe_lines(prov: dict) -> list[str]:
    """A line per structure zero-click found by clicks beside the myocardium (the provenance's
    ``actions[].probed``), its slices as ranges ("on slices 12-53, 60": a CT listed 40 and more)."""
    from .._ranges import compact_ranges

    return [f"zero-click: {pr['structure'].upper()} not found by its prompt on frame {pr['frame']}; found by clicks beside the "
            f"myocardium on slices {compact_ranges(pr['slices'])} (check it)"
            for pr in (p for a in prov.get("actions", []) for p in a.get("probed", []))]


def _note_one_frame_reference(vol, prompts_from, prompt_set) -> None:
    """Say it when one-frame reference labels prompt every frame of a cine alike (they stand for
    every frame): an M&Ms-2 user's 4-chamber ED labels on its 25-frame cine prompted the ES frames
    with the ED boxes, where a prompt on the ED frame and propagation was meant."""
    from .._files import shown
    from ..prompt_file import one_frame_reference_note

    note = one_frame_reference_note(vol, prompts_from, prompt_set)
    if note:
        console.print(f"note: {shown(note)}", markup=False, highlight=False)


def run_segment(image, out, prompts, prompts_from, lmap, key_slice, auto, structures, propagate, through, model, adapter, device, min_confidence=None,
                review_png=None, series=None, modality=None, pixel_spacing=None, frames=None) -> None:
    import time

    started = time.perf_counter()
    from .._files import check_not_inputs, sha256_path, shown
    from ..io import sidecar_path
    from ..models import load_model
    from ..prompt_file import study_prompts
    from ..segment import check_prompts, segment_volume

    check_not_inputs({"output labels": out, "sidecar JSON": sidecar_path(out), "review sheet": review_png},
                     {"image": image, "prompts file": prompts, "reference labels": prompts_from})
    vol = read_image(image, out, series, modality, pixel_spacing)
    prompt_set = study_prompts(vol, prompts, prompts_from, lmap, key_slice)
    _note_one_frame_reference(vol, prompts_from, prompt_set)
    auto_structs = tuple(s.strip() for s in structures.split(",") if s.strip()) if structures else None
    check_prompts(vol, prompt_set, auto, lmap, auto_structs)  # a structure the map lacks, a prompt outside the image: before the model loads
    if frames is not None:
        from ..frame_pick import check_frames

        check_frames(frames, vol.n_frames)  # a frame outside the image: before the model loads
    loaded = load_model(model, device=device, adapter=adapter)
    o.note_gpu_unused(device)
    if adapter:  # which folder the name found ($MEDSEG_HOME/adapters can hide a shipped adapter of the same name); once it loaded
        from ..adapters import adapter_origin, modality_note

        console.print(shown(adapter_origin(adapter)), markup=False, highlight=False, soft_wrap=True)
        if note := modality_note(adapter, vol.modality):
            console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    result = _with_progress(lambda cb: segment_volume(vol, loaded, prompt_set, auto=auto, propagate=propagate, through=through, label_map=lmap,
                                                      auto_structures=auto_structs, progress=cb, min_confidence=min_confidence, frames=frames))
    from ..segment import asked_structures

    source = ({"prompts_file": str(Path(prompts).resolve()), "prompts_sha256": sha256_path(prompts)} if prompts else
              {"reference": str(Path(prompts_from).resolve()), "reference_sha256": sha256_path(prompts_from), "key_slice": key_slice} if prompts_from else {})
    finish_segment(image, out, vol, result, source, review_png, series, min_confidence, asked_structures(vol, prompt_set, auto, auto_structs),
                   started, auto, auto_structs)


def read_image(image, out, series, modality, pixel_spacing=None):
    """The image ``segment`` segments, read after refusing a label file medseg wrote given as
    the image, with ``--pixel-spacing`` (row, column mm) when given, and checking that ``out``
    can be written for it (before any work)."""
    from .._files import shown
    from ..errors import MedsegError
    from ..io import is_medseg_labels, read_sidecar, read_volume
    from ..io.readers import FROM_INTENSITIES
    from ..io.writers import check_output

    if Path(image).is_file() and is_medseg_labels(image):
        src = ((read_sidecar(image) or {}).get("provenance") or {}).get("input")
        raise MedsegError(f"{image} is a label file medseg wrote (its sidecar says so), not an image: segment "
                          + (f"the image it was made from, {src}" if src else "the image it was made from"))
    vol = read_volume(image, series=series, modality=modality)
    if pixel_spacing is not None:
        from ..io.volume import with_pixel_spacing
        from ..io.writers import output_kind

        vol = with_pixel_spacing(vol, pixel_spacing, str(image))
        if vol.meta.get("spacing_from") and output_kind(out) == "png":
            raise MedsegError(f"{out}: a PNG records no pixel spacing, so --pixel-spacing would be lost: write .nii.gz (or .mha, .nrrd)")
    check_output(out, vol)  # an output it cannot write is refused before the work
    if vol.meta.get("missing_slices") and vol.meta.get("geometry_note"):  # a DICOM stack with a slice lost in the export (dicom_gaps)
        console.print(f"note: {shown(image)}: {vol.meta['geometry_note']}", markup=False, highlight=False, soft_wrap=True)
    from ..io.us_region import add_screen_note

    add_screen_note(vol)  # a US DICOM with no region that looks like the whole screen (an ECG trace apart from the image)
    for key in ("frame_of_reference_note", "us_region_note"):  # Sunnybrook: each image its own FrameOfReferenceUID; an echo
        if vol.meta.get(key):  # screen's ultrasound region clipped, ignored or one of several (io/us_region.py)
            console.print(f"note: {shown(image)}: {vol.meta[key]}", markup=False, highlight=False, soft_wrap=True)
    if vol.meta.get("modality_from") == FROM_INTENSITIES:  # a guess: say it, and how to overrule it
        console.print(f"note: {shown(image)} records no modality; segmented as {vol.modality} ({vol.meta['modality_from']}); "
                      "--modality MR (or US, OT) if it is not", markup=False, highlight=False)
    return vol


def finish_segment(image, out, vol, result, source, review_png, series, min_confidence, asked, started, auto=False, auto_structs=None) -> None:
    """Write what ``segment`` (or ``segment --replay``) made: labels + provenance sidecar (with
    ``source``: what prompted it) and the ``--review-png`` sheet, and say what was found; exit 3
    when every structure was handed over, MedsegError when none was found (``asked``: the
    structures looked for), writing nothing."""
    import time

    from .._files import sha256_path, shown, stale_temp_files
    from ..errors import MedsegError
    from ..io import sidecar_path, write_labels
    from ..io.readers import modality_facts
    from ..io.volume import spacing_facts
    from ..io.writers import output_kind

    if result.handed_over and not (result.labels > 0).any():
        gone = _remove_stale_outputs(out, review_png)
        absent = sorted(n for n in asked if n not in result.handed_over)  # asked for and found on no slice
        console.print(f"handed over for manual review: every structure{' found' * bool(absent)} is below --min-confidence {min_confidence} "
                      f"({', '.join(result.handed_over)}){'; not found: ' + ', '.join(absent) if absent else ''}; "
                      f"nothing written (exit code 3){shown(gone)}", markup=False)
        raise typer.Exit(3)
    if not (result.labels > 0).any():  # an empty label file would look like a result
        names = sorted(asked)
        gone = _remove_stale_outputs(out, review_png)
        raise MedsegError(f"no structure found{' (' + ', '.join(names) + ')' if names else ''} in {shown(image)}: nothing written "
                          f"(is the heart in this image? prompts on it find what zero-click misses){shown(gone)}")
    prov = {**result.provenance, "input": str(Path(image).resolve()), "input_sha256": sha256_path(image), **source, "scores": result.scores, "seconds": round(result.seconds, 3), "command": "segment", **({"series": series} if series else {}),
            **({"series_uid": uid} if vol.meta.get("format") == "dicom" and (uid := vol.meta.get("series_instance_uid")) else {}),  # the series read: measure --a2c tells one clip given twice
            **modality_facts(vol), **spacing_facts(vol)}
    if output_kind(out) in ("nifti", "itk"):  # files that read back as these labels: measure tells labels edited since
        from ..batch.kept import labels_sha256

        prov["labels_sha256"] = labels_sha256(result.labels)
    for target in (out, sidecar_path(out), review_png):  # the temporary files a run killed outright (kill -9) left
        for stale in stale_temp_files(target) if target is not None else ():
            stale.unlink(missing_ok=True)
    if review_png is not None:  # first: a sheet that cannot be written leaves no labels behind
        from ..review import review_png as write_review_png

        write_review_png(vol, result.labels, result.label_map, prov, review_png, title=shown(Path(image).name))
    try:
        written = write_labels(result.labels, vol, out, result.label_map, provenance=prov)
    except BaseException:
        if review_png is not None:
            review_png.unlink(missing_ok=True)
        raise
    counts = {n: int((result.labels == v).sum()) for n, v in result.label_map.values.items()}
    found = ", ".join(f"{n}: {c} voxels" for n, c in counts.items() if c)
    absent = [n for n, c in counts.items() if not c and n in asked and n not in result.handed_over]
    console.print(f"wrote {', '.join(shown(p) for p in written)} ({found}"
                  f"{'; not found: ' + ', '.join(absent) if absent else ''}; "
                  f"{result.seconds:.1f} s segmenting, {time.perf_counter() - started:.1f} s in all)", markup=False)
    hint = structures_hint(vol, auto, auto_structs, absent)
    if hint:
        console.print(hint, markup=False)
    from ..session import removed_text

    removed = removed_text([r for a in prov.get("actions", []) for r in a.get("removed", [])])
    if removed:
        console.print(f"{removed} (listed in the provenance JSON)", markup=False)
    for line in probe_lines(prov) + [frames_line(prov, vol.n_frames) or ""]:
        if line:
            console.print(line, markup=False)
    for flag in (prov.get("review") or {}).get("flags", []):  # frames of one apical view read as slices: as measure says it
        if flag.get("code") == "long_axis_stack":
            console.print(f"note: {flag['message']}", markup=False, highlight=False, soft_wrap=True)
    if review_png is not None:
        console.print(f"review sheet: {shown(review_png)}", markup=False)
    if result.confidence is not None:
        from rich.markup import escape

        from ..confidence import digits_below
        from ..review import review_summary

        th = (result.confidence.get("thresholds") or {}).get("volume")
        conf = ", ".join(f"{k} {v:.{digits_below(v, th)}f}" for k, v in result.confidence["volume"].items())
        review = prov.get("review", {})
        why = review_summary(review.get("flags", []))
        console.print(f"confidence: {conf or '-'}; " + (f"[yellow]needs review[/] ({escape(why)})" if review.get("needs_review") else "no review flags")
                      + (f"; handed over: {', '.join(result.handed_over)}" if result.handed_over else ""))


def structures_hint(vol: Any, auto: bool, auto_structs: Any, absent: list[str]) -> str | None:
    """A note when zero-click looked for the default lv, myo, rv on one 2-D view that records no
    modality (a PNG, a video frame) and found no RV: an apical echo view (CAMUS) has none to
    find, and its LA was not looked for; every such image read ``structure_not_found (rv)``."""
    if not auto or auto_structs or vol.n_slices != 1:
        return None
    if vol.modality == "US" and "lv" in absent:  # the apical default on a parasternal short-axis frame: its RV drawn as "la"
        return ("note: zero-click looked for lv, myo, la (the ultrasound default, for apical views) and found no LV; for a "
                "parasternal short-axis view give --structures lv,myo,rv")
    if "rv" not in absent or vol.modality in ("US", "CT"):
        return None
    return ("note: zero-click looked for lv, myo, rv (the default for an image that records no modality); for an apical echo "
            "view add --structures lv,myo,la (or --modality US)")


def _remove_stale_outputs(out: Path, review_png: Path | None) -> str:
    """Remove what an earlier run wrote under this run's names when this run writes nothing (as
    ``batch`` does), so it cannot pass for this run's result: the label file ``out`` (a DICOM SEG
    cine's ``<stem>_frameNN.dcm`` files too) when its medseg sidecar names it, that sidecar
    unless it still describes another label file (the same segmentation in another format),
    and the ``--review-png`` sheet. Returns "; removed ..." for the message ("" if nothing)."""
    import re

    from ..io import is_medseg_labels, read_sidecar, sidecar_path

    labels = [out]
    if out.name.lower().endswith(".dcm"):
        stem = re.escape(out.name[:-4])
        labels += sorted(p for p in out.parent.glob("*_frame*.dcm") if re.fullmatch(rf"{stem}_frame\d{{2,}}\.dcm", p.name))
    removed: list[Path] = []
    for path in labels:
        if not (path.is_file() and is_medseg_labels(path)):
            continue
        side = sidecar_path(path)
        owners = (read_sidecar(path) or {}).get("labels")
        others = [o for o in (owners if isinstance(owners, list) else []) if isinstance(o, str) and o != path.name and (path.parent / o).exists()]
        for p in ([side] if not others else []) + [path]:  # sidecar first: a label file without it is never taken as a result
            p.unlink(missing_ok=True)
            removed.append(p)
    if review_png is not None and review_png.is_file():
        review_png.unlink()
        removed.append(review_png)
    return f"; removed an earlier run's outputs of these names: {', '.join(map(str, removed))}" if removed else ""


def _with_progress(fn):
    """Run ``fn(progress)`` under a bar that names what it is doing (zero-click slices, each
    prompt's propagation, confidence, review: :func:`medseg.segment.segment_volume`)."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    with progress_bar(TextColumn("segmenting: {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task("reading the model", total=None)

        def step(done: int, total: int | None, what: str | None = None) -> None:
            if total is None:  # a step that counts nothing: rich's update(total=None) kept the step before's (review 0/11)
                next(t for t in bar.tasks if t.id == task).total = None
            bar.update(task, completed=done, total=total, **({"description": what} if what else {}))

        return fn(step)

