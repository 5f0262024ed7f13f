"""Running a batch: one case (segment, write atomically, resume checks, DICOM SEG) and many (in
this process, local worker processes or a Dask cluster). Rules: :mod:`medseg.batch`."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._files import sha256_path, shown, stale_temp_files
from ..errors import DISK_ERRNOS, LocalizerError, MedsegError, OutputDiskFull, PromptError, SeriesNotFoundError
from ..prompt_file import one_frame_reference_note, study_prompts
from .cases import (
    BatchOptions,
    CaseSpec,
    Result,
    _one_line,
    check_out_dir,
    dicom_seg_dir,
    handed_over_path,
    output_path,
    reference_without_image,
    review_png_path,
)
from .checks import _ref_sha, _review_fields, _review_fields_readable, _sidecar_provenance, handed_over_record, output_problem  # noqa: F401 (as before)
from .cohort import write_cohort_with_studies, write_summary
from .kept import kept_labels, label_reader, labels_sha256, refresh_outputs
from .measure_rows import measured_row
from .outdir import check_own_folders, folder_identity, out_dir_lock, remove_stale_temp_files, remove_write_probes
from .references import missing_reference
from .stale_outputs import _earlier_outputs, _empty_seg_folder, _own_outputs, _remove_outputs
from .weights import _weights_changed, weights_sha256  # noqa: F401 (medseg.batch.run.weights_sha256, as before)


class HandedOver(MedsegError):
    """Every structure of a case fell below --min-confidence: no labels are written, only the
    case's handed-over record (``record``, :func:`medseg.batch.handed_over_path`)."""

    def __init__(self, message: str, record: dict[str, Any] | None = None):
        super().__init__(message)
        self.record = record or {}


def run_case(case: CaseSpec, options: BatchOptions) -> Result:
    """Segment one case and write its outputs; never raises for bad input.

    A pure function of (case, options) apart from the files it writes, so it can run in a
    spawned process or as a Dask task. Returns a small dict: ``case``, ``status`` ("ok",
    "failed", "skipped"), ``reason``, ``seconds``, ``output``, ``input``, and with
    ``options.measure`` ``measures`` (summary keys), ``cohort_row`` and ``measure_note``.
    """
    t0 = time.perf_counter()
    res: Result = {"case": case.case, "status": "failed", "reason": "", "seconds": 0.0, "output": "", "input": case.input}
    try:
        from .._batch_exec import set_threads

        if case.error:
            kept = _earlier_outputs(case, options)  # an earlier run's outputs: the summary names none now
            if missing_reference(case.error):  # an image that cannot be read fails as such, not for the labels it lacks
                set_threads(options)
                _read_case_volume(case, options)
            raise MedsegError(case.error + kept)
        set_threads(options)
        out = output_path(options.out_dir, case.case)
        labels = label_reader(out)  # the label file read once for the checks and the measure of a case not segmented again
        kept = kept_labels(case, out, labels)  # corrected by hand (napari) or another command's: never overwritten
        problem = None if kept else output_problem(case, options, labels) if options.resume else "no --resume"
        record = handed_over_record(case, options) if options.resume and problem is not None else None
        if record is not None:
            raise HandedOver(f"{record.get('reason') or 'handed over for manual review'} (an earlier run)", record)
        if kept:
            made = _sidecar_provenance(out)  # --resume after an upgrade: kept labels of the old weights
            if made.get("model_sha256") and (changed := _weights_changed(made, options)) is not None:
                kept += f"; {changed}: made with other weights than this run's, its numbers are not this model's"
            res.update(status="skipped", reason=kept)
        elif problem is None:
            res.update(status="skipped", reason="complete output from an earlier run")
        else:
            _segment_case(case, options, out)
            labels = None  # what was read before is not what was written
            res.update(status="ok", reason="" if problem in ("no --resume", "no output yet") else f"redone: {problem}")
        res["output"] = str(out)
        res.update(_review_fields(_sidecar_provenance(out), options.dicom_seg))
        if kept:  # the batch's review sheet and DICOM SEG showed the labels before the correction
            try:
                res.update(refresh_outputs(case, options, out))
            except MedsegError:  # not remade: the case failed, its SEG is not the one the summary named
                res.update(status="failed", **({"dicom_seg": "none: not remade"} if options.dicom_seg else {}))
                raise
        if options.measure:  # the row of an earlier run when nothing it was measured from has changed
            res.update(measured_row(out, options, case.case, case.input, labels))
            if options.dicom_seg:  # the measurements as a DICOM SR beside the SEG files (medseg.batch.case_sr)
                from .case_sr import write_case_sr
                from .measure_rows import _row_store

                res.update(write_case_sr(out, dicom_seg_dir(options.out_dir, case.case), case.case, res, _row_store(options.out_dir, case.case)))
    except HandedOver as e:
        res.update(_review_fields(e.record))
        res.update(status="handed_over", reason=_one_line(str(e)), needs_review=True)
    except SeriesNotFoundError as e:
        if case.series or not options.series:
            res["reason"] = _one_line(str(e))
        else:  # another series of a study exported one folder per series (localizer, long axis): not a failure
            res.update(status="skipped", reason=_one_line(f"not the series --series names: {e}"))
    except LocalizerError as e:  # an export's scout series: nothing to segment, not a failure
        res.update(status="skipped", reason=_one_line(str(e)))
    except MedsegError as e:
        res["reason"] = _one_line(str(e))
    except OSError as e:
        if e.errno not in DISK_ERRNOS:
            res["reason"] = _one_line(f"unexpected {type(e).__name__}: {e}")
        else:  # the output disk is full or read-only: every later case would fail the same way
            res.update(reason=_one_line(f"cannot write the outputs: {e.strerror or e}"), disk_full=e.errno)
    except Exception as e:  # a bug or an unexpected library error: still only this case fails
        res["reason"] = _one_line(f"unexpected {type(e).__name__}: {e}")
    res["seconds"] = round(time.perf_counter() - t0, 3)
    return res


def _hand_over(case: CaseSpec, options: BatchOptions, out: Path, result: Any, missing: Sequence[str] = ()) -> HandedOver:
    """Every structure of the case below ``--min-confidence`` (or, ``missing``, found on no
    slice: a review flag of the record): the outputs of an earlier run removed, the
    handed-over record written (atomically; what ``--resume`` and the summary read), and the
    error that says so."""
    from .._files import write_json_atomic

    if _own_outputs(case.case, options, out):  # labels of an earlier run must not look like this run's
        _remove_outputs(options, case.case, out)
    found = " found" if missing else ""
    reason = (f"handed over for manual review: every structure{found} is below --min-confidence {options.min_confidence} "
              f"({', '.join(result.handed_over)}){'; not found: ' + ', '.join(missing) if missing else ''}")
    ref_sha = _ref_sha(case)
    conf = result.provenance.get("confidence") or {}
    record = {"command": "batch", "case": case.case, "status": "handed_over", "reason": reason, "input": str(Path(case.input).resolve()),
              "input_sha256": sha256_path(case.input), "batch_signature": options.signature(ref_sha), "min_confidence": options.min_confidence,
              **{k: result.provenance.get(k) for k in ("model_id", "model_sha256", "adapter_id", "adapter_sha256")},
              "handed_over": list(result.handed_over), "needs_review": True,
              "confidence": {k: conf[k] for k in ("volume", "thresholds") if k in conf},
              "review": result.provenance.get("review") or {"needs_review": True, "flags": []}}
    write_json_atomic(handed_over_path(options.out_dir, case.case), record)
    return HandedOver(reason, record)


def _read_case_volume(case: CaseSpec, options: BatchOptions) -> Any:
    """The case's image as the batch reads it (its series of a DICOM folder, ``--modality``)."""
    from ..io import read_volume
    from ..io.archive import folder_like

    series = case.series or options.series
    return read_volume(case.input, series=series if folder_like(case.input) else None, modality=options.modality)


def _segment_case(case: CaseSpec, options: BatchOptions, out: Path) -> None:
    """Segment the case and write its outputs; a case that fails (or is handed over) keeps no
    outputs of an earlier run (its summary row names none: a later ``--resume`` must not keep them)."""
    from .._files import check_not_inputs
    from ..io import sidecar_path

    check_not_inputs({"output labels": out, "sidecar JSON": sidecar_path(out), "review sheet": review_png_path(options.out_dir, case.case),
                      "handed-over record": handed_over_path(options.out_dir, case.case)},
                     {"image": case.input, "reference labels": case.reference, "prompts file": options.prompts})
    handed_over_path(options.out_dir, case.case).unlink(missing_ok=True)  # an earlier run's: this run decides anew
    try:
        vol, result, prov = _segmented(case, options, out)
    except HandedOver:  # its outputs removed as its record was written
        raise
    except (SeriesNotFoundError, LocalizerError):  # skipped, not failed: what an earlier run wrote stays
        raise
    except MedsegError:  # the case's own fault (unreadable now, no prompts for it now, nothing found): an earlier
        # run's outputs are not this run's; not under --resume, nor labels changed since or not batch's (_own_outputs)
        if not options.resume and _own_outputs(case.case, options, out):
            with contextlib.suppress(OSError):
                _remove_outputs(options, case.case, out)
        raise
    _write_case(case, options, out, vol, result, prov)


def _segmented(case: CaseSpec, options: BatchOptions, out: Path) -> tuple[Any, Any, dict[str, Any]]:
    """(volume, :class:`~medseg.segment.SegmentResult`, provenance) of the case; HandedOver when
    nothing is left to write and a structure was handed over, PromptError when nothing was found."""
    from .._batch_exec import torch_threads
    from ..io.archive import folder_like
    from ..io.readers import modality_facts
    from ..io.volume import spacing_facts
    from ..labels import LabelMap
    from ..segment import default_auto_structures, segment_volume

    series = case.series or options.series
    vol = _read_case_volume(case, options)
    if options.pixel_spacing:
        from ..io.volume import with_pixel_spacing

        vol = with_pixel_spacing(vol, options.pixel_spacing, case.case)
    if (orphan := reference_without_image(case, vol.array)) is not None:  # C_gt without C: not an image to segment
        raise MedsegError(orphan)
    lmap = LabelMap.parse(options.label_map) if options.label_map else None
    prompts = study_prompts(vol, options.prompts, case.reference, lmap, options.key_slice, case=case.case)
    note = one_frame_reference_note(vol, case.reference, prompts)  # one frame's boxes on every frame of a cine: said, as segment says it
    loaded = _cached_model(options.model, options.adapter, options.device, weights_sha256(options.model, options.adapter))
    structs = tuple(s.strip() for s in options.structures.split(",") if s.strip()) if options.structures else None
    result = segment_volume(vol, loaded, prompts, auto=options.auto, propagate=options.propagate, through=options.through,
                            label_map=lmap, auto_structures=structs, min_confidence=options.min_confidence, frames=options.frames)
    wanted = set(p.structure for p in prompts.prompts) if prompts else set()
    if case.reference:
        wanted |= set(result.label_map.names)
    if options.auto:
        wanted |= {s for s in (structs or default_auto_structures(vol)) if s in result.label_map and s in loaded.config.structures}
    asked = sorted(s for s in wanted if s not in result.handed_over)
    missing = [s for s in asked if not (result.labels == result.label_map[s]).any()]
    if result.handed_over and len(missing) == len(asked):  # nothing left to write (as segment: exit 3); the rest not found: flagged in the record
        raise _hand_over(case, options, out, result, missing)
    if missing and len(missing) == len(asked):  # nothing to write; one of several missing is written without it and flagged, as segment does
        raise PromptError(f"structure(s) never found on any slice: {', '.join(missing)}")
    ref_sha = _ref_sha(case)
    prov = {**result.provenance, "command": "batch", "case": case.case, "input": str(Path(case.input).resolve()),
            "input_sha256": sha256_path(case.input), "input_shape": list(vol.shape), "spacing_known": vol.spacing_known,
            "labels_sha256": labels_sha256(result.labels),  # labels changed later, in another program: kept by a re-run
            "reference": str(Path(case.reference).resolve()) if case.reference else None, "reference_sha256": ref_sha, "batch_signature": options.signature(ref_sha),
            "min_confidence": options.min_confidence, "torch_threads": torch_threads(), "scores": result.scores,
            "seconds": round(result.seconds, 3), **({"series": series} if series and folder_like(case.input) else {}),
            **({"series_uid": uid} if vol.meta.get("format") == "dicom" and (uid := vol.meta.get("series_instance_uid")) else {}), **modality_facts(vol),
            **spacing_facts(vol), **({"prompt_note": note} if note else {})}
    return vol, result, prov


def _write_case(case: CaseSpec, options: BatchOptions, out: Path, vol: Any, result: Any, prov: dict[str, Any]) -> None:
    """The labels, sidecar, review sheet and DICOM SEG of a segmented case; none of them left when one fails."""
    from ..io import sidecar_path, write_labels

    sidecar_path(out).unlink(missing_ok=True)  # an interrupted rewrite must not pair with an old sidecar
    review_png_path(options.out_dir, case.case).unlink(missing_ok=True)
    for target in (out, sidecar_path(out), review_png_path(options.out_dir, case.case), handed_over_path(options.out_dir, case.case)):  # a killed run's temporary files
        for stale in stale_temp_files(target):
            stale.unlink(missing_ok=True)
    try:
        if options.dicom_seg:  # before the NIfTI and its sidecar, which record the SEG files and mark the case complete
            prov["dicom_seg"] = _write_dicom_seg(result, vol, dicom_seg_dir(options.out_dir, case.case), case.case, prov)
        write_labels(result.labels, vol, out, result.label_map, provenance=prov)
        if options.review_png:
            from ..review import review_png

            review_png(vol, result.labels, result.label_map, prov, review_png_path(options.out_dir, case.case),
                       title=shown(case.case))  # a non-UTF-8 byte of the name: matplotlib cannot draw its surrogate
    except BaseException:
        _remove_outputs(options, case.case, out)  # a failed case leaves no part of its outputs
        raise


def _write_dicom_seg(result: Any, vol: Any, folder: Path, case_id: str, prov: dict[str, Any]) -> dict[str, Any]:
    """``--dicom-seg``: the labels as DICOM SEG in ``folder`` (emptied first; a cine gets one SEG
    per labelled frame); {"files": [names]}, or {"files": [], "note": why not} for an input that
    cannot be a SEG's source (not DICOM, no patient position, a stack of several series) or a
    SEG that could not be written (the case keeps its NIfTI)."""

    from ..errors import ImageWriteError
    from ..io import write_labels
    from ..io.seg_writer import check_dicom_source

    _empty_seg_folder(folder, case_id)
    try:
        check_dicom_source(vol)
    except ImageWriteError as e:
        return {"files": [], "note": _one_line(str(e)).removesuffix(": write .nii.gz instead")}
    try:
        written = write_labels(result.labels, vol, folder / f"{case_id}.dcm", result.label_map, provenance=prov)
    except Exception as e:  # highdicom on an unusual source: the case keeps its NIfTI, the summary says why
        _empty_seg_folder(folder, case_id)
        return {"files": [], "note": _one_line(f"writing it failed: {e}")}
    return {"files": sorted(p.name for p in written if p.suffix == ".dcm")}


@functools.lru_cache(maxsize=2)
def _cached_model(model: str, adapter: str | None, device: str, weights: tuple[str | None, str | None] = (None, None)):
    """The loaded model, once per process and weights (``weights``: their sha256, so that weights
    changed in the same file are loaded anew; workers load it themselves; nothing is shipped)."""
    from ..models import load_model

    return load_model(model, device=device, adapter=adapter)


def run_batch(cases: Sequence[CaseSpec], options: BatchOptions, workers: int = 1, scheduler: Any = None,
              on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Run every case (in this process, ``workers`` spawned processes, or on a Dask cluster).

    Args:
        workers: local processes (1 = in this process); each loads the model once and uses
            ``max(1, cores // workers)`` torch threads (cores: no more than ``$OMP_NUM_THREADS``).
        scheduler: a Dask scheduler address (``tcp://host:8786``) or a ``distributed.Client``;
            one task per case, results taken as they complete.
        on_result: called with each case's result dict as it finishes (progress bars).
    Returns: the result dicts sorted by case id. ``summary.csv``/``summary.json`` in
    ``options.out_dir`` are rewritten after every case (a summary of many rows, slow to
    rewrite: every so often, at most ~1/10 of the run's time), at the end and when the run is
    interrupted; ``cohort.csv`` at the end (measure). Every path is made absolute first (the cases', the
    output folder, the prompts file, the model and adapter files): a worker process or a Dask
    worker may have another working folder. The temporary files a killed run left beside the
    batch's and the cases' outputs are removed first.
    Raises:
        OutputDiskFull: the output disk filled or became read-only (the summary says how far it got).
        OutputFolderBusy: another batch is writing to ``options.out_dir`` (:mod:`medseg.batch.outdir`).
    """
    options = options.absolute()
    cases = [c.absolute() for c in cases]
    check_out_dir(options.out_dir)
    check_own_folders(options.out_dir)
    with out_dir_lock(options.out_dir):  # before the clean-up: another batch's temporary files are not stale
        return _run_locked(cases, options, workers, scheduler, on_result)


def run_batch_shard(cases: Sequence[CaseSpec], options: BatchOptions, shard: Any, workers: int = 1,
                    on_result: Callable[[Result], None] | None = None) -> Any:
    """Shard ``shard`` (:class:`medseg.batch.shards.Shard`) of the batch over ``cases`` (all of
    them: the shard picks its own), beside the other shards in one OUT_DIR; the shard that ends
    last writes the batch's summary and cohort (:mod:`medseg.batch.shards`). Returns a
    :class:`medseg.batch.shards.ShardRun`. Raises as :func:`run_batch`."""
    from .shards import run_shard

    options = options.absolute()
    cases = [c.absolute() for c in cases]
    check_out_dir(options.out_dir)
    check_own_folders(options.out_dir)
    ran = run_shard(cases, options, shard, lambda picked, records: _run_locked(picked, options, workers, None, on_result, records))
    if ran.merged:  # the shard that ended last: the batch's methods section (medseg.methods)
        from ..methods import write_batch_methods

        write_batch_methods(options.out_dir)
    return ran


def _run_locked(cases: Sequence[CaseSpec], options: BatchOptions, workers: int, scheduler: Any,
                on_result: Callable[[Result], None] | None, records: Any = None) -> list[Result]:
    """:func:`run_batch` once it holds the output folder's lock. ``records``: a shard's
    (:class:`medseg.batch.shards.ShardRecords`), which its rows go to instead of the summary
    (and no cohort: the shard that ends last merges them)."""
    remove_stale_temp_files(options.out_dir, [c.case for c in cases], own_files=records is None)
    from ..methods import METHODS_FILE

    (Path(options.out_dir) / METHODS_FILE).unlink(missing_ok=True)  # an earlier run's: rewritten when this one ends, not left to describe it
    results: dict[str, Result] = {}

    def write_rows(state: str = "running") -> None:
        if records is None:
            write_summary(options.out_dir, ordered(), options)
        else:
            records.write(ordered(), state)

    def ordered() -> list[Result]:
        return [results[k] for k in sorted(results)]

    def stopped(why: str, res: Result, err: int | None) -> OutputDiskFull:
        import errno

        fix = "free space" if err in (errno.ENOSPC, errno.EDQUOT) else "make the output folder writable (or free space)"
        done = sum(r["status"] != "failed" for r in results.values())
        return OutputDiskFull(f"stopped: {why} ({options.out_dir}; case {res['case']}); {done} of {len(cases)} case{_s(len(cases))} done, "
                              f"{len(cases) - len(results)} case(s) not run: {fix}, then run the same command with --resume to go on")

    folder = folder_identity(options.out_dir)
    # the summary is rewritten after each case while a rewrite is quick; once it takes longer than
    # _SUMMARY_QUICK_S (~500 rows), no more often than every _SUMMARY_EVERY rewrite-times: every case of a
    # --resume of 5,000 finished cases re-encoded all rows (O(n^2)); the rows not yet in it are written at the end
    last = {"end": 0.0, "took": 0.0, "behind": None}

    def summary(res: Result, force: bool = False) -> None:
        now = _clock()
        if not force and last["took"] > _SUMMARY_QUICK_S and now - last["end"] < _SUMMARY_EVERY * last["took"]:
            last["behind"] = res
            return
        try:
            write_rows()
        except OSError as e:  # the output folder became read-only or full between cases
            raise stopped(_one_line(f"cannot write the summary: {e.strerror or e}"), res, e.errno) from None
        last.update(end=_clock(), took=_clock() - now, behind=None)

    def emit(res: Result) -> None:
        results[f"{res['case']}\0{res['input']}"] = res
        disk_full = res.pop("disk_full", False)
        if folder_identity(options.out_dir) != folder:  # rm -rf OUT_DIR: the next write made it anew; a summary would list outputs now gone
            raise OutputDiskFull(f"stopped: the output folder {options.out_dir} was removed or replaced while the batch ran (case {res['case']}): "
                                 "run the same command with --resume to go on (it redoes the cases whose outputs went with it)")
        summary(res, force=bool(disk_full))
        if on_result:
            on_result(res)
        if disk_full:
            raise stopped(res["reason"], res, disk_full)

    from .._batch_exec import cpu_budget, run_dask, run_local

    try:
        if scheduler is not None:
            run_dask(cases, options, scheduler, emit)
        elif workers > 1:
            started = min(workers, len(cases)) or workers  # the processes run_local starts: 2 cases of --workers 8 share the CPUs in two
            run_local(cases, dataclasses.replace(options, threads=max(1, cpu_budget() // started)), started, emit)
        else:
            for case in cases:
                emit(run_case(case, options))
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM (the CLI's handler): the summary of the cases done, even none
        try:
            write_rows("interrupted")
        except OSError:
            pass
        raise
    except Exception as e:  # a lost Dask cluster, ...: the rows a slow summary had not taken yet (a stop of this module's: as it said)
        if (last["behind"] is not None or records is not None) and not isinstance(e, OutputDiskFull):
            try:
                write_rows("stopped")
            except OSError:
                pass
        raise
    finally:  # a worker ended while it proved the folder writable (a crash, Ctrl-C, a full disk) left its probe file
        remove_write_probes(options.out_dir, older_than_s=60.0 if records is not None else 0.0)  # other shards' are live
    if records is not None:
        try:
            records.write(ordered(), "done")
        except OSError as e:
            raise OutputDiskFull(f"cannot write this shard's record in {options.out_dir} ({e.strerror or e}): every case of it is done; "
                                 "run it again with --resume") from None
        return ordered()
    if last["behind"] is not None:
        summary(last["behind"], force=True)
    if options.measure:
        rows = ordered()
        try:
            write_cohort_with_studies(options, rows)
        except OSError as e:
            raise OutputDiskFull(f"cannot write cohort.csv in {options.out_dir} ({e.strerror or e}): every case is done; "
                                 "run the same command with --resume to measure again") from None
    from ..methods import write_batch_methods

    write_batch_methods(options.out_dir)  # OUT_DIR/METHODS.md, from the summary, sidecars and cohort just written
    return ordered()


#: a summary rewrite taking longer than this (seconds) is not done after every case, but once
#: _SUMMARY_EVERY times its duration has passed since the last one (at most ~1/_SUMMARY_EVERY of the run)
_SUMMARY_QUICK_S, _SUMMARY_EVERY = 0.02, 10
_clock = time.monotonic


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def failed_result(case: CaseSpec, reason: str) -> Result:
    """The result dict of a case that failed outside :func:`run_case` (a dead worker, ...)."""
    return {"case": case.case, "status": "failed", "reason": _one_line(reason), "seconds": 0.0, "output": "", "input": case.input}
