"""`medseg evaluate --pairs PAIRS.csv --label-map MAP --prompt MODE -o RESULT.json`, or
`--predicted DIR` to score labels made before (no model run)."""

from __future__ import annotations

from pathlib import Path

import typer

from .._files import shown
from . import _options as o
from ._app import app, console, progress_bar


@app.command("evaluate")
def evaluate_command(
    pairs: Path = typer.Option(..., "--pairs", help="CSV with columns image,label[,case,phase,frame] (frame: the frame of a cine image, from 0 as segment --frames numbers them, that a row's one-frame labels segment; scored alone), or a folder of images with their labels beside them (C.nii.gz + C_gt.nii.gz; also _labels, _label, _seg, _segmentation, _mask, _manual)."),
    label_map: str | None = typer.Option(None, "--label-map", help="Label values of the reference files, e.g. 'lv=3,myo=2,rv=1', or a file (JSON, ITK-SNAP .txt/.label, nnU-Net dataset.json); "
                                         "may be left out when every reference names its structures (DICOM SEG, medseg sidecar JSON)."),
    prompt: str | None = typer.Option(None, "--prompt", help="box, point, key-slice or auto. Default: box."),
    predicted: Path | None = typer.Option(None, "--predicted", help="Score labels made before instead of running the model: a folder "
                                          "(a medseg batch OUT_DIR, labels saved from napari, another reader's) with each case's labels "
                                          "named as its image (CASE.nii.gz; CASE_seg etc. too). A 'prediction' column in PAIRS.csv does the same. "
                                          "What a batch handed over (--min-confidence) is counted, not scored."),
    predicted_label_map: str | None = typer.Option(None, "--predicted-label-map", help="Label values of predicted files that do not name "
                                                   "their structures (medseg's sidecar and DICOM SEG do). Default: --label-map."),
    skip_missing: bool = typer.Option(False, "--skip-missing", help="With --predicted: score the cases that have labels there and list "
                                      "those that have none (a case one reader left out), instead of stopping."),
    out: Path = typer.Option(..., "-o", "--out", help="Result JSON to write (summary and per-case scores)."),
    model: o.Model = "default",
    adapter: o.Adapter = None,
    device: o.Device = "cpu",
    workers: int = typer.Option(1, "--workers", help="Local worker processes (each loads the model once; torch threads = cores // N, cores no more than $OMP_NUM_THREADS)."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Also write one row per case (Dice, HD95, clinical values, confidence, review)."),
    plots: Path | None = typer.Option(None, "--plots", help="Folder for PNGs: Dice per structure, confidence vs Dice, Bland-Altman (ED/ES cases)."),
    modality: o.Modality = None,
) -> None:
    """Score the model, or labels made before, against reference labels.

    Prompts are simulated from the reference labels (--prompt), or --predicted names labels made
    before. Reports Dice, HD95 (mm) and, for ED/ES cases, clinical errors."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from .._files import write_json_atomic
    from ..errors import MedsegError
    from ..evaluation import PROMPT_MODES, evaluate_pairs, read_pairs, with_predictions
    from ..labels import LabelMap
    from ..models import load_model
    from ._options import note_left_out, note_lines, references_map, with_modality

    if workers < 1:
        raise MedsegError(f"--workers must be 1 or more, got {workers}")
    if prompt is not None and prompt not in PROMPT_MODES:  # a typo, before the pairs are read
        raise MedsegError(f"--prompt must be one of {', '.join(PROMPT_MODES)}, got {prompt!r}")
    left: list[str] = []
    notes: list[str] = []
    rows = with_modality(read_pairs(pairs, left, notes), modality)
    note_lines(notes)
    if skip_missing and predicted is None:
        raise MedsegError("--skip-missing goes with --predicted (a folder in which some cases may have no labels)")
    if predicted is not None:
        if any(r.prediction is not None for r in rows):
            raise MedsegError(f"{pairs} has a prediction column and --predicted names a folder: give one of them")
        rows = with_predictions(rows, predicted, skip_missing=skip_missing)
    scoring = predicted is not None or any(r.prediction is not None for r in rows)
    if scoring and (prompt or model != "default" or adapter):
        given = ", ".join(o for o, v in (("--prompt", prompt), ("--model", model != "default"), ("--adapter", adapter)) if v)
        raise MedsegError(f"{given}: not used when scoring labels made before ({'--predicted' if predicted else 'the prediction column'}); leave it out")
    if predicted_label_map and not scoring:
        raise MedsegError("--predicted-label-map goes with --predicted (or a prediction column in the pairs file)")
    prompt = None if scoring else (prompt or "box")
    if not scoring:
        o.check_device(device)
    lmap = LabelMap.parse(label_map) if label_map else references_map(rows)
    pmap = LabelMap.parse(predicted_label_map) if predicted_label_map else None
    _check_outputs(out, csv_path, plots, pairs, rows)
    note_left_out("--pairs", left)
    if not scoring:
        o.note_workers(workers, len(rows))
        o.note_gpu_unused(device)
    loaded = None if scoring else load_model(model, device=device, adapter=adapter)
    trained = _adapter_training_cases(adapter, rows) if loaded is not None and adapter else _scored_adapter_cases(rows) if scoring else []
    if loaded is not None:  # a lab's own model (medseg train --pairs): its header names its training volumes
        from ..models.own import model_trained_on

        model_trained = model_trained_on(loaded.info, [r.case for r in rows], [r.image for r in rows])
    with progress_bar(TextColumn("scoring" if scoring else "evaluating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task("eval", total=len(rows))
        result = evaluate_pairs(rows, lmap, prompt, loaded, progress=lambda d, t: bar.update(task, completed=d), workers=workers,
                                load=None if scoring else (model, adapter, device), predicted_map=pmap)
    scored_name = (predicted.resolve().name or "predicted") if predicted else ("predicted" if scoring else "medseg")
    result["settings"]["compared"] = {"scored": str(predicted.resolve()) if predicted else ("the pairs' prediction column" if scoring else "medseg's model"),
                                      "scored_name": scored_name, "reference": f"the labels of {pairs.resolve()}", "reference_name": "reference",
                                      "difference": f"{scored_name} - reference"}  # the sign of summary.agreement's bias
    if csv_path is not None:
        from ..evaluation_report import write_cases_csv

        write_cases_csv(result, csv_path)
    if plots is not None:
        from ..confidence import calibration
        from ..evaluation_report import write_plots

        result["plots"] = {k: str(v) for k, v in write_plots(result, plots, calibration()["volume_threshold"]).items()}
    if trained:
        result["summary"]["adapter_trained_on"] = trained
    if loaded is not None and model_trained:
        result["summary"]["model_trained_on"] = model_trained
    write_json_atomic(out, result)
    s = result["summary"]
    dice = ", ".join(f"{k} {v:.3f}" for k, v in s["dice"].items())
    how = f"labels in {shown(predicted)}" if predicted else ("the pairs' predictions" if scoring else f"prompt={prompt}")
    how += f" against the reference labels of {shown(pairs)}" if scoring else ""
    # a case is a volume (a study's ED or ES, an echo view): "8 cases" read as 8 studies; how many studies the clinical
    # errors grouped them into (frames, views, phases) is said on their own line
    scored = f"{s['n_cases']} volume{'' if s['n_cases'] == 1 else 's'}"
    console.print(f"{scored}, {how}: Dice {dice}; wrote {shown(out)}", markup=False)
    if trained:
        console.print(f"note: {len(trained)} of the {len({r.case for r in rows})} cases are named as volumes the adapter was trained on "
                      f"({', '.join(shown(c) for c in trained[:5])}{', ...' if len(trained) > 5 else ''}): their scores are no validation "
                      "of it (summary.adapter_trained_on; its medseg.json lists training.pairs and val_pairs)", markup=False)
    if loaded is not None and model_trained:
        console.print(f"note: {len(model_trained)} of the {len({r.case for r in rows})} cases are volumes the model {loaded.model_id} was trained on "
                      f"({', '.join(shown(c) for c in model_trained[:5])}{', ...' if len(model_trained) > 5 else ''}): their scores are no "
                      "validation of it (summary.model_trained_on; medseg info on the checkpoint lists them)", markup=False)
    edited = sorted({shown(c["case"]) for c in result["cases"] if c.get("edited_by_hand")})
    if edited:
        console.print(f"note: {len(edited)} case{'' if len(edited) == 1 else 's'} hold{'s' if len(edited) == 1 else ''} labels edited by hand after the model "
                      f"({', '.join(edited[:5])}{', ...' if len(edited) > 5 else ''}; `edited_by_hand`): their scores are not the model's, "
                      "and the review-flag statistics leave them out", markup=False)
    unscored = sorted({f"{shown(c['case'])} ({', '.join(c['not_predicted'])})" for c in result["cases"] if c.get("not_predicted")})
    if unscored:
        console.print(f"not scored, absent from the predicted labels' map: {'; '.join(unscored[:5])}"
                      + (f" and {len(unscored) - 5} more" if len(unscored) > 5 else ""), markup=False)
    extra = [f"{shown(c['case'])} ({', '.join(f'{n} {v} voxels' for n, v in c['not_in_reference'].items())})" for c in result["cases"] if c.get("not_in_reference")]
    if extra:
        console.print(f"not scored, drawn where the reference has none: {'; '.join(extra[:5])}"
                      + (f" and {len(extra) - 5} more" if len(extra) > 5 else "") + " (`not_in_reference`)", markup=False)
    line = _clinical_line(result)
    if line:
        console.print(line, markup=False)
    if s.get("n_long_axis_studies"):
        la = [f"{name} {s[k]:.1f} {u}" for k, name, u in (("long_axis_lvef_mae", "LVEF", "pts"), ("long_axis_edv_mae_ml", "LV EDV", "mL"))
              if isinstance(s.get(k), float) and s[k] == s[k]]
        n = s["n_long_axis_studies"]
        console.print(f"mean absolute error over {n} long-axis ED/ES view{'' if n == 1 else 's'} (single-plane disks): {', '.join(la)}", markup=False)
    for key, name in (("lvef", "LVEF"), ("rvef", "RVEF")):
        ef = s.get("agreement", {}).get(key)
        if ef and ef["loa"]:
            console.print(f"{name} {result['settings']['compared']['difference']}: bias {ef['bias']:+.1f} pts, 95 % limits of agreement "
                          f"{ef['loa'][0]:+.1f} to {ef['loa'][1]:+.1f}", markup=False)
    for key, what in (("measure_flags", "QC flags of the measurement on one side only (`measure_flags`)"),
                      ("not_in_label_map", "label values of the reference that the label map does not name, scored as background (`not_in_label_map`)"
                       if result["settings"].get("prompt") else "label values on one side only that the label map does not name, not scored (`not_in_label_map`)")):
        rows = [c for c in result["cases"] if c.get(key)]
        hit = [f"{shown(c['case'])} ({'; '.join(f'{w} ' + ', '.join(map(str, v)) for w, v in c[key].items())})" for c in rows]
        swapped = any("esv_exceeds_edv" in v for c in rows for v in c[key].values() if key == "measure_flags")
        if hit:  # esv_exceeds_edv: which frame is ED is the reference's call (its larger LV) unless a phase column says
            console.print(f"note: {what}: {'; '.join(hit[:5])}" + (f" and {len(hit) - 5} more" if len(hit) > 5 else "")
                          + ("; ED and ES are the phase column's, else the frames of the reference's larger and smaller LV" if swapped else ""), markup=False)
    handed = s.get("handed_over")
    if handed:
        listed = [f"{shown(c['case'])}{' ' + c['phase'] if c['phase'] else ''} ({'no labels: ' if c['entire'] else ''}{', '.join(c['structures'])})"
                 for c in handed["cases"]]
        entire = f" ({handed['n_cases_entire']} cases entirely)" if handed["n_cases_entire"] else ""
        console.print(f"handed over for manual review, not scored: {handed['n_volumes']} structure-volumes{entire}: {'; '.join(listed[:5])}"
                      + (f" and {len(listed) - 5} more" if len(listed) > 5 else ""), markup=False)
    for key, what in (("failed_in_batch", "failed in the batch, not scored"), ("not_in_predicted", "no labels in --predicted, not scored (--skip-missing)")):
        failed = s.get(key)
        if failed:
            listed = [f"{shown(c['case'])}{' ' + c['phase'] if c['phase'] else ''}" + (f" ({c['reason']})" if key == "failed_in_batch" else "")
                      for c in failed["cases"]]
            console.print(f"{what}: {failed['n_cases']} case{'' if failed['n_cases'] == 1 else 's'}: {'; '.join(listed[:5])}"
                          + (f" and {len(listed) - 5} more" if len(listed) > 5 else ""), markup=False)
    line = _review_line(s)
    if line:
        console.print(line, markup=False)
    if plots is not None:
        console.print(f"plots: {', '.join(Path(v).name for v in result['plots'].values())} in {shown(plots)}", markup=False)


def _scored_adapter_cases(rows: list) -> list[str]:
    """Scoring labels made before: the cases whose labels an adapter made (their sidecars'
    ``adapter_id``) that its medseg.json names as its training volumes (a review scored the LGE
    adapter's labels of its training subject3 as validation, without the note `--adapter` gives)."""
    from ..adapters import find_adapter, trained_on
    from ..errors import MedsegError
    from ..io import read_sidecar

    by_adapter: dict[str, list] = {}
    for r in rows:
        try:
            prov = (read_sidecar(r.prediction) or {}).get("provenance") if r.prediction is not None else None
        except MedsegError:
            continue
        if isinstance(prov, dict) and isinstance(prov.get("adapter_id"), str) and prov["adapter_id"]:
            by_adapter.setdefault(prov["adapter_id"], []).append(r)
    out: set[str] = set()
    for adapter_id, its in by_adapter.items():
        try:
            out |= set(trained_on(find_adapter(adapter_id), [r.case for r in its], [r.image for r in its]))
        except (MedsegError, OSError):  # an adapter not on this machine: nothing to check it against
            continue
    return sorted(out)


def _adapter_training_cases(adapter: str, rows: list) -> list[str]:
    """The cases of the pairs that the adapter's medseg.json names as its training volumes."""
    from ..adapters import find_adapter, trained_on

    return sorted(set(trained_on(find_adapter(adapter), [r.case for r in rows], [r.image for r in rows])))


#: (summary key; agreement key; name; unit) of the clinical-error line, in its order
_CLINICAL_ERRORS = (("lvef_mae", "lvef", "LVEF", "pts"), ("lv_mass_mae_g", "lv_mass", "LV mass", "g"), ("edv_mae_ml", "edv", "LV EDV", "mL"),
                    ("esv_mae_ml", "esv", "LV ESV", "mL"), ("rvef_mae", "rvef", "RVEF", "pts"), ("rv_edv_mae_ml", "rv_edv", "RV EDV", "mL"),
                    ("rv_esv_mae_ml", "rv_esv", "RV ESV", "mL"), ("wall_thickening_mae_pct", "wall_thickening", "wall thickening", "pts"))


def _clinical_line(result: dict, width: int = 110) -> str | None:
    """The console lines of the clinical errors: "mean absolute error over N ED/ES cases: LVEF 0.7
    pts, ..., LV ESV 4.9 mL, ..." (``(n=K)`` after a measure fewer cases have), broken between
    measures at ``width`` characters, the next lines indented by two. None without clinical errors."""
    s = result["summary"]
    n_all, agree = s.get("n_clinical_cases"), s.get("agreement", {})
    errs = []
    for key, a, name, unit in _CLINICAL_ERRORS:
        v = s.get(key)
        if isinstance(v, float) and v == v:
            n = agree.get(a, {}).get("n")
            errs.append(f"{name} {v:.1f} {unit}" + (f" (n={n})" if n is not None and n_all is not None and n < n_all else ""))
    if not errs:
        return None
    lines = [f"mean absolute error over {n_all} ED/ES cases:"]
    for i, e in enumerate(errs):
        item = e + ("," if i < len(errs) - 1 else "")
        if len(lines[-1]) + 1 + len(item) > width and lines[-1].strip().endswith(","):
            lines.append("  " + item)
        else:
            lines[-1] += " " + item
    return "\n".join(lines)


def _review_line(s: dict) -> str | None:
    """The console line of ``summary.review``: the share of the bad structure-volumes the flags
    caught, of the good ones they flagged, and of the flagged that were fine (None without review data)."""
    st = s.get("review")
    rv = (st or {}).get("volumes")
    if not rv or not rv["n"]:
        return None
    bad = st["bad_dice_below"]
    if not rv["n_bad"]:  # every flag fell on a good volume ("..., 47.9 % of the good ones" read as a fragment)
        flagged = f"{rv['good_flagged_pct']} % of them flagged" if rv["n_flagged"] else "none flagged"
        return f"review flags: none of the {rv['n']} structure-volumes has Dice < {bad}; {flagged}"
    caught = f"{rv['bad_flagged_pct']} % of the {rv['n_bad']} structure-volumes with Dice < {bad} flagged"
    good = f", {rv['good_flagged_pct']} % of the good ones" if rv["good_flagged_pct"] is not None else ""
    fine = f"; {rv['flagged_fine_pct']} % of the {rv['n_flagged']} flagged were fine" if rv["n_flagged"] else "; none flagged"
    return f"review flags: {caught}{good}{fine}"


def _check_outputs(out: Path, csv_path: Path | None, plots: Path | None, pairs: Path, rows: list) -> None:
    """Before any work: no output may replace the pairs file or an image or label file, and the
    report, the CSV and the plots are different files."""
    from .._files import check_not_inputs, check_plots_folder, check_table_names

    outputs = {"report": out, "CSV": csv_path}
    if plots is not None:
        outputs.update({f"plot {n}": plots / n for n in ("dice.png", "confidence.png", "bland_altman.png")})
    inputs = {"pairs file": pairs if pairs.is_file() else None}
    for i, r in enumerate(rows):
        inputs.update({f"image of row {i + 1}": r.image, f"labels of row {i + 1}": r.label, f"predicted labels of row {i + 1}": r.prediction})
    check_not_inputs(outputs, inputs)
    check_table_names(out, csv_path)
    check_plots_folder(plots, {"report": out, "CSV": csv_path})
