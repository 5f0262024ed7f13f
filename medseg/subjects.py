"""Per-subject body data for cohort measurements (``medseg batch --measure --subjects FILE.csv``).

A CSV (a spreadsheet export) with one row per subject: an id column (``case``, ``subject``,
``study``, ``patient`` or ``id``) and any of ``height_cm``, ``weight_kg``, ``sex`` (M/F, also
m/w, Mann/Frau, homme/femme) and ``heart_rate`` (beats/min). With them a case's
report gets BSA, indexed volumes and mass, sex-specific reference ranges and cardiac output,
as ``medseg measure --height-cm --weight-kg --sex --heart-rate`` gives them. Other columns
(``site``, ``vendor``, ``group``, ``age``, ...) are copied as text into the case's ``cohort.csv``
row (``Subject.columns``), so results can be grouped by them; not those named as a value column in
other words (``Height [cm]``, ``Größe``: refused).

A row belongs to the case whose id it is, or else to the cases whose id starts with it and an
underscore (``patient001`` -> ``patient001_4d``; an echo study ``patient0001`` -> its views
``patient0001_4CH_ED``...), the longest such id winning.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import MedsegError
from .measure.volumes import HEART_RATE_RANGE_BPM, HEIGHT_RANGE_CM, WEIGHT_RANGE_KG

#: Accepted names of the id column (case-insensitive), in order of preference.
ID_COLUMNS = ("case", "subject", "study", "patient", "id")
#: Value columns: name -> (lowest, highest) plausible value (those of `medseg measure`); sex is M or F.
NUMERIC = {"height_cm": HEIGHT_RANGE_CM, "weight_kg": WEIGHT_RANGE_KG, "heart_rate": HEART_RATE_RANGE_BPM}
VALUE_COLUMNS = (*NUMERIC, "sex")
#: Columns that look like body data but do not say their unit.
_UNITLESS = {"height": "height_cm", "weight": "weight_kg", "hr": "heart_rate", "heartrate": "heart_rate"}
#: Beginnings (of a column name in lower case, letters only) of other names of the value columns,
#: English, German and French: such a column (the word and up to 4 more letters, a unit: ``Height
#: [cm]``, ``Größe``, ``weight_lbs``; not ``weight_change``) is refused, not ignored.
_LOOKALIKE = {"height": "height_cm", "größe": "height_cm", "groesse": "height_cm", "grösse": "height_cm", "körpergröße": "height_cm",
              "taille": "height_cm", "weight": "weight_kg", "gewicht": "weight_kg", "körpergewicht": "weight_kg", "poids": "weight_kg",
              "heartrate": "heart_rate", "herzfrequenz": "heart_rate", "puls": "heart_rate", "fréquencecardiaque": "heart_rate",
              "gender": "sex", "geschlecht": "sex", "sexe": "sex"}
#: Sex as written in English, German (``w``: weiblich) and French; O, U, D (divers) or empty: not known.
#: ``H`` (homme, but Spanish hombre beside M = mujer) is refused as ambiguous.
_SEX = {**dict.fromkeys(("m", "male", "man", "mann", "männlich", "maennlich", "masculin", "homme"), "M"),
        **dict.fromkeys(("f", "female", "woman", "w", "frau", "weiblich", "féminin", "feminin", "femme"), "F"),
        **dict.fromkeys(("o", "other", "u", "unknown", "d", "divers", "unbekannt", "inconnu"), None)}


@dataclass(frozen=True)
class Subject:
    """One row of a subjects file; None where the row leaves a value out."""

    id: str
    height_cm: float | None = None
    weight_kg: float | None = None
    sex: str | None = None  # "M" or "F"
    heart_rate: float | None = None
    # the row's other columns (site, vendor, group, ...): (name, text); not body data, so not compared
    columns: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def body(self, heart_rate: bool = True) -> dict[str, Any]:
        """Keyword arguments of the measure functions (``height_cm``, ``weight_kg``, ``sex``
        and, with ``heart_rate``, ``heart_rate``) for the values the row gives."""
        keys = ("height_cm", "weight_kg", "sex", *(("heart_rate",) if heart_rate else ()))
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


def read_subjects(path: str | Path, notes: list[str] | None = None) -> tuple[Subject, ...]:
    """The rows of a subjects CSV; a one-line :class:`MedsegError` for a file that cannot be
    read, has no id column or no other column, a column named twice, a column whose unit is not named (or
    another name of a value column: ``Height [cm]``, ``Größe``), a repeated id, or a value that
    is not plausible (the file and line are named). ``notes``: a file read in the Windows code
    page adds a line saying so (:func:`medseg._files.read_spreadsheet_csv`)."""
    from ._files import read_spreadsheet_csv

    p = Path(path)
    rows = iter(read_spreadsheet_csv(p, "subjects file", notes))
    header = [h.strip() for h in next(rows, [])]
    lower = [h.lower() for h in header]
    id_col = next((lower.index(c) for c in ID_COLUMNS if c in lower), None)
    if id_col is None:
        raise MedsegError(f"{p}: no id column; name the column of case ids one of {', '.join(ID_COLUMNS)} (header: {', '.join(header) or 'empty'})")
    for h in lower:
        if h in _UNITLESS and _UNITLESS[h] not in lower:
            raise MedsegError(f"{p}: column {h!r} does not say its unit; name it {_UNITLESS[h]!r}")
    _check_lookalikes(p, header)
    cols = {c: lower.index(c) for c in VALUE_COLUMNS if c in lower}
    other = {h: i for i, h in enumerate(header) if h and i != id_col and lower[i] not in cols}  # site, vendor, group, ...
    if not cols and not other:
        raise MedsegError(f"{p}: none of the columns {', '.join(VALUE_COLUMNS)} (header: {', '.join(header)})")
    if not cols and notes is not None:  # a site / group file: said, as a misnamed body data column would give no BSA silently
        notes.append(f"{p.name} gives no body data (none of the columns {', '.join(VALUE_COLUMNS)}): its columns "
                     f"{', '.join(other)} are copied into cohort.csv only")
    if twice := next((h for h in header if h and lower.count(h.lower()) > 1), None):
        raise MedsegError(f"{p}: column {twice!r} appears twice; name each column once")
    subjects: dict[str, Subject] = {}
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        sid = row[id_col].strip() if id_col < len(row) else ""
        if not sid:
            raise MedsegError(f"{p}, line {line}: no id in column {header[id_col]!r}")
        key = unicodedata.normalize("NFC", sid)  # ids are matched so (subject_for): one in two Unicode forms is one id twice
        if key in subjects:
            raise MedsegError(f"{p}, line {line}: id {sid!r} appears twice")
        values: dict[str, Any] = {}
        for c, i in cols.items():
            cell = row[i].strip() if i < len(row) else ""
            if cell:
                values[c] = _value(c, cell, f"{p}, line {line}")
        extra = tuple((h, row[i].strip() if i < len(row) else "") for h, i in other.items())
        subjects[key] = Subject(sid, **values, columns=extra)
    if not subjects:
        raise MedsegError(f"{p}: no subjects (a header and no rows)")
    return tuple(subjects.values())


def _check_lookalikes(p: Path, header: list[str]) -> None:
    """Refuse a column named as a value column in other words (``Height [cm]``, ``Größe``,
    ``Gender``) when the file lacks that value column: it was ignored without a word."""
    lower = [h.lower() for h in header]
    for h in header:
        letters = "".join(c for c in h.lower() if c.isalpha())
        target = next((t for start, t in _LOOKALIKE.items() if letters.startswith(start) and len(letters) <= len(start) + 4), None)
        if target is not None and target not in lower:
            unit = {"height_cm": " (in cm)", "weight_kg": " (in kg)", "heart_rate": " (beats/min)", "sex": " (M or F)"}[target]
            raise MedsegError(f"{p}: column {h!r} is not read; name it {target!r}{unit}")


def _value(column: str, cell: str, where: str) -> Any:
    if column == "sex":
        s = _SEX.get(cell.lower(), "?")
        if s == "?":
            why = " (H: homme, or hombre beside M = mujer?)" if cell.lower() == "h" else ""
            raise MedsegError(f"{where}: sex {cell!r} is not M or F{why}; write M or F (m/w, male/female, Mann/Frau, "
                              "homme/femme too; O or empty: not known)")
        return s
    lo, hi = NUMERIC[column]
    try:
        v = float(cell.replace(",", ".")) if cell.count(",") == 1 and "." not in cell else float(cell)
    except ValueError:
        unit = " (write the number alone: the unit is in the column's name)" if any(c.isalpha() for c in cell) else ""
        raise MedsegError(f"{where}: {column} {cell!r} is not a number{unit}") from None
    if not (math.isfinite(v) and lo <= v <= hi):
        raise MedsegError(f"{where}: {column} {cell} is outside {lo:g}-{hi:g}")
    return v


def subject_for(case_id: str, subjects: Iterable[Subject]) -> Subject | None:
    """The row of ``case_id``: its own id, else the longest id that ``case_id`` starts with
    followed by an underscore; None when no row fits. Looked up in an index of the rows (built
    once per subjects tuple): 5,000 cases against 5,000 rows compared every row for every case."""
    if not isinstance(subjects, tuple):
        subjects = tuple(subjects)
    index = _index(subjects)
    case_id = unicodedata.normalize("NFC", case_id)  # a Mac's folder name (NFD: u + combining diaeresis) against a typed id
    if (hit := index.get(case_id)) is not None:
        return hit
    for cut in [i for i, ch in enumerate(case_id) if ch == "_"][::-1]:  # the longest prefix first
        if (hit := index.get(case_id[:cut])) is not None:
            return hit
    return None


#: the last subjects tuples :func:`subject_for` indexed: (the tuple, {id: first row of that id})
_INDEXED: list[tuple[tuple[Subject, ...], dict[str, Subject]]] = []


def _index(subjects: tuple[Subject, ...]) -> dict[str, Subject]:
    for rows, index in _INDEXED:
        if rows is subjects:
            return index
    index: dict[str, Subject] = {}
    for s in subjects:
        index.setdefault(unicodedata.normalize("NFC", s.id), s)
    _INDEXED[:] = [(subjects, index), *_INDEXED[:1]]  # a batch's one tuple (a worker's own copy), and one more
    return index
