"""medseg's CSV tables as R reads them (``read.csv`` with its defaults): numbers stay numeric,
yes/no columns are logical, a missing value is an empty cell (NA), and column names survive
``check.names``. R is not needed: :func:`_r_type` applies R's ``type.convert`` rules (R 4.2:
only ``T``/``F``/``TRUE``/``FALSE`` are logical; ``True``/``False`` stay text)."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np

from medseg._files import csv_text, read_medseg_csv

_R_LOGICAL = {"T", "F", "TRUE", "FALSE"}
_R_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?|Inf|inf|NaN|NA)\s*")


def _r_type(cells: list[str]) -> str:
    """The class R's ``read.csv`` gives a column of these cells (empty and "NA" are NA)."""
    cells = [c for c in cells if c not in ("", "NA")]
    if all(c in _R_LOGICAL for c in cells):
        return "logical"
    if all(_R_NUMBER.fullmatch(c) for c in cells):
        return "numeric"
    return "character"


def _columns(text: str) -> dict[str, list[str]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return {h: [r[i] for r in rows[1:]] for i, h in enumerate(rows[0])}


def test_booleans_are_written_as_r_logicals():
    """``needs_review``, ``edited_by_hand``, ``base.confident`` were ``True``/``False``, which R
    4.2's read.csv keeps as text (``sum(d$needs_review)``: invalid 'type' (character))."""
    text = csv_text(["a", "b", "c", "d"], [{"a": True, "b": False, "c": np.bool_(True), "d": np.bool_(False)}])
    assert text.splitlines()[1] == "TRUE,FALSE,TRUE,FALSE"
    assert {k: _r_type(v) for k, v in _columns(text).items()} == dict.fromkeys("abcd", "logical")


def test_a_missing_number_is_an_empty_cell_not_nan_or_none():
    text = csv_text(["x", "y", "z", "w"], [{"x": float("nan"), "y": None, "z": np.float32("nan"), "w": 1.5}, {"x": 2.0, "y": 3, "z": 4.0}])
    assert text.splitlines()[1:] == [",,,1.5", "2.0,3,4.0,"]
    assert {k: _r_type(v) for k, v in _columns(text).items()} == dict.fromkeys("xyzw", "numeric")


def test_measure_csv_reads_in_r_with_numbers_numeric_and_yes_no_logical(tmp_path):
    """A real ``measure --csv`` row (cine phantom): each column whose REPORT.json value is a number
    reads as numeric, each boolean as logical; no cell is nan/None/True/False; the names are made of
    letters, digits, ``.`` and ``_`` only (``check.names`` keeps them)."""
    from medseg.cli import run_cli
    from medseg.io import write_labels
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=4, n_slices=6, shape=(64, 64), spacing=(10.0, 1.5, 1.5), seed=0, pose_jitter=False)
    write_labels(ph.labels, ph.image, tmp_path / "lab.nii.gz", "lv=1,myo=2,rv=3")
    out, table = tmp_path / "r.json", tmp_path / "r.csv"
    assert run_cli(["measure", str(tmp_path / "lab.nii.gz"), "--height-cm", "170", "--weight-kg", "70", "--sex", "F",
                    "-o", str(out), "--csv", str(table)]) == 0
    cols = _columns(table.read_text(encoding="utf-8"))
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9._]*", name) for name in cols), [n for n in cols if not re.fullmatch(r"[A-Za-z0-9._]+", n)]
    assert not {c for v in cols.values() for c in v} & {"nan", "NaN", "None", "True", "False", "null"}

    def leaves(prefix: str, obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield from leaves(f"{prefix}.{k}" if prefix else k, v)
        else:
            yield prefix, obj

    report = dict(leaves("", json.loads(out.read_text())))
    typed = {k: ("logical" if isinstance(v, bool) else "numeric") for k, v in report.items()
             if k in cols and v is not None and isinstance(v, (bool, int, float))}
    assert "inputs.settings.basal_rule" in typed and "lv.ef_pct" in typed
    assert {k: _r_type(cols[k]) for k in typed} == typed


def test_compare_reads_needs_review_of_new_and_old_cohort_tables(tmp_path):
    """compare's review caution reads cohort.csv's ``TRUE`` (and ``True`` of tables written before)."""
    from medseg.measure.compare import _folder_visits

    (tmp_path / "cohort.csv").write_text("case,needs_review,lv.ef_pct\na,TRUE,50\nb,True,51\nc,FALSE,52\nd,False,53\n", encoding="utf-8")
    visits, _ = _folder_visits(tmp_path)
    assert {v.case: v.needs_review for v in visits} == {"a": True, "b": True, "c": False, "d": False}


def test_a_case_id_with_leading_zeros_is_written_as_it_is(tmp_path):
    """``017`` stays ``017`` in the file (R keeps it with ``colClasses = c(case = "character")``,
    docs/batch.md) and medseg's own reader gives it back as text."""
    (tmp_path / "t.csv").write_text(csv_text(["case", "subject"], [{"case": "017_frame01", "subject": "017"}]), encoding="utf-8")
    assert (tmp_path / "t.csv").read_bytes().splitlines()[1] == b"017_frame01,017"
    assert read_medseg_csv(tmp_path / "t.csv") == [{"case": "017_frame01", "subject": "017"}]


def test_cohort_says_which_rows_are_one_per_study(tmp_path):
    """A study measured from its ED and ES frames had three rows (the study's and each frame's),
    told apart only by which columns were empty: mean(lv_mass_g) in R counted it three times.
    ``per_study`` is FALSE for the rows a study row was measured from."""
    from medseg._files import read_medseg_csv
    from medseg.batch.cohort import write_cohort

    results = [{"case": "p1_frame01", "status": "ok", "cohort_row": {"lv_mass_g": 100.0}},
               {"case": "p1_frame09", "status": "ok", "cohort_row": {"lv_mass_g": 104.0}},
               {"case": "solo", "status": "ok", "cohort_row": {"lv_mass_g": 90.0}},
               {"case": "p1", "cohort_row": {"lv.ef_pct": 55.0, "lv_mass_g": 100.0}}]
    write_cohort(tmp_path, results)
    rows = read_medseg_csv(tmp_path / "cohort.csv")
    assert list(rows[0])[:2] == ["case", "per_study"]
    assert {r["case"]: r["per_study"] for r in rows} == {"p1_frame01": "FALSE", "p1_frame09": "FALSE", "solo": "TRUE", "p1": "TRUE"}
    assert sorted(float(r["lv_mass_g"]) for r in rows if r["per_study"] == "TRUE") == [90.0, 100.0]
