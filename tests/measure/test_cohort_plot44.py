"""cohort.png of a biobank-sized batch: 5,000 opaque dots with a ring each were one black block."""

from __future__ import annotations

import numpy as np


def _rows(n, seed=1):
    rng = np.random.default_rng(seed)
    return [{"case": f"s{i:05d}", "lv.ef_pct": float(rng.normal(58, 8)), "lv.edv_ml": float(rng.normal(150, 30))} for i in range(n)]


def _drawn(monkeypatch, rows, flagged):
    import medseg.measure.sheets as sheets

    seen = {}

    def keep(fig, path):
        seen["fig"] = fig
        return path

    monkeypatch.setattr(sheets, "_save", keep)
    sheets.cohort_png(rows, "x.png", flagged)
    return seen["fig"]


def test_a_large_cohort_draws_small_translucent_dots_and_counts_the_flagged(monkeypatch):
    rows = _rows(2000)
    flagged = {r["case"] for r in rows[::4]}
    fig = _drawn(monkeypatch, rows, flagged)
    ax = fig.axes[0]
    dots = [c for c in ax.collections if len(c.get_offsets()) > 10]
    assert sum(len(c.get_offsets()) for c in dots) == 2000
    assert all(max(c.get_sizes()) <= 5 and c.get_alpha() <= 0.5 for c in dots)  # no 55-pt rings, no opaque 14-pt dots
    assert "500 need review" in ax.get_title()


def test_a_small_cohort_keeps_its_rings(monkeypatch):
    rows = _rows(30)
    fig = _drawn(monkeypatch, rows, {rows[0]["case"]})
    sizes = [max(c.get_sizes()) for c in fig.axes[0].collections if len(c.get_sizes())]
    assert 55 in sizes and "need review" not in fig.axes[0].get_title()
