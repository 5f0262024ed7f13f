"""Cases of a batch: discovery in INPUT_DIR (files, zips, DICOM folders, series stacks), reference look-up
(:mod:`.references`), output names, settings (:class:`BatchOptions`); the names that tie a study's cases together (``_ED``/``_ES``,
``_frameNN``, apical echo views) are :mod:`.case_names`'s. Rules: :mod:`medseg.batch`."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._files import resolved
from .._nfc import as_written, nfc, two_forms
from ..errors import MedsegError, PromptError
from .case_names import (  # noqa: F401 (medseg.batch.cases.* as before)
    ECHO_VIEW_CASE,
    FRAME_CASE,
    REFERENCE_SUFFIXES,
    echo_view,
    echo_view_keys,
    labels_echo_view,
    split_phase,
    study_of,
)
from .references import LABEL_LIKE_VALUES, find_reference, reference_without_image  # noqa: F401 (medseg.batch.cases.* as before)

#: Case ids whose sidecar (<case>.json) would be one of the batch's own files in OUT_DIR.
RESERVED_CASE_IDS = ("summary",)
OUTPUT_ENDING = ".nii.gz"
Result = dict[str, Any]


@dataclass(frozen=True)
class CaseSpec:
    """One study of a batch. ``error`` marks a case that fails before it runs."""

    case: str
    input: str
    reference: str | None = None
    error: str | None = None
    series: str | None = None  # the series of a study folder that form its stack (discovery), else --series

    def absolute(self) -> CaseSpec:
        """The case with absolute input and reference paths (a worker may have another cwd)."""
        return dataclasses.replace(self, input=_absolute(self.input), reference=_absolute(self.reference))


@dataclass(frozen=True)
class BatchOptions:
    """Settings of a batch (everything a worker needs; small and picklable)."""

    out_dir: str
    prompts: str | None = None  # prompts file (single- or multi-case)
    label_map: str | None = None  # text, e.g. "lv=1,myo=2,rv=3"
    key_slice: bool = False
    auto: bool = False
    structures: str | None = None
    frames: str | None = None  # --frames: with --auto, the frames of each cine to segment ("ed,es", "0,11")
    propagate: bool = False
    through: str = "z"
    model: str = "default"
    adapter: str | None = None
    device: str = "cpu"
    resume: bool = False
    measure: bool = False
    pdf: bool = False  # --pdf: with --measure, each measured case's and study's page in OUT_DIR/pdf/ (medseg.batch.pages)
    basal_rule: bool = True  # --measure: the SCMR basal rule on short-axis stacks (--no-basal-rule: every LV slice counts, e.g. axial CT)
    min_confidence: float | None = None  # leave out structures (or whole cases) below this confidence
    review_png: bool = False  # also write <case>_review.png (medseg.review.review_png)
    series: str | None = None  # DICOM folder cases: the series to read (medseg.io.dicom.series_matches)
    subjects: tuple[Any, ...] = ()  # --subjects: medseg.subjects.Subject rows, body data for --measure
    dicom_seg: bool = False  # also write a DICOM study's labels as DICOM SEG in OUT_DIR/<case>_seg/
    modality: str | None = None  # --modality: segment every case as this modality
    pixel_spacing: tuple[float, float] | None = None  # --pixel-spacing (row, column mm) of images that record none
    threads: int | None = None  # torch threads per process (None: torch's default)
    threads_by_host: tuple[tuple[str, int], ...] = ()  # Dask: worker threads per host

    def absolute(self) -> BatchOptions:
        """The options with absolute paths: OUT_DIR, the prompts file, a model file (``PATH`` or
        ``sam_vit_b=PATH``) and an adapter folder (a Dask worker, or a spawned one, may have
        another cwd; names of the registry and of shipped adapters stay names)."""
        from ..models.registry import REGISTRY

        model = self.model
        name, _, path_text = model.partition("=")
        if path_text and name in REGISTRY and not Path(model).exists():
            model = f"{name}={_absolute(path_text)}"
        elif model not in REGISTRY and Path(model).exists():
            model = _absolute(model)
        adapter = _absolute(self.adapter) if self.adapter and Path(self.adapter).is_dir() else self.adapter
        return dataclasses.replace(self, out_dir=_absolute(self.out_dir), prompts=_absolute(self.prompts), model=model, adapter=adapter)

    def signature(self, reference_sha256: str | None = None) -> str:
        """sha256 of the settings that change the labels (and of the case's prompt source). The
        model and adapter are not in it: ``--resume`` compares their weights' sha256 with those the
        sidecar records (:func:`medseg.batch.run.output_problem`), not their names or paths."""
        from .._files import sha256_file

        keys = ("label_map", "key_slice", "auto", "structures", "propagate", "through")
        obj: dict[str, Any] = {k: getattr(self, k) for k in keys}
        obj["prompts_sha256"] = sha256_file(self.prompts) if self.prompts and Path(self.prompts).is_file() else None
        obj["reference_sha256"] = reference_sha256
        if self.series:
            obj["series"] = self.series
        if self.modality:
            obj["modality"] = self.modality
        if self.pixel_spacing:
            obj["pixel_spacing"] = list(self.pixel_spacing)
        if self.min_confidence is not None:
            obj["min_confidence"] = self.min_confidence
        if self.frames:
            obj["frames"] = self.frames
        return _sha256_text(json.dumps(obj, sort_keys=True))


def case_id(path: str | os.PathLike) -> str | None:
    """Case id of an input (file name without its known extension, or the folder name), or
    None when medseg cannot read it as a case."""
    from ..io.readers import EXTENSIONS, has_dicm_marker

    p = Path(path)
    if p.name.startswith(".") or p.name.upper() == "DICOMDIR":  # DICOMDIR: an export's index, not an image
        return None
    if p.is_dir():
        return p.name if _holds_dicom(p) and not clip_folder(p) else None  # a folder of clips: each clip is a case
    name = p.name
    for ext in sorted(EXTENSIONS, key=len, reverse=True):
        if name.lower().endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return name if has_dicm_marker(p) else None


def _dicom_non_image(path: Path) -> bool:
    """Whether ``path`` is a DICOM object of a SOP class other than an image (a structured
    report, a presentation state, a SEG): no case. A file that does not read as DICOM, or
    declares no SOP class (a damaged file), is one, and fails naming it."""
    from ..io.dicom_frames import is_broken_image, is_image, read_header
    from ..io.readers import has_dicm_marker

    if path.suffix.lower() not in (".dcm", ".dicom", ".ima") and not has_dicm_marker(path):
        return False
    try:
        ds = read_header(path, strict=False)
    except Exception:
        return False
    meta = getattr(ds, "file_meta", None)
    declared = ds is not None and (ds.get("SOPClassUID") or (meta is not None and meta.get("MediaStorageSOPClassUID")))
    return bool(declared) and not is_image(ds) and not is_broken_image(ds)


def _holds_dicom(folder: Path) -> bool:
    """Whether ``folder`` holds DICOM files (by extension, or the ``DICM`` marker among its first
    8) not all of them other objects than images (:func:`_dicom_non_image`: a report's folder)."""
    from ..io.readers import has_dicm_marker

    files = [f for f in sorted(folder.iterdir()) if f.is_file() and not f.name.startswith(".") and f.name.upper() != "DICOMDIR"]
    dicom = [f for i, f in enumerate(files) if f.suffix.lower() in (".dcm", ".dicom", ".ima") or (i < 8 and has_dicm_marker(f))]
    return any(not _dicom_non_image(f) for f in dicom)  # a corrupt or truncated file too: the case names it


def clip_folder(folder: Path) -> bool:
    """Whether ``folder``'s DICOM images are two or more multi-frame files that each hold a
    recording of their own, not a slice of one series: legacy multi-frame files (echo clips, as
    an echo machine exports a study), or enhanced ones whose frames lie at two or more positions
    (a whole short-axis stack or cine each: a flat folder of several studies' enhanced MR files).
    Enhanced files of one slice each (a cine exported one file per slice), or of one series
    (a stack exported in parts), are one series, and so the folder one case. Decided from the first image's header alone when it is not such a file."""
    from ..io.dicom_frames import is_enhanced, is_image, n_frames, read_header

    clips, series = 0, set()
    for f in sorted(q for q in folder.iterdir() if q.is_file() and not q.name.startswith(".") and q.name.upper() != "DICOMDIR"):
        try:
            ds = read_header(f, strict=False)
        except Exception:
            continue
        if ds is None or not is_image(ds):
            continue
        if n_frames(ds) < 2 or (is_enhanced(ds) and not _enhanced_stack(ds, f)):
            return False
        if is_enhanced(ds):  # one series exported as several enhanced files (a part of the stack each) is one case
            uid = str(ds.get("SeriesInstanceUID", "") or f)
            if uid in series:
                return False
            series.add(uid)
        clips += 1
    return clips >= 2


def _enhanced_stack(ds: Any, path: Path) -> bool:
    """Whether an enhanced multi-frame file's frames lie at two or more plane positions (a stack,
    not one slice over time)."""
    from ..io.dicom_frames import frames_from_enhanced

    try:
        frames = frames_from_enhanced(ds, path)
    except Exception:  # a damaged file: the folder stays one case, which names it
        return False
    return len({tuple(round(v, 2) for v in f.ipp) for f in frames if f.ipp is not None}) >= 2


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
        MedsegError: ``input_dir`` (or ``prompts_from``) is not a folder, or ``series`` is
            given and no case is a DICOM folder or a zip of one (all image files, or zips
            holding one image file each).
    """
    root = Path(input_dir).absolute()  # absolute paths: a Dask worker (or a later reader of the summary) has another cwd
    if not root.is_dir():
        dicomdir = root.name.upper() == "DICOMDIR" and root.is_file()  # an export's index: its folder is the input
        raise MedsegError(f"{input_dir} is a DICOMDIR, the index of a DICOM export: give the folder it lies in" if dicomdir else
                          f"input folder not found (or not a folder): {input_dir}")
    ref_dir = Path(prompts_from).absolute() if prompts_from is not None else None
    if ref_dir is not None and not ref_dir.is_dir():
        raise PromptError(f"--prompts-from for batch must be a folder of reference labels, got: {ref_dir}")
    skip = {resolved(p) for p in exclude} | ({resolved(ref_dir)} if ref_dir else set())
    beside = ref_dir is not None and resolved(ref_dir) == resolved(root)
    with warnings.catch_warnings():  # pydicom warns of UIDs real scanners write (non-conformant, as in Sunnybrook)
        warnings.simplefilter("ignore")
        walked = [(root.name, root, (), None)] if _one_study(root, skip) else _walk(root, skip, series)
    stacks = {p: sel for _, p, _, sel in walked if sel}
    by_name = Counter(nfc(name) for name, _, _, _ in walked)  # names equal in NFC (a Mac's and a typed one) are one case's
    split = _studies_in_several_folders(walked)
    found = [("_".join((*rel, name)) if by_name[nfc(name)] > 1 or study_of(name) in split else name, name, p) for name, p, rel, _ in walked]
    counts = Counter(nfc(cid) for cid, _, _ in found)
    cases = []
    for cid, name, p in found:
        err, ref = None, None
        if counts[nfc(cid)] > 1:
            shared = [(c, q) for c, _, q in found if nfc(c) == nfc(cid)]
            err = f"case id {cid!r} is shared by {', '.join(str(q.relative_to(root)) for _, q in shared)}{two_forms(c for c, _ in shared)}: rename one"
        elif cid in RESERVED_CASE_IDS:
            err = f"case id {cid!r} ({p.relative_to(root)}) would write {cid}.json, the batch's own {cid} file: rename it"
        elif ref_dir is not None:
            try:
                ref = find_reference(name, p.parent, p) if beside else find_reference(cid, ref_dir, p)
            except MedsegError as e:
                err = str(e)
        cases.append(CaseSpec(cid, str(p), str(ref) if ref else None, err, stacks.get(p)))
    if series and cases:
        _check_series_applies(root, cases)
    return sorted(cases, key=lambda c: c.case)


def _check_series_applies(root: Path, cases: list[CaseSpec]) -> None:
    """``--series`` with an INPUT_DIR whose cases are all files (NIfTI, PNG, single DICOM files, a
    zip holding one such file): refused as ``segment`` refuses it for one such file; beside a DICOM
    folder case (or a zip of one), the other cases ignore it (docs/batch.md;
    :func:`medseg.io.archive.folder_like` tells them apart, as the batch's reads do)."""
    from ..io.archive import folder_like
    from ..io.readers import SERIES_DICOM_ONLY

    if not any(folder_like(c.input) for c in cases):
        names = sorted(str(Path(c.input).relative_to(root)) for c in cases)
        raise MedsegError(f"{SERIES_DICOM_ONLY}; {root} holds none: its {len(names)} case(s) are image files "
                          f"({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})")


def _studies_in_several_folders(walked: Iterable[tuple[str, Path, tuple[str, ...], Any]]) -> set[str]:
    """The studies (:func:`study_of`: ED/ES stacks, frames, echo views and clips) whose cases lie in two or
    more folders, one of them holding two or more of its cases: a patient's visits
    (``v1/p1_frame01``, ``v1/p1_frame09``, ``v2/p1_frame01``, ``v2/p1_frame10``). Their cases
    get the folder prefix, so that each folder's are one study (``v1_p1``, ``v2_p1``); else the
    names found once (``p1_frame09``, ``p1_frame10``) were measured together, one visit's frame
    with the other's. One case per folder (``ED/p1_ED``, ``ES/p1_ES``) stays one study. Echo clips
    (``<study>_A4C``, :func:`study_of` reads them since clips are measured together) count too, so
    ``mri/p1_ED``, ``mri/p1_ES``, ``echo/p1_A4C``, ``echo/p1_A2C`` get prefixes (``mri_p1_ED``,
    ``echo_p1_A4C``) that the release before did not give: a ``--resume`` of its OUT_DIR segments
    them again under the new ids (docs/batch.md, case ids)."""
    folders: dict[str, Counter[tuple[str, ...]]] = {}  # by the study in Unicode NFC (visits copied from a Mac and not)
    for name, _, rel, _ in walked:
        if (study := study_of(name)) is not None:
            folders.setdefault(nfc(study), Counter())[rel] += 1
    split = {key for key, n in folders.items() if len(n) > 1 and max(n.values()) > 1}
    return {s for name, _, _, _ in walked if (s := study_of(name)) is not None and nfc(s) in split}


#: Sub-folders deeper than this below INPUT_DIR are not searched (patient / study / series is 3).
MAX_DEPTH = 6


def _one_study(root: Path, skip: set[Path]) -> bool:
    """Whether INPUT_DIR is itself one DICOM case (a series folder, as when its parent is given):
    a folder that :func:`case_id` takes as a case, whose entries are all DICOM files (by extension
    or the ``DICM`` marker; a ``DICOMDIR`` index too) and no sub-folders (hidden entries and the
    folders in ``skip``, OUT_DIR inside it, left aside)."""
    from ..io.readers import has_dicm_marker

    if case_id(root) is None:
        return False
    for p in root.iterdir():
        if p.name.startswith(".") or resolved(p) in skip or p.name.upper() == "DICOMDIR":
            continue
        if not p.is_file() or not (p.suffix.lower() in (".dcm", ".dicom", ".ima") or has_dicm_marker(p)):
            return False
    return True


def _walk(root: Path, skip: set[Path], series: str | None = None) -> list[tuple[str, Path, tuple[str, ...], str | None]]:
    """(name, path, folders below ``root``) of every case in ``root`` and the sub-folders that
    are not cases themselves (a DICOM export's patient / study / series folders), leaving out
    the folders in ``skip``, hidden entries, reference labels beside their image, label files
    medseg wrote (their sidecar lists them), 3D Slicer segmentations, DICOM objects that are no
    images (reports, presentation states, SEG) and earlier batch outputs
    (summary.json + .csv).
    The last item is the series selector of a study folder whose stack is some of its series."""
    from ..io import is_medseg_labels
    from ..io.slicer_seg import is_slicer_seg

    out: list[tuple[str, Path, tuple[str, ...], str | None]] = []
    seen: set[Path] = set()

    def visit(folder: Path, rel: tuple[str, ...]) -> None:
        if resolved(folder) in seen or len(rel) > MAX_DEPTH:
            return
        seen.add(resolved(folder))
        here, sub = [], []
        for p in sorted(folder.iterdir()):
            if p.name.startswith(".") or resolved(p) in skip or (p.is_symlink() and not p.exists()):
                continue  # hidden, OUT_DIR or references, a dangling link or a symlink loop
            cid = case_id(p)
            if cid is not None:
                if not (p.is_file() and (is_medseg_labels(p) or is_slicer_seg(p) or _dicom_non_image(p))):  # labels, a report: no case
                    here.append((cid, p))
            elif p.is_dir() and not ((p / "summary.json").is_file() and (p / "summary.csv").is_file()):
                sub.append(p)
        ids = {nfc(cid) for cid, _ in here} | {nfc(p.name) for p in sub}  # X_gt beside folder X (a study folder too) is X's reference
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
        out.extend((cid, p, rel, None) for cid, p in here if not any(cid.endswith(s) and nfc(cid[: -len(s)]) in ids for s in REFERENCE_SUFFIXES))
        for p in sub:
            visit(p, (*rel, p.name))

    visit(root, ())
    return out


def _folder_in_series(folder: Path, series: str) -> bool:
    """Whether the first DICOM image of a series folder belongs to the series ``--series`` names."""
    from ..io.dicom import series_matches
    from ..io.dicom_frames import is_image, read_header

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
    from ..io.dicom_frames import frames_from_classic, is_image, read_header

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
    from ..io.dicom import series_folders_form_a_stack

    try:
        return series_folders_form_a_stack(folders)
    except Exception:  # unreadable headers: each folder stays a case and reports its own error
        return False


def output_path(out_dir: str | os.PathLike, case: str) -> Path:
    return as_written(Path(out_dir) / f"{case}{OUTPUT_ENDING}")  # an earlier run's, named in another Unicode form: --resume finds it


def review_png_path(out_dir: str | os.PathLike, case: str) -> Path:
    return as_written(Path(out_dir) / f"{case}_review.png")


def handed_over_path(out_dir: str | os.PathLike, case: str) -> Path:
    """The record of a case handed over entirely (every structure below ``--min-confidence``, no
    labels written): ``OUT_DIR/handed_over/<case>.json``, which ``--resume`` reads
    (:func:`medseg.batch.run.handed_over_record`). In a folder of its own, so that no name of it
    is a case's sidecar (``<case>.json``)."""
    return as_written(Path(out_dir) / "handed_over" / f"{case}.json")


def dicom_seg_dir(out_dir: str | os.PathLike, case: str) -> Path:
    """``--dicom-seg``: the folder of a case's DICOM SEG file(s) (a cine: one per frame) and
    their sidecars (``<case>.json`` would clash with the NIfTI's beside it)."""
    return as_written(Path(out_dir) / f"{case}_seg")


def check_out_dir(out_dir: str | os.PathLike, not_these: dict[str, Any] | None = None) -> Path:
    """Create ``out_dir`` and prove it is writable; raise a one-line MedsegError if not, or if
    it is one of the folders ``not_these`` ({"input": INPUT_DIR, "--prompts-from": DIR}):
    outputs there would replace the studies (``case.nii.gz``) or be read as references on a
    re-run."""
    import tempfile

    out = Path(out_dir).absolute()  # as the summary and the sidecars name it; a Dask worker has another cwd
    for what, folder in (not_these or {}).items():
        if folder is not None and Path(folder).is_dir() and out.is_dir() and os.path.samefile(out, folder):
            raise MedsegError(f"the output folder {out} is the {what} folder: outputs would replace or mix with "
                              "the files there; choose another output folder")
    base = out
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():  # mkdir said "File exists" (or "Not a directory")
        raise MedsegError(f"output folder {out} is a file, not a folder: choose another output folder" if base == out else
                          f"output folder {out} cannot be made: {base} is a file, not a folder; choose another output folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=WRITE_PROBE_PREFIX):
            pass
    except OSError as e:
        raise MedsegError(f"output folder {out} is not writable: {e.strerror or e}") from None
    return out


#: the name of the file that proves a folder writable (:func:`check_out_dir`,
#: :func:`medseg._files.check_writable_folder`), removed at once; one left by a process killed in
#: that moment (a worker the batch ended) is removed when the batch ends
#: (:func:`medseg.batch.outdir.remove_write_probes`)
WRITE_PROBE_PREFIX = ".medseg-write-test-"


def _absolute(path: str | os.PathLike | None) -> str | None:
    return None if path is None else str(Path(path).absolute())


def _sha256_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
