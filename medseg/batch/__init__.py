"""Batch segmentation of a folder of studies (``medseg batch``): cases, resume, local worker
processes and Dask clusters. Library only: no typer/rich; progress goes through callbacks.

Modules: :mod:`.cases` (discovery, outputs, settings), :mod:`.case_names` (what a case name says), :mod:`.run` (one case and many),
:mod:`.cohort` (measurements, summary and cohort tables); executors in :mod:`medseg._batch_exec`.

Rules (also in docs/batch.md):

* **Cases.** Every readable file in INPUT_DIR (``medseg.io.readers.EXTENSIONS``:
  .nii/.nii.gz/.mha/.mhd/.nrrd/.png/.avi/.mp4/.dcm/...; extension-less files with the DICOM
  ``DICM`` marker; a ``.zip``, read as the DICOM folder or one image file it holds:
  :mod:`medseg.io.archive`) is one case, and every folder whose files include DICOM is one case (its
  series is read with ``read_volume``), except sibling series folders that are the slices of one
  stack (a short-axis cine exported one series per slice, one folder each: one study, size,
  orientation and spacing, one slice position per folder), whose parent folder is the case
  (beside a study's other series: at least :data:`MIN_STACK_SERIES` such folders, read with a
  selector naming their series; with ``--series``: the series folders it names);
  other folders are searched (:data:`MAX_DEPTH` levels:
  a DICOM export's patient / study / series folders, ACDC's ``patientNNN/``). Case id = file
  name without its known extension (``p01.nii.gz`` -> ``p01``) or the folder name, prefixed by
  the folders below INPUT_DIR where two cases share it. Hidden entries, other files, a
  ``DICOMDIR``, OUT_DIR and the ``--prompts-from`` folder are ignored, and so are a reference
  label file lying next to its image (``p01_gt.nii.gz`` beside ``p01.nii.gz``; suffixes
  :data:`REFERENCE_SUFFIXES`), label files medseg wrote (their sidecar lists them) and
  earlier batch outputs. Two inputs of one folder with the same case id both fail (rename one).
  INPUT_DIR that is itself one DICOM case (DICOM files only, no sub-folders) is one case.
  Paths are made absolute (:meth:`CaseSpec.absolute`, :meth:`BatchOptions.absolute`): Dask
  workers have another working folder.
* **References** (``--prompts-from DIR``): for case ``C`` the first of ``C_gt``, ``C_labels``,
  ``C_label``, ``C_seg``, ``C_segmentation``, ``C_mask``, ``C_manual`` (MS-CMRSeg), ``C`` that exists in DIR with a readable extension (never the case's
  own image; DIR = INPUT_DIR: in the case's own folder, by its file or folder name); two
  extensions for the same name are ambiguous and fail the case.
* **Outputs.** ``OUT_DIR/<case>.nii.gz`` + ``OUT_DIR/<case>.json`` (label map + provenance,
  from :func:`medseg.io.write_labels`, both atomic); ``OUT_DIR/<case>_review.png`` with
  ``review_png``; ``summary.csv``/``summary.json`` rewritten after every case (a long summary: every so often, :func:`run_batch`); ``cohort.csv``
  with ``measure``: a row per measured case, and a row per echo study whose apical views are
  cases named ``<study>_<view>_<phase>`` (:data:`ECHO_VIEW_CASE`, CAMUS's names), measured
  together (:func:`echo_study_rows`: single-plane from the 4-chamber ED and ES, biplane with the
  2-chamber ones), and a row per short-axis study whose ED and ES stacks are cases named
  ``<study>_ED`` / ``<study>_ES``, or whose frames are cases named ``<study>_frame<NN>`` (ACDC;
  ED and ES = the frames of largest and smallest LV) (:func:`stack_study_rows`); with ``pdf``, each
  measured case's and study row's page in ``OUT_DIR/pdf/`` (:mod:`.pages`). A case whose
  every structure falls below ``min_confidence`` writes no labels: status ``handed_over`` and
  its record ``OUT_DIR/handed_over/<case>.json`` (:func:`handed_over_path`: the settings
  signature, the input's sha256, the structures, confidences and review flags; atomic). One
  batch at a time per OUT_DIR (:func:`medseg.batch.outdir.out_dir_lock`: a second is refused),
  or the shards of one ``--shard K/N`` run side by side (:mod:`.shards`: the last to end writes
  the summary and cohort).
* **Resume.** A case is skipped when its output is complete and valid: the label file and its
  sidecar exist, the sidecar records ``command: batch``, the input's current sha256, the same
  settings signature (:meth:`BatchOptions.signature`: prompts, label map, ...) and the model
  and adapter sha256 of the weights named now (:func:`medseg.batch.weights.weights_sha256`), and
  the label file reads back in full with the input's (Z, Y, X) grid (with ``review_png``: and
  the review PNG exists). The old sidecar and review PNG are deleted before a new label file is
  written, so a crash mid-case never leaves a valid-looking pair; the temporary files a killed
  run left are removed when the next run starts (:func:`medseg.batch.outdir.remove_stale_temp_files`).
  A case handed over entirely is done when its handed-over record is valid the same way
  (``command: batch``, the input's sha256, the same signature, which holds ``min_confidence``,
  the same weights): it is not run again and keeps status ``handed_over``.
* **Kept.** Labels saved over a case's output whose sidecar is not a batch's (corrected in
  napari, or another command's) are never segmented again, with ``resume`` or without
  (:func:`medseg.batch.kept.kept_labels`): skipped and measured, ``reason: kept: ...``; saved
  for another image, the case fails and they stay.
"""

from .cases import (
    ECHO_VIEW_CASE,
    FRAME_CASE,
    MAX_DEPTH,
    MIN_STACK_SERIES,
    OUTPUT_ENDING,
    REFERENCE_SUFFIXES,
    BatchOptions,
    CaseSpec,
    Result,
    case_id,
    check_out_dir,
    dicom_seg_dir,
    discover_cases,
    echo_view,
    echo_view_keys,
    find_reference,
    handed_over_path,
    labels_echo_view,
    output_path,
    review_png_path,
    split_phase,
    study_of,
)
from .cohort import (
    KEY_MEASURES,
    SUMMARY_FIELDS,
    echo_study_rows,
    overview_rows,
    stack_study_rows,
    write_cohort,
    write_summary,
)
from .run import HandedOver, failed_result, handed_over_record, output_problem, run_batch, run_batch_shard, run_case
from .shards import Shard

__all__ = [
    "ECHO_VIEW_CASE", "FRAME_CASE", "KEY_MEASURES", "MAX_DEPTH", "MIN_STACK_SERIES", "OUTPUT_ENDING", "REFERENCE_SUFFIXES",
    "SUMMARY_FIELDS", "BatchOptions", "CaseSpec", "HandedOver", "Result", "case_id", "check_out_dir", "dicom_seg_dir",
    "discover_cases", "echo_study_rows", "echo_view", "echo_view_keys", "failed_result", "find_reference", "handed_over_path",
    "handed_over_record", "labels_echo_view", "output_path", "output_problem", "overview_rows", "review_png_path", "run_batch", "run_batch_shard", "run_case",
    "Shard", "split_phase", "stack_study_rows", "study_of", "write_cohort", "write_summary",
]
