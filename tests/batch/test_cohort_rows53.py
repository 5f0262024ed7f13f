"""An echo study whose 4-chamber views failed or were handed over had no cohort.csv row at all
(CAMUS patient0451 after --min-confidence 0.95: 4CH_ED failed, 4CH_ES handed over), while a
frames study whose case failed keeps a "not measured: ... failed" row (docs/batch.md)."""

from __future__ import annotations

import csv

import numpy as np

from medseg.batch import BatchOptions, echo_study_rows
from medseg.batch.cohort import write_cohort_with_studies

FAILED = {"status": "failed", "output": "", "reason": "structure(s) never found on any slice: rv"}
HANDED = {"status": "handed_over", "output": "", "reason": "handed over for manual review: every structure is below --min-confidence 0.95"}


def _view(tmp_path, case):
    from medseg.io import Volume, write_labels

    lab = np.zeros((40, 30), np.uint8)
    lab[10:30, 10:20] = 1
    lab[8:32, 8:10] = 2
    like = Volume(np.zeros((1, 1, *lab.shape), np.float32), np.diag([0.3, 0.3, 1.0, 1.0]), modality="US", spacing_known=False)
    out = tmp_path / f"{case}.nii.gz"
    write_labels(lab, like, out, "lv=1,myo=2,la=4")
    return {"case": case, "status": "ok", "output": str(out), "input": f"{case}.png"}


def _results(tmp_path):
    return [
        {"case": "p1_4CH_ED", "input": "p1_4CH_ED.png", **FAILED}, {"case": "p1_4CH_ES", "input": "p1_4CH_ES.png", **HANDED},
        _view(tmp_path, "p1_2CH_ED"),
        {"case": "p2_4CH_ED", "input": "x.png", **FAILED},  # one case alone: the summary says it, no study row
        _view(tmp_path, "p3_2CH_ED"), _view(tmp_path, "p3_2CH_ES"),  # no 4-chamber case at all: no study to speak of
        {"case": "p4_4CH_ED", "input": "x.png", **FAILED}, _view(tmp_path, "p4_2CH_ED"),  # 4CH_ES not there, ED failed
    ]


def test_echo_study_whose_4_chamber_views_failed_keeps_a_row_saying_why(tmp_path):
    rows = {r["case"]: r for r in echo_study_rows(_results(tmp_path))}
    assert sorted(rows) == ["p1", "p4"]
    note = rows["p1"]["measure_note"]
    assert note == ("not measured: p1_4CH_ED failed (structure(s) never found on any slice: rv); p1_4CH_ES handed over "
                    "(handed over for manual review: every structure is below --min-confidence 0.95)")
    assert "cohort_row" not in rows["p1"]
    assert rows["p4"]["measure_note"] == "not measured: p4_4CH_ED failed (structure(s) never found on any slice: rv); no p4_4CH_ES case"


def test_cohort_csv_has_the_row_and_an_old_page_goes(tmp_path):
    from medseg.batch.pages import page_path

    old = page_path(tmp_path, "p1")
    old.parent.mkdir(parents=True)
    old.write_bytes(b"%PDF- an earlier run's page of p1")
    write_cohort_with_studies(BatchOptions(out_dir=str(tmp_path), measure=True, pdf=True), _results(tmp_path))
    rows = {r["case"]: r for r in csv.DictReader((tmp_path / "cohort.csv").read_text().splitlines())}
    assert rows["p1"]["measure_note"].startswith("not measured: p1_4CH_ED failed") and rows["p1"]["per_study"] == "TRUE"
    assert rows["p1"]["needs_review"] in ("TRUE", "FALSE") and not old.exists()  # no numbers now: no page of then
