"""`medseg batch INPUT_DIR -o OUT_DIR`: segment every study of a folder (local processes or a
Dask cluster), with per-case status, resume and optional cohort measurements.
Thin: option checks, a rich progress bar and the closing line; the work is :mod:`medseg.batch`."""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

import typer

from .._files import shown
from . import _options as o
from ._app import app, console, progress_bar


@app.command("batch")
def batch_command(
    input_dir: Path = typer.Argument(..., metavar="INPUT_DIR", help="Folder of studies: each readable file (.nii, .nii.gz, .mha, .mhd, .nrrd, .png, .avi, .mp4, .dcm), "
                                     "each .zip (read as the DICOM folder or one image file it holds) and each folder holding DICOM "
                                     "is one case, in sub-folders too (patient/study/series); case id = file name without extension / folder name."),
    out_dir: Path = typer.Option(..., "-o", "--out", help="Output folder: <case>.nii.gz + <case>.json, summary.csv/json, cohort.csv."),
    prompts: o.PromptsFile = None,
    prompts_from: Path | None = typer.Option(None, "--prompts-from", help="Folder of reference labels: for case C the first of C_gt, C_labels, "
                                                "C_label, C_seg, C_segmentation, C_mask, C_manual, C (.nii.gz, .nii, .mha, ...); INPUT_DIR itself: the labels beside each image."),
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
    resume: bool = typer.Option(False, "--resume", help="Skip cases whose output is complete and valid (same input sha256 and settings, "
                                "label file readable on the input's grid)."),
    workers: int = typer.Option(1, "--workers", help="Local worker processes (each loads the model once; torch threads = cores // N, cores no more than $OMP_NUM_THREADS)."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler address (e.g. tcp://host:8786): one task per case; "
                                            "workers need medseg and the same paths."),
    measure: bool = typer.Option(False, "--measure", help="Measure each case's labels (volumes, EF, LV mass) into OUT_DIR/cohort.csv."),
    subjects: Path | None = typer.Option(None, "--subjects", help="With --measure: CSV of body data, a row per subject: case (or subject, study, "
                                         "patient, id) and any of height_cm, weight_kg, sex, heart_rate; gives BSA, indexed values, "
                                         "sex-specific ranges, cardiac output. Other columns (site, vendor, group) are copied into cohort.csv. "
                                         "Row 'p1' also serves cases p1_*."),
    no_basal_rule: bool = typer.Option(False, "--no-basal-rule", help="With --measure: count every LV slice, no SCMR 50% rule at the base "
                                       "(a short-axis rule; e.g. axial CT labels), as measure --no-basal-rule; flagged basal_rule_off."),
    pdf: bool = typer.Option(False, "--pdf", help="With --measure: each measured case's and study's one-page A4 report (as measure --pdf) "
                             "in OUT_DIR/pdf/<case>.pdf; column pdf of summary.csv and cohort.csv names it."),
    min_confidence: o.MinConfidence = None,
    review_png: o.ReviewPng = False,
    dicom_seg: bool = typer.Option(False, "--dicom-seg", help="Also write each DICOM study's labels as DICOM SEG (for a PACS or a DICOM viewer): "
                                   "OUT_DIR/<case>_seg/<case>.dcm, a cine one per frame (<case>_frameNN.dcm); other inputs get NIfTI only. "
                                   "With --measure also the measurements as a DICOM SR, <case>_seg/<case>_sr.dcm."),
    series: o.Series = None,
    modality: o.Modality = None,
    pixel_spacing: o.PixelSpacing = None,
    shard: str | None = typer.Option(None, "--shard", metavar="K/N", help="Run shard K of N of the cases (every N-th of the sorted list; "
                                     "a cluster's array job: one task per shard, one OUT_DIR); the shard that ends last writes "
                                     "summary.csv and cohort.csv for all. Slurm: --shard $((SLURM_ARRAY_TASK_ID + 1))/N with --array=0-(N-1)."),
) -> None:
    """Segment every study of a folder; a failing case does not stop the others.

    Exit code 1 if any case failed; the same command with --resume goes on after an interruption."""
    from ..batch import BatchOptions, Shard, check_out_dir, discover_cases
    from ..errors import MedsegError, PromptError
    from ..labels import LabelMap

    _check_options(prompts, prompts_from, label_map, key_slice, auto, through, workers, scheduler)
    part = Shard.parse(shard) if shard is not None else None
    if part is not None and scheduler:
        raise MedsegError("give either --shard (one task of an array job) or --scheduler (a Dask cluster), not both")
    modality = o.parse_modality(modality)
    spacing = o.parse_pixel_spacing(pixel_spacing)
    o.check_device(device)
    if subjects is not None and not measure:
        raise MedsegError("--subjects gives body data for the measurements: add --measure")
    if no_basal_rule and not measure:
        raise MedsegError("--no-basal-rule is a measurement setting: add --measure")
    if pdf and not measure:
        raise MedsegError("--pdf writes each study's measurements on a page: add --measure")
    subject_rows: tuple = ()
    if subjects is not None:
        from ..subjects import read_subjects

        notes: list[str] = []
        subject_rows = read_subjects(subjects, notes)
        o.note_lines(notes)
    structures = ",".join(o.parse_structures(structures, auto) or ()) or None
    frames = o.parse_frames(frames, auto)
    if label_map:
        LabelMap.parse(label_map)  # a malformed map fails here, once
    if prompts is not None:
        from ..prompt_file import check_prompts_file

        check_prompts_file(prompts)  # a malformed file fails here, once, not in every case
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise PromptError(f"--min-confidence must be in [0, 1], got {min_confidence}")
    if model != "default" and "=" not in model:  # an unknown name failed every case, one after another
        from ..models.registry import check_model_spec

        check_model_spec(model)
    if adapter:  # a name that does not exist failed every case, one after another
        from ..adapters import check_adapter_file, find_adapter, read_adapter_meta

        folder = find_adapter(adapter)
        read_adapter_meta(folder)
        check_adapter_file(folder)
        from ..adapters import adapter_origin

        console.print(shown(adapter_origin(adapter)), markup=False, highlight=False, soft_wrap=True)  # once for the run: which folder the name found
    cases = discover_cases(input_dir, prompts_from, exclude=[out_dir], series=series)
    if not cases:
        raise MedsegError(f"no cases in {input_dir}: expected image files (.nii.gz, .mha, .nrrd, .png, .avi, .mp4, .dcm, ...) or DICOM sub-folders")
    if prompts_from and not label_map:
        from ..io.seg_reader import is_dicom_seg
        from ..io.slicer_seg import is_slicer_seg
        from ..io.writers import own_label_map, sidecar_problem

        def named(ref: str) -> bool:  # a broken sidecar counts as naming: its case fails alone, naming it
            return is_dicom_seg(ref) or is_slicer_seg(ref) or sidecar_problem(ref) is not None or own_label_map(ref, strict=False) is not None

        unnamed = [c.case for c in cases if c.reference and not named(c.reference)]
        if unnamed:  # a DICOM SEG or a 3D Slicer .seg.nrrd names its segments, labels medseg wrote their map; others need the map
            raise PromptError(f"--prompts-from needs --label-map (which value is which structure in the reference; "
                              f"{unnamed[0]}'s is not a DICOM SEG, a 3D Slicer .seg.nrrd or labels with a medseg sidecar JSON, which would name them)")
    out = check_out_dir(out_dir, {"input": input_dir, "--prompts-from": prompts_from})
    options = BatchOptions(
        out_dir=str(out), prompts=str(prompts) if prompts else None, label_map=label_map, key_slice=key_slice, auto=auto,
        structures=structures, frames=frames, propagate=propagate, through=through, model=model, adapter=adapter, device=device,
        resume=resume, measure=measure, pdf=pdf, basal_rule=not no_basal_rule, min_confidence=min_confidence, review_png=review_png, series=series, subjects=subject_rows,
        dicom_seg=dicom_seg, modality=modality, pixel_spacing=spacing,
    ).absolute()  # a Dask worker has another working folder
    if scheduler is None:  # a cluster's machines are not this one
        o.note_workers(workers, len(part.pick(cases)) if part else len(cases))
    rows_file = out / "summary.csv"
    if part is not None:
        from ..batch.shards import check_split, record_path

        check_split(str(out), part)  # before the run's first line
        rows_file = record_path(out, part)
    with _sigterm_as_interrupt():
        try:
            # the GPU note once a case is segmented in this process (torch loaded then; with workers the parent does not
            # load it: 0.5 GB for a note): a --resume with nothing left to segment imported torch (~3 s) for it
            ran = _run_with_progress(cases, options, workers, scheduler, part, gpu_note=device if workers == 1 and scheduler is None else None)
        except _Terminated:
            console.print(f"interrupted (SIGTERM): outputs written so far are complete, summary: {shown(rows_file)}; "
                          "the same command with --resume goes on", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_SIGTERM) from None
        except KeyboardInterrupt:  # Ctrl-C: the same line, exit code 130
            from ..errors import Interrupted

            raise Interrupted(f"interrupted: outputs written so far are complete, summary: {shown(rows_file)}; "
                              "the same command with --resume goes on") from None
    results = ran if part is None else ran.results
    merged = part is None or ran.merged
    if subjects is not None and merged:
        _subjects_line(out, subjects, subject_rows)
    if prompts is not None:
        _prompts_line(prompts, cases)
    _prompt_notes_line(results)
    _structures_note_line(results, options)
    if part is None:
        _closing_line(results, out, measure)
    else:
        _closing_line(results, out, measure and merged, _shard_summary(ran, part, out), f"batch shard {part}")


#: exit code of a batch stopped by SIGTERM (kill, a job scheduler's time limit): 128 + 15, as a shell
#: reports a process SIGTERM ended; Ctrl-C (SIGINT) gives 130
EXIT_SIGTERM = 143


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: a batch stops as on Ctrl-C (workers ended, queue
    cancelled, the temporary files of cut-short cases removed, the summary written)."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM handled like Ctrl-C while the batch runs (once: a second SIGTERM ends the process
    at once, its workers with it). Only in the main thread, where Python runs signal handlers."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise _Terminated()

    before = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _prompt_notes_line(results) -> None:
    """One line for the run naming the cases whose prompts need a word (``prompt_note`` of their
    summary rows: one-frame reference labels whose boxes prompted every frame of a cine alike)."""
    noted = [r for r in results if r.get("prompt_note")]
    if not noted:
        return
    names = ", ".join(str(r["case"]) for r in noted[:5]) + (", ..." if len(noted) > 5 else "")
    line = (f"note: {noted[0]['prompt_note']}" if len(noted) == 1 else
            f"note: {_cases(len(noted))} ({names}) have one-frame reference labels on a cine: their boxes prompt every frame alike "
            "(prompt_note in summary.csv); for labels of one phase (e.g. ED) prompt that frame with a prompts file and propagate --through t")
    console.print(shown(line if len(noted) > 1 else f"{line} (case {noted[0]['case']})"), markup=False, highlight=False, soft_wrap=True)


def _structures_note_line(results, options) -> None:
    """The note ``segment`` prints, once for the run: zero-click looked for its default lv, myo, rv
    on 2-D image files that record no modality (PNG, JPEG, ...) and found no RV on some: apical
    echo views (CAMUS), whose LA was then not looked for (their study rows get no LA volume)."""
    if not options.auto or options.structures or options.modality:
        return
    two_d = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
    hit = [r for r in results if r.get("status") == "ok" and str(r.get("input", "")).lower().endswith(two_d)
           and "structure_not_found" in str(r.get("review_flags") or "").split() and _rv_not_found(r.get("output"))]
    if not hit:
        return
    names = ", ".join(str(r["case"]) for r in hit[:3]) + (", ..." if len(hit) > 3 else "")
    console.print(shown(f"note: zero-click looked for lv, myo, rv (the default for an image that records no modality) and found no RV "
                        f"on {_cases(len(hit))} ({names}); for apical echo views run again with --modality US (or --structures lv,myo,la)"),
                  markup=False, highlight=False, soft_wrap=True)


def _rv_not_found(output) -> bool:
    """Whether the sidecar of a case's labels flags the RV ``structure_not_found``."""
    from ..io import read_sidecar

    try:  # read as every reader reads it (a byte-order mark is fine); one that cannot be read flags nothing
        flags = (read_sidecar(Path(output)) or {})["provenance"]["review"]["flags"]
        return any(f.get("code") == "structure_not_found" and f.get("structure") == "rv" for f in flags)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _subjects_line(out: Path, path: Path, rows) -> None:
    """How the subjects file's rows met the cohort: rows of cohort.csv measured with one, and
    the subjects rows that no case used (a misspelt id shows here)."""
    from .._files import read_medseg_csv

    cohort = out / "cohort.csv"
    if not cohort.is_file():
        return
    used = [r.get("subject", "") for r in read_medseg_csv(cohort)]  # UTF-8 as written; "'-x" (formula guard) read as "-x"
    unused = [s.id for s in rows if s.id not in set(used)]
    line = f"subjects: {sum(bool(u) for u in used)} of {len(used)} cohort rows measured with a row of {path}"
    if unused:
        line += f"; {len(unused)} of its rows matched no case ({', '.join(unused[:5])}{', ...' if len(unused) > 5 else ''})"
    console.print(shown(line), markup=False, highlight=False, soft_wrap=True)


def _prompts_line(path: Path, cases) -> None:
    """The entries of a prompts file of several cases that named no case of the batch (a
    misspelt id, a study not in INPUT_DIR: its prompts were not used), as ``_subjects_line``
    names the subjects rows no case used; nothing for a file of one study's prompts."""
    import unicodedata

    from .._json_files import json_file_problem

    doc = json_file_problem(path, allow_nan=True)[0]  # read as the batch read it (checked before the run)
    entries = doc.get("cases") if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        return
    ids = {unicodedata.normalize("NFC", c.case) for c in cases}  # a key matches its case in either Unicode form, as prompt_file does
    unused = [k for k in entries if unicodedata.normalize("NFC", str(k)) not in ids]
    if unused:
        names = ", ".join(unused[:5]) + (", ..." if len(unused) > 5 else "")
        console.print(shown(f"prompts: {len(unused)} of the {len(entries)} cases of {path} matched no case of the batch ({names}): "
                            "not used (a case id is the input's name without its ending)"), markup=False, highlight=False, soft_wrap=True)


def _check_options(prompts, prompts_from, label_map, key_slice, auto, through, workers, scheduler) -> None:
    from ..errors import MedsegError, PromptError

    if prompts and prompts_from:
        raise PromptError("give either --prompts or --prompts-from, not both")
    if key_slice and not prompts_from:
        raise PromptError("--key-slice works with --prompts-from")
    if not (prompts or prompts_from or auto):
        raise PromptError("nothing to do: give prompts (--prompts / --prompts-from) or --auto")
    if through not in ("z", "t", "zt"):
        raise PromptError(f"--through must be z, t or zt, got {through!r}")
    if workers < 1:
        raise MedsegError(f"--workers must be 1 or more, got {workers}")
    if scheduler and workers > 1:
        raise MedsegError("give either --workers (local processes) or --scheduler (a Dask cluster), not both")


def _shard_summary(ran, part, out: Path) -> str:
    """Where the batch's summary is: written by this shard for all, or waited for."""
    from ..batch.shards import record_path, waiting_text

    if ran.merged:
        return f"{out / 'summary.csv'} (all {part.count} shards, {_cases(ran.n_cases)})"
    return f"{record_path(out, part)}; summary.csv waits for {waiting_text(ran.waiting, part.count)}: the last shard to end writes it"


def _run_with_progress(cases, options, workers, scheduler, part=None, gpu_note=None):
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ..batch import run_batch, run_batch_shard

    where = f"on {scheduler}" if scheduler else f"in {workers} processes" if workers > 1 else "in this process"
    mine = part.pick(cases) if part else cases
    of = f" (shard {part} of {_cases(len(cases))})" if part else ""
    console.print(f"batch: {_cases(len(mine))}{of} {where} -> {shown(options.out_dir)}", markup=False, highlight=False, soft_wrap=True)
    counts: Counter = Counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with progress_bar(*columns) as bar:
        task = bar.add_task("cases", total=len(mine))

        def on_result(res) -> None:
            counts[res["status"]] += 1
            if gpu_note is not None and counts["ok"] == 1 and res["status"] == "ok":  # the first case segmented
                o.note_gpu_unused(gpu_note)
            case = shown(res["case"])  # one line: a newline (or a non-UTF-8 byte) of a case name escaped
            if res["status"] == "failed":
                bar.console.print(f"[red]failed[/] {escape(case)}: {escape(shown(res['reason']))}", highlight=False, soft_wrap=True)
            bar.update(task, advance=1, description=escape(f"{case} ({counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed)"))

        if part is not None:
            return run_batch_shard(cases, options, part, workers=workers, on_result=on_result)
        return run_batch(cases, options, workers=workers, scheduler=scheduler, on_result=on_result)


def _closing_line(results, out: Path, measure: bool = False, summary: str | None = None, who: str = "batch") -> None:
    """One line; any failed case makes it the error line (exit code 1). ``summary``: where the
    summary is, when not OUT_DIR/summary.csv (a shard's)."""
    import csv

    from ..errors import MedsegError

    counts = Counter(r["status"] for r in results)
    review = [r for r in results if r.get("needs_review")]
    named = Counter(s for r in review for s in str(r.get("review_structures") or "").split())
    why = f"; flags name {', '.join(f'{s} {n}' for s, n in named.most_common())}" if named else ""
    kept = sum(r["status"] == "skipped" and str(r.get("reason", "")).startswith("kept: ") for r in results)
    older = sum(r["status"] == "skipped" and "made with other weights" in str(r.get("reason", "")) for r in results)
    older_note = f"; {older} of them made with other weights than this run's (summary.csv: reason)" if older else ""
    kept_note = f" ({kept} kept: labels corrected since, not segmented again{older_note})" if kept else ""
    line = (f"{counts['ok']} ok, {counts['skipped']} skipped{kept_note}, {counts['failed']} failed, {counts['handed_over']} handed over; "
            f"{len(review)} need{'s' if len(review) == 1 else ''} review (listed first{why}); summary: {summary or out / 'summary.csv'}")
    if measure and (out / "cohort.csv").is_file():
        with open(out / "cohort.csv", newline="", encoding="utf-8", errors="surrogateescape") as fh:  # as write_text_atomic wrote it
            rows = list(csv.DictReader(fh))
        n_rows = len(rows)
        line += f"; cohort: {out / 'cohort.csv'} ({n_rows} row{'s' if n_rows != 1 else ''})"
        if (out / "cohort.png").is_file():
            line += " and cohort.png"
        pages = sum(bool(r.get("pdf")) for r in rows)  # --pdf: the study pages (a row without one says why in measure_note)
        if pages:
            line += f"; {pages} study page{'s' if pages != 1 else ''} in {out / 'pdf'}"
    if (out / "METHODS.md").is_file():
        line += f"; methods section: {out / 'METHODS.md'}"
    reasons = {r["reason"] for r in results if r["status"] == "failed"}
    if counts["failed"] and counts["failed"] == len(results) and len(reasons) == 1:
        line += f" (every case: {reasons.pop()})"
    line = shown(line)  # the folder's and the reasons' non-UTF-8 bytes and control characters escaped
    if counts["failed"]:
        raise MedsegError(f"{who}: {counts['failed']} of {_cases(len(results))} failed: {line}")
    console.print(f"{who}: {_cases(len(results))}: {line}", markup=False, highlight=False, soft_wrap=True)


def _cases(n: int) -> str:
    return f"{n} case" if n == 1 else f"{n} cases"
