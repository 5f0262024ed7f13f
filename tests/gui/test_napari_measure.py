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
    segs = m.segment_rows(cine)
    assert len(segs) == 17 and float(segs[8][4]) > 20 and segs[16][4] == "–"  # mid inferoseptal thickens; apex cap: none
    assert float(rows["Wall thickening, ED to ES"]) == pytest.approx(cine["wall_thickening_pct"]["global"], abs=0.05)
    ed, es = cine["ed_frame"], cine["es_frame"]
    pair = m.measure_labels(truth[ed], vol, None, es_labels=truth[es])
    assert pair["mode"] == "ed_es" and pair["lv"]["ef_pct"] == pytest.approx(cine["lv"]["ef_pct"])
    # cardiac output from the image's DICOM RR interval when no heart rate is typed in
    rr = m.measure_labels(truth, vol.with_array(vol.array, meta={**(vol.meta or {}), "nominal_interval": 750.0}), None)
    assert rr["heart_rate_bpm"] == pytest.approx(80.0) and rr["co_l_min"] == pytest.approx(rr["lv"]["sv_ml"] * 80 / 1000)
    # BSA and sex from a DICOM image's header when the panel's fields are left empty; typed values win
    dicom = vol.with_array(vol.array, meta={**(vol.meta or {}), "patient_body": {"height_cm": 180.0, "weight_kg": 80.0, "sex": "F"}})
    auto = m.measure_labels(truth, dicom, None)
    assert auto["bsa_m2"] == pytest.approx(2.0) and auto["sex"] == "female"
    assert m.measure_labels(truth, dicom, None, weight_kg=45)["bsa_m2"] == pytest.approx(1.5)
    one = m.measure_labels(truth[ed][None], vol.with_array(vol.array[:1], frame_times_s=None), None, height_cm=180, weight_kg=80)
    assert one["mode"] == "phase" and one["indexed"]["lv_mass_g_m2"] == pytest.approx(one["lv_mass_g"] / 2.0)
    fig = Figure()
    m.draw_report(fig, cine)  # curve, thickness and thickening bullseyes with their colour bars
    assert len(fig.axes) == 5 and fig.axes[3].get_title().startswith("Wall thickening")
    for rep in (pair, one):
        m.draw_report(fig, rep)
    assert len(fig.axes) == 3  # one phase: curve, bullseye, colour bar
    assert json.loads(m.export_report(cine, tmp_path / "r.json").read_text())["mode"] == "cine"
    assert "lv.ef_pct" in m.export_report(cine, tmp_path / "r.csv").read_text()
    with pytest.raises(MeasurementError, match="empty"):
        m.measure_labels(np.zeros_like(truth), vol, None)
    with pytest.raises(MeasurementError, match="one 2-D view"):  # one slice, one labelled frame: no EF
        m.measure_labels(truth[ed, :1][None], vol.with_array(vol.array[:1, :1], frame_times_s=None), None)


def test_measure_logic_apical_views_echo_clip_and_ed_es():
    """One slice per frame (an apical echo view): the method of disks, with or without spacing."""
    from medseg.measure.echo import measure_echo_clip
    from medseg.phantoms import echo_apical_phantom

    ph = echo_apical_phantom("a4c", n_frames=8, seed=1)
    lmap = ph.label_map
    clip = m.measure_labels(ph.labels, ph.image, lmap)
    assert clip["mode"] == "echo_clip" and clip["labelled_frames"] == list(range(8))
    ref = measure_echo_clip(ph.labels[:, 0], label_map=lmap, spacing_mm=tuple(ph.image.spacing[1:]))
    assert clip["lv"]["ef_pct"] == pytest.approx(ref["lv"]["ef_pct"]) and clip["ed_frame"] == ref["ed_frame"]
    rows = dict((q, v) for q, v, _ in m.summary_rows(clip))
    assert rows["Method"].startswith("single-plane method of disks") and float(rows["LV EDV"]) > 0 and "LV mass" not in rows
    fig = Figure()
    m.draw_report(fig, clip)
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "volume (mL)"
    ed, es = clip["ed_frame"], clip["es_frame"]
    pair = m.measure_labels(ph.labels[ed], ph.image, lmap, es_labels=ph.labels[es])
    assert pair["mode"] == "echo" and pair["lv"]["ef_pct"] == pytest.approx(clip["lv"]["ef_pct"])
    m.draw_report(fig, pair)  # ED/ES bars
    no_px = echo_apical_phantom("a4c", n_frames=8, seed=1, spacing=None)
    rel = m.measure_labels(no_px.labels, no_px.image, lmap)
    rows = dict((q, v) for q, v, _ in m.summary_rows(rel))
    assert rows["LV EDV"] == "–" and rows["Volumes"] == "no pixel spacing: EF only" and float(rows["LV EF"]) > 0
    m.draw_report(fig, rel)
    assert fig.axes[0].get_ylabel() == "volume (% of EDV)"


def test_an_es_layer_with_another_label_map_is_matched_by_structure_name(small_cine):
    """ED and ES label layers opened from files written with different label maps (ACDC's and
    medseg's values): the ES layer is re-encoded by its own map's names before measuring."""
    from types import SimpleNamespace

    from medseg_napari._layers import META_LABEL_MAP, META_VOLUME, in_layer_map
    from medseg_napari._scripting import measure_layer

    from medseg.labels import LabelMap

    vol, truth, info = small_cine
    cine = m.measure_labels(truth, vol, None)
    ed, es = truth[cine["ed_frame"]], truth[cine["es_frame"]]
    acdc = {"lv": 3, "myo": 2, "rv": 1}
    es_acdc = LabelMap.parse({"lv": 1, "myo": 2, "rv": 3}).remap(es, LabelMap.parse(acdc))
    one = vol.with_array(vol.array[:1], frame_times_s=None)
    ed_layer = SimpleNamespace(data=ed[None], scale=None, translate=None, metadata={META_VOLUME: one, META_LABEL_MAP: {"lv": 1, "myo": 2, "rv": 3}})
    es_layer = SimpleNamespace(data=es_acdc[None], scale=None, translate=None, metadata={META_LABEL_MAP: acdc})
    assert np.array_equal(in_layer_map(es_acdc, es_layer.metadata, LabelMap.parse("lv=1,myo=2,rv=3")), es)
    rep = measure_layer(ed_layer, es_layer)
    assert rep["mode"] == "ed_es" and rep["lv"]["ef_pct"] == pytest.approx(cine["lv"]["ef_pct"])
