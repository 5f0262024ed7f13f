"""``medseg evaluate``'s console line of clinical errors gave LVEF, mass, LV EDV, RVEF and RV EDV
but no ESV, although RESULT.json (each ED row's ``clinical``, ``summary.agreement``) and the CSV
had it; with all eight measures the line ran to ~170 characters. Synthetic short-axis stacks
scored as labels made before (no model): reader B's LV and RV are smaller than reader A's."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.cli._app import run_cli

AFF = np.diag([1.5, 1.5, 8.0, 1.0])


def _stack(r_lv: float, r_rv: float = 8.0, z: int = 6, n: int = 48) -> np.ndarray:
    """(Z, Y, X) labels: LV disk of radius ``r_lv`` px (3), myocardium 4 px thick (2), RV (1) of
    radius ``r_rv`` to its left."""
    yy, xx = np.mgrid[:n, :n]
    d = np.hypot(yy - n / 2, xx - n / 2)
    sl = np.zeros((n, n), np.uint8)
    sl[np.hypot(yy - n / 2, xx - (n / 2 - 21)) < r_rv] = 1
    sl[d < r_lv + 4] = 2
    sl[d < r_lv] = 3
    return np.repeat(sl[None], z, axis=0)


def _save(path: Path, arr: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(np.asarray(arr).T.copy(), AFF), str(path))


def _readers(tmp_path: Path, rv: float = 8.0) -> tuple[Path, Path]:
    """Reader A (images with labels beside them) and B: B's LV 1 px smaller at ED and 2 px at
    ES (p2: 2 and 1), its RV (radius ``rv``; 0: none) 1 px smaller at ES, so that ESV errors
    differ from the EDV ones."""
    a, b = tmp_path / "readerA", tmp_path / "readerB"
    a.mkdir()
    b.mkdir()
    for case, (d_ed, d_es) in (("p1", (1, 2)), ("p2", (2, 1))):
        for phase, r, shrink, rv_shrink in (("ED", 11.0, d_ed, 0), ("ES", 7.0, d_es, 1)):
            lab = _stack(r, rv)
            img = np.where(lab == 3, 300.0, np.where(lab > 0, 120.0, 40.0)) + np.arange(lab.size).reshape(lab.shape) % 5
            _save(a / f"{case}_{phase}.nii.gz", img.astype(np.float32))
            _save(a / f"{case}_{phase}_gt.nii.gz", lab)
            _save(b / f"{case}_{phase}.nii.gz", _stack(r - shrink, max(rv - rv_shrink, 0.0)))
    return a, b


def _evaluate(tmp_path: Path, label_map: str, capsys, rv: float = 8.0) -> tuple[dict, str]:
    a, b = _readers(tmp_path, rv)
    out = tmp_path / "r.json"
    capsys.readouterr()
    assert run_cli(["evaluate", "--pairs", str(a), "--label-map", label_map, "--predicted", str(b), "-o", str(out)]) == 0
    return json.loads(out.read_text()), capsys.readouterr().err


def _mae(result: dict, key: str) -> float:
    rows = [c["clinical"] for c in result["cases"] if f"{key}_pred_ml" in c.get("clinical", {})]
    return float(np.mean([abs(r[f"{key}_pred_ml"] - r[f"{key}_ref_ml"]) for r in rows]))


def test_console_gives_lv_and_rv_esv_errors_in_lines_of_at_most_110(tmp_path, capsys):
    r, err = _evaluate(tmp_path, "rv=1,myo=2,lv=3", capsys)
    esv, rv_esv, edv = _mae(r, "esv"), _mae(r, "rv_esv"), r["summary"]["edv_mae_ml"]
    assert esv > 0 and rv_esv > 0 and f"{esv:.1f}" != f"{edv:.1f}"
    assert r["summary"]["esv_mae_ml"] == esv and r["summary"]["rv_esv_mae_ml"] == rv_esv  # RESULT.json has them too
    start = err.index("mean absolute error over 2 ED/ES cases:")
    block = err[start:].split("\nLVEF ")[0]  # the clinical lines, up to the Bland-Altman line
    lines = block.splitlines()
    assert len(lines) == 2 and all(len(line) <= 110 for line in lines) and lines[1].startswith("  RVEF ")
    text = " ".join(block.split())
    assert f"LV EDV {edv:.1f} mL, LV ESV {esv:.1f} mL, RVEF" in text
    assert f"RV EDV {r['summary']['rv_edv_mae_ml']:.1f} mL, RV ESV {rv_esv:.1f} mL, wall thickening" in text


def test_no_rv_esv_where_the_rv_is_not_scored(tmp_path, capsys):
    r, err = _evaluate(tmp_path, "myo=2,lv=3", capsys, rv=0.0)
    text = " ".join(err.split())
    assert f"LV ESV {_mae(r, 'esv'):.1f} mL" in text
    assert "RV ESV" not in text and "RVEF" not in text and "rv_esv_mae_ml" not in r["summary"]


def test_a_measure_fewer_cases_have_is_counted_and_lines_stay_short():
    """The line breaks between measures only, with the (n=K) of those fewer cases have."""
    from medseg.cli.evaluate_cmd import _clinical_line

    clin = {"edv_pred_ml": 150.0, "edv_ref_ml": 140.0, "esv_pred_ml": 60.0, "esv_ref_ml": 63.5}
    cases = [{"clinical": dict(clin)}, {"clinical": {"lvef_pred": 50.0, "lvef_ref": 52.0}}, {"clinical": {}}]
    summary = {"n_clinical_cases": 3, "lvef_mae": 2.0, "lv_mass_mae_g": 123.456, "edv_mae_ml": 10.0, "esv_mae_ml": 3.5, "rvef_mae": 4.25,
               "rv_edv_mae_ml": 1234.5, "wall_thickening_mae_pct": 7.0,
               "agreement": {k: {"n": 1} for k in ("lv_mass", "edv", "esv", "rvef", "rv_edv", "wall_thickening")}}
    line = _clinical_line({"summary": summary, "cases": cases})
    assert all(len(x) <= 110 for x in line.splitlines()) and len(line.splitlines()) == 2
    assert " ".join(line.split()) == (
        "mean absolute error over 3 ED/ES cases: LVEF 2.0 pts, LV mass 123.5 g (n=1), LV EDV 10.0 mL (n=1), LV ESV 3.5 mL (n=1), "
        "RVEF 4.2 pts (n=1), RV EDV 1234.5 mL (n=1), wall thickening 7.0 pts (n=1)")
    assert _clinical_line({"summary": {"n_clinical_cases": 0, "lvef_mae": float("nan")}, "cases": []}) is None
