"""Defects the GUI testers found in the plugin (run under ``xvfb-run -a``): zero-click's
structures by modality, the session's labels layer removed from a shown viewer, a click on
another study's layer, a result of a closed session, confidence and review in the saved
sidecar and on the review sheet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest
from napari_helpers import gui_ready

if gui_ready():
    pytest.skip(gui_ready(), allow_module_level=True)
from medseg_napari._controller import SegmentController, box_rectangle  # noqa: E402

from medseg.types import Box  # noqa: E402

pytestmark = pytest.mark.gui
T_OUT = 60_000  # ms


@pytest.fixture(scope="module")
def prompted(loaded_model, small_cine):
    """A controller on the cine with the LV boxed on frame 0, slice 3 (one embedding)."""
    vol, truth, _ = small_cine
    c = SegmentController(vol, np.zeros(vol.shape, np.uint8), loaded_model)
    c.prompt("lv", 0, 3, Box.from_mask(truth[0, 3] == 1))
    return c


def test_auto_picks_the_structures_the_cli_picks_for_the_modality(prompted, loaded_model, small_cine, monkeypatch):
    """Zero-click put LA and RA over the RV of a short-axis MR: every structure the model knew."""
    vol, truth, _ = small_cine
    c = prompted
    assert c.auto_structures() == ["lv", "myo", "rv"]  # MR, as `medseg segment --auto`
    asked = []
    monkeypatch.setattr(c.session, "auto", lambda names, frames=None, progress=None: asked.append(list(names)))
    c.auto(frames=[0])
    assert asked == [["lv", "myo", "rv"]]
    us = SegmentController(replace(vol, modality="US"), np.zeros(vol.shape, np.uint8), loaded_model)
    assert us.auto_structures() == ["lv", "myo", "la"]
    us.session.lock("myo", True)  # a locked structure stays as it is
    assert us.auto_structures() == ["lv", "la"]
    monkeypatch.setattr(c, "prompt_records", lambda frame=None: [_rec("ra")])
    assert c.auto_structures() == ["lv", "myo", "rv", "ra"]  # prompted by the user: stays


def _rec(name):
    from medseg_napari._controller import PromptRecord

    return PromptRecord(name, 0, 3, Box(10, 10, 20, 20), ())


def test_saved_sidecar_and_review_sheet_carry_confidence_and_flags(prompted, tmp_path, monkeypatch):
    """The napari sidecar had no confidence / review / needs_review; the sheet drew no flags."""
    from medseg_napari._review import ReviewList

    import medseg.review

    prompted.save(tmp_path / "seg.nii.gz")
    prov = json.loads((tmp_path / "seg.json").read_text())["provenance"]
    assert {"confidence", "review", "needs_review"} <= set(prov)
    assert "lv" in prov["confidence"]["volume"] and isinstance(prov["review"]["flags"], list)
    assert prov["needs_review"] is prov["review"]["needs_review"]

    seen = {}
    monkeypatch.setattr(medseg.review, "review_png", lambda vol, labels, lmap, provenance, path, **kw: seen.update(provenance) or path)
    review = ReviewList(prompted.session)
    review.check()
    review.save_sheet(tmp_path / "sheet.png")
    assert seen["review"]["flags"] == review._review["flags"] and seen["confidence"] == review._review["confidence"]


def _session(viewer, qtbot, models, array, spacing, name):
    from medseg_napari._qt.segment_widget import SegmentWidget

    viewer.add_image(array, name=name, scale=(1.0, *spacing))
    w = next((d for d in getattr(viewer, "_fixes36_widgets", [])), None)
    if w is None:
        w = SegmentWidget(viewer, models=models)
        viewer.window.add_dock_widget(w, name="medseg: segmentation")
        viewer._fixes36_widgets = [w]
    w.ui.image.setCurrentText(name)
    w.start_session()
    qtbot.waitUntil(lambda: w.binding is not None and w.binding.image.name == name and not w.busy, timeout=T_OUT)
    return w.binding, w


def test_a_click_goes_to_the_session_of_the_layer_clicked(make_napari_viewer, qtbot, model_provider, small_cine):
    """Two studies: a click on A's clicks layer while the widget showed B was applied to B."""
    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    a, w = _session(viewer, qtbot, model_provider, vol.array[:1], vol.spacing, "A")
    b, _ = _session(viewer, qtbot, model_provider, vol.array[1:2], vol.spacing, "B")
    assert w.binding is b
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    z = a.current_index(viewer)[1]
    cy, cx = np.argwhere(truth[0, z] == 1).mean(axis=0)
    a.points.add([0, z, cy, cx])
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    assert [x["op"] for x in a.controller.session.log] == ["prompt"] and b.controller.session.log == []
    assert w.binding is a and (a.labels.data[0, z] == 1).any() and not b.labels.data.any()
    assert "prompt applied" in w.ui.status.text()


def test_a_result_of_a_closed_session_is_discarded(make_napari_viewer, qtbot, model_provider, small_cine):
    """The image closed while propagation ran: the status line later said 'Propagated ...'."""
    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    b, w = _session(viewer, qtbot, model_provider, vol.array, vol.spacing, "cine")
    viewer.dims.current_step = (0, 3, *viewer.dims.current_step[2:])
    qtbot.waitUntil(lambda: not w.busy and not w.controller.needs_embedding(0, 3), timeout=T_OUT)
    b.shapes.add_rectangles(box_rectangle(Box.from_mask(truth[0, 3] == 1), 0, 3, 4))
    w.propagate()
    assert w.busy
    viewer.layers.remove(b.image)
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    text = w.ui.status.text()
    assert "Propagated" not in text and "Session on cine closed" in text and "discarded" in text


SHOWN_VIEWER = textwrap.dedent("""
    import sys, time
    from medseg_napari._controller import ModelProvider, guard_triton_import
    guard_triton_import()
    import napari
    from qtpy.QtWidgets import QApplication
    from medseg.phantoms import cine_sax_phantom
    from medseg_napari._qt.segment_widget import SegmentWidget

    def pump(sec):
        end = time.time() + sec
        while time.time() < end:
            QApplication.processEvents()
            time.sleep(0.01)

    p = cine_sax_phantom(n_frames=1, n_slices=3, shape=(64, 64), spacing=(10.0, 1.8, 1.8), seed=3)
    viewer = napari.Viewer(show=True)
    viewer.add_image(p.image.array, name="cine", scale=(1.0, *p.image.spacing))
    w = SegmentWidget(viewer, models=ModelProvider(threads=1))
    viewer.window.add_dock_widget(w, name="medseg: segmentation")
    w.ui.image.setCurrentText("cine")
    w.start_session()
    end = time.time() + 120
    while (w.controller is None or w.busy) and time.time() < end:
        pump(0.05)
    pump(0.5)
    viewer.layers.remove(w.binding.labels)
    pump(0.5)
    for _ in range(2):  # what a toast, a mouse move or a screenshot does: draw the canvas again
        viewer.screenshot(canvas_only=False)
        pump(0.3)
    print("STATUS", w.ui.status.text(), [ly.name for ly in viewer.layers], flush=True)
    viewer.close()
""")


def test_removing_the_labels_layer_of_a_shown_viewer_keeps_the_process_up(tmp_path):
    """The session's labels layer removed from a shown viewer: the process died in vispy's
    glDrawArrays (Mesa) at the next draw. Run in a subprocess: a segfault would end pytest."""
    script = tmp_path / "shown.py"
    script.write_text(SHOWN_VIEWER)
    env = {**os.environ, "QT_API": os.environ.get("QT_API", "pyqt6")}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "STATUS Session on cine closed: its labels layer was removed. ['cine']" in run.stdout


def test_propagate_is_off_on_a_single_2d_image(make_napari_viewer, qtbot, model_provider, small_cine):
    """One 2-D image has no slice or frame to propagate to: the button stayed enabled."""
    from medseg_napari._qt.segment_widget import SegmentWidget

    vol, _, _ = small_cine
    viewer = make_napari_viewer()
    viewer.add_image(vol.array[0, 3], name="slice", scale=vol.spacing[1:])
    w = SegmentWidget(viewer, models=model_provider)
    w.ui.image.setCurrentText("slice")
    w.start_session()
    qtbot.waitUntil(lambda: w.controller is not None and not w.busy, timeout=T_OUT)
    assert not w.ui.propagate.isEnabled() and w.ui.auto.isEnabled() and w.ui.save.isEnabled()
