"""The RV user's workflow (pulmonary hypertension, ARVC, congenital disease): RVEF and RV EDV index
against sex-specific normal ranges (UK Biobank, Petersen 2017), RV numbers on `medseg measure`'s
summary line (a cine's RV ES found on the RV's own curve), the RV EDV index in the cohort
overview, and `evaluate`'s RVEF agreement line. Synthetic phantoms, plus the expert labels of an
ACDC patient of the RV group (081; skipped when ../shared/data is absent), checked against its
RV volumes computed here with nibabel + numpy."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from measure_phantoms import LVPhantom, centred_affine, rasterise

from medseg.cli import run_cli
from medseg.measure.report import measure_cine, measure_ed_es

LMAP = "lv=1,myo=2,rv=3"
SHAPE = (9, 64, 64)
AFF = centred_affine((10.0, 1.5, 1.5), SHAPE, shift_mm=(0.3, 0.2, -3.3))
ACDC = Path(os.environ.get("MEDSEG_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data")) / "acdc" / "training" / "patient081"


def _pair(rv_ed: float = 18.0, rv_es: float = 9.0) -> tuple[np.ndarray, np.ndarray]:
    """ED and ES labels whose RV crescent is ``rv_ed`` / ``rv_es`` mm deep (the LV the same)."""
    return (rasterise(LVPhantom(r_cav=24.0, rv_depth_mm=rv_ed), AFF, SHAPE),
            rasterise(LVPhantom(r_cav=17.0, rv_depth_mm=rv_es), AFF, SHAPE))


def _codes(rep: dict, structure: str = "rv") -> set[str]:
    return {f["code"] for f in rep["flags"] if f.get("structure") == structure}


def _body_for_index(edv_ml: float, index: float, height_cm: float = 150.0) -> dict:
    """Height and weight whose Mosteller BSA makes ``edv_ml`` read as ``index`` mL/m^2."""
    return {"height_cm": height_cm, "weight_kg": (edv_ml / index) ** 2 * 3600.0 / height_cm}


def test_rvef_range_flag_is_sex_specific():
    """RVEF 44-68 % (men), 47-71 % (women): an RVEF of ~45.5 % is normal for a man, low for a
    woman; an RV EF far below both is low for either, and without sex by the union of both."""
    ed, es = _pair(18.0, 12.5)
    rep_m = measure_ed_es(ed, es, AFF, LMAP, sex="M")
    assert 44.0 < rep_m["rv"]["ef_pct"] < 47.0  # the phantom's RVEF lies between the two lower limits
    assert "rvef_low" not in _codes(rep_m)
    rep_f = measure_ed_es(ed, es, AFF, LMAP, sex="F")
    (flag,) = [f for f in rep_f["flags"] if f["code"] == "rvef_low"]
    assert flag["structure"] == "rv" and flag["normal_range"] == [47.0, 71.0] and "Petersen 2017" in flag["message"]
    low = measure_ed_es(*_pair(18.0, 16.0), AFF, LMAP)  # no sex: the union 44-71 %
    assert low["rv"]["ef_pct"] < 30 and "rvef_low" in _codes(low)
    assert "sex not given" in next(f["message"] for f in low["flags"] if f["code"] == "rvef_low")


def test_rv_edv_index_range_flag_needs_body_data_and_is_sex_specific():
    """RV EDV index 60-120 (men), 54-102 mL/m^2 (women): 110 mL/m^2 is dilated for a woman only;
    without height and weight there is no index and no flag."""
    ed, es = _pair()
    edv = measure_ed_es(ed, es, AFF, LMAP)["rv"]["edv_ml"]
    body = _body_for_index(edv, 110.0)
    rep_m, rep_f = (measure_ed_es(ed, es, AFF, LMAP, sex=s, **body) for s in ("M", "F"))
    assert rep_f["indexed"]["rv_edv_ml_m2"] == pytest.approx(110.0, rel=1e-6)
    assert "rv_edv_index_high" not in _codes(rep_m) and "rv_edv_index_high" in _codes(rep_f)
    small = measure_ed_es(ed, es, AFF, LMAP, sex="M", **_body_for_index(edv, 50.0))
    assert "rv_edv_index_low" in _codes(small)
    assert not {c for c in _codes(measure_ed_es(ed, es, AFF, LMAP, sex="F")) if c.startswith("rv_edv_index")}


def test_no_rv_range_flag_for_a_swapped_rv_or_no_rv():
    """ED and ES of the RV swapped read as a negative RVEF: esv_exceeds_edv, not rvef_low. Labels
    without an RV in the map get no RV flag at all."""
    ed, es = _pair(9.0, 18.0)
    rep = measure_ed_es(ed, es, AFF, LMAP, sex="M")
    assert rep["rv"]["ef_pct"] < 0 and _codes(rep) == {"esv_exceeds_edv"}
    no_rv = [np.where(a == 3, 0, a) for a in _pair()]
    rep = measure_ed_es(*no_rv, AFF, "lv=1,myo=2", sex="F", height_cm=170, weight_kg=70)
    assert not _codes(rep)


def _save(path: Path, arr: np.ndarray) -> str:
    nib.save(nib.Nifti1Image(np.asarray(arr).T.copy(), AFF), str(path))
    return str(path)


def test_measure_summary_line_gives_the_rv(tmp_path, capsys):
    """`medseg measure --ed --es`: the line named LV EDV/ESV/EF and mass only; an RV user saw an
    `ef_implausible` or `rvef_low` flag next to a normal LVEF without the RV's numbers."""
    ed, es = _pair(18.0, 16.0)
    assert run_cli(["measure", "--ed", _save(tmp_path / "ed.nii.gz", ed), "--es", _save(tmp_path / "es.nii.gz", es),
                    "--label-map", LMAP, "--sex", "M", "-o", str(tmp_path / "r.json")]) == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    line = capsys.readouterr().out.strip()
    rv = rep["rv"]
    assert f"RV EDV {rv['edv_ml']:.1f} mL, ESV {rv['esv_ml']:.1f} mL, EF {rv['ef_pct']:.1f}%" in line and "rvef_low" in line
    assert "its own" not in line  # ED and ES files: no frames to name


def _rv_late_cine() -> np.ndarray:
    """(8, Z, Y, X) labels: the LV largest at frame 3, the RV two frames later."""
    frames = []
    for t in range(8):
        lv_phase, rv_phase = np.cos(2 * np.pi * (t - 3) / 8), np.cos(2 * np.pi * (t - 5) / 8)
        frames.append(rasterise(LVPhantom(r_cav=20.0 + 4.0 * lv_phase, rv_depth_mm=14 + 4 * rv_phase), AFF, SHAPE))
    return np.stack(frames)


def test_cine_rv_es_on_its_own_curve_is_reported(tmp_path, capsys):
    """A 4-D label file whose RV peaks and empties later than the LV: the report's RV ED/ES are
    the RV curve's, and the summary line says which frames they are (the LV's differ)."""
    cine = _rv_late_cine()
    rep = measure_cine(cine, AFF, LMAP)
    vv = abs(np.linalg.det(AFF[:3, :3])) / 1000.0
    rv_curve = (cine == 3).sum(axis=(1, 2, 3)) * vv
    assert rep["rv_es_frame"] == int(np.argmin(rv_curve)) != rep["es_frame"]
    assert rep["rv"]["esv_ml"] == pytest.approx(rv_curve.min()) and rep["rv"]["edv_ml"] == pytest.approx(rv_curve.max())
    assert run_cli(["measure", _save(tmp_path / "cine.nii.gz", cine), "--label-map", LMAP, "-o", str(tmp_path / "c.json")]) == 0
    line = capsys.readouterr().out.strip()
    assert (f"(its own ED frame {rep['rv_ed_frame']}, ES frame {rep['rv_es_frame']}; the LV's {rep['ed_frame']}, {rep['es_frame']})"
            in line)


def test_napari_panel_names_the_rv_frames_of_a_cine():
    """The napari measurement panel gave the LV's ED / ES frames only; a cine's RV ED / ES, found on
    the RV's own curve, are a row of their own where they differ (Qt-free logic)."""
    m = pytest.importorskip("medseg_napari._measure")
    rep = measure_cine(_rv_late_cine(), AFF, LMAP)
    rows = {q: v for q, v, _ in m.summary_rows(rep)}
    assert rows["ED / ES frame"] == f"{rep['ed_frame']} / {rep['es_frame']}"
    assert rows["RV ED / ES frame"] == f"{rep['rv_ed_frame']} / {rep['rv_es_frame']}"
    same = measure_cine(np.stack([_pair()[0], _pair()[1]]), AFF, LMAP)  # the RV's frames are the LV's
    assert "RV ED / ES frame" not in {q for q, _, _ in m.summary_rows(same)}


def test_cohort_overview_shows_the_rv_edv_index():
    from medseg.measure.sheets import cohort_panels

    rows = [{"case": f"s{i}", "rv.edv_ml": 180.0 + i, "indexed.rv_edv_ml_m2": 100.0 + i} for i in range(3)]
    assert [v for _, v in dict(cohort_panels(rows))["RV EDV index (mL/m²)"]] == [100.0, 101.0, 102.0]


def test_evaluate_prints_the_rvef_agreement(tmp_path, capsys):
    """`medseg evaluate`: the console gave LVEF's bias and limits of agreement only, RVEF's were in
    RESULT.json alone. Two studies whose predicted RV is too small at ES (RVEF over-read)."""
    data, pred = tmp_path / "data", tmp_path / "pred"
    data.mkdir()
    pred.mkdir()
    for study, rv_pred_es in (("p1", 7.0), ("p2", 8.0)):
        for phase, (ref, p) in (("ED", (_pair()[0], _pair()[0])), ("ES", (_pair()[1], _pair(18.0, rv_pred_es)[1]))):
            _save(data / f"{study}_{phase}.nii.gz", (ref > 0) * 300.0 + 50.0 + np.arange(ref.size).reshape(ref.shape) % 7)
            _save(data / f"{study}_{phase}_gt.nii.gz", ref.astype(np.uint8))
            _save(pred / f"{study}_{phase}.nii.gz", p.astype(np.uint8))
    out = tmp_path / "r.json"
    assert run_cli(["evaluate", "--pairs", str(data), "--label-map", LMAP, "--predicted", str(pred),
                    "--predicted-label-map", LMAP, "-o", str(out)]) == 0
    ag = json.loads(out.read_text())["summary"]["agreement"]["rvef"]
    assert ag["n"] == 2 and ag["bias"] > 0
    text = "".join(capsys.readouterr())  # the console writes to stderr
    assert (f"RVEF pred - reference: bias {ag['bias']:+.1f} pts, 95 % limits of agreement {ag['loa'][0]:+.1f} to "
            f"{ag['loa'][1]:+.1f}") in text


@pytest.mark.realdata
@pytest.mark.skipif(not ACDC.is_dir(), reason="../shared/data (ACDC) not present")
def test_acdc_rv_patient_081_rv_numbers_and_flags(tmp_path, capsys):
    """ACDC patient 081's expert labels (group RV; Info.cfg: 177 cm, 70 kg; ED frame 1, ES frame 7):
    RV EDV, ESV, EF and EDV index equal those computed here from the expert labels; its RVEF
    (29 %) is flagged low, its RV EDV index (98 mL/m^2) is within the men's range."""
    ed, es = (str(ACDC / f"patient081_frame{f}_gt.nii.gz") for f in ("01", "07"))
    vol = {}
    for ph, path in (("ed", ed), ("es", es)):
        img = nib.load(path)
        vol[ph] = float((np.asarray(img.dataobj) == 1).sum() * np.prod(img.header.get_zooms()[:3]) / 1000.0)
    bsa = np.sqrt(177.0 * 70.0 / 3600.0)
    out = tmp_path / "p081.json"
    assert run_cli(["measure", "--ed", ed, "--es", es, "--label-map", "lv=3,myo=2,rv=1", "--height-cm", "177",
                    "--weight-kg", "70", "--sex", "M", "-o", str(out), "--csv", str(tmp_path / "p081.csv")]) == 0
    rep = json.loads(out.read_text())
    assert rep["rv"]["edv_ml"] == pytest.approx(vol["ed"], rel=1e-6) and rep["rv"]["esv_ml"] == pytest.approx(vol["es"], rel=1e-6)
    assert rep["rv"]["ef_pct"] == pytest.approx(100 * (vol["ed"] - vol["es"]) / vol["ed"], rel=1e-6)
    assert rep["indexed"]["rv_edv_ml_m2"] == pytest.approx(vol["ed"] / bsa, rel=1e-6)
    assert "rvef_low" in _codes(rep) and not {c for c in _codes(rep) if c.startswith("rv_edv_index")}
    with open(tmp_path / "p081.csv", newline="", encoding="utf-8") as f:
        (cells,) = list(csv.DictReader(f))
    assert float(cells["rv.ef_pct"]) == pytest.approx(rep["rv"]["ef_pct"], abs=1e-4) and "rvef_low(structure=rv)" in cells["flags"]
    assert "RV EDV 182.6 mL, ESV 129.6 mL, EF 29.0%" in capsys.readouterr().out
