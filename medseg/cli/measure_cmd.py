"""`medseg measure`: volumes, EF, mass, AHA wall thickness and QC flags from label files.

    medseg measure LABELS --label-map MAP -o REPORT.json          (one phase; 4-D = cine)
    medseg measure --ed ED --es ES --label-map MAP -o REPORT.json

Thin: reading, option checks and writing; every number comes from :mod:`medseg.measure`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer

from ..errors import GeometryError, LabelMapError, MedsegError
from ._app import app, stdout

BSA_CHOICES = ("mosteller", "dubois")
AHA_CHOICES = ("uniform", "septum_split")
BASE_CHOICES = {"auto": None, "first": "low_index", "last": "high_index"}


@app.command("measure")
def measure_command(
    labels: Path | None = typer.Argument(None, help="Label file: one phase (3-D) or a cine (4-D)."),
    ed: Path | None = typer.Option(None, "--ed", help="End-diastolic label file (with --es)."),
    es: Path | None = typer.Option(None, "--es", help="End-systolic label file (with --ed)."),
    label_map: str | None = typer.Option(None, "--label-map", help="e.g. 'lv=3,myo=2,rv=1' (ACDC); default medseg's lv=1,myo=2,rv=3,..."),
    output: Path = typer.Option(..., "-o", "--output", help="Report JSON to write."),
    height_cm: float | None = typer.Option(None, "--height-cm", help="Height (cm), for BSA."),
    weight_kg: float | None = typer.Option(None, "--weight-kg", help="Weight (kg), for BSA."),
    heart_rate: float | None = typer.Option(None, "--heart-rate", help="Heart rate (beats/min), for cardiac output."),
    bsa_method: str = typer.Option("mosteller", "--bsa-method", help="mosteller or dubois."),
    sex: str | None = typer.Option(None, "--sex", help="M or F, for sex-specific normal ranges."),
    aha_method: str = typer.Option("uniform", "--aha-method", help="uniform (60-degree sectors) or septum_split."),
    base: str = typer.Option("auto", "--base", help="Where the LV base is: auto (from anatomy), first or last slice."),
    interpolate_missing: bool = typer.Option(False, "--interpolate-missing", help="Add interpolated area for empty in-between slices (still flagged)."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Also write a one-row CSV."),
    plots: Path | None = typer.Option(None, "--plots", help="Folder for PNGs: volume curve, bullseye, overlay."),
    image: list[Path] | None = typer.Option(None, "--image", help="Image(s) for the overlay plot, on the labels' grid: a cine, or ED [and ES] (repeat --image)."),
) -> None:
    """Measure volumes, EF, LV mass, AHA wall thickness and QC flags; write REPORT.json."""
    from ..labels import LabelMap

    _check_choice("--bsa-method", bsa_method, BSA_CHOICES)
    _check_choice("--aha-method", aha_method, AHA_CHOICES)
    _check_choice("--base", base, tuple(BASE_CHOICES))
    if (labels is None) == (ed is None and es is None) or (ed is None) != (es is None):
        raise MedsegError("give either LABELS or both --ed and --es")
    lmap = LabelMap.parse(label_map)
    if "lv" not in lmap:
        raise LabelMapError(f"the label map must name the LV blood pool (lv=...); got {lmap.to_string()}")
    phase_opts: dict[str, Any] = {"aha_method": aha_method, "interpolate_missing": interpolate_missing, "base_end": BASE_CHOICES[base]}
    body = {"height_cm": height_cm, "weight_kg": weight_kg, "bsa_method": bsa_method, "sex": sex}
    report, phases, frames, vol = _run(labels, ed, es, lmap, phase_opts, body, heart_rate)
    report["inputs"] = {k: str(v) for k, v in (("labels", labels), ("ed", ed), ("es", es)) if v is not None}
    if image:
        report["inputs"]["image"] = [str(p) for p in image]
    if plots is not None:
        _write_plots(report, plots, phases, frames, lmap, vol, image)
    if csv_path is not None:
        from ..measure.export import write_csv

        write_csv(report, csv_path)
    from .._files import write_json_atomic

    write_json_atomic(output, report)
    _summary(report, output)


def _run(labels: Path | None, ed: Path | None, es: Path | None, lmap: Any, phase_opts: dict, body: dict,
         heart_rate: float | None) -> tuple[dict, dict, dict, Any]:
    """Read the inputs and measure: (report, phase -> (Z, Y, X) labels, phase -> frame, ED Volume)."""
    from ..measure.report import measure_cine, measure_ed_es, measure_phase

    if labels is not None:
        vol = _read_labels(labels)
        _check_measurable(vol, labels, lmap)
        if vol.n_frames == 1:
            return measure_phase(vol, None, lmap, **phase_opts), {"labels": vol.array[0]}, {"labels": 0}, vol
        report = measure_cine(vol, None, lmap, **phase_opts, **body, **_heart_rate(heart_rate, vol))
        frames = {"ED": report["ed_frame"], "ES": report["es_frame"]}
        return report, {k: vol.array[f] for k, f in frames.items()}, frames, vol
    vol, vol_es = _read_labels(ed), _read_labels(es)
    if vol.n_frames != 1 or vol_es.n_frames != 1:
        raise MedsegError("--ed and --es must each be one 3-D phase")
    if not vol.same_grid(vol_es):
        raise GeometryError(f"ED and ES labels are on different grids ({vol.grid_shape} vs {vol_es.grid_shape} or affines differ)")
    _check_measurable(vol, ed, lmap, vol_es)
    report = measure_ed_es(vol.array[0], vol_es.array[0], vol.affine, lmap, **phase_opts, **body, **_heart_rate(heart_rate, vol))
    return report, {"ED": vol.array[0], "ES": vol_es.array[0]}, {"ED": 0, "ES": 0}, vol


def _check_choice(option: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise MedsegError(f"{option} {value!r} is not one of: {', '.join(allowed)}")


def _read_labels(path: Path) -> Any:
    """Integer label Volume (medseg.io: NIfTI, DICOM, MHA/NRRD, ...)."""
    from ..io import read_label_volume

    return read_label_volume(path)


def _read_image(path: Path) -> Any:
    from ..io import read_volume

    return read_volume(path)


def _heart_rate(user_bpm: float | None, vol: Any) -> dict[str, Any]:
    """Heart rate from the user, else DICOM HeartRate, else NominalInterval (RR, ms) in the meta."""
    if user_bpm is not None:
        return {"heart_rate": user_bpm}
    meta = getattr(vol, "meta", {}) or {}
    if meta.get("heart_rate"):
        return {"heart_rate": float(meta["heart_rate"])}
    if meta.get("nominal_interval"):
        return {"nominal_interval_ms": float(meta["nominal_interval"])}
    return {}


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
    if not any(np.any(v.array == lmap["lv"]) for v in vols):
        present = sorted({int(x) for v in vols for x in np.unique(v.array) if x != 0})
        raise LabelMapError(f"the label map names lv={lmap['lv']} but no voxel has that value (values present: {present}); check --label-map")


def _write_plots(report: dict, folder: Path, phases: dict, frames: dict, lmap: Any, vol: Any, image: list[Path] | None) -> None:
    from ..measure import plots as P

    folder.mkdir(parents=True, exist_ok=True)
    images = _overlay_images(image, vol, frames) if image else None
    written = {"bullseye": P.bullseye_png(report["wall_thickness_mm"], folder / "bullseye.png"),
               "overlay": P.overlay_png(phases, lmap, folder / "overlay.png", images=images, spacing_yx=tuple(report["spacing_mm"][1:]))}
    if "lv" in report and "edv_ml" in report.get("lv", {}):
        name = "volume_curve.png" if report.get("volume_curve_ml") else "volumes.png"
        written["volume_curve"] = P.volume_curve_png(report, folder / name)
    report["plots"] = {k: str(v) for k, v in written.items()}


def _overlay_images(paths: list[Path], vol: Any, frames: dict[str, int]) -> dict[str, np.ndarray]:
    """Phase -> (Z, Y, X) image: frames of a cine image, or one image per phase in order."""
    if len(paths) > len(frames):
        raise MedsegError(f"got {len(paths)} --image files for {len(frames)} phase(s)")
    imgs = [_read_image(p) for p in paths]
    for p, img in zip(paths, imgs):
        if img.grid_shape != vol.grid_shape or not np.allclose(img.affine, vol.affine, atol=1e-3):
            raise GeometryError(f"--image {p} is not on the labels' grid ({img.grid_shape} vs {vol.grid_shape}, or affines differ)")
    if len(imgs) == 1 and imgs[0].n_frames > 1:
        return {k: imgs[0].array[f] for k, f in frames.items() if f < imgs[0].n_frames}
    return {k: img.array[0] for k, img in zip(frames, imgs)}


def _summary(report: dict, output: Path) -> None:
    parts = []
    if "lv" in report:
        lv = report["lv"]
        parts.append(f"LV EDV {lv['edv_ml']:.1f} mL, ESV {lv['esv_ml']:.1f} mL, EF {lv['ef_pct']:.1f}%")
    else:
        parts.append(f"LV {report['volumes_ml'].get('lv', float('nan')):.1f} mL")
    parts.append(f"mass {report['lv_mass_g']:.1f} g")
    parts.append(f"{len(report['flags'])} flags")
    stdout.print(f"{'; '.join(parts)} -> {output}", highlight=False)
