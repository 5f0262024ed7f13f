"""`medseg measure`: volumes, EF, mass, AHA wall thickness and QC flags from label files.

    medseg measure LABELS --label-map MAP -o REPORT.json          (one phase; 4-D = cine)
    medseg measure --ed ED --es ES --label-map MAP -o REPORT.json
    medseg measure --ed A4C_ED --es A4C_ES [--a2c-ed A2C_ED --a2c-es A2C_ES] -o REPORT.json   (echo)
    medseg measure CLIP_LABELS -o REPORT.json                     (one apical view over the cycle)
    medseg measure A4C_CLIP --a2c A2C_CLIP -o REPORT.json         (echo: biplane, ED/ES found in each clip)

Labels with one slice are apical (echo or long-axis) views: method of disks (measurement.md,
"Echo"), biplane with the two-chamber view (--a2c-ed/--a2c-es; --a2c: its clip beside a 4-chamber
clip), single plane without; EF even without pixel spacing, volumes with --pixel-spacing (labels
that record none: PNG, video; a file's own is never overridden).
Without --label-map the label map of the labels' medseg sidecar JSON is used, else medseg's.
Besides REPORT.json: --csv (one row), --plots (PNGs), --pdf (the study on one A4 page,
:mod:`medseg.measure.study_pdf`), --dicom-sr (the numbers as a DICOM SR in the labels' study,
:mod:`medseg.io.sr_writer`).

Thin: reading, option checks and writing; every number comes from :mod:`medseg.measure`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer

from ..errors import GeometryError, LabelMapError, MedsegError
from . import _options as o
from ._app import app
from ._measure_clips import check_clip_forms, run_biplane_clips
from ._measure_inputs import _header_body, _in_use, _label_map, _record_inputs, _segmented_images
from ._measure_output import _add_implausible, _all_flags, _build_sr, _sr_context, _summary, _write_plots

BSA_CHOICES = ("mosteller", "dubois")
AHA_CHOICES = ("uniform", "septum_split")
BASE_CHOICES = {"auto": None, "first": "low_index", "last": "high_index"}


@app.command("measure")
def measure_command(
    labels: Path | None = typer.Argument(None, metavar="LABELS", help="Label file: one phase (3-D), a cine (4-D), or one apical view over the cycle (2-D + time)."),
    ed: Path | None = typer.Option(None, "--ed", help="End-diastolic label file (with --es); for echo the apical 4-chamber view."),
    es: Path | None = typer.Option(None, "--es", help="End-systolic label file (with --ed); for echo the apical 4-chamber view."),
    a2c_ed: Path | None = typer.Option(None, "--a2c-ed", help="Echo: end-diastolic apical 2-chamber labels (with --a2c-es): biplane disks."),
    a2c_es: Path | None = typer.Option(None, "--a2c-es", help="Echo: end-systolic apical 2-chamber labels (with --a2c-ed)."),
    a2c_clip: Path | None = typer.Option(None, "--a2c", metavar="A2C_CLIP", help="Echo: the apical 2-chamber clip beside LABELS, the 4-chamber "
                                         "clip: biplane disks, ED and ES found in each clip (--clip applies to both)."),
    label_map: str | None = typer.Option(None, "--label-map", help="Label values, e.g. 'lv=3,myo=2,rv=1' (ACDC), or a file (JSON, ITK-SNAP .txt/.label, nnU-Net dataset.json); default: the labels' medseg sidecar JSON, else medseg's lv=1,myo=2,rv=3,..."),
    output: Path = typer.Option(..., "-o", "--out", "--output", help="Report JSON to write."),
    height_cm: float | None = typer.Option(None, "--height-cm", help="Height (cm), for BSA."),
    weight_kg: float | None = typer.Option(None, "--weight-kg", help="Weight (kg), for BSA."),
    heart_rate: float | None = typer.Option(None, "--heart-rate", help="Heart rate (beats/min), for cardiac output."),
    bsa_method: str = typer.Option("mosteller", "--bsa-method", help="mosteller or dubois."),
    sex: str | None = typer.Option(None, "--sex", help="M or F, for sex-specific normal ranges."),
    aha_method: str = typer.Option("uniform", "--aha-method", help="uniform (60-degree sectors) or septum_split."),
    base: str = typer.Option("auto", "--base", help="Where the LV base is: auto (from anatomy), first or last slice."),
    interpolate_missing: bool = typer.Option(False, "--interpolate-missing", help="Add interpolated area for empty in-between slices (still flagged)."),
    no_basal_rule: bool = typer.Option(False, "--no-basal-rule", help="Count every LV slice: no SCMR 50% rule at the base (a short-axis rule; "
                                       "e.g. axial CT labels, whose LV volume is all its voxels)."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Also write a one-row CSV."),
    plots: Path | None = typer.Option(None, "--plots", help="Folder for PNGs: overlay.png, volume_curve.png (cine, echo clip); not for echo: "
                                      "bullseye.png (wall thickness), with ED and ES thickening.png and, without a cine, volumes.png (bars)."),
    pdf: Path | None = typer.Option(None, "--pdf", metavar="STUDY.pdf", help="Also write the study on one A4 page (PDF): numbers, normal "
                                    "ranges, volume plot, bullseyes, ED/ES contours, QC flags (docs/measurement.md, Study page)."),
    image: list[Path] | None = typer.Option(None, "--image", metavar="IMAGE", help="Image(s) for the overlay plot, on the labels' grid: a cine, or one per phase, ED then ES (repeat --image)."),
    clip: bool = typer.Option(False, "--clip", help="LABELS is one 2-D (apical) view over the cycle stored as a 3-D file, its third axis time "
                              "(e.g. CAMUS *_half_sequence.nii.gz): measure it as an echo clip, not as slices."),
    pixel_spacing: o.PixelSpacing = None,
    a2c_pixel_spacing: str | None = typer.Option(None, "--a2c-pixel-spacing", metavar="MM[,MM]", help="Echo: the 2-chamber views' pixel size "
                                                 "when not --pixel-spacing's (each view is its own acquisition)."),
    dicom_sr: Path | None = typer.Option(None, "--dicom-sr", metavar="OUT.dcm", help="Also write the measurements as a DICOM SR (TID 1500) "
                                         "in the labels' DICOM study (docs/io.md, DICOM SR)."),
) -> None:
    """Measure volumes, EF, LV mass, AHA wall thickness and QC flags; write REPORT.json."""

    _check_choice("--bsa-method", bsa_method, BSA_CHOICES)
    _check_choice("--aha-method", aha_method, AHA_CHOICES)
    _check_choice("--base", base, tuple(BASE_CHOICES))
    _check_forms(labels, ed, es, (a2c_ed, a2c_es), clip, output, csv_path, plots, image, pdf, a2c_clip)
    inputs = [p for p in (labels, ed, es, a2c_ed, a2c_es, a2c_clip) if p is not None]
    sr_context = _sr_context(dicom_sr, inputs, {"report": output, "CSV": csv_path})
    spacing = _given_spacings(pixel_spacing, a2c_pixel_spacing, [labels, ed, es], [a2c_ed, a2c_es, a2c_clip])
    lmap, map_from = _label_map(label_map, inputs)
    if "lv" not in lmap:
        raise LabelMapError(f"the label map must name the LV blood pool (lv=...); got {lmap.to_string()}")
    phase_opts: dict[str, Any] = {"aha_method": aha_method, "interpolate_missing": interpolate_missing, "base_end": BASE_CHOICES[base],
                                  "basal_rule": not no_basal_rule}
    body = {"height_cm": height_cm, "weight_kg": weight_kg, "bsa_method": bsa_method, "sex": sex}
    from_header = _header_body(body, [p for p in (labels, ed) if p is not None])
    _check_body(body, heart_rate)
    from ..measure.report import LVOutsideMyocardium, check_lv_measured

    map_named = not label_map and map_from is not None  # the labels name their map: it is right
    measured: dict[Path, Any] = {}
    try:
        report, phases, frames, vol, lmap = _run(labels, ed, es, lmap, phase_opts, body, heart_rate, (a2c_ed, a2c_es), by_name=not label_map,
                                                 default_map=not label_map and map_from is None, clip=clip, spacing=spacing,
                                                 read_out=measured, a2c_clip=a2c_clip)
    except LVOutsideMyocardium as e:  # a cine's LV outside its myocardium on every frame: a named map is no guess to doubt
        if map_named:
            raise e.named() from None
        raise
    check_lv_measured(report, lmap, map_named=map_named)
    _add_implausible(report)
    if no_basal_rule:  # the report says the LV volumes include every slice
        from ..measure.qc import basal_rule_off_flag

        report.setdefault("flags", []).append(basal_rule_off_flag("--no-basal-rule"))
    # volumes that sum the frames of one view, a frame left out of ED/ES: say so, not only in the report
    notes = [f for f in _all_flags(report) if f.get("code") == "long_axis_stack"][:1]
    notes += [f for f in report.get("flags") or [] if f.get("code") == "volume_outlier_frame"]
    if notes:
        from ._app import console

        for flag in notes:
            console.print(f"note: {flag['message']}", markup=False, highlight=False, soft_wrap=True)
    from ..measure.echo import is_echo_report

    if heart_rate is not None and is_echo_report(report):  # it was dropped without a word: co_l_min null
        from ._app import console

        console.print("note: --heart-rate is not used for one view by the method of disks (apical echo or long-axis MR): no cardiac "
                      "output (that needs short-axis stacks: ED + ES or a cine)", markup=False, highlight=False, soft_wrap=True)
    paths = {"labels": labels, "ed": ed, "es": es, "a2c_ed": a2c_ed, "a2c_es": a2c_es, "a2c": a2c_clip}
    _record_inputs(report, paths, lmap, map_from, label_map, from_header, vol, image)
    report["inputs"]["spacing_from"] = _spacing_from({k: measured[p] for k, p in paths.items() if p is not None})
    _record_run(report, paths, {"aha_method": aha_method, "base": base, "interpolate_missing": interpolate_missing,
                                "basal_rule": not no_basal_rule, "clip": clip, **_spacing_settings(pixel_spacing, a2c_pixel_spacing)})
    sr = _build_sr(report, sr_context, dicom_sr) if sr_context is not None else None  # before any output: a refusal writes none
    drawn = (image or _segmented_images([p for p in (labels, ed, es) if p is not None], say=True)) if plots is not None or pdf is not None else None
    if pdf is not None:  # before the PNGs: an --image refused leaves nothing written
        from ._measure_pdf import write_pdf

        write_pdf(report, pdf, phases, frames, lmap, vol, drawn, source=output.name, body=body)
    if plots is not None:
        _write_plots(report, plots, phases, frames, lmap, vol, drawn)
    if csv_path is not None:
        from ..measure.export import write_csv

        write_csv(report, csv_path)
    from .._files import write_json_atomic

    if sr is not None:
        from ..io.sr_writer import save_sr

        save_sr(sr, dicom_sr)
    write_json_atomic(output, report)
    _summary(report, output)
    from .._files import shown
    from ._app import stdout

    if pdf is not None:
        stdout.print(f"study page -> {shown(pdf)}", markup=False, highlight=False, soft_wrap=True)
    if sr is not None:
        left = report["dicom_sr"]["left_out"]  # no standard code: in REPORT.json only
        stdout.print(f"DICOM SR -> {shown(dicom_sr)}" + (f" (no standard code, not in the SR: {', '.join(left)})" if left else ""),
                     markup=False, highlight=False, soft_wrap=True)


def _record_run(report: dict, paths: dict[str, Path | None], settings: dict[str, Any]) -> None:
    """The report's ``inputs`` also say what regenerates it: each label file's sha256
    (``sha256``, keyed as the files), the options that change the numbers (``settings``), and
    medseg's, python's, numpy's and torch's versions and the time (``created``, UTC)."""
    from .._files import sha256_path
    from .._runinfo import software_versions, utc_timestamp

    report["inputs"]["sha256"] = {k: sha256_path(v) for k, v in paths.items() if v is not None}
    report["inputs"]["settings"] = settings
    report["inputs"].update(software_versions(), created=utc_timestamp())


def _given_spacings(text: str | None, a2c_text: str | None, paths: list[Path | None], a2c: list[Path | None]) -> dict[Path, Any]:
    """``--pixel-spacing`` (every label file) and ``--a2c-pixel-spacing`` (the 2-chamber views,
    instead) as label file -> ((row, column) mm, what to say if the file records another); files
    given no spacing are left out."""
    given, given_a2c = o.parse_pixel_spacing(text), o.parse_pixel_spacing(a2c_text, "--a2c-pixel-spacing")
    if given_a2c is not None and all(p is None for p in a2c):
        raise MedsegError("--a2c-pixel-spacing is the 2-chamber views' pixel size: give it with --a2c-ed and --a2c-es, or --a2c")
    found = {p: (given, "") for p in paths if p is not None and given is not None}
    # a PNG 4-chamber view with 2-chamber NIfTI views that record their own: they took --pixel-spacing
    hint = "" if given_a2c else " (the 2-chamber views: --a2c-pixel-spacing gives their own)"
    found.update({p: (given_a2c or given, hint) for p in a2c if p is not None and (given_a2c or given) is not None})
    return found


def _spacing_settings(text: str | None, a2c_text: str | None) -> dict[str, Any]:
    """The report's ``inputs.settings`` ``pixel_spacing`` and ``a2c_pixel_spacing``: [row, column]
    mm, when given."""
    found = {"pixel_spacing": o.parse_pixel_spacing(text), "a2c_pixel_spacing": o.parse_pixel_spacing(a2c_text, "--a2c-pixel-spacing")}
    return {k: list(v) for k, v in found.items() if v is not None}


def _spacing_from(vols: dict[str, Any]) -> str | dict[str, str | None] | None:
    """The report's ``inputs.spacing_from``: where each label file's pixel spacing came from
    (``--pixel-spacing``, ``file``, ``file (segment --pixel-spacing)`` for labels ``medseg segment``
    wrote with one, null: none); one value when the files agree, else keyed as the files."""
    from ..io.volume import spacing_source

    found = {k: spacing_source(v) for k, v in vols.items()}
    return next(iter(found.values())) if len(set(found.values())) == 1 else found


def _check_forms(labels: Path | None, ed: Path | None, es: Path | None, a2c: tuple[Path | None, Path | None], clip: bool,
                 output: Path, csv_path: Path | None, plots: Path | None, image: list[Path] | None, pdf: Path | None = None,
                 a2c_clip: Path | None = None) -> None:
    """The inputs given in one of the forms (LABELS, or --ed and --es with or without the
    2-chamber pair; --clip with LABELS), and outputs that replace no input (--image needs --plots)."""
    a2c_ed, a2c_es = a2c
    if (labels is None) == (ed is None and es is None) or (ed is None) != (es is None):
        raise MedsegError("give either LABELS or both --ed and --es")
    if clip and labels is None:
        raise MedsegError("--clip reads LABELS (one view over the cycle), not --ed / --es")
    if (a2c_ed is None) != (a2c_es is None) or (a2c_ed is not None and ed is None):
        raise MedsegError("--a2c-ed and --a2c-es go together, with --ed and --es (the 4-chamber view)")
    check_clip_forms(labels, a2c_clip)
    named = {"labels": labels, "ED labels": ed, "ES labels": es, "2-chamber ED labels": a2c_ed, "2-chamber ES labels": a2c_es,
             "2-chamber clip labels": a2c_clip}
    _check_outputs(output, csv_path, named, image or [])
    from .._files import check_plots_folder

    check_plots_folder(plots, {"report": output, "CSV": csv_path})
    if image and plots is None and pdf is None:
        raise MedsegError("--image is drawn under the contours of the overlay plot: add --plots DIR (or --pdf STUDY.pdf)")
    if pdf is not None:
        from ._measure_pdf import check_pdf

        check_pdf(pdf, {"report": output, "CSV": csv_path, "plots folder": plots},
                  {**{k: v for k, v in named.items() if v is not None}, **{f"image {p}": p for p in image or []}})


def _run(labels: Path | None, ed: Path | None, es: Path | None, lmap: Any, phase_opts: dict, body: dict,
         heart_rate: float | None, a2c: tuple[Path | None, Path | None] = (None, None), by_name: bool = False,
         default_map: bool = False, clip: bool = False, spacing: dict[Path, Any] | None = None,
         read_out: dict[Path, Any] | None = None, a2c_clip: Path | None = None) -> tuple[dict, dict, dict, Any, Any]:
    """Read the inputs and measure: (report, phase -> (Z, Y, X) labels, phase -> frame, ED Volume,
    the label map measured with). ``by_name``: no --label-map was given, so each input's own map
    (sidecar) re-encodes it into ``lmap``. ``default_map``: nothing named the structures and
    medseg's map was taken: its structures beyond lv/myo/rv count only where their values occur
    (a short-axis stack has no aorta to report absent). ``clip``: a 3-D ``labels`` file's
    slices are the frames of one view (:func:`_as_clip`). ``spacing``: label file -> ((row, column)
    mm given (``--pixel-spacing``), what an error adds); ``read_out``: label file -> the Volume measured."""
    from ..io.seg_reader import on_one_stack
    from ..measure.report import heart_rate_options, measure_cine, measure_ed_es, measure_phase

    read = {p: _read_labels(p, lmap, by_name) for p in (labels, ed, es, *a2c, a2c_clip) if p is not None}
    read = {p: _given_spacing(v, p, *(spacing or {}).get(p, (None, "")), clip=clip and p in (labels, a2c_clip)) for p, v in read.items()}
    if read_out is not None:
        read_out.update(read)
    if default_map:
        lmap = _in_use(lmap, read.values())
    if labels is not None and a2c_clip is not None:  # two apical clips: biplane
        return (*run_biplane_clips(read[labels], read[a2c_clip], labels, a2c_clip, lmap, body, clip), lmap)
    if labels is not None:
        vol = _as_clip(read[labels], labels) if clip else read[labels]
        if vol.n_slices == 1 and vol.n_frames > 1:
            return (*_run_echo_clip(vol, labels, lmap, body), lmap)
        if vol.n_slices == 1:
            _refuse_short_axis_frame(vol.array[0, 0], labels, lmap)
            raise MedsegError(f"{labels}: one 2-D image gives no EF; for echo give --ed and --es (apical 4-chamber) "
                              "[--a2c-ed --a2c-es], or labels over the whole cycle")
        _check_measurable(vol, labels, lmap)
        if vol.n_frames == 1:
            return measure_phase(vol, None, lmap, **phase_opts), {"labels": vol.array[0]}, {"labels": 0}, vol, lmap
        from ._measure_inputs import frame_pick

        report = measure_cine(vol, None, lmap, **phase_opts, **body, **heart_rate_options(vol, heart_rate), picked_phases=frame_pick(labels))
        frames = {k: f for k, f in (("ED", report["ed_frame"]), ("ES", report["es_frame"])) if f is not None}
        return report, {k: vol.array[f] for k, f in frames.items()}, frames, vol, lmap
    for opt, p in (("--ed", ed), ("--es", es), ("--a2c-ed", a2c[0]), ("--a2c-es", a2c[1])):
        if p is not None and read[p].n_frames != 1:
            raise MedsegError(_not_one_phase(opt, p, read[p]))
    vol, vol_es = read[ed], read[es]
    if vol.n_slices == 1 or vol_es.n_slices == 1 or a2c[0] is not None:
        a2c_vols = [read[p] for p in a2c] if a2c[0] is not None else []
        return (*_run_echo(vol, vol_es, ed, es, a2c, a2c_vols, lmap, body), lmap)
    vol, vol_es = on_one_stack(vol, vol_es)  # DICOM SEGs that leave out different empty slices
    if not vol.same_grid(vol_es):
        shift = float(np.max(np.abs(vol.affine - vol_es.affine)))
        raise GeometryError(f"ED and ES labels are on different grids: (Z, Y, X) {vol.grid_shape} vs {vol_es.grid_shape}, "
                            f"affines differ by up to {shift:.3g} mm")
    _check_measurable(vol, ed, lmap, vol_es)
    if np.array_equal(vol.array, vol_es.array):  # it read as an LV EF of 0 %, flagged as a low EF
        raise MedsegError(f"the ED and ES labels are the same ({ed.name}, {es.name}: one file given for both phases?): no ED and ES "
                          "to tell apart, so no EF; give the end-systolic labels as --es")
    report = measure_ed_es(vol.array[0], vol_es.array[0], vol.affine, lmap, **phase_opts, **body, **heart_rate_options(vol, heart_rate))
    return report, {"ED": vol.array[0], "ES": vol_es.array[0]}, {"ED": 0, "ES": 0}, vol, lmap


def _not_one_phase(option: str, path: Path, vol: Any) -> str:
    """Why labels of several frames (an echo clip's, a cine's) cannot be ``option`` (--ed, --es,
    --a2c-ed, --a2c-es: one phase each), and what measures them: "must each be one phase" left an
    echo user with the labels of two clips no way on."""
    if vol.n_slices == 1:
        return (f"{option} takes one frame, and {path.name} holds {vol.n_frames} frames of one view (labels over the cycle): measure "
                f"the clip alone (medseg measure {path.name}: ED and ES found on its LV volume curve, single-plane disks); "
                "biplane disks: medseg measure A4C_CLIP --a2c A2C_CLIP (ED and ES found in each clip)")
    return (f"{option} takes one phase, and {path.name} is a cine of {vol.n_frames} frames: measure it alone "
            f"(medseg measure {path.name}: ED and ES found on its volume curve)")


def _refuse_short_axis_frame(arr: Any, path: Path, lmap: Any) -> None:
    """One 2-D frame whose myocardium surrounds the LV (a parasternal short-axis echo frame, one
    slice of a stack): say so, rather than point to the apical views its user has not got."""
    from ..measure.echo import check_long_axis_view, plane_geometry
    from ..measure.geometry import MeasurementError

    if "lv" not in lmap:
        return
    try:
        check_long_axis_view(arr, lmap, plane_geometry(arr.shape, None))
    except MeasurementError:
        raise MedsegError(f"{path}: one short-axis section (its myocardium surrounds the LV cavity, as in a parasternal short-axis "
                          "echo frame): one frame gives no volume and no EF, and medseg measures no areas of a single frame; "
                          "it measures short-axis stacks and apical views (--ed/--es)") from None


def _given_spacing(vol: Any, path: Path, row_col: Any, hint: str = "", clip: bool = False) -> Any:
    """``vol`` with the pixel spacing given for it (``--clip``: as the clip it is); ``hint`` ends
    the error for a file that records another."""
    if row_col is None:
        return vol
    from ..io.volume import with_pixel_spacing

    try:
        return with_pixel_spacing(_as_clip(vol, path) if clip else vol, row_col, str(path))
    except GeometryError as e:
        if hint and vol.spacing_known:
            raise GeometryError(f"{e}{hint}") from None
        raise


def _as_clip(vol: Any, path: Path) -> Any:
    """``--clip``: the (1, Z, Y, X) labels of a 3-D file as the (Z, 1, Y, X) frames of one view
    (no frame times: its third axis' spacing is no frame interval). Labels that are already one
    view over time pass as they are."""
    from ..io import Volume

    if vol.n_slices == 1 and vol.n_frames > 1:
        return vol
    if vol.n_frames > 1:
        raise MedsegError(f"--clip: {path} is already a cine ({vol.n_frames} frames of {vol.n_slices} slices); "
                          "--clip is for one view over the cycle stored as a 3-D file")
    if vol.n_slices < 2:
        raise MedsegError(f"--clip: {path} has one slice: one frame gives no EF")
    meta = {**vol.meta, "clip_from_slices": True}
    return Volume(array=vol.array[0][:, None], affine=vol.affine, frame_times_s=None, modality=vol.modality,
                  spacing_known=vol.spacing_known, meta=meta)


def _check_outputs(output: Path, csv_path: Path | None, labels: dict[str, Path | None], images: list[Path]) -> None:
    """The report and CSV may not replace an input, nor a labels file's medseg sidecar (its label
    map and provenance: ``measure seg.nii.gz -o seg.json`` would have replaced it)."""
    from .._files import check_not_inputs, check_table_names
    from ..errors import ImageWriteError
    from ..io import sidecar_path

    inputs: dict[str, Any] = {k: v for k, v in labels.items() if v is not None}
    inputs.update({f"image {p}": p for p in images})
    for k, p in list(inputs.items()):
        side = sidecar_path(p)
        if k not in labels or side == Path(p):
            continue
        if side.is_file():
            inputs[f"sidecar JSON of the {k}"] = side
            continue
        for what, out in (("report", output), ("CSV", csv_path)):  # no sidecar yet: the report would become one
            if out is not None and Path(out).resolve() == side.resolve():
                raise ImageWriteError(f"{out}: the {what} would be read as the sidecar JSON of the {k} {Path(p).name} (medseg keeps the "
                                      f"label map of {Path(p).name} under that name); name it {side.stem}_report{side.suffix} or write it elsewhere")
    check_not_inputs({"report": output, "CSV": csv_path}, inputs)
    check_table_names(output, csv_path)


def _spacing_field(vol: Any) -> list[float] | None:
    """The report's ``spacing_mm`` (z, y, x) of an echo view: None when the file records no pixel
    spacing (a PNG: it read [1.0, 1.0, 1.0], as if 1 mm pixels had been measured)."""
    return [float(x) for x in vol.spacing] if vol.spacing_known else None


def _spacing_yx(vol: Any) -> tuple[float, float] | None:
    return (float(vol.spacing[1]), float(vol.spacing[2])) if vol.spacing_known else None


def _require_lv(vols: list[Any], lmap: Any, where: str) -> None:
    """One-line LabelMapError unless some voxel of ``vols`` has the LV's value."""
    if not any(np.any(v.array == lmap["lv"]) for v in vols):
        present = sorted({int(x) for v in vols for x in np.unique(v.array) if x != 0})
        raise LabelMapError(f"{where}the label map names lv={lmap['lv']} but no voxel has that value (values present: {present}); check --label-map")


def _check_echo_view(vol: Any, path: Path, lmap: Any) -> None:
    if vol.n_slices != 1 or vol.n_frames != 1:
        raise MedsegError(f"{path}: echo views are one 2-D image each, got {vol.n_frames} frame(s) x {vol.n_slices} slice(s)")
    _require_lv([vol], lmap, f"{path}: ")


def _run_echo(vol: Any, vol_es: Any, ed: Path, es: Path, a2c: tuple[Path | None, Path | None], a2c_vols: list,
              lmap: Any, body: dict) -> tuple[dict, dict, dict, Any]:
    """Apical views, ED and ES: biplane disks with the 2-chamber view, else single plane."""
    from ..measure.echo import measure_echo
    from ._echo_pairs import check_distinct_views, check_echo_names

    views = [(vol, ed), (vol_es, es)]
    views += list(zip(a2c_vols, a2c))
    for v, p in views:
        _check_echo_view(v, p, lmap)
    check_echo_names({"--ed": ed, "--es": es, "--a2c-ed": a2c[0], "--a2c-es": a2c[1]})
    for name, pair in (("4-chamber", (vol, vol_es)), ("2-chamber", tuple(a2c_vols))):
        if pair and _spacing_yx(pair[0]) != _spacing_yx(pair[1]) and not (
                _spacing_yx(pair[0]) and _spacing_yx(pair[1]) and np.allclose(_spacing_yx(pair[0]), _spacing_yx(pair[1]), rtol=1e-4)):
            raise GeometryError(f"ED and ES labels of the {name} view have different pixel spacings "
                                f"({_spacing_yx(pair[0])} vs {_spacing_yx(pair[1])} mm)")
    report = measure_echo(vol.array[0, 0], vol_es.array[0, 0], *(v.array[0, 0] for v in a2c_vols), label_map=lmap,
                          spacing_a4c_mm=_spacing_yx(vol), spacing_a2c_mm=_spacing_yx(a2c_vols[0]) if a2c_vols else None, **body)
    check_distinct_views((ed, es, *a2c), [vol, vol_es, *a2c_vols])  # one file, its labels or one image's given twice
    report["spacing_mm"] = _spacing_field(vol)
    return report, {"ED": vol.array[0], "ES": vol_es.array[0]}, {"ED": 0, "ES": 0}, vol


def _run_echo_clip(vol: Any, path: Path, lmap: Any, body: dict) -> tuple[dict, dict, dict, Any]:
    """One apical view over the cycle: single-plane disks per frame, ED/ES from the curve."""
    from ..measure.echo import measure_echo_clip

    _require_lv([vol], lmap, f"{path}: ")
    report = measure_echo_clip(vol.array[:, 0], label_map=lmap, spacing_mm=_spacing_yx(vol), frame_times_s=vol.frame_times_s, **body)
    report["spacing_mm"] = _spacing_field(vol)
    frames = {k: f for k, f in (("ED", report["ed_frame"]), ("ES", report["es_frame"])) if f is not None}
    return report, {k: vol.array[f] for k, f in frames.items()}, frames, vol


def _check_choice(option: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise MedsegError(f"{option} {value!r} is not one of: {', '.join(allowed)}")


def _read_labels(path: Path, lmap: Any, by_name: bool = False) -> Any:
    """Integer label Volume (medseg.io: NIfTI, DICOM, DICOM SEG, MHA/NRRD, ...) in ``lmap``'s
    values: a SEG's segment numbers re-encoded by name under a --label-map of other values, and,
    ``by_name`` (no --label-map), labels whose sidecar names another map (ED segmented with
    ACDC's values, ES with medseg's) re-encoded by name too."""
    from ..io import read_label_volume
    from ..io.seg_reader import NAMED_SEGMENTS, in_label_map
    from ..io.writers import own_label_map

    vol = in_label_map(read_label_volume(path), lmap)  # a SEG's or a .seg.nrrd's segments by name
    own = own_label_map(path) if by_name and vol.meta.get("format") not in NAMED_SEGMENTS else None
    return vol if own is None else vol.with_array(own[0].by_name(vol.array, lmap))


def _check_measurable(vol: Any, path: Path, lmap: Any, other: Any = None) -> None:
    """Refuse inputs that cannot give a volume: no spacing, one slice, empty, LV value absent."""
    from ..measure.geometry import MeasurementError

    vols = [v for v in (vol, other) if v is not None]
    if any(getattr(v, "spacing_known", True) is False for v in vols):
        raise GeometryError(f"{path}: no physical pixel spacing; volumes and mass need millimetres")
    if vol.n_slices < 2:
        raise MeasurementError(f"{path}: a single slice cannot give a volume (need a stack of >= 2 slices)")
    if not any(np.any(v.array) for v in vols):
        raise MeasurementError(f"{path}: the labels are empty (no non-zero voxel)")
    _require_lv(vols, lmap, "")


def _check_body(body: dict, heart_rate: float | None) -> None:
    """Body data and heart rate checked once, for every form (a one-phase report uses none of
    them, but a value out of range is a typo all the same)."""
    from ..measure.reference import check_sex
    from ..measure.volumes import bsa_m2, heart_rate_bpm

    h, w = body.get("height_cm"), body.get("weight_kg")
    if (h is None) != (w is None):
        given, other = ("height (--height-cm)", "weight (--weight-kg)") if w is None else ("weight (--weight-kg)", "height (--height-cm)")
        raise MedsegError(f"a {given} without a {other}, here or in the DICOM header: body surface area needs both")
    bsa_m2(h, w, body.get("bsa_method", "mosteller"))
    heart_rate_bpm(heart_rate)
    check_sex(body.get("sex"))
