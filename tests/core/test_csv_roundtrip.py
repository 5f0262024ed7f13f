"""medseg's CSVs read back by medseg: the spreadsheet formula guard (``-case`` written ``'-case``)
is undone by every reader (summary.csv, cohort.csv, subjects and pairs files), and a subjects
file is read with the csv module's quoting (``""`` inside a quoted cell is one ``"``)."""

from __future__ import annotations

import csv

import pytest

from medseg._files import csv_cell, csv_text, read_medseg_csv, spreadsheet_csv_rows

#: texts that the guard changes or that look like guarded cells, and some it leaves alone
CELLS = ["-case", "=HYPERLINK(1)", "+x", "@x", "\tx", "'-x", "''", "'", "'abc", "-5", "-1e3", "plain", "a,b;c", 'a"b', "", "-"]


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_reads_back_as_written(tmp_path, cell):
    text = csv_text(["case", "x"], [{"case": cell, "x": 1}])
    (tmp_path / "t.csv").write_text(text, encoding="utf-8")
    assert read_medseg_csv(tmp_path / "t.csv") == [{"case": cell, "x": "1"}]
    assert spreadsheet_csv_rows(text)[1][0] == cell


def test_the_guard_stays_for_spreadsheets():
    """A spreadsheet (or Python's csv module) sees the quote: no cell starts with a formula character."""
    rows = list(csv.reader(csv_text(["case"], [{"case": c} for c in ("-case", "=1+1", "@x", "+x")]).splitlines()))
    assert [r[0] for r in rows[1:]] == ["'-case", "'=1+1", "'@x", "'+x"]
    assert csv_cell("'-case") == "-case" and csv_cell("'abc") == "'abc" and csv_cell("-5") == "-5"


def test_a_handed_over_case_named_with_a_dash_is_found_in_summary_csv(tmp_path):
    """evaluate --predicted falls back on summary.csv when summary.json is missing."""
    from medseg.pairs import _summary_rows

    rows = [{"case": "-case", "status": "handed_over", "handed_over": "lv rv"}, {"case": "=x", "status": "ok"}]
    (tmp_path / "summary.csv").write_text(csv_text(["case", "status", "handed_over"], rows), encoding="utf-8")
    assert [(r["case"], r["status"], r["handed_over"]) for r in _summary_rows(tmp_path)] == [("-case", "handed_over", "lv rv"), ("=x", "ok", "")]


def test_batch_subjects_line_matches_a_dash_case(tmp_path, capsys):
    """cohort.csv's subject "-case" (written "'-case") is the subjects file's row "-case"."""
    from medseg.cli.batch_cmd import _subjects_line
    from medseg.subjects import read_subjects

    (tmp_path / "cohort.csv").write_text(csv_text(["case", "subject"], [{"case": "-case", "subject": "-case"}, {"case": "@b"}]),
                                         encoding="utf-8")
    subjects = tmp_path / "subjects.csv"
    subjects.write_text("case,height_cm\n-case,180\n@b,170\n")
    capsys.readouterr()
    _subjects_line(tmp_path, subjects, read_subjects(subjects))
    err = " ".join(capsys.readouterr().err.split())
    assert "1 of 2 cohort rows measured" in err and "1 of its rows matched no case (@b)" in err


def test_a_medseg_csv_given_as_subjects_file_reads_its_ids_unguarded(tmp_path):
    from medseg.subjects import Subject, read_subjects

    p = tmp_path / "cohort.csv"
    p.write_text(csv_text(["case", "height_cm", "sex"], [{"case": "-case", "height_cm": 180.0, "sex": "F"}]), encoding="utf-8")
    assert read_subjects(p) == (Subject("-case", 180.0, None, "F"),)


@pytest.mark.parametrize("text", [
    'case,height_cm,weight_kg,sex\n"a#b%c\'d""e",160,60,F\n',  # as any CSV writer writes a '"'
    'case;height_cm\n"a;""b""";160\n',
    'case,height_cm\n"two\nlines",160\n',
])
def test_subjects_ids_with_quotes_are_read_as_the_csv_module_reads_them(tmp_path, text):
    from medseg.subjects import read_subjects

    p = tmp_path / "s.csv"
    p.write_text(text, encoding="utf-8", newline="")
    delimiter = ";" if text.startswith("case;") else ","
    expected = [r[0] for r in csv.reader(text.splitlines(keepends=True), delimiter=delimiter)][1:]
    assert [s.id for s in read_subjects(p)] == expected
