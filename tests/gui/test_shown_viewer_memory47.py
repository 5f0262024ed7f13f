"""Studies closed in a *shown* viewer: their GL objects must really be deleted.

``flush_canvas`` (run when the session's layers go) used to end with ``doneCurrent()``. napari
flushes vispy's queued deletes itself when a layer is removed (``context.finish()``, which does
not make the context current), so the removals that followed in the same close (clicks, boxes,
labels) ran ``glDeleteProgram`` / ``glDeleteBuffer`` with no GL context current: no-ops, and
the driver kept every closed study's programs and buffers (+6.5 MB RSS a phantom study with
Mesa's llvmpipe under Xvfb; flat once fixed). The canvas's context is now made current before
each removal and left current (deletes run from Qt's compositing context crashed llvmpipe's
next frame: tests/gui/test_napari_fixes36.py). No model here: the plugin's close cascade is
replayed with napari layers only. Headless (``xvfb-run -a``)."""

from __future__ import annotations

import numpy as np
import pytest
from napari_helpers import gui_ready

pytestmark = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))


def _record_gl_deletes(monkeypatch) -> list[tuple[str, object]]:
    """(function, the GL context current then) for every GL delete vispy runs from now on."""
    from qtpy.QtGui import QOpenGLContext
    from vispy.gloo import gl

    calls: list[tuple[str, object]] = []
    for name in ("glDeleteProgram", "glDeleteBuffer", "glDeleteTexture", "glDeleteShader"):
        def wrapped(*args, _f=getattr(gl, name), _name=name):
            calls.append((_name, QOpenGLContext.currentContext()))  # None: the delete is a no-op
            return _f(*args)
        monkeypatch.setattr(gl, name, wrapped)  # vispy's GLIR parser looks them up on the module
    return calls


def test_flush_canvas_leaves_the_canvas_context_current(make_napari_viewer, qtbot):
    from medseg_napari._qt._prompt_layers import flush_canvas
    from qtpy.QtGui import QOpenGLContext

    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((8, 32, 32), np.float32))
    qtbot.wait(100)  # drawn
    native = viewer.window._qt_viewer.canvas._scene_canvas.native
    flush_canvas(viewer)
    assert QOpenGLContext.currentContext() is native.context()


def test_a_closed_study_deletes_its_gl_objects_in_a_context(make_napari_viewer, qtbot, monkeypatch):
    from medseg_napari._qt._prompt_layers import add_prompt_layers, flush_canvas

    viewer = make_napari_viewer(show=True)
    own = viewer.window._qt_viewer.canvas._scene_canvas.native.context()
    calls = _record_gl_deletes(monkeypatch)
    for i in range(2):
        image = viewer.add_image(np.random.default_rng(i).random((2, 4, 48, 48), np.float32), name=f"s{i}")
        labels = viewer.add_labels(np.zeros((2, 4, 48, 48), np.uint8), name=f"s{i} labels")
        labels.data[0, 0, 10:20, 10:20] = 1
        points, shapes = add_prompt_layers(viewer, image)
        qtbot.wait(150)  # drawn, empty boxes layer included
        points.add(np.array([[0, 0, 24, 24]], float))
        shapes.add_rectangles(np.array([[0, 0, 10, 10], [0, 0, 10, 30], [0, 0, 30, 30], [0, 0, 30, 10]], float))
        qtbot.wait(150)
        siblings = [points, shapes, labels]

        def on_removed(event, image=image, siblings=siblings):  # as SegmentWidget._on_layer_removed
            if event.value is image:
                for layer in siblings:
                    if layer in viewer.layers:
                        viewer.layers.remove(layer)
            flush_canvas(viewer)

        viewer.layers.events.removed.connect(on_removed)
        viewer.layers.remove(image)
        viewer.layers.events.removed.disconnect(on_removed)
        assert len(viewer.layers) == 0
        qtbot.wait(100)
    programs = [ctx for name, ctx in calls if name == "glDeleteProgram"]
    assert len(programs) >= 8  # image, labels, clicks and boxes of two studies
    lost = [name for name, ctx in calls if ctx is None]
    assert not lost, f"{len(lost)} of {len(calls)} GL deletes ran with no context current: {sorted(set(lost))}"
    elsewhere = [name for name, ctx in calls if ctx is not own]  # Qt's compositing context: llvmpipe crashed
    assert not elsewhere, f"{len(elsewhere)} of {len(calls)} GL deletes ran outside the canvas's context"
