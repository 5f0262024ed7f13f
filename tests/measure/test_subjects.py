"""Subjects files (`medseg batch --measure --subjects FILE.csv`): reading and matching rows to cases."""

from __future__ import annotations

import pytest

from medseg.errors import MedsegError
from medseg.subjects import Subject, read_subjects, subject_for


def test_a_spreadsheet_export_is_read(tmp_path):
    """A BOM, semicolons with decimal commas, other columns, empty cells and sex in words."""
    p = tmp_path / "s.csv"
    p.write_text("\ufeffPatient;Height_cm;weight_kg;Sex;Group;Heart_rate\np1;178,5;85;male;DCM;\np2;;62;F;NOR;71\n\np3;165;;O;HCM;\n",
                 encoding="utf-8")
    rows = read_subjects(p)
    assert rows == (Subject("p1", 178.5, 85.0, "M", None), Subject("p2", None, 62.0, "F", 71.0), Subject("p3", 165.0, None, None, None))
    assert rows[1].body() == {"weight_kg": 62.0, "sex": "F", "heart_rate": 71.0} and rows[1].body(heart_rate=False) == {"weight_kg": 62.0, "sex": "F"}


def test_other_spreadsheet_encodings_are_read_and_a_workbook_is_refused(tmp_path):
    p = tmp_path / "s.csv"
    p.write_bytes("case\theight_cm\nA1\t170\n".encode("utf-16"))  # "Unicode text" export: UTF-16, tabs
    assert read_subjects(p) == (Subject("A1", 170.0),)
    p.write_bytes("case;weight_kg\nJos\xe9;70,5\n".encode("cp1252"))  # an older spreadsheet's code page
    assert read_subjects(p) == (Subject("Jos\xe9", None, 70.5),)
    p.write_bytes(b"PK\x03\x04" + b"\0" * 20)
    with pytest.raises(MedsegError, match="spreadsheet workbook, not CSV"):
        read_subjects(p)


@pytest.mark.parametrize("text, message", [
    ("name,height_cm\np1,170\n", "no id column"),
    ("case\np1\n", "none of the columns"),
    ("case,height,weight_kg\np1,170,70\n", "'height' does not say its unit; name it 'height_cm'"),
    ("case,height_cm\np1,170\np1,171\n", "line 3: id 'p1' appears twice"),
    ("case,height_cm\n,170\n", "line 2: no id"),
    ("case,height_cm\np1,1.70\n", "line 2: height_cm 1.70 is outside 30-250"),
    ("case,weight_kg\np1,heavy\n", "weight_kg 'heavy' is not a number"),
    ("case,weight_kg\np1,nan\n", "outside"),
    ("case,sex\np1,X\n", "sex 'X' is not M or F"),
    ("case,sex\n", "no subjects"),
])
def test_bad_subjects_files_are_one_line_errors(tmp_path, text, message):
    p = tmp_path / "s.csv"
    p.write_text(text)
    with pytest.raises(MedsegError) as e:
        read_subjects(p)
    assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(MedsegError, match="not found"):
        read_subjects(tmp_path / "missing.csv")


def test_a_row_serves_its_case_and_the_cases_named_after_it():
    rows = (Subject("patient001", 170.0), Subject("patient001_SA", 171.0), Subject("p1", 150.0))
    assert subject_for("patient001", rows).height_cm == 170.0
    assert subject_for("patient001_4d", rows).height_cm == 170.0
    assert subject_for("patient001_SA_ED", rows).height_cm == 171.0  # the longest id wins
    assert subject_for("patient0011", rows) is None and subject_for("p10", rows) is None and subject_for("x_p1", rows) is None


def test_subject_for_finds_the_row_the_old_scan_found_without_scanning_every_row():
    """An index instead of a scan of every row per case (5,000 cases x 5,000 rows): the same
    row for every case id, the exact id first, else the longest id followed by an underscore."""
    import random

    from medseg.subjects import Subject, subject_for

    def scan(case_id, subjects):  # the rule as it was written before
        best = None
        for s in subjects:
            if s.id == case_id:
                return s
            if case_id.startswith(s.id + "_") and (best is None or len(s.id) > len(best.id)):
                best = s
        return best

    rng = random.Random(3)
    parts = ["p1", "p2", "ED", "ES", "4CH", "a", "frame01", "v"]
    ids = sorted({"_".join(rng.choice(parts) for _ in range(rng.randint(1, 3))) for _ in range(60)})
    rows = tuple(Subject(i, height_cm=float(n)) for n, i in enumerate(ids))
    cases = ["_".join(rng.choice(parts) for _ in range(rng.randint(1, 4))) for _ in range(400)] + ["p1__ED", "_p1", "p1_"]
    assert [subject_for(c, rows) for c in cases] == [scan(c, rows) for c in cases]
    assert sum(subject_for(c, rows) is not None for c in cases) > 100
    assert subject_for("p1_ED", iter(rows)) == scan("p1_ED", rows)  # any iterable of rows
