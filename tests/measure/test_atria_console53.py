"""The console's atria words when the LA is smaller at LV ES than at LV ED (a truncated clip).

CAMUS patient 0460's expert labels read "LA max 2.1 mL, min 2.2 mL, emptying fraction -6.2%":
a "max" below the "min" and a negative emptying fraction stated as a fact. The summary now says
the two volumes at their LV phases and that there is no emptying fraction to give."""

from __future__ import annotations

from medseg.cli._measure_output import _atria_text


def _report(max_ml: float, min_ml: float) -> dict:
    ef = 100.0 * (max_ml - min_ml) / max_ml
    return {"atria": {"la": {"max_ml": max_ml, "min_ml": min_ml, "emptying_fraction_pct": ef}}, "indexed": {}, "flags": []}


def test_an_la_smaller_at_lv_es_is_said_at_its_phases_without_an_emptying_fraction():
    said = _atria_text(_report(2.1, 2.2))
    assert said == ["LA 2.1 mL at LV ES, 2.2 mL at LV ED (smaller at LV ES: no emptying fraction)"]


def test_an_la_that_empties_keeps_max_min_and_its_emptying_fraction():
    said = _atria_text(_report(40.0, 20.0))
    assert said == ["LA max 40.0 mL, min 20.0 mL, emptying fraction 50.0%"]


def test_the_report_gives_no_emptying_fraction_for_an_la_smaller_at_lv_es():
    """The JSON (and so the study page and the CSV) agree with the console: null, not -4.8 %."""
    import math

    from medseg.measure.volumes import atrium

    assert math.isnan(atrium(2.1, 2.2)["emptying_fraction_pct"])
    assert atrium(40.0, 20.0)["emptying_fraction_pct"] == 50.0
    assert atrium(20.0, 20.0)["emptying_fraction_pct"] == 0.0
