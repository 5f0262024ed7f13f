"""Closing the viewer while a dock's job runs (the embedding of the slice just shown) left an
error when the job came back: "wrapped C/C++ object of type QComboBox has been deleted"."""

from __future__ import annotations

import pytest
from napari_helpers import gui_ready, start_widget

pytestmark = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))


def test_closing_the_viewer_while_a_slice_is_embedded_raises_nothing(make_napari_viewer, qtbot, model_provider, small_cine):
    from medseg_napari._layers import image_layer_kwargs

    viewer = make_napari_viewer(show=True)
    viewer.add_image(small_cine[0].array, **image_layer_kwargs(small_cine[0], "cine"))
    w = start_widget(viewer, qtbot, model_provider, "cine")
    image = w.binding.image
    viewer.dims.set_point(1, float(image.data_to_world([0, 5, 0, 0])[1]))  # another slice: its embedding starts
    assert w.busy
    worker = w._worker
    viewer.close()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=60_000)
    qtbot.wait(300)  # the job's returned / finished signals are delivered (pytest-qt fails on an error in them)
