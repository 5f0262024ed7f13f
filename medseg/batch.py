"""Batch segmentation of a folder of studies (``medseg batch``): cases, resume, local worker
processes and Dask clusters. Library only: no typer/rich; progress goes through callbacks.

Rules (also in docs/batch.md; executors in :mod:`medseg._batch_exec`):

* **Cases.** Every readable file in INPUT_DIR (``medseg.io.readers.EXTENSIONS``:
  .nii/.nii.gz/.mha/.mhd/.nrrd/.png/.avi/.mp4/.dcm/...; extension-less files with the DICOM
  ``DICM`` marker) is one case, and every folder whose files include DICOM is one case (its
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
* **References** (``--prompts-from DIR``): for case ``C`` the first of ``C_gt``, ``C_labels``,
  ``C_label``, ``C_seg``, ``C_segmentation``, ``C_mask``, ``C_manual`` (MS-CMRSeg), ``C`` that exists in DIR with a readable extension (never the case's
  own image; DIR = INPUT_DIR: in the case's own folder, by its file or folder name); two
  extensions for the same name are ambiguous and fail the case.
* **Outputs.** ``OUT_DIR/<case>.nii.gz`` + ``OUT_DIR/<case>.json`` (label map + provenance,
  from :func:`medseg.io.write_labels`, both atomic); ``OUT_DIR/<case>_review.png`` with
  ``review_png``; ``summary.csv``/``summary.json`` rewritten after every case; ``cohort.csv``
  with ``measure``: a row per measured case, and a row per echo study whose apical views are
  cases named ``<study>_<view>_<phase>`` (:data:`ECHO_VIEW_CASE`, CAMUS's names), measured
  together (:func:`echo_study_rows`: single-plane from the 4-chamber ED and ES, biplane with the
  2-chamber ones), and a row per short-axis study whose ED and ES stacks are cases named
  ``<study>_ED`` / ``<study>_ES``, or whose frames are cases named ``<study>_frame<NN>`` (ACDC;
  ED and ES = the frames of largest and smallest LV) (:func:`stack_study_rows`).
* **Resume.** A case is skipped when its output is complete and valid: the label file and its
  sidecar exist, the sidecar records ``command: batch``, the input's current sha256 and the same
  settings signature (:meth:`BatchOptions.signature`: prompts, label map, model, adapter, ...),
  and the label file reads back in full with the input's (Z, Y, X) grid (with ``review_png``:
  and the review PNG exists). The old sidecar and review PNG are deleted before a new label
  file is written, so a crash mid-case never leaves a valid-looking pair (stray hidden ``.tmp``
  files are removed when the case is redone).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import os
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._files import sha256_path
from .errors import MedsegError, PromptError
from .prompt_file import study_prompts

REFERENCE_SUFFIXES = ("_gt", "_labels", "_label", "_seg", "_segmentation", "_mask", "_manual")
OUTPUT_ENDING = ".nii.gz"
SUMMARY_FIELDS = ("case", "status", "needs_review", "confidence", "review_flags", "handed_over", "reason", "seconds", "output", "input")
#: report_row keys copied into the summary with ``measure`` (those present for the case)
KEY_MEASURES = ("lv.edv_ml", "lv.esv_ml", "lv.ef_pct", "rv.edv_ml", "rv.ef_pct", "lv_mass_g",
                "volumes_ml.lv", "volumes_ml.myo", "volumes_ml.rv")

Result = dict[str, Any]
#: an apical echo view image: ``<study>_<view>_<phase>`` (CAMUS: ``patient0001_4CH_ED``)
ECHO_VIEW_CASE = re.compile(r"^(?P<study>.+?)[_-](?P<view>2CH|4CH|A2C|A4C)[_-](?P<phase>ED|ES)$", re.IGNORECASE)
#: one frame of a cine saved as a stack of its own: ``<study>_frame<NN>`` (ACDC: ``patient001_frame01``)
FRAME_CASE = re.compile(r"^(?P<study>.+?)[_-]frame[_-]?(?P<frame>\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class CaseSpec:
    """One study of a batch. ``error`` marks a case that fails before it runs."""

    case: str
    input: str
    reference: str | None = None
    error: str | None = None
    series: str | None = None  # the series of a study folder that form its stack (discovery), else --series


@dataclass(frozen=True)
class BatchOptions:
    """Settings of a batch (everything a worker needs; small and picklable)."""

    out_dir: str
    prompts: str | None = None  # prompts file (single- or multi-case)
    label_map: str | None = None  # text, e.g. "lv=1,myo=2,rv=3"
    key_slice: bool = False
    auto: bool = False
    structures: str | None = None
    propagate: bool = False
    through: str = "z"
    model: str = "default"
    adapter: str | None = None
    device: str = "cpu"
    resume: bool = False
    measure: bool = False
    min_confidence: float | None = None  # leave out structures (or whole cases) below this confidence
    review_png: bool = False  # also write <case>_review.png (medseg.review.review_png)
    series: str | None = None  # DICOM folder cases: the series to read (medseg.io.dicom.series_matches)
    subjects: tuple[Any, ...] = ()  # --subjects: medseg.subjects.Subject rows, body data for --measure
    dicom_seg: bool = False  # also write a DICOM study's labels as DICOM SEG in OUT_DIR/<case>_seg/
    modality: str | None = None  # --modality: segment every case as this modality
    threads: int | None = None  # torch threads per process (None: torch's default)
    threads_by_host: tuple[tuple[str, int], ...] = ()  # Dask: worker threads per host

    def signature(self, reference_sha256: str | None = None) -> str:
        """sha256 of the settings that change the labels (and of the case's prompt source)."""
        from ._files import sha256_file

        keys = ("label_map", "key_slice", "auto", "structures", "propagate", "through", "model", "adapter")
        obj: dict[str, Any] = {k: getattr(self, k) for k in keys}
        obj["prompts_sha256"] = sha256_file(self.prompts) if self.prompts and Path(self.prompts).is_file() else None
        obj["reference_sha256"] = reference_sha256
        if self.series:
            obj["series"] = self.series
        if self.modality:
            obj["modality"] = self.modality
        return _sha256_text(json.dumps(obj, sort_keys=True))


# -- cases ------------------------------------------------------------------------------
def case_id(path: str | os.PathLike) -> str | None:
    """Case id of an input (file name without its known extension, or the folder name), or
    None when medseg cannot read it as a case."""
    from .io.readers import EXTENSIONS, has_dicm_marker

    p = Path(path)
    if p.name.startswith(".") or p.name.upper() == "DICOMDIR":  # DICOMDIR: an export's index, not an image
        return None
    if p.is_dir():
        return p.name if _holds_dicom(p) else None
    name = p.name
    for ext in sorted(EXTENSIONS, key=len, reverse=True):
        if name.lower().endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return name if has_dicm_marker(p) else None


def _holds_dicom(folder: Path) -> bool:
    from .io.readers import has_dicm_marker

    files = [f for f in sorted(folder.iterdir()) if f.is_file() and not f.name.startswith(".") and f.name.upper() != "DICOMDIR"]
    return any(f.suffix.lower() in (".dcm", ".dicom", ".ima") for f in files) or any(has_dicm_marker(f) for f in files[:8])


def discover_cases(input_dir: str | os.PathLike, prompts_from: str | os.PathLike | None = None,
                   exclude: Iterable[str | os.PathLike] = (), series: str | None = None) -> list[CaseSpec]:
    """The cases of ``input_dir`` and its sub-folders, sorted by case id (see the module
    docstring for the rules).

    Args:
        prompts_from: folder of reference labels; each case gets its ``reference`` (from the
            case's own folder when it is ``input_dir``: references beside their images).
        exclude: folders to leave out (OUT_DIR when it lies inside ``input_dir``).
        series: ``--series``: of a study's series folders, those it names are the stack to
            group (their siblings are left out), not all of them.
    Raises:
        MedsegError: ``input_dir`` (or ``prompts_from``) is not a folder.
    """
    root = Path(input_dir)
    if not root.is_dir():
        raise MedsegError(f"input folder not found (or not a folder): {root}")
    ref_dir = Path(prompts_from) if prompts_from is not None else None
    if ref_dir is not None and not ref_dir.is_dir():
        raise PromptError(f"--prompts-from for batch must be a folder of reference labels, got: {ref_dir}")
    skip = {Path(p).resolve() for p in exclude} | ({ref_dir.resolve()} if ref_dir else set())
    beside = ref_dir is not None and ref_dir.resolve() == root.resolve()
    with warnings.catch_warnings():  # pydicom warns of UIDs real scanners write (non-conformant, as in Sunnybrook)
        warnings.simplefilter("ignore")
        walked = _walk(root, skip, series)
    stacks = {p: sel for _, p, _, sel in walked if sel}
    by_name = Counter(name for name, _, _, _ in walked)
    found = [("_".join((*rel, name)) if by_name[name] > 1 else name, name, p) for name, p, rel, _ in walked]
    counts = Counter(cid for cid, _, _ in found)
    cases = []
    for cid, name, p in found:
        err, ref = None, None
        if counts[cid] > 1:
            names = ", ".join(str(q.relative_to(root)) for c, _, q in found if c == cid)
            err = f"case id {cid!r} is shared by {names}: rename one"
        elif ref_dir is not None:
            try:
                ref = find_reference(name, p.parent, p) if beside else find_reference(cid, ref_dir, p)
            except MedsegError as e:
                err = str(e)
        cases.append(CaseSpec(cid, str(p), str(ref) if ref else None, err, stacks.get(p)))
    return sorted(cases, key=lambda c: c.case)


#: Sub-folders deeper than this below INPUT_DIR are not searched (patient / study / series is 3).
MAX_DEPTH = 6


def _walk(root: Path, skip: set[Path], series: str | None = None) -> list[tuple[str, Path, tuple[str, ...], str | None]]:
    """(name, path, folders below ``root``) of every case in ``root`` and the sub-folders that
    are not cases themselves (a DICOM export's patient / study / series folders), leaving out
    the folders in ``skip``, hidden entries, reference labels beside their image, label files
    medseg wrote (their sidecar lists them) and earlier batch outputs (summary.json + .csv).
    The last item is the series selector of a study folder whose stack is some of its series."""
    out: list[tuple[str, Path, tuple[str, ...], str | None]] = []
    seen: set[Path] = set()

    def visit(folder: Path, rel: tuple[str, ...]) -> None:
        if folder.resolve() in seen or len(rel) > MAX_DEPTH:
            return
        seen.add(folder.resolve())
        here, sub = [], []
        for p in sorted(folder.iterdir()):
            if p.name.startswith(".") or p.resolve() in skip:
                continue
            cid = case_id(p)
            if cid is not None:
                if not (p.is_file() and _medseg_labels(p)):
                    here.append((cid, p))
            elif p.is_dir() and not ((p / "summary.json").is_file() and (p / "summary.csv").is_file()):
                sub.append(p)
        ids = {cid for cid, _ in here} | {p.name for p in sub}  # X_gt beside folder X (a study folder too) is X's reference
        dirs = [p for _, p in here if p.is_dir()]
        stack = dirs if len(dirs) == len(here) else []
        if series and len(dirs) >= 2:  # --series: the series it names, beside others (localizers, long axis)
            stack = [p for p in dirs if _folder_in_series(p, series)]
        if len(stack) >= 2 and _one_stack(stack):
            # a study exported one series folder per slice (a short-axis cine): one case, the folder
            out.append((folder.name, folder, rel[:-1], None))
            here = [(cid, p) for cid, p in here if not p.is_dir()]
        elif not series and len(dirs) >= 3 and (part := _stack_among(dirs)) is not None:
            # the same beside other series (localizer, long-axis cines): the stack's series are one case
            folders, selector = part
            out.append((folder.name, folder, rel[:-1], selector))
            here = [(cid, p) for cid, p in here if p not in folders]
        out.extend((cid, p, rel, None) for cid, p in here if not any(cid.endswith(s) and cid[: -len(s)] in ids for s in REFERENCE_SUFFIXES))
        for p in sub:
            visit(p, (*rel, p.name))

    visit(root, ())
    return out


def _folder_in_series(folder: Path, series: str) -> bool:
    """Whether the first DICOM image of a series folder belongs to the series ``--series`` names."""
    from .io.dicom import series_matches
    from .io.dicom_frames import is_image, read_header

    for p in sorted(q for q in folder.iterdir() if q.is_file() and not q.name.startswith(".")):
        try:
            ds = read_header(p, strict=False)
        except Exception:
            return False
        if ds is not None and is_image(ds):
            return series_matches(ds, series)
    return False


#: At least this many slice-series folders beside a study's other series make a stack of their own.
MIN_STACK_SERIES = 3


def _stack_among(dirs: list[Path]) -> tuple[list[Path], str] | None:
    """Of a study's series folders, the largest set (>= :data:`MIN_STACK_SERIES`) that form one
    stack, and a series selector naming exactly their series (``"UID|UID|..."``); None when none."""
    from .io.dicom_frames import frames_from_classic, is_image, read_header

    groups: dict[tuple, list[tuple[Path, str]]] = {}
    for d in dirs:
        first = next((q for q in sorted(d.iterdir()) if q.is_file() and not q.name.startswith(".")), None)
        try:
            ds = read_header(first, strict=False) if first is not None else None
            if ds is None or not is_image(ds):
                continue
            f = frames_from_classic(ds, first)[0]
        except Exception:
            continue
        key = (str(ds.get("StudyInstanceUID", "")), f.rows, f.cols, tuple(round(v, 3) for v in f.iop or ()), f.pixel_spacing)
        groups.setdefault(key, []).append((d, f.series_uid))
    for members in sorted(groups.values(), key=len, reverse=True):
        folders = [d for d, _ in members]
        uids = list(dict.fromkeys(u for _, u in members))
        if len(members) >= MIN_STACK_SERIES and len(uids) == len(members) and all(uids) and _one_stack(folders):
            return folders, "|".join(uids)
    return None


def _one_stack(folders: list[Path]) -> bool:
    from .io.dicom import series_folders_form_a_stack

    try:
        return series_folders_form_a_stack(folders)
    except Exception:  # unreadable headers: each folder stays a case and reports its own error
        return False


def _medseg_labels(p: Path) -> bool:
    """A label file medseg wrote: its sidecar JSON names it (or, from before sidecars named
    their files, is a medseg sidecar with provenance)."""
    from .io import read_sidecar

    side = read_sidecar(p)
    if side is None:
        return False
    owners = side.get("labels")
    return p.name in owners if isinstance(owners, list) else "provenance" in side


def find_reference(case: str, ref_dir: str | os.PathLike, image: str | os.PathLike | None = None) -> Path:
    """The reference label file of ``case`` in ``ref_dir`` (rule in the module docstring)."""
    from .io.readers import EXTENSIONS

    ref_dir = Path(ref_dir)
    own = Path(image).resolve() if image is not None else None
    endings = [e for e, kind in EXTENSIONS.items() if kind != "video"]
    for suffix in (*REFERENCE_SUFFIXES, ""):
        stem = case + suffix
        hits = [ref_dir / (stem + e) for e in endings if (ref_dir / (stem + e)).is_file() and (ref_dir / (stem + e)).resolve() != own]
        if len(hits) > 1:
            raise PromptError(f"reference labels for case {case!r} are ambiguous: {', '.join(h.name for h in hits)}")
        if hits:
            return hits[0]
    raise PromptError(f"no reference labels for case {case!r} in {ref_dir} (looked for {case} + {', '.join(REFERENCE_SUFFIXES)} or nothing, + .nii.gz etc.)")


def output_path(out_dir: str | os.PathLike, case: str) -> Path:
    return Path(out_dir) / f"{case}{OUTPUT_ENDING}"


def review_png_path(out_dir: str | os.PathLike, case: str) -> Path:
    return Path(out_dir) / f"{case}_review.png"


def dicom_seg_dir(out_dir: str | os.PathLike, case: str) -> Path:
    """``--dicom-seg``: the folder of a case's DICOM SEG file(s) (a cine: one per frame) and
    their sidecars (``<case>.json`` would clash with the NIfTI's beside it)."""
    return Path(out_dir) / f"{case}_seg"


def check_out_dir(out_dir: str | os.PathLike, not_these: dict[str, Any] | None = None) -> Path:
    """Create ``out_dir`` and prove it is writable; raise a one-line MedsegError if not, or if
    it is one of the folders ``not_these`` ({"input": INPUT_DIR, "--prompts-from": DIR}):
    outputs there would replace the studies (``case.nii.gz``) or be read as references on a
    re-run."""
    import tempfile

    out = Path(out_dir)
    for what, folder in (not_these or {}).items():
        if folder is not None and Path(folder).is_dir() and out.is_dir() and os.path.samefile(out, folder):
            raise MedsegError(f"the output folder {out} is the {what} folder: outputs would replace or mix with "
                              "the files there; choose another output folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".medseg-write-test-"):
            pass
    except OSError as e:
        raise MedsegError(f"output folder {out} is not writable: {e.strerror or e}") from None
    return out


# -- one case (runs in workers) ------------------------------------------------------------
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
        if case.error:
            raise MedsegError(case.error)
        from ._batch_exec import set_threads

        set_threads(options)
        out = output_path(options.out_dir, case.case)
        problem = output_problem(case, options) if options.resume else "no --resume"
        if problem is None:
            res.update(status="skipped", reason="complete output from an earlier run")
        else:
            _segment_case(case, options, out)
            res.update(status="ok", reason="" if problem in ("no --resume", "no output yet") else f"redone: {problem}")
        res["output"] = str(out)
        res.update(_review_fields(out, options.dicom_seg))
        if options.measure:
            res.update(_measure(out, options, case.case, case.input))
    except HandedOver as e:
        res.update(status="handed_over", reason=_one_line(str(e)), needs_review=True)
    except MedsegError as e:
        res["reason"] = _one_line(str(e))
    except Exception as e:  # a bug or an unexpected library error: still only this case fails
        res["reason"] = _one_line(f"unexpected {type(e).__name__}: {e}")
    res["seconds"] = round(time.perf_counter() - t0, 3)
    return res


def output_problem(case: CaseSpec, options: BatchOptions) -> str | None:
    """None when the case's output is complete and valid for these settings, else why not."""
    from .io import read_label_volume, sidecar_path

    out = output_path(options.out_dir, case.case)
    side = sidecar_path(out)
    if not out.is_file() or not side.is_file():
        return "no output yet"
    try:
        prov = json.loads(side.read_text()).get("provenance", {})
    except (OSError, ValueError, AttributeError):
        return "sidecar unreadable"
    if prov.get("command") != "batch" or prov.get("input_sha256") != sha256_path(case.input):
        return "input changed"
    if prov.get("batch_signature") != options.signature(_ref_sha(case)):
        return "settings changed"
    try:
        lab = read_label_volume(out)
    except MedsegError as e:
        return f"label file unreadable ({e})"
    shape = prov.get("input_shape") or [0, 0, 0, 0]
    if list(lab.grid_shape) != list(shape[1:]) or lab.n_frames not in (1, shape[0]):
        return "label grid differs from the input"
    if options.review_png and not review_png_path(options.out_dir, case.case).is_file():
        return "no review PNG yet"
    if options.dicom_seg:
        seg = prov.get("dicom_seg")
        if not isinstance(seg, dict):
            return "no DICOM SEG yet"
        if not all((dicom_seg_dir(options.out_dir, case.case) / name).is_file() for name in seg.get("files", [])):
            return "DICOM SEG file missing"
    return None


def _segment_case(case: CaseSpec, options: BatchOptions, out: Path) -> None:
    from ._batch_exec import torch_threads
    from ._files import check_not_inputs
    from .io import read_volume, sidecar_path, write_labels
    from .io.readers import modality_facts
    from .labels import LabelMap
    from .segment import default_auto_structures, segment_volume

    check_not_inputs({"output labels": out, "sidecar JSON": sidecar_path(out), "review sheet": review_png_path(options.out_dir, case.case)},
                     {"image": case.input, "reference labels": case.reference, "prompts file": options.prompts})
    series = case.series or options.series
    vol = read_volume(case.input, series=series if Path(case.input).is_dir() else None, modality=options.modality)
    lmap = LabelMap.parse(options.label_map) if options.label_map else None
    prompts = study_prompts(vol, options.prompts, case.reference, lmap, options.key_slice, case=case.case)
    loaded = _cached_model(options.model, options.adapter, options.device)
    structs = tuple(s.strip() for s in options.structures.split(",") if s.strip()) if options.structures else None
    result = segment_volume(vol, loaded, prompts, auto=options.auto, propagate=options.propagate, through=options.through,
                            label_map=lmap, auto_structures=structs, min_confidence=options.min_confidence)
    wanted = set(p.structure for p in prompts.prompts) if prompts else set()
    if case.reference:
        wanted |= set(result.label_map.names)
    if options.auto:
        wanted |= {s for s in (structs or default_auto_structures(vol)) if s in result.label_map and s in loaded.config.structures}
    if result.handed_over and not (set(wanted) - set(result.handed_over)):
        raise HandedOver(f"handed over for manual review: every structure is below --min-confidence {options.min_confidence} ({', '.join(result.handed_over)})")
    missing = sorted(s for s in wanted if s not in result.handed_over and not (result.labels == result.label_map[s]).any())
    if missing:
        raise PromptError(f"structure(s) never found on any slice: {', '.join(missing)}")
    ref_sha = _ref_sha(case)
    prov = {**result.provenance, "command": "batch", "case": case.case, "input": case.input,
            "input_sha256": sha256_path(case.input), "input_shape": list(vol.shape), "spacing_known": vol.spacing_known,
            "reference": case.reference, "reference_sha256": ref_sha, "batch_signature": options.signature(ref_sha),
            "min_confidence": options.min_confidence, "torch_threads": torch_threads(), "scores": result.scores,
            "seconds": round(result.seconds, 3), **({"series": series} if series and Path(case.input).is_dir() else {}), **modality_facts(vol)}
    sidecar_path(out).unlink(missing_ok=True)  # an interrupted rewrite must not pair with an old sidecar
    review_png_path(options.out_dir, case.case).unlink(missing_ok=True)
    for pattern in (f".{case.case}.*.tmp*", f".{case.case}_review.png.*.tmp*"):
        for stale in out.parent.glob(pattern):
            stale.unlink(missing_ok=True)
    if options.dicom_seg:  # before the NIfTI and its sidecar, which record the SEG files and mark the case complete
        prov["dicom_seg"] = _write_dicom_seg(result, vol, dicom_seg_dir(options.out_dir, case.case), case.case, prov)
    write_labels(result.labels, vol, out, result.label_map, provenance=prov)
    if options.review_png:
        from .review import review_png

        review_png(vol, result.labels, result.label_map, prov, review_png_path(options.out_dir, case.case), title=case.case)


def _write_dicom_seg(result: Any, vol: Any, folder: Path, case_id: str, prov: dict[str, Any]) -> dict[str, Any]:
    """``--dicom-seg``: the labels as DICOM SEG in ``folder`` (emptied first; a cine gets one SEG
    per labelled frame); {"files": [names]}, or {"files": [], "note": why not} for an input that
    cannot be a SEG's source (not DICOM, no patient position, a stack of several series) or a
    SEG that could not be written (the case keeps its NIfTI)."""
    import shutil

    from .errors import ImageWriteError
    from .io import write_labels
    from .io.seg_writer import check_dicom_source

    shutil.rmtree(folder, ignore_errors=True)
    try:
        check_dicom_source(vol)
    except ImageWriteError as e:
        return {"files": [], "note": _one_line(str(e)).removesuffix(": write .nii.gz instead")}
    try:
        written = write_labels(result.labels, vol, folder / f"{case_id}.dcm", result.label_map, provenance=prov)
    except Exception as e:  # highdicom on an unusual source: the case keeps its NIfTI, the summary says why
        shutil.rmtree(folder, ignore_errors=True)
        return {"files": [], "note": _one_line(f"writing it failed: {e}")}
    return {"files": sorted(p.name for p in written if p.suffix == ".dcm")}


def _measure(out: Path, options: BatchOptions, case_id: str, case_input: str | None = None) -> Result:
    """Measurements of the written labels: measure_phase (3-D), measure_cine (4-D), or for one
    apical view over the cycle (one slice, several frames) measure_echo_clip (EF even without
    pixel spacing); with the case's row of ``options.subjects`` (BSA, indexed values, ...)."""
    from .io import read_label_volume, sidecar_path
    from .labels import LabelMap
    from .measure.echo import measure_echo_clip
    from .measure.export import report_row
    from .measure.report import measure_cine, measure_phase

    side = json.loads(sidecar_path(out).read_text())
    lmap = LabelMap.parse(side["label_map"])
    if "lv" not in lmap:
        return {"measure_note": "not measured: the label map has no lv"}
    subject = _subject(case_id, options.subjects, case_input)
    try:
        lab = read_label_volume(out)  # spacing unknown when the sidecar says the input had none
        if lab.n_slices == 1 and lab.n_frames > 1:
            spacing = (float(lab.spacing[1]), float(lab.spacing[2])) if lab.spacing_known else None
            rep = measure_echo_clip(lab.array[:, 0], label_map=lmap, spacing_mm=spacing, **_body(subject))
        elif not lab.spacing_known:
            return {"measure_note": "not measured: the input has no physical spacing"}
        else:
            rep = measure_phase(lab, None, lmap) if lab.n_frames == 1 else measure_cine(lab, None, lmap, **_body(subject, lab))
    except MedsegError as e:
        return {"measure_note": _one_line(f"not measured: {e}")}
    row = _with_subject(report_row(rep), subject)
    return {"measures": {k: row[k] for k in KEY_MEASURES if k in row}, "cohort_row": row, "measure_note": ""}


@dataclass(frozen=True)
class _Who:
    """Whose body data a measurement takes: the case's or study's subjects row (or None) and
    what its DICOM input's header records (:func:`medseg.io.dicom.dicom_body`)."""

    subject: Any = None
    dicom: tuple[tuple[str, Any], ...] = ()


def _subject(case_id: str, subjects: Sequence[Any], source: str | None = None) -> _Who:
    """The row of ``subjects`` (:mod:`medseg.subjects`) that belongs to ``case_id``, and the
    body data of the DICOM input ``source`` (the fields the row leaves out are taken from it)."""
    from .io.dicom import dicom_body
    from .subjects import subject_for

    return _Who(subject_for(case_id, subjects), tuple(dicom_body(source).items()) if source else ())


def _body(who: _Who, labels: Any = None) -> dict[str, Any]:
    """The measure keyword arguments of a subjects row, its missing fields from the DICOM
    header, and, for a short-axis study (``labels``: its label Volume), the heart rate: the
    row's, else the image's DICOM one that the labels' sidecar kept
    (:func:`medseg.measure.report.heart_rate_options`). Echo (``labels`` None) takes no heart rate."""
    from .measure.report import heart_rate_options

    body = {**dict(who.dicom), **(who.subject.body(heart_rate=labels is not None) if who.subject is not None else {})}
    if labels is not None and "heart_rate" not in body:
        body.update(heart_rate_options(labels))
    return body


def _with_subject(row: dict[str, Any], who: _Who) -> dict[str, Any]:
    """The cohort row with the id of the subjects row it was measured with (after case) and the
    body data fields taken from the DICOM header (``dicom_body``)."""
    own = who.subject.body() if who.subject is not None else {}
    from_dicom = " ".join(k for k, _ in who.dicom if k not in own)
    return {**({"subject": who.subject.id} if who.subject is not None else {}), **({"dicom_body": from_dicom} if from_dicom else {}), **row}


@functools.lru_cache(maxsize=2)
def _cached_model(model: str, adapter: str | None, device: str):
    """The loaded model, once per process (workers load it themselves; nothing is shipped)."""
    from .models import load_model

    loaded = load_model(model, device=device)
    if adapter:
        from .adapters import attach_adapter

        loaded = attach_adapter(loaded, adapter)
    return loaded


# -- many cases ---------------------------------------------------------------------------
def run_batch(cases: Sequence[CaseSpec], options: BatchOptions, workers: int = 1, scheduler: Any = None,
              on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Run every case (in this process, ``workers`` spawned processes, or on a Dask cluster).

    Args:
        workers: local processes (1 = in this process); each loads the model once and uses
            ``max(1, cores // workers)`` torch threads.
        scheduler: a Dask scheduler address (``tcp://host:8786``) or a ``distributed.Client``;
            one task per case, results taken as they complete.
        on_result: called with each case's result dict as it finishes (progress bars).
    Returns: the result dicts sorted by case id. ``summary.csv``/``summary.json`` in
    ``options.out_dir`` are rewritten after every case, ``cohort.csv`` at the end (measure).
    """
    check_out_dir(options.out_dir)
    results: dict[str, Result] = {}

    def emit(res: Result) -> None:
        results[f"{res['case']}\0{res['input']}"] = res
        write_summary(options.out_dir, [results[k] for k in sorted(results)], options)
        if on_result:
            on_result(res)

    from ._batch_exec import n_cores, run_dask, run_local

    if scheduler is not None:
        run_dask(cases, options, scheduler, emit)
    elif workers > 1:
        run_local(cases, dataclasses.replace(options, threads=max(1, n_cores() // workers)), workers, emit)
    else:
        for case in cases:
            emit(run_case(case, options))
    ordered = [results[k] for k in sorted(results)]
    if options.measure:
        write_cohort(options.out_dir, ordered + echo_study_rows(ordered, options.subjects) + stack_study_rows(ordered, options.subjects))
    return ordered


def split_phase(name: str) -> tuple[str, str] | None:
    """(study, "ED" or "ES") for a name with one ED or ES part (M&Ms-2's ``001_SA_ED`` ->
    ``("001_SA", "ED")``, ``p1_es``), else None."""
    parts = name.split("_")
    hits = [i for i, p in enumerate(parts) if p.upper() in ("ED", "ES")]
    if len(hits) != 1 or len(parts) == 1:
        return None
    i = hits[0]
    return "_".join(parts[:i] + parts[i + 1:]), parts[i].upper()


def stack_study_rows(results: Sequence[Result], subjects: Sequence[Any] = ()) -> list[Result]:
    """Cohort rows for short-axis studies whose ED and ES stacks are separate cases named
    ``<study>_ED`` / ``<study>_ES`` (:func:`split_phase`; not the echo views of
    :func:`echo_study_rows`): EDV, ESV, EF, LV mass and the RV's, as ``medseg measure --ed --es``
    gives them; and for studies whose frames are separate cases named ``<study>_frame<NN>``
    (:data:`FRAME_CASE`, ACDC's ED and ES frames), two or more: the same with ED and ES the
    frames of largest and smallest LV volume, as for a cine (``ed_frame``/``es_frame`` are the
    NN of their names). With the study's row of ``subjects`` (:mod:`medseg.subjects`). Rows:
    ``{"case": study, "cohort_row": {...}, "measure_note": ...}``."""
    groups: dict[str, dict[str, str]] = {}
    sources: dict[str, str] = {}  # study -> the input of one of its cases (its DICOM header's body data)
    for r in results:
        sp = split_phase(r["case"])
        if sp and not echo_view(r["case"]) and r["status"] in ("ok", "skipped") and r.get("output"):
            groups.setdefault(sp[0], {})[sp[1]] = r["output"]
            sources.setdefault(sp[0], r.get("input", ""))
    frames: dict[str, dict[int, str]] = {}
    for r in results:
        m = FRAME_CASE.match(r["case"])
        if m and r["status"] in ("ok", "skipped") and r.get("output"):
            frames.setdefault(m["study"], {})[int(m["frame"])] = r["output"]
            sources.setdefault(m["study"], r.get("input", ""))
    taken = {r["case"] for r in results}
    rows = [{"case": study, **_measure_stack_study(ph, _subject(study, subjects, sources.get(study)))} for study, ph in sorted(groups.items())
            if "ED" in ph and "ES" in ph and study not in taken]
    taken |= {r["case"] for r in rows}
    rows += [{"case": study, **_measure_frames_study(fr, _subject(study, subjects, sources.get(study)))} for study, fr in sorted(frames.items())
             if len(fr) >= 2 and study not in taken]
    return sorted(rows, key=lambda r: r["case"])


def study_of(case: str) -> str | None:
    """The study a case is one part of by its name (an echo view, an ED or ES stack, a frame), or None."""
    part = echo_view(case) or split_phase(case)
    m = FRAME_CASE.match(case)
    return part[0] if part else m["study"] if m else None


def _shared_label_map(outputs: Sequence[str], whose: str):
    """The one label map the outputs' sidecars give (with an ``lv``), else MedsegError."""
    from .io import read_sidecar
    from .labels import LabelMap

    maps = {json.dumps((read_sidecar(p) or {}).get("label_map"), sort_keys=True) for p in outputs}
    if len(maps) != 1 or maps == {"null"}:
        raise MedsegError(f"{whose} sidecars do not give one label map")
    lmap = LabelMap.parse(json.loads(maps.pop()))
    if "lv" not in lmap:
        raise MedsegError(f"the label map has no lv ({lmap.to_string()})")
    return lmap


def _measure_stack_study(phases: dict[str, str], subject: _Who = _Who()) -> Result:
    from .io import read_label_volume
    from .measure.export import report_row
    from .measure.report import measure_ed_es

    try:
        ed, es = read_label_volume(phases["ED"]), read_label_volume(phases["ES"])
        lmap = _shared_label_map([phases["ED"], phases["ES"]], "the ED and ES")
        if ed.n_frames != 1 or es.n_frames != 1 or ed.n_slices < 2 or not ed.same_grid(es):
            return {"measure_note": "not measured together: ED and ES are not two stacks on one grid"}
        if not (ed.spacing_known and es.spacing_known):
            raise MedsegError("the input has no physical spacing")
        rep = measure_ed_es(ed.array[0], es.array[0], ed.affine, lmap, **_body(subject, ed))
    except MedsegError as e:
        return {"measure_note": _one_line(f"not measured: {e}")}
    row = _with_subject(report_row(rep), subject)
    row["phases"] = f"{Path(phases['ED']).name} {Path(phases['ES']).name}"
    return {"cohort_row": row, "measure_note": ""}


def _measure_frames_study(frames: dict[int, str], subject: _Who = _Who()) -> Result:
    import numpy as np

    from .io import read_label_volume
    from .measure.export import report_row
    from .measure.report import measure_cine

    numbers = sorted(frames)
    try:
        labs = [read_label_volume(frames[n]) for n in numbers]
        lmap = _shared_label_map([frames[n] for n in numbers], "the frames'")
        first = labs[0]
        if any(v.n_frames != 1 for v in labs) or first.n_slices < 2 or not all(first.same_grid(v) for v in labs[1:]):
            return {"measure_note": "not measured together: the frames are not stacks of one frame on one grid"}
        if not all(v.spacing_known for v in labs):
            raise MedsegError("the input has no physical spacing")
        cine = first.with_array(np.concatenate([v.array for v in labs]), frame_times_s=None)
        rep = measure_cine(cine, None, lmap, **_body(subject, first))
    except MedsegError as e:
        return {"measure_note": _one_line(f"not measured: {e}")}
    for key in ("ed_frame", "es_frame", "rv_ed_frame", "rv_es_frame"):  # index in the stack -> the frame's number
        if rep.get(key) is not None:
            rep[key] = numbers[rep[key]]
    rep["flags"] = [dict(f, frame=numbers[f["frame"]]) if isinstance(f.get("frame"), int) else f for f in rep["flags"]]
    row = _with_subject(report_row(rep), subject)
    row["phases"] = " ".join(Path(frames[n]).name for n in numbers)
    return {"cohort_row": row, "measure_note": ""}


def echo_view(name: str) -> tuple[str, str, str] | None:
    """(study, "4ch" or "2ch", "ED" or "ES") for an apical view named ``<study>_<view>_<phase>``
    (:data:`ECHO_VIEW_CASE`, CAMUS's ``patient0001_4CH_ED``), else None."""
    m = ECHO_VIEW_CASE.match(name)
    if not m:
        return None
    return m["study"], "4ch" if m["view"].upper() in ("4CH", "A4C") else "2ch", m["phase"].upper()


def echo_view_keys(views: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The views an echo study is measured from: both 4-chamber phases, and both 2-chamber
    phases when they are there (biplane disks)."""
    have = set(views)
    return [("4ch", "ED"), ("4ch", "ES")] + ([("2ch", "ED"), ("2ch", "ES")] if {("2ch", "ED"), ("2ch", "ES")} <= have else [])


def echo_study_rows(results: Sequence[Result], subjects: Sequence[Any] = ()) -> list[Result]:
    """Cohort rows for echo studies whose apical views are separate one-image cases named
    ``<study>_<view>_<phase>`` (:data:`ECHO_VIEW_CASE`): EF (and volumes with pixel spacing)
    from the 4-chamber ED and ES labels, biplane when the 2-chamber ED and ES are there too
    (:func:`medseg.measure.echo.measure_echo`; with the study's row of ``subjects``). A study without both 4-chamber phases gets no
    row; one that cannot be measured gets a row with ``measure_note``. Rows:
    ``{"case": study, "cohort_row": {...}, "measure_note": ...}``."""
    groups: dict[str, dict[tuple[str, str], str]] = {}
    sources: dict[str, str] = {}
    for r in results:
        ev = echo_view(r["case"])
        if ev and r["status"] in ("ok", "skipped") and r.get("output"):
            groups.setdefault(ev[0], {})[ev[1:]] = r["output"]
            sources.setdefault(ev[0], r.get("input", ""))
    rows = []
    for study, views in sorted(groups.items()):
        if ("4ch", "ED") in views and ("4ch", "ES") in views:
            rows.append({"case": study, **_measure_echo_study(views, _subject(study, subjects, sources.get(study)))})
    return rows


def _measure_echo_study(views: dict[tuple[str, str], str], subject: _Who = _Who()) -> Result:
    from .io import read_label_volume
    from .measure.echo import measure_echo
    from .measure.export import report_row

    keys = echo_view_keys(views)
    try:
        arrays, spacing = {}, {}
        for key in keys:
            lab = read_label_volume(views[key])
            if lab.n_frames * lab.n_slices != 1:
                raise MedsegError(f"{Path(views[key]).name}: an apical view is one 2-D image, got {lab.n_frames} frame(s) x {lab.n_slices} slice(s)")
            arrays[key] = lab.array[0, 0]
            spacing[key[0]] = (float(lab.spacing[1]), float(lab.spacing[2])) if lab.spacing_known else None
        lmap = _shared_label_map([views[k] for k in keys], "the views'")
        a2c = [arrays.get(("2ch", "ED")), arrays.get(("2ch", "ES"))]
        rep = measure_echo(arrays[("4ch", "ED")], arrays[("4ch", "ES")], *a2c, label_map=lmap,
                           spacing_a4c_mm=spacing["4ch"], spacing_a2c_mm=spacing.get("2ch"), **_body(subject))
    except MedsegError as e:
        return {"measure_note": _one_line(f"not measured: {e}")}
    row = _with_subject(report_row(rep), subject)
    row["views"] = " ".join(f"{v.upper()}_{p}" for v, p in keys)
    return {"cohort_row": row, "measure_note": ""}


class HandedOver(MedsegError):
    """Every structure of a case fell below --min-confidence: nothing is written."""


def _review_fields(out: Path, dicom_seg: bool = False) -> Result:
    """needs_review / lowest volume confidence / review flag codes / handed-over structures
    (and with ``dicom_seg`` the SEG files written, or why none), from the case's provenance sidecar."""
    from .io import sidecar_path

    prov = json.loads(sidecar_path(out).read_text()).get("provenance", {})
    conf = (prov.get("confidence") or {}).get("volume") or {}
    codes = sorted({f.get("code", "") for f in (prov.get("review") or {}).get("flags", [])})
    res = {"needs_review": bool(prov.get("needs_review", False)), "confidence": round(min(conf.values()), 4) if conf else "",
           "review_flags": " ".join(codes), "handed_over": " ".join(prov.get("handed_over", []))}
    if dicom_seg:
        seg = prov.get("dicom_seg") or {}
        res["dicom_seg"] = " ".join(seg.get("files", [])) or f"none: {seg.get('note', '?')}"
    return res


def failed_result(case: CaseSpec, reason: str) -> Result:
    """The result dict of a case that failed outside :func:`run_case` (a dead worker, ...)."""
    return {"case": case.case, "status": "failed", "reason": _one_line(reason), "seconds": 0.0, "output": "", "input": case.input}


# -- reports ------------------------------------------------------------------------------
def write_summary(out_dir: str | os.PathLike, results: Sequence[Result], options: BatchOptions | None = None) -> tuple[Path, Path]:
    """``summary.csv`` (one row per case) and ``summary.json`` (counts + rows), atomically."""
    from ._files import write_json_atomic, write_text_atomic

    measure_keys = [k for k in KEY_MEASURES if any(k in r.get("measures", {}) for r in results)]
    extra = [k for k in ("measure_note", "dicom_seg") if any(r.get(k) for r in results)]
    fields = [*SUMMARY_FIELDS, *measure_keys, *extra]
    rows = [{**{k: r.get(k, "") for k in SUMMARY_FIELDS}, **r.get("measures", {}), **{k: r.get(k, "") for k in extra}}
            for r in sorted(results, key=_worst_first)]
    out = Path(out_dir)
    csv_path = write_text_atomic(out / "summary.csv", _csv_text(fields, rows))
    counts = Counter(r["status"] for r in results)
    obj = {"n_cases": len(results), "n_ok": counts["ok"], "n_skipped": counts["skipped"], "n_failed": counts["failed"],
           "n_handed_over": counts["handed_over"], "n_needs_review": sum(bool(r.get("needs_review")) for r in results),
           "settings": _settings(options) if options else None, "cases": rows}
    return csv_path, write_json_atomic(out / "summary.json", obj)


def _settings(options: BatchOptions) -> dict[str, Any]:
    """The batch settings for summary.json; of the subjects file (body data) only its row count."""
    d = dataclasses.asdict(options)
    d["subjects"] = len(options.subjects)
    return d


def _worst_first(r: Result) -> tuple:
    """Failed and handed-over cases first, then those needing review, lowest confidence first."""
    rank = {"failed": 0, "handed_over": 1}.get(r.get("status", ""), 2 if r.get("needs_review") else 3)
    conf = r.get("confidence")
    return (rank, conf if isinstance(conf, (int, float)) else 2.0, r.get("case", ""))


def write_cohort(out_dir: str | os.PathLike, results: Sequence[Result]) -> Path:
    """``cohort.csv``: one row per measured case (``case``, the segmentation's ``needs_review``
    and lowest ``confidence``, then the flattened report columns), and
    ``cohort.png`` (:func:`medseg.measure.plots.cohort_png`: the studies' LVEF, volumes and
    mass at a glance, those needing review ringed; a study measured from its ED and ES cases
    or its echo views is one dot, not three) when two or more studies have a measure."""
    from ._files import write_text_atomic
    from .measure.plots import cohort_png

    review = {r["case"] for r in results if r.get("needs_review")}
    conf = {r["case"]: float(r["confidence"]) for r in results if isinstance(r.get("confidence"), (int, float))}
    parts: dict[str, list[str]] = {}
    for r in results:
        if (study := study_of(r["case"])) is not None:
            parts.setdefault(study, []).append(r["case"])
    rows = []
    for r in results:
        if not r.get("cohort_row"):
            continue
        # the segmentation's review state beside the numbers; a study row (echo views, ED/ES
        # stacks, frames) needs review when one of its cases does, at their lowest confidence
        cases = [r["case"], *parts.get(r["case"], [])]
        low = [conf[c] for c in cases if c in conf]
        rows.append({"case": r["case"], "needs_review": any(c in review for c in cases), "confidence": min(low) if low else "", **r["cohort_row"]})
    fields: list[str] = ["case"]
    for row in rows:
        fields += [k for k in row if k not in fields]
    path = write_text_atomic(Path(out_dir) / "cohort.csv", _csv_text(fields, rows))
    flagged = {row["case"] for row in rows if row["needs_review"]}
    png = Path(out_dir) / "cohort.png"
    if cohort_png(overview_rows(rows), png, flagged) is None:
        png.unlink(missing_ok=True)  # an old overview must not stand for this cohort
    return path


def overview_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cohort rows ``cohort.png`` shows: a study once, not also the cases it was measured
    from (its ED and ES stacks, frames or echo views, whose mass and volumes its row has)."""
    ids = {row["case"] for row in rows}
    return [row for row in rows if study_of(row["case"]) not in ids]


def _csv_text(fields: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", restval="")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


# -- helpers shared with ``medseg segment`` --------------------------------------------------
def _ref_sha(case: CaseSpec) -> str | None:
    from ._files import sha256_file

    return sha256_file(case.reference) if case.reference else None


def _sha256_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
