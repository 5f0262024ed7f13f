"""One cohort row per study id: a study id that two kinds of study rows make (four single-frame
echo views and two clips of ``p1``; short-axis ``p1_ED``/``p1_ES`` and clips ``p1_A4C``/``p1_A2C``)
gets one row saying why it was not measured, not two rows of one name and one page drawn over the
other. Used by :func:`medseg.batch.cohort.write_cohort_with_studies`. Rules: :mod:`medseg.batch`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from .._nfc import nfc
from .case_names import FRAME_CASE, echo_clip, echo_view, split_phase, study_of
from .cases import Result

#: which cases each kind of study row is made of (by name, as the row makers group them)
_KINDS: dict[str, Callable[[str], bool]] = {
    "echo views": lambda c: bool(echo_view(c)),
    "clips": lambda c: bool(echo_clip(c)) and not split_phase(c),
    "stacks": lambda c: not echo_view(c) and bool(split_phase(c) or FRAME_CASE.match(c)),
}


def one_row_per_study(results: Sequence[Result], made: dict[str, Sequence[Result]], notes: dict[str, str],
                      pages: str | os.PathLike | None = None) -> tuple[list[Result], dict[str, str]]:
    """The study rows of ``made`` (kind -> rows: ``"echo views"``, ``"clips"``, ``"stacks"``), an id
    made by two kinds (in Unicode NFC) replaced by one row ``{"case": study, "measure_note":
    "not measured: the cases of study S form two studies (...): rename one set"}`` and those rows'
    pages removed (``pages``: OUT_DIR of ``--pdf``); and ``notes`` (case -> its own row's note),
    a clip's of such a study saying that row has no numbers. ``results``: the batch's case rows."""
    counts: dict[str, list[str]] = {}
    for kind, rows in made.items():
        for r in rows:
            counts.setdefault(nfc(r["case"]), []).append(kind)
    twice = {key: kinds for key, kinds in counts.items() if len(kinds) > 1}
    if not twice:
        return [r for rows in made.values() for r in rows], notes
    from .pages import drop_page, page_path

    own = {nfc(r["case"]) for r in results}
    out: list[Result] = []
    said: set[str] = set()
    for r in (r for rows in made.values() for r in rows):
        key = nfc(r["case"])
        if key not in twice:
            out.append(r)
            continue
        if pages is not None and (r.get("pdf") or key not in own):  # (a case with the study's id keeps its own page)
            drop_page(page_path(pages, r["case"]))
        if key not in said:
            said.add(key)
            out.append({"case": r["case"], "measure_note": _two_studies_note(r["case"], results, twice[key])})
    renoted = dict(notes)
    for case in notes:
        if (study := study_of(case)) is not None and nfc(study) in twice:  # its note named a biplane row that is not there
            renoted[case] = f"one view of study {study}: the row {study} says why it was not measured"
    return out, renoted


def _two_studies_note(study: str, results: Sequence[Result], kinds: Sequence[str]) -> str:
    """The note of a study id two kinds of study rows made: each kind's cases of it."""
    key = nfc(study)
    sets = [", ".join(sorted(c for r in results if _KINDS[kind](c := r["case"]) and nfc(study_of(c) or "") == key)) for kind in kinds]
    n = {2: "two", 3: "three"}.get(len(kinds), str(len(kinds)))
    return f"not measured: the cases of study {study} form {n} studies ({'; '.join(s for s in sets if s)}): rename one set"
