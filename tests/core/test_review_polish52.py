"""Fixes from a cine user journey (session 52): the --review-png help said flagged slices are
drawn "in red" (the sheet frames them in thick black); the sheet named frames t0/t1 only (on
Sunnybrook ED is t1); the volume curve of a 2-frame cine had ticks 0.2, 0.4... and its ED labels
over the y-axis numbers; `measure --plots` help left out thickening.png; the DICOM SR's RV
stroke volume read "... (observable entity)"; `evaluate` said "8 cases" then "over 4 ED/ES cases"."""

from __future__ import annotations

import ast
import inspect
import json
import re
import typing
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _disk_labels(radii: list[float], z: int = 3, n: int = 40) -> np.ndarray:
    """(T, Z, Y, X) labels: an LV disk (value 3) of radius ``radii[t]`` in a myocardial ring (2)."""
    yy, xx = np.mgrid[:n, :n]
    d = np.hypot(yy - n / 2, xx - n / 2)
    out = np.zeros((len(radii), z, n, n), np.uint8)
    for t, r in enumerate(radii):
        out[t, :, d < r + 3] = 2
        out[t, :, d < r] = 3
    return out


def _strings(path: Path) -> list[str]:
    return [n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_review_png_help_says_what_the_sheet_draws_thick_black_frames():
    import matplotlib.colors as mcolors

    from medseg.cli import _options, segment_cmd
    from medseg.measure.sheets import review_sheet_figure

    lab = _disk_labels([8.0])
    review = {"flags": [{"code": "x", "structure": "lv", "frame": 0, "slice": 1, "message": "m"}]}
    fig = review_sheet_figure(np.ones(lab.shape, float), lab, "rv=1,myo=2,lv=3", review)
    flagged = [ax for ax in fig.axes if ax.get_title().startswith("t0 z1")][0]
    assert {mcolors.to_hex(s.get_edgecolor()) for s in flagged.spines.values()} == {"#000000"}
    assert all(s.get_linewidth() == 3 for s in flagged.spines.values())
    helps = [inspect.signature(segment_cmd.segment_command).parameters["review_png"].default.help,
             typing.get_args(_options.ReviewPng)[1].help]
    helps += [s for f in ("napari_plugin/_review.py", "napari_plugin/_qt/review_widget.py", "medseg/measure/sheets.py")
              for s in _strings(ROOT / f) if "flagged slices" in s and re.search(r"\b(red|black)\b", s)]
    assert len(helps) >= 6
    for text in helps:
        assert "in red" not in text and "thick black" in " ".join(text.split()), text


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_review_sheet_names_ed_and_es_frames_from_the_frame_pick():
    from medseg.measure.sheets import review_sheet_figure

    lab = _disk_labels([6.0, 9.0])  # as Sunnybrook's: ES is t0, ED t1
    img = np.ones(lab.shape, float)
    titles = _titles(review_sheet_figure(img, lab, "rv=1,myo=2,lv=3", phases={"ed": 1, "es": 0, "method": "zero-click"}))
    assert titles and all(t.startswith(("t0 (ES) z", "t1 (ED) z")) for t in titles)
    assert {t[:7] for t in titles} == {"t0 (ES)", "t1 (ED)"}
    # two labelled frames and no frame_pick: which is ED is not known, nothing is claimed
    assert all("(" not in t for t in _titles(review_sheet_figure(img, lab, "rv=1,myo=2,lv=3")))


def test_review_sheet_names_frames_picked_by_lv_size_out_of_a_labelled_cine():
    from medseg.labels import LabelMap
    from medseg.measure.sheets import frame_names, review_sheet_figure

    lab = _disk_labels([7.0, 9.0, 8.0, 5.0, 6.0])
    assert frame_names(lab, LabelMap.parse("rv=1,myo=2,lv=3")) == {1: "max LV", 3: "min LV"}
    titles = _titles(review_sheet_figure(np.ones(lab.shape, float), lab, "rv=1,myo=2,lv=3"))
    assert {t.split(" z")[0] for t in titles} == {"t1 (max LV)", "t3 (min LV)"}


def _two_frame_report() -> dict:
    return {"volume_curve_ml": {"lv": [210.8, 163.2], "rv": [126.2, 68.6]}, "ed_frame": 0, "es_frame": 1,
            "rv_ed_frame": 0, "rv_es_frame": 1, "frame_times_s": None, "flags": [], "lv": {"ef_pct": 22.6}, "rv": {"ef_pct": 45.6}}


def test_volume_curve_of_two_frames_has_whole_frame_ticks_and_labels_inside_the_axes():
    from medseg.measure.plots import _figure, draw_volume_curve

    fig = _figure(6.4, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    draw_volume_curve(ax, _two_frame_report())
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks == [0.0, 1.0]  # not 0.0, 0.2, ... 1.0
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    notes = [t for t in ax.texts if " ED " in t.get_text() or " ES " in t.get_text()]
    assert len(notes) == 4
    for t in notes:  # the ED labels at the first frame covered the y-axis's tick numbers
        ext = t.get_bbox_patch().get_window_extent(renderer)
        assert box.x0 <= ext.x0 and ext.x1 <= box.x1, t.get_text()


def test_measure_plots_help_lists_every_png_it_writes():
    from medseg.cli.measure_cmd import measure_command

    text = inspect.signature(measure_command).parameters["plots"].default.help
    for name in ("overlay.png", "bullseye.png", "thickening.png", "volume_curve.png", "volumes.png"):
        assert name in text


def test_sr_concept_names_carry_no_snomed_semantic_tag():
    from medseg.io.sr_writer import measurement_rows

    report = {"lv": {"edv_ml": 150.0, "esv_ml": 60.0, "sv_ml": 90.0, "ef_pct": 60.0},
              "rv": {"edv_ml": 160.0, "esv_ml": 80.0, "sv_ml": 80.0, "ef_pct": 50.0}, "lv_mass_g": 120.0}
    rows, _ = measurement_rows(report, "MR")
    meanings = {key: code.meaning for _, key, code, _, _ in rows}
    assert meanings["rv.sv_ml"] == "Right Ventricular Stroke Volume"
    assert not [m for m in meanings.values() if "(" in m]
    rv_sv = [code for _, key, code, _, _ in rows if key == "rv.sv_ml"][0]
    assert (rv_sv.value, rv_sv.scheme_designator) == ("429483009", "SCT")


@pytest.mark.parametrize("phases", [("ED", "ES"), ("ED",)])
def test_evaluate_counts_volumes_and_studies_alike(tmp_path, capsys, phases):
    from medseg.cli._app import run_cli

    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir()
    pred.mkdir()
    aff = np.diag([1.5, 1.5, 8.0, 1.0])
    for case, shrink in (("p1", 1.0), ("p2", 2.0)):
        for phase, r in (("ED", 10.0), ("ES", 7.0))[:len(phases)]:
            lab = _disk_labels([r], z=4)[0]
            img = np.where(lab == 3, 300.0, np.where(lab > 0, 120.0, 40.0)).astype(np.float32)
            for path, arr in ((ref / f"{case}_{phase}.nii.gz", img), (ref / f"{case}_{phase}_gt.nii.gz", lab),
                              (pred / f"{case}_{phase}.nii.gz", _disk_labels([r - shrink], z=4)[0])):
                nib.save(nib.Nifti1Image(np.asarray(arr).T.copy(), aff), str(path))
    out = tmp_path / "r.json"
    capsys.readouterr()
    assert run_cli(["evaluate", "--pairs", str(ref), "--label-map", "rv=1,myo=2,lv=3", "--predicted", str(pred), "-o", str(out)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert json.loads(out.read_text())["summary"]["n_cases"] == 2 * len(phases)
    if len(phases) == 2:  # was "4 cases, ..." then "mean absolute error over 2 ED/ES cases"
        assert err.startswith("4 volumes, labels in ") and "over 2 ED/ES cases" in err
    else:
        assert err.startswith("2 volumes, labels in ")
