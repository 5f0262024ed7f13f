"""`medseg info PATH [--json]`: what was read, and in which geometry."""

from __future__ import annotations

from pathlib import Path

import typer

from . import _options as o
from ._app import app, plain, print_json, stdout


@app.command("info")
def info_command(
    path: Path = typer.Argument(..., metavar="PATH", help="Image file, DICOM folder or a .zip of either; labels medseg wrote; a checkpoint; with --methods also a batch output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON (with --methods: path, kind, the Markdown text as \"methods\", "
                                 "the cases whose sidecar could not be read)."),
    series: o.Series = None,
    methods: bool = typer.Option(False, "--methods", help="For labels medseg wrote (their sidecar JSON) or a batch's output folder: "
                                 "print a methods section for a paper (what was done, model sha256, prompts, rules, review; what to cite), "
                                 "as medseg batch writes to OUT_DIR/METHODS.md (with --json: in a JSON object)."),
) -> None:
    """Read an image and print its shape, axes, spacing, modality, frames and slices.

    A medseg checkpoint (.safetensors, or a medseg train folder: its best.safetensors): what its
    header says it is (trained on what, steps, validation score, start, size, sha256).

    A DICOM folder holding several series that form no one volume lists them, to pick with --series."""
    from ..errors import ManyStudiesError, MixedSeriesError, MixedStudiesError
    from ..io import read_label_volume, read_volume
    from ..io.seg_reader import is_dicom_seg
    from ..io.slicer_seg import is_slicer_seg

    if methods:  # the sidecar (or a batch's summary) says how the labels were made: no image is read
        _methods_info(path, as_json)
        return
    if path.is_dir() and (path / "medseg.json").is_file() and (path / "adapter_config.json").is_file():
        from .._files import shown
        from ..errors import MedsegError

        raise MedsegError(f"{shown(path)} is a medseg adapter folder, not an image: its model card is {shown(path / 'README.md')} "
                          "(`medseg models` lists the adapters; use it with --adapter)")
    if path.suffix.lower() == ".safetensors" and path.is_file() or path.is_dir() and (path / "best.safetensors").is_file():
        _checkpoint_info(path / "best.safetensors" if path.is_dir() else path, as_json)  # a model, not an image
        return
    from ..io.sr_writer import is_dicom_sr

    if path.is_file() and is_dicom_sr(path):  # a structured report (medseg measure --dicom-sr): no image, its measurements
        _sr_info(path, as_json)
        return
    try:
        named = path.is_file() and (is_dicom_seg(path) or is_slicer_seg(path))  # labels that name their segments
        vol = read_label_volume(path) if named else read_volume(path, series=series)
    except MixedSeriesError as e:
        if series:
            raise
        if isinstance(e, MixedStudiesError):  # a patient's visits in one folder: each study and its series
            _list_studies(path, as_json)
        else:
            _list_series(path, as_json)
        return
    except ManyStudiesError:  # a PACS export of patients and studies: each study and its series
        if series:
            raise
        _list_studies(path, as_json)
        return
    d = vol.describe()
    if vol.meta.get("label_map"):  # a DICOM SEG or a Slicer .seg.nrrd: labels, with its segments
        titles = vol.meta.get("segment_names") or {}  # a Slicer segment's own name, where it is not the structure's
        d["segments"] = ", ".join(f"{k}={v}" + (f" ({titles[k]})" if titles.get(k, k).lower() != k else "")
                                  for k, v in vol.meta["label_map"].items())
    d.update({k: v for k, v in _labels_facts(path).items() if not (k == "label_map" and "segments" in d)})
    if vol.meta.get("modality_from"):  # not recorded in the file: from the intensities
        d["modality_from"] = vol.meta["modality_from"]
    if isinstance(vol.meta.get("heart_rate"), (int, float)):  # a DICOM's HeartRate (or 60000 / NominalInterval)
        d["heart_rate_bpm"] = round(float(vol.meta["heart_rate"]), 1)
    if as_json:
        print_json(d)
        return
    from rich.table import Table

    stdout.print(plain(path), highlight=False, soft_wrap=True)  # a title would wrap a long path at the table's width
    table = Table(show_header=False)
    for key in ("format", "shape", "axes", "spacing_mm", "modality", "modality_from", "n_frames", "n_slices", "series_description", "series_merged", "segments",
                "label_map", "labels_of", "frames_segmented", "needs_review", "sidecar"):
        if key in d:
            table.add_row(key, plain(d[key]))
        if key == "spacing_mm" and "plane" in d:
            table.add_row("orientation", f"{d['axcodes']} ({d['plane']})")
        if key == "spacing_mm" and "slice_tilt_deg" in d:  # gantry tilt: the slice step leans from the normal
            table.add_row("slice tilt", f"{d['slice_tilt_deg']:g} deg from the slice normal (sheared grid); "
                                        f"slice planes {d['slice_distance_mm']:.4g} mm apart")
        if key == "n_frames" and d.get("frame_times_s"):  # a DICOM cine: TriggerTime at the first slice
            table.add_row("frame times", _times(d["frame_times_s"]))
        if key == "modality" and "value_range" in d:
            lo, hi = d["value_range"]
            table.add_row("value range", f"{lo:g} .. {hi:g}" + (" HU" if d["modality"] == "CT" else ""))
    if d.get("us_region") or d.get("us_region_note"):  # an echo clip exported as the whole screen (docs/io.md)
        table.add_row("us region", plain(_region_row(d)))
    if not vol.spacing_known:
        table.add_row("note", "no physical pixel spacing in this file (1 mm assumed; --pixel-spacing on segment, batch and measure gives it)")
    if d.get("geometry_note"):  # the header's transforms disagree with its voxel size: which one was taken
        table.add_row("geometry", plain(d["geometry_note"]))
    if d.get("frame_of_reference_note"):  # a DICOM series' images in several frames of reference (Sunnybrook's anonymiser)
        table.add_row("frame of ref.", plain(d["frame_of_reference_note"]))
    if d.get("time_note"):  # a header frame interval no heart has
        table.add_row("time", plain(d["time_note"]))
    if d.get("cardiac_timing_note"):  # a DICOM's HeartRate and NominalInterval disagree: which one was taken
        table.add_row("heart rate", plain(d["cardiac_timing_note"]))
    elif "heart_rate_bpm" in d:
        table.add_row("heart rate", f"{d['heart_rate_bpm']:g} beats/min")
    stdout.print(table)


def _methods_info(path: Path, as_json: bool) -> None:
    """``medseg info PATH --methods``: the methods section of labels medseg wrote or of a batch's
    output folder; with ``--json`` an object: ``path``, ``kind`` ("segment" or "batch"),
    ``methods`` (the Markdown text, as METHODS.md holds it), ``unreadable`` (cases left out)."""
    from .._methods_text import compose
    from ..methods import gather

    run = gather(path)
    text = compose(run)
    if as_json:
        print_json({"path": str(path), "kind": run.kind, "methods": text, "unreadable": run.unreadable})
        return
    for line in text.splitlines():  # plain() escapes control characters, newlines too
        stdout.print(plain(line), highlight=False, soft_wrap=True)


def _sr_info(path: Path, as_json: bool) -> None:
    """``medseg info`` of a DICOM SR: its study, evidence and each numeric measurement."""
    from ..io.sr_writer import describe_sr

    d = describe_sr(path)
    if as_json:
        print_json(d)
        return
    from rich.table import Table

    stdout.print(plain(f"{path}: a DICOM structured report ({d.get('sop_class', 'SR')}), no image"), highlight=False, soft_wrap=True)
    table = Table(show_header=False)
    table.add_column()
    table.add_column(overflow="fold")
    for key in ("title", "patient_id", "study_uid", "series_uid", "series_description", "flags", "evidence", "note"):
        if key in d:
            table.add_row(key, plain(str(d[key])))
    for m in d.get("measurements", []):
        table.add_row(plain(f"{m.get('site', '')}: {m['name']}".lstrip(": ")), plain(f"{m['value']:.4g} {m['unit']}  ({m['code']})"))
    stdout.print(table)


def _checkpoint_info(path: Path, as_json: bool) -> None:
    """``medseg info`` of a medseg checkpoint: its header, read without loading a weight."""
    from .._files import shown
    from ..errors import CheckpointError, MedsegError
    from ..models.own import describe_checkpoint

    try:
        d = describe_checkpoint(path)
    except CheckpointError as e:  # an adapter's adapter_model.safetensors, another tool's file
        folder = " (an adapter's weights: give its folder to medseg models or --adapter)" if (path.parent / "medseg.json").is_file() else ""
        raise MedsegError(f"{' '.join(str(e).split())}{folder}") from None
    if as_json:
        print_json(d)
        return
    from rich.table import Table

    stdout.print(plain(f"{shown(path)}: a medseg model checkpoint (use it with --model {shown(path)})"), highlight=False, soft_wrap=True)
    table = Table(show_header=False)
    table.add_column()
    table.add_column(overflow="fold")  # a sha256 is read in full, not cut at the terminal's width
    for key in ("note", "model_id", "architecture", "structures", "trained_on", "validated_on", "steps", "validation_score", "started_from", "size_mb", "sha256"):
        if key in d:
            table.add_row(key, plain(", ".join(d[key]) if isinstance(d[key], list) else d[key]))
    stdout.print(table)


def _region_row(d: dict) -> str:
    """The ultrasound region of an echo screen in words: where the 2-D image lies (the pixel
    size is its; zero-click looks only there), and what was clipped or ignored."""
    from ..io.us_region import region_text

    box = d.get("us_region")
    said = f"{region_text(box)}: the 2-D image (its pixel size; zero-click looks only there)" if box else ""
    return "; ".join(s for s in (said, d.get("us_region_note") or "") if s)


def _times(times: list) -> str:
    """Frame times for the table: each of a few, else the first, last and median step."""
    if len(times) <= 6:
        return ", ".join(f"{t:g}" for t in times) + " s"
    step = sorted(b - a for a, b in zip(times, times[1:]))[(len(times) - 1) // 2]
    return f"{times[0]:g} .. {times[-1]:g} s ({len(times)} frames, {step * 1000:.4g} ms apart)"


def _labels_facts(path: Path) -> dict:
    """For labels medseg wrote (a sidecar JSON beside them): their label map, the image they
    segment and whether they need review; for a sidecar that is not valid JSON or names an
    invalid label map, what is wrong with it (``sidecar``)."""
    from ..io import read_sidecar
    from ..io.writers import sidecar_path, sidecar_problem

    problem = sidecar_problem(path) if path.is_file() else None
    if problem is not None:  # a truncated sidecar, or one with an invalid label map: said, not used
        return {"sidecar": f"{sidecar_path(path).name} {problem}: not used"}
    side = read_sidecar(path) if path.is_file() else None
    if not side or not isinstance(side.get("label_map"), dict):
        return {}
    prov = side.get("provenance") if isinstance(side.get("provenance"), dict) else {}
    out = {"label_map": ", ".join(f"{k}={v}" for k, v in side["label_map"].items())}
    if prov.get("input"):
        out["labels_of"] = str(prov["input"])
    frames = (prov.get("settings") if isinstance(prov.get("settings"), dict) else {}).get("frames")
    if isinstance(frames, list) and all(isinstance(t, int) for t in frames):  # segment --frames: the other frames are empty
        from .._ranges import compact_ranges

        asked = prov["settings"].get("frames_asked")
        out["frames_segmented"] = f"{compact_ranges(frames)} (--frames {asked}; any other frames hold no labels)" if isinstance(asked, str) else compact_ranges(frames)
    if "needs_review" in prov:
        out["needs_review"] = bool(prov["needs_review"])
    return out


def _list_series(path: Path, as_json: bool) -> None:
    from ..io.dicom import list_dicom_series

    rows = list_dicom_series(path)
    note = f"{len(rows)} series that do not form one volume: read one with --series NUMBER, DESCRIPTION or ...UID"
    if as_json:
        print_json({"path": str(path), "format": "dicom", "series": rows, "note": note})
        return
    from rich.table import Table

    stdout.print(plain(f"{path}: {note}"), highlight=False, soft_wrap=True)
    table = Table()
    folders = len({r["folder"] for r in rows}) > 1  # a study folder with a sub-folder per series
    for col in ("number", "description", "images", "size", "modality", "uid", *(("folder",) if folders else ())):
        table.add_column(col)
    for r in rows:
        table.add_row("" if r["number"] is None else f"{r['number']:g}", plain(r["description"]), str(r["images"]), plain(r["size"]),
                      plain(r["modality"]), plain("..." + r["uid"][-8:]), *((plain(r["folder"]),) if folders else ()))
    stdout.print(table)


def _list_studies(path: Path, as_json: bool) -> None:
    from ..io.dicom_studies import list_dicom_studies

    studies = list_dicom_studies(path)
    note = (f"{len(studies)} studies of {len({s['patient_id'] for s in studies})} patient(s): give one study's folder (or one "
            "series folder) to info or segment, or this folder to medseg batch, which takes each one")
    shared = sorted({s["folder"] if s["folder"] != "." else "this folder" for s in studies if [t["folder"] for t in studies].count(s["folder"]) > 1})
    if shared:  # batch takes a folder as one case: studies sharing it are not told apart
        note = (f"{len(studies)} studies of {len({s['patient_id'] for s in studies})} patient(s), some sharing a folder "
                f"({', '.join(shared)}): put each study's files in a folder of its own (medseg batch takes each folder as one case)")
    if as_json:
        print_json({"path": str(path), "format": "dicom", "studies": studies, "note": note})
        return
    from rich.table import Table

    stdout.print(plain(f"{path}: {note}"), highlight=False, soft_wrap=True)
    for st in studies:
        date = st["study_date"] + (f" ({st['study_date_from']})" if st.get("study_date_from") else "")
        title = " ".join(v for v in (st["patient_id"], date, st["description"]) if v)
        stdout.print(plain(f"{title} (folder {st['folder']}, study ...{st['uid'][-8:]}):"), highlight=False, soft_wrap=True)
        table = Table()
        for col in ("number", "description", "images", "size", "modality", "folder"):
            table.add_column(col)
        for r in st["series"]:
            table.add_row("" if r["number"] is None else f"{r['number']:g}", plain(r["description"]), str(r["images"]),
                          plain(r["size"]), plain(r["modality"]), plain(r["folder"]))
        stdout.print(table)
