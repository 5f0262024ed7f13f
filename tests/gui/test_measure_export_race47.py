"""The measurement panel's Export while a measurement runs, and after the labels changed: it
wrote the report shown (of the labels before an edit) while the new measurement of the edited
labels was still running, and after any edit, with nothing in the file saying which labels its
numbers were of. Headless (``xvfb-run -a``)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from napari_helpers import gui_ready

pytestmark = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
T_OUT = 60_000  # ms


def _panel(viewer):
    from medseg_napari._qt.measure_widget import MeasureWidget

    w = MeasureWidget(viewer)
    viewer.window.add_dock_widget(w, name="medseg: measurement")
    return w


def _digest(layer) -> str:
    from medseg_napari._layers import as_4d

    from medseg.batch.kept import labels_sha256

    return labels_sha256(as_4d(np.asarray(layer.data)))


def test_export_is_refused_while_measuring_and_after_an_edit(make_napari_viewer, qtbot, small_cine, tmp_path, monkeypatch):
    from medseg_napari import _measure as m

    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    layer = viewer.add_labels(truth.copy(), name="cine labels", scale=(1.0, *vol.spacing))
    w = _panel(viewer)
    w.labels_combo.setCurrentText(layer.name)
    w.measure()
    qtbot.waitUntil(lambda: w.report is not None and not w._measuring, timeout=T_OUT)
    first = tmp_path / "first.json"
    w.export(str(first))
    saved = json.loads(first.read_text())
    assert saved["inputs"]["labels_sha256"] == {"labels": _digest(layer)}  # the file says which labels it measured
    ed, edv = saved["ed_frame"], saved["lv"]["edv_ml"]

    # an edit: the LV erased on the ED frame's middle slices (napari's eraser, or code)
    layer.data[ed, 2:5][layer.data[ed, 2:5] == 1] = 0
    layer.refresh()
    stale = tmp_path / "stale.json"
    with pytest.raises(ValueError, match="changed since they were measured"):
        w.export(str(stale))
    assert not stale.exists()

    # measured again; Export while that runs would write the numbers of the labels before the edit
    gate, real = threading.Event(), m.measure_labels

    def slow(*a, **k):
        gate.wait(30)
        return real(*a, **k)

    monkeypatch.setattr(m, "measure_labels", slow)
    asked = []
    monkeypatch.setattr("medseg_napari._qt._measure_export.QFileDialog.getSaveFileName", lambda *a, **k: asked.append(a) or ("", ""))
    w.measure()
    assert w._measuring and not w.export_btn.isEnabled() and not w.pdf_btn.isEnabled()
    racing = tmp_path / "racing.csv"
    with pytest.raises(ValueError, match="Measuring"):
        w.export(str(racing))
    w._ask_export()  # the button's path (were it pressed): said, and no file asked for
    assert asked == [] and w.status.text().startswith("Measuring")
    w.save_study_page(str(tmp_path / "racing.pdf"))
    gate.set()
    qtbot.waitUntil(lambda: not w._measuring and w.report is not None, timeout=T_OUT)
    qtbot.wait(50)
    assert not racing.exists() and not (tmp_path / "racing.pdf").exists()
    assert w.export_btn.isEnabled()
    after = tmp_path / "after.json"
    w.export(str(after))
    now = json.loads(after.read_text())
    assert now["inputs"]["labels_sha256"] == {"labels": _digest(layer)} != saved["inputs"]["labels_sha256"]
    assert now["lv"]["edv_ml"] < edv  # the edited labels' numbers


def test_an_es_layer_kept_in_other_values_is_not_taken_for_edited(make_napari_viewer, qtbot, small_cine, tmp_path):
    """An ES layer that keeps its own label map (ACDC's values) is re-encoded before it is
    measured: the digest recorded is of the layer's labels as it holds them, so Export works."""
    from medseg_napari._layers import META_LABEL_MAP

    from medseg.labels import DEFAULT_LABEL_MAP

    vol, truth, _ = small_cine
    from medseg_napari import _measure as m

    cine = m.measure_labels(truth, vol, None)
    ed, es = truth[cine["ed_frame"]], truth[cine["es_frame"]]
    acdc = {"lv": 3, "myo": 2, "rv": 1}
    es_acdc = np.zeros_like(es)
    for name, v in acdc.items():
        es_acdc[es == DEFAULT_LABEL_MAP[name]] = v
    viewer = make_napari_viewer()
    scale = tuple(vol.spacing)
    viewer.add_labels(ed.copy(), name="ED labels", scale=scale, metadata={META_LABEL_MAP: {"lv": 1, "myo": 2, "rv": 3}})
    es_layer = viewer.add_labels(es_acdc, name="ES labels", scale=scale, metadata={META_LABEL_MAP: acdc})
    w = _panel(viewer)
    w.labels_combo.setCurrentText("ED labels")
    w.es_combo.setCurrentText("ES labels")
    w.measure()
    qtbot.waitUntil(lambda: w.report is not None and not w._measuring, timeout=T_OUT)
    assert w.report["mode"] == "ed_es" and w.report["lv"]["ef_pct"] == pytest.approx(cine["lv"]["ef_pct"], abs=0.5)
    out = tmp_path / "pair.json"
    w.export(str(out))
    assert json.loads(out.read_text())["inputs"]["labels_sha256"]["es"] == _digest(es_layer)
