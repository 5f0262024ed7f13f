"""The Measure panel's automatic pick (the newest medseg ``… labels`` layer) replaced a label
layer the user had chosen under Labels (``cine_gt``, their expert labels) whenever a layer was
added or removed, such as an unrelated image opened, and dropped the measurement running on it.
It now chooses only for a user who has not chosen: nothing chosen yet, the choice was its own,
or the layer chosen was removed. Headless (``xvfb-run -a``)."""

from __future__ import annotations

import numpy as np
import pytest
from napari_helpers import gui_ready, measure_panel

pytestmark = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
T_OUT = 60_000  # ms


def test_a_chosen_layer_stays_and_its_measurement_runs_on(make_napari_viewer, qtbot, small_cine, gate):
    from medseg_napari._layers import image_layer_kwargs, layer_geometry

    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    w = measure_panel(viewer, vol, truth, ("cine labels", "cine_gt"))
    assert w.labels_combo.currentText() == "cine labels"  # chosen for the user: medseg's
    w.labels_combo.setCurrentText("cine_gt")  # the user's expert labels
    w.measure()
    other = viewer.add_image(np.array(vol.array), **image_layer_kwargs(vol, "other cine"))  # an unrelated image
    assert w.labels_combo.currentText() == "cine_gt"
    viewer.add_labels(np.array(truth), name="other labels", **layer_geometry(vol))  # another segmentation's layer
    viewer.layers.remove(other)
    assert w.labels_combo.currentText() == "cine_gt"
    assert w.status.text() == "Measuring…"  # not dropped
    gate.set()
    qtbot.waitUntil(lambda: w.report is not None, timeout=T_OUT)
    assert w.status.text().startswith("Measured: cine")
    assert w._measured.keys["labels"] is viewer.layers["cine_gt"]  # what was measured: the layer chosen

    viewer.layers.remove("cine_gt")  # the layer chosen removed: chosen for the user again (the list's first, as before)
    assert w.labels_combo.currentText() == "cine labels" and w._chosen is None
    viewer.add_labels(np.array(truth), name="third labels", **layer_geometry(vol))
    assert w.labels_combo.currentText() == "cine labels"  # a medseg layer shown stays, as before


def test_a_layer_chosen_in_the_list_stays_one_shown_for_the_user_does_not(make_napari_viewer, small_cine):
    from medseg_napari._layers import layer_geometry

    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    w = measure_panel(viewer, vol, truth, ("cine_gt",))
    assert w.labels_combo.currentText() == "cine_gt"  # the only one: shown, not chosen
    viewer.add_labels(np.array(truth), name="cine labels", **layer_geometry(vol))
    assert w.labels_combo.currentText() == "cine labels"  # a new segmentation: chosen for the user

    w.labels_combo.setCurrentText("cine_gt")
    w.labels_combo.setCurrentText("cine labels")  # chosen back: the user's choice now
    viewer.add_labels(np.array(truth), name="new_gt", **layer_geometry(vol))
    viewer.add_labels(np.array(truth), name="newer labels", **layer_geometry(vol))
    assert w.labels_combo.currentText() == "cine labels"

    viewer2 = make_napari_viewer()
    w2 = measure_panel(viewer2, vol, truth, ("cine_gt",))
    w2.labels_combo.activated.emit(w2.labels_combo.currentIndex())  # picked in the list, the one shown
    viewer2.add_labels(np.array(truth), name="cine labels", **layer_geometry(vol))
    assert w2.labels_combo.currentText() == "cine_gt"
