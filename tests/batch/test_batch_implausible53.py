"""`batch --measure` rows and pages carry the implausibility flags `medseg measure` adds.

A CT review found the same labels flagged "LV mass 17 g is outside 20-400 g" by `medseg measure`
(its PDF says "Implausible: ...") and not by `batch --measure` (cohort.csv n_flags 1, no line on
the page): every batch row passes `_child_ranges`, which now adds them as measure does."""

from __future__ import annotations

from medseg.batch.measure_rows import _child_ranges, _Who
from medseg.measure.export import report_row


def _report(mass: float) -> dict:
    return {"mode": "phase", "lv_mass_g": mass, "volumes_ml": {"lv": 60.0, "myo": mass / 1.05}, "flags": []}


def test_an_implausible_mass_is_flagged_in_the_batch_row():
    rep = _child_ranges(_report(17.0), _Who())
    codes = [f["code"] for f in rep["flags"]]
    assert codes == ["lv_mass_implausible"]
    assert report_row(rep)["n_flags"] == 1


def test_a_plausible_mass_gets_no_flag_and_the_report_given_is_not_changed():
    given = _report(120.0)
    assert _child_ranges(given, _Who())["flags"] == [] and given["flags"] == []
    low = _report(17.0)
    _child_ranges(low, _Who())
    assert low["flags"] == []  # the caller's report is left as it was
