"""Why the measurement dock dropped the measurement it was running. It said "The labels chosen
changed while measuring" for every reason but a measured layer closed: the ES layer chosen, the
basal rule turned off, the pixel size edited, a new medseg label layer opened and chosen for the
user, and the segmentation session of the layer measured restarted (which read "closed"). Each
says what happened now. The measurement is held in its worker until the change is made.
Headless (``xvfb-run -a``)."""

from __future__ import annotations

import numpy as np
import pytest
from napari_helpers import gui_ready, measure_panel, start_widget

pytestmark = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
T_OUT = 60_000  # ms


def _dropped(w, qtbot, gate) -> str:
    text = w.status.text()
    gate.set()
    qtbot.waitUntil(lambda: w.measure_btn.isEnabled(), timeout=T_OUT)
    qtbot.wait(50)
    assert w.report is None  # the dropped measurement's report is not shown
    gate.clear()
    return text


def test_options_changed_while_measuring_say_which(make_napari_viewer, qtbot, small_cine, gate):
    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    w = measure_panel(viewer, vol, truth, ("ed labels", "es labels"))
    w.labels_combo.setCurrentText("ed labels")

    w.measure()
    w.basal_rule.setChecked(False)
    assert _dropped(w, qtbot, gate) == "The basal rule was turned off while measuring: that measurement was dropped; Measure again."

    w.measure()
    w.pixel_size.textEdited.emit("0.5")  # as typing into the field
    assert _dropped(w, qtbot, gate) == "The pixel size was edited while measuring: that measurement was dropped; Measure again."

    w.measure()
    w.es_combo.setCurrentText("es labels")
    assert _dropped(w, qtbot, gate) == "The ES labels chosen changed while measuring: that measurement was dropped; Measure again."

    w.measure()  # (ED + ES now) another labels layer chosen: as before
    w.labels_combo.setCurrentText("es labels")
    assert _dropped(w, qtbot, gate) == "The labels chosen changed while measuring: that measurement was dropped; Measure again."


def test_a_new_label_layer_chosen_for_the_user_says_so(make_napari_viewer, qtbot, small_cine, gate):
    from medseg_napari._layers import layer_geometry

    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    w = measure_panel(viewer, vol, truth, ("cine_gt",))  # a ground truth: not a medseg "... labels" layer
    assert w.labels_combo.currentText() == "cine_gt"
    w.measure()
    viewer.add_labels(np.zeros_like(truth), name="cine labels", **layer_geometry(vol))  # a new segmentation's layer
    assert w.labels_combo.currentText() == "cine labels"
    assert _dropped(w, qtbot, gate) == ("A new label layer 'cine labels' was opened and chosen under Labels while 'cine_gt' was "
                                        "measured: that measurement was dropped; Measure again, or choose 'cine_gt' under Labels.")


def test_a_measurement_of_a_restarted_session_says_it_restarted(make_napari_viewer, qtbot, model_provider, small_cine, gate):
    from medseg_napari._layers import image_layer_kwargs

    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    viewer.add_image(np.array(vol.array), **image_layer_kwargs(vol, "cine"))
    seg = start_widget(viewer, qtbot, model_provider, "cine")
    seg.controller.labels[...] = truth  # (as segmented)
    w = measure_panel(viewer, vol, truth, ())
    assert w.labels_combo.currentText() == "cine labels"
    w.measure()
    seg.start_session()  # Restart session (clears labels): a new "cine labels" layer
    qtbot.waitUntil(lambda: not seg.busy, timeout=T_OUT)
    assert w.labels_combo.currentText() == "cine labels" and not seg.controller.labels.any()
    assert _dropped(w, qtbot, gate) == ("The session on 'cine' was restarted (its labels cleared) while 'cine labels' was measured: "
                                        "that measurement was dropped.")

    w.measure()  # closed for good: as before
    viewer.layers.remove("cine labels")
    assert _dropped(w, qtbot, gate) == "The label layer 'cine labels' was closed while it was measured: that measurement was dropped."
