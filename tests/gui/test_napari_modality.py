"""The segmentation widget's Modality choice: what ``--modality`` is on the command line. An
echo saved as PNG records no modality ("OT"), and its zero-click pass segmented LV, MYO and RV
(the MR defaults), with no way in napari to say it is ultrasound."""

from __future__ import annotations

import numpy as np
import pytest
from napari_helpers import gui_ready

from medseg.io.volume import Volume

T_OUT = 60_000  # ms


def test_with_modality_sets_what_the_image_does_not_record():
    from medseg_napari._layers import MODALITY_FROM_IMAGE, layer_modality, with_modality

    vol = Volume(np.zeros((1, 1, 32, 32), np.float32), np.eye(4), modality="OT", meta={"format": "png"})
    assert with_modality(vol, MODALITY_FROM_IMAGE) is vol and with_modality(vol, "OT") is vol
    us = with_modality(vol, "US")
    assert us.modality == "US" and us.meta == {"format": "png", "modality_from": "chosen in napari"} and us.array is vol.array
    with pytest.raises(ValueError, match="modality must be one of"):
        with_modality(vol, "XR")
    assert layer_modality({}) == "OT" and layer_modality({"medseg_volume": us}) == "US"


@pytest.mark.gui
def test_an_echo_png_chosen_as_ultrasound_auto_segments_the_atrium(make_napari_viewer, qtbot, model_provider, small_cine):
    if gui_ready():
        pytest.skip(gui_ready())
    from napari_helpers import start_widget

    vol, _, _ = small_cine
    viewer = make_napari_viewer()
    viewer.add_image(vol.array[0, 3], name="echo")  # a 2-D array: no modality kept, as a PNG
    w = start_widget(viewer, qtbot, model_provider, "echo", T_OUT)
    assert w.ui.modality.itemText(0) == "the image's (OT)"
    assert w.controller.volume.modality == "OT" and "rv" in w.controller.auto_structures()
    w.ui.modality.setCurrentText("US")
    w.start_session()  # the choice takes effect at (re)start, as the model's and adapter's do
    qtbot.waitUntil(lambda: w.controller is not None and w.controller.volume.modality == "US" and not w.busy, timeout=T_OUT)
    names = w.controller.auto_structures()
    assert "la" in names and "rv" not in names
