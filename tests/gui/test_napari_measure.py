"""The Qt-free measurement logic behind the measurement panel (no napari, no Qt)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.figure import Figure
from medseg_napari import _measure as m

from medseg.measure.geometry import MeasurementError


def test_measure_logic_modes(small_cine, tmp_path):
    vol, truth, info = small_cine
    cine = m.measure_labels(truth, vol, None, height_cm=180, weight_kg=80)
    assert cine["mode"] == "cine" and abs(cine["lv"]["ef_pct"] - info["ef_pct"]) < 8
    rows = dict((q, v) for q, v, _ in m.summary_rows(cine))
    assert rows["BSA"] == "2.00" and float(rows["LV EF"]) > 0 and "LV mass index" in rows
    assert len(m.segment_rows(cine)) == 17
    ed, es = cine["ed_frame"], cine["es_frame"]
    pair = m.measure_labels(truth[ed], vol, None, es_labels=truth[es])
    assert pair["mode"] == "ed_es" and pair["lv"]["ef_pct"] == pytest.approx(cine["lv"]["ef_pct"])
    one = m.measure_labels(truth[ed][None], vol.with_array(vol.array[:1], frame_times_s=None), None, height_cm=180, weight_kg=80)
    assert one["mode"] == "phase" and one["indexed"]["lv_mass_g_m2"] == pytest.approx(one["lv_mass_g"] / 2.0)
    fig = Figure()
    for rep in (cine, pair, one):
        m.draw_report(fig, rep)
    assert len(fig.axes) == 3  # curve, bullseye, colour bar
    assert json.loads(m.export_report(cine, tmp_path / "r.json").read_text())["mode"] == "cine"
    assert "lv.ef_pct" in m.export_report(cine, tmp_path / "r.csv").read_text()
    with pytest.raises(MeasurementError, match="empty"):
        m.measure_labels(np.zeros_like(truth), vol, None)
    with pytest.raises(MeasurementError, match="2-D"):
        m.measure_labels(truth[:, :1], vol.with_array(vol.array[:, :1], frame_times_s=None), None)
