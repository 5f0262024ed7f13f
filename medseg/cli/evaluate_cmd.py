"""`medseg evaluate --pairs PAIRS.csv --label-map MAP --prompt MODE -o RESULT.json`."""

from __future__ import annotations

from pathlib import Path

import typer

from . import _options as o
from ._app import app, console


@app.command("evaluate")
def evaluate_command(
    pairs: Path = typer.Option(..., "--pairs", help="CSV with columns image,label[,case,phase], or a folder of images with their labels beside them (C.nii.gz + C_gt.nii.gz; also _labels, _label, _seg, _segmentation, _mask, _manual)."),
    label_map: str | None = typer.Option(None, "--label-map", help="Label values of the reference files, e.g. 'lv=3,myo=2,rv=1'; "
                                         "may be left out when every reference names its structures (DICOM SEG, medseg sidecar JSON)."),
    prompt: str = typer.Option("box", "--prompt", help="box, point, key-slice or auto."),
    out: Path = typer.Option(..., "-o", "--out", help="RESULT.json."),
    model: str = typer.Option("default", "--model"),
    adapter: str | None = typer.Option(None, "--adapter"),
    device: str = typer.Option("cpu", "--device"),
    workers: int = typer.Option(1, "--workers", help="Local worker processes (each loads the model once; torch threads = cores // N)."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Also write one row per case (Dice, HD95, clinical values, confidence, review)."),
    plots: Path | None = typer.Option(None, "--plots", help="Folder for PNGs: Dice per structure, confidence vs Dice, Bland-Altman (ED/ES cases)."),
    modality: o.Modality = None,
) -> None:
    """Score the model with prompts simulated from reference labels (Dice, HD95, clinical)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .._files import write_json_atomic
    from ..errors import MedsegError
    from ..evaluation import PROMPT_MODES, evaluate_pairs, read_pairs
    from ..labels import LabelMap
    from ..models import load_model
    from ._options import references_map, with_modality

    if prompt not in PROMPT_MODES:
        raise MedsegError(f"--prompt must be one of {', '.join(PROMPT_MODES)}, got {prompt!r}")
    if workers < 1:
        raise MedsegError(f"--workers must be 1 or more, got {workers}")
    rows = with_modality(read_pairs(pairs), modality)
    lmap = LabelMap.parse(label_map) if label_map else references_map(rows)
    _check_outputs(out, csv_path, plots, pairs, rows)
    loaded = load_model(model, device=device)
    if adapter:
        from ..adapters import attach_adapter

        loaded = attach_adapter(loaded, adapter)
    with Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("eval", total=len(rows))
        result = evaluate_pairs(rows, lmap, prompt, loaded, progress=lambda d, t: bar.update(task, completed=d), workers=workers, load=(model, adapter, device))
    if csv_path is not None:
        from ..evaluation_report import write_cases_csv

        write_cases_csv(result, csv_path)
    if plots is not None:
        from ..confidence import calibration
        from ..evaluation_report import write_plots

        result["plots"] = {k: str(v) for k, v in write_plots(result, plots, calibration()["volume_threshold"]).items()}
    write_json_atomic(out, result)
    s = result["summary"]
    dice = ", ".join(f"{k} {v:.3f}" for k, v in s["dice"].items())
    console.print(f"{s['n_cases']} cases, prompt={prompt}: Dice {dice}; wrote {out}", markup=False)
    units = (("lvef_mae", "LVEF", "pts"), ("lv_mass_mae_g", "LV mass", "g"), ("edv_mae_ml", "LV EDV", "mL"), ("rvef_mae", "RVEF", "pts"),
             ("rv_edv_mae_ml", "RV EDV", "mL"))
    errs = [f"{name} {s[k]:.1f} {u}" for k, name, u in units if isinstance(s.get(k), float) and s[k] == s[k]]
    if errs:
        console.print(f"mean absolute error over {s['n_clinical_cases']} ED/ES cases: {', '.join(errs)}", markup=False)
    ef = s.get("agreement", {}).get("lvef")
    if ef and ef["loa"]:
        console.print(f"LVEF medseg - reference: bias {ef['bias']:+.1f} pts, 95 % limits of agreement {ef['loa'][0]:+.1f} to {ef['loa'][1]:+.1f}", markup=False)
    if plots is not None:
        console.print(f"plots: {', '.join(Path(v).name for v in result['plots'].values())} in {plots}", markup=False)


def _check_outputs(out: Path, csv_path: Path | None, plots: Path | None, pairs: Path, rows: list) -> None:
    """Before any work: no output may replace the pairs file or an image or label file, and the
    report, the CSV and the plots are different files."""
    from .._files import check_not_inputs

    outputs = {"report": out, "CSV": csv_path}
    if plots is not None:
        outputs.update({f"plot {n}": plots / n for n in ("dice.png", "confidence.png", "bland_altman.png")})
    inputs = {"pairs file": pairs if pairs.is_file() else None}
    for i, r in enumerate(rows):
        inputs.update({f"image of row {i + 1}": r.image, f"labels of row {i + 1}": r.label})
    check_not_inputs(outputs, inputs)
