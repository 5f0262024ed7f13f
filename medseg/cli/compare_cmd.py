"""`medseg compare`: baseline vs follow-up, the change in each clinical measure per patient.

    medseg compare BASELINE FOLLOWUP -o CHANGES.json [--csv CHANGES.csv] [--plots DIR]
    medseg compare OUT_DIR -o CHANGES.json        (one batch folder holding every visit)

Thin: option checks, printing and writing; the pairing, changes and cautions come from
:mod:`medseg.measure.compare`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from ..errors import MedsegError
from ._app import app, console, stdout

#: the left-out pairs (summary.left_out) the console names; the rest are counted
LEFT_OUT_SHOWN = 10


@app.command("compare")
def compare_command(
    baseline: Path = typer.Argument(..., metavar="BASELINE", help="The baseline: a REPORT.json of medseg measure, or a medseg batch --measure "
                                    "folder (its cohort.csv). Alone: one batch folder holding every visit, each patient's first and last "
                                    "study by DICOM study date compared."),
    followup: Path | None = typer.Argument(None, metavar="FOLLOWUP", help="The follow-up: a REPORT.json or a batch folder, as BASELINE."),
    output: Path = typer.Option(..., "-o", "--out", "--output", help="CHANGES.json to write: each pair's values, change (follow-up minus "
                                "baseline) and cautions; the mean change and SD per measure."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Also write a CSV table, one row per pair."),
    plots: Path | None = typer.Option(None, "--plots", help="Folder for lvef_change.png: LVEF at baseline and follow-up, a line per patient."),
    allow_model_change: bool = typer.Option(False, "--allow-model-change", help="Compare visits whose labels come from different model "
                                            "weights or adapters (refused without it), with a caution."),
    allow_other_patient: bool = typer.Option(False, "--allow-other-patient", help="Compare two reports whose DICOM patient ids differ "
                                             "(refused without it)."),
) -> None:
    """Change in LVEF, volumes and mass from baseline to follow-up; write CHANGES.json.

    Folders are paired by DICOM patient id when every study has one, else by equal case id;
    unpaired cases are listed. Each pair's cautions say why a change may not be real: another
    model or adapter (refused unless --allow-model-change), label map, pixel or slice spacing,
    measurement settings, another scanner (DICOM manufacturer, model, field strength), a one-phase
    vs an ED/ES report, a visit flagged for review or QC.
    """
    from .._files import (
        atomic_path,
        check_not_inputs,
        check_plots_folder,
        check_table_names,
        check_writable_folder,
        csv_text,
        write_json_atomic,
        write_text_atomic,
    )
    from ..measure import compare as cmp
    from ..measure.compare_plot import slope_png

    check_table_names(output, csv_path)
    given = [baseline] if followup is None else [baseline, followup]
    if followup is not None and baseline.exists() and followup.exists() and baseline.resolve() == followup.resolve():
        raise MedsegError(f"BASELINE and FOLLOWUP are the same {'folder' if baseline.is_dir() else 'file'} ({baseline}): give the "
                          "follow-up's report or folder second (one folder holding every visit: medseg compare OUT_DIR alone)")
    check_not_inputs({"changes JSON": output, "CSV": csv_path}, {f"input {p}": q for p in given for q in _input_files(p)})
    check_plots_folder(plots, {"changes JSON": output, "CSV": csv_path})
    if plots is not None:
        check_writable_folder(plots)
    read = [cmp.read_visits(p) for p in given]
    for p, (visits, unmeasured) in zip(given, read):
        if not visits:
            raise MedsegError(f"{p}: its cohort.csv has no measured study{f' ({len(unmeasured)} case(s) without measures)' if unmeasured else ''}: "
                              "run medseg batch with --measure; nothing written")
    if followup is None:
        if not baseline.is_dir():
            raise MedsegError(f"{baseline}: one argument is a batch folder holding every visit; give two reports as BASELINE FOLLOWUP")
        pairs, unpaired = cmp.pair_one_folder(read[0][0])
        rule = "patient_id, first and last study_date"
    else:
        pairs, rule = cmp.pair_visits(read[0][0], read[1][0], allow_other_patient, given=not baseline.is_dir() and not followup.is_dir())
        paired = ({b.case for b, _ in pairs}, {f.case for _, f in pairs})
        unpaired = {"baseline": [v.case for v in read[0][0] if v.case not in paired[0]],
                    "followup": [v.case for v in read[1][0] if v.case not in paired[1]]}
    if not pairs:
        sides = "; ".join(f"{k}: {', '.join(v[:5])}{' ...' if len(v) > 5 else ''}" for k, v in unpaired.items() if v)
        raise MedsegError(f"no pairs found (paired by {rule}){': ' + sides if sides else ''}; nothing written")
    result = cmp.compare(pairs, allow_model_change)
    not_measured = sorted({c for _, unmeasured in read for c in unmeasured})
    obj = {"baseline": str(baseline), "followup": str(followup) if followup is not None else None, "paired_by": rule,
           **result, "unpaired": unpaired, **({"not_measured": not_measured} if not_measured else {}),
           "measures": {k: label for k, label in cmp.MEASURES.items()}, "change": "follow-up minus baseline"}
    png = None if plots is None else plots / "lvef_change.png"
    if png is not None and not any("lv.ef_pct" in p["measures"] for p in result["pairs"]):
        console.print("note: no pair has an LVEF at both visits: no lvef_change.png", markup=False, highlight=False, soft_wrap=True)
        png = None
    # all or nothing: each output is made under a temporary name and renamed into place only when
    # all three are made (a failure late, in the JSON, left the plot and the CSV of a run that said it failed);
    # the JSON is renamed first (the last entered): a JSON that cannot be put in place leaves no plot or CSV either
    with contextlib.ExitStack() as stack:
        tmp = {k: stack.enter_context(atomic_path(t)) for k, t in (("png", png), ("csv", csv_path), ("json", output)) if t is not None}
        if "png" in tmp:
            slope_png(result, tmp["png"])
        if "csv" in tmp:
            write_text_atomic(tmp["csv"], csv_text(*cmp.changes_rows(result)))
        write_json_atomic(tmp["json"], obj)
    _say(obj, output)


def _input_files(path: Path) -> list[Path]:
    """The files compare reads of an input (a report; a folder's tables): no output may replace them."""
    return [path / n for n in ("cohort.csv", "summary.csv", "summary.json")] if path.is_dir() else [path]


def _say(obj: dict, output: Path) -> None:
    from .._files import shown

    s = obj["summary"]
    lines = [f"{s['n_pairs']} pair(s), paired by {obj['paired_by']}; {s['n_pairs_with_cautions']} with cautions"]
    for k in ("lv.ef_pct", "lv.edv_ml", "lv_mass_g", "rv.ef_pct"):
        if (m := s["measures"].get(k)) is not None:
            sd = f" (SD {m['sd_change']:.2f})" if m["sd_change"] is not None else ""
            lines.append(f"  {m['label']}: mean change {m['mean_change']:+.2f}{sd}, n={m['n']}")
    if (out := s.get("left_out")) is not None:  # an echo report paired with a short-axis one: cautioned, in no mean
        lines.append(f"  left out of the mean change: {len(out['pairs'])} pair(s) of an echo and a short-axis report, "
                     "listed under summary.left_out:")
        lines += [f"    {shown(pair)}" for pair in out["pairs"][:LEFT_OUT_SHOWN]]  # "baseline case -> follow-up case", as the CSV's
        if len(out["pairs"]) > LEFT_OUT_SHOWN:
            lines.append(f"    ... and {len(out['pairs']) - LEFT_OUT_SHOWN} more")
    left = sum(len(v) for v in obj["unpaired"].values())
    if left:
        lines.append(f"  unpaired: {left} case(s), listed under 'unpaired'")
    lines.append(f"-> {shown(output)}")
    stdout.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
