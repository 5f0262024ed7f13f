"""Studies opened and closed one after another in one viewer: what stays behind per closed
study. napari keeps every worker in its window's task-status list for the viewer's life (through
``worker.quit``): the medseg docks' three workers a study (model, embedding, measurement), with
their signals and progress bars, stayed after the study was closed (+0.5 MB RSS a study over 20
phantom studies; 0.09 MB once they are let go). Headless (``xvfb-run -a``)."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from napari_helpers import gui_ready

pytestmark = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
T_OUT = 60_000  # ms


def _count(*types) -> dict[str, int]:
    import warnings

    gc.collect()
    objs = gc.get_objects()
    with warnings.catch_warnings():  # isinstance on every object reaches torch's deprecated aliases
        warnings.simplefilter("ignore")
        return {t.__name__: sum(1 for o in objs if isinstance(o, t)) for t in types}


def test_a_finished_worker_leaves_napari_task_list(make_napari_viewer, qtbot):
    from medseg_napari._qt._workers import start_worker

    viewer = make_napari_viewer()
    tasks = viewer.window._task_status_manager._tasks
    before = len(tasks)
    got, refs = [], []

    def steps(n, progress=None):
        yield from ((i, n) for i in range(n))
        return n

    for fn, arg in ((lambda x: 2 * x, 21), (steps, 3), (lambda x: 1 / x, 0)):  # a function, a generator, a failure
        w = start_worker(fn, arg, progress={"desc": "medseg: a job"}, on_done=got.append, on_error=lambda e: got.append(type(e)),
                         on_finished=lambda: got.append("finished"))
        refs.append(weakref.ref(w))
        del w
    qtbot.waitUntil(lambda: got.count("finished") == 3, timeout=T_OUT)
    qtbot.wait(50)
    assert 42 in got and 3 in got and ZeroDivisionError in got
    gc.collect()
    assert len(tasks) == before  # napari's list: no finished medseg worker
    assert [r() is None for r in refs] == [True] * 3  # the workers, their signals and progress bars freed


def test_closed_studies_leave_no_workers_or_layers(make_napari_viewer, qtbot, model_provider):
    from medseg_napari._controller import SegmentController
    from medseg_napari._layers import image_layer_kwargs
    from medseg_napari._qt.measure_widget import MeasureWidget
    from medseg_napari._qt.segment_widget import SegmentWidget
    from napari._qt.qthreading import FunctionWorker
    from napari.layers import Labels, Points, Shapes
    from napari.utils.progress import progress
    from napari.utils.task_status import TaskStatusItem

    from medseg.phantoms import cine_sax_phantom

    image = cine_sax_phantom(n_frames=2, n_slices=4, shape=(96, 96), spacing=(10.0, 1.8, 1.8), seed=3).image
    viewer = make_napari_viewer()
    w = SegmentWidget(viewer, models=model_provider)
    viewer.window.add_dock_widget(w, name="medseg: segmentation")
    panel = MeasureWidget(viewer)
    viewer.window.add_dock_widget(panel, name="medseg: measurement")
    types = (FunctionWorker, TaskStatusItem, progress, SegmentController, Labels, Points, Shapes)
    counts = []
    for i in range(3):
        layer = viewer.add_image(np.array(image.array), **image_layer_kwargs(image, f"study{i}"))
        w.ui.image.setCurrentText(layer.name)
        w.start_session()
        qtbot.waitUntil(lambda: w.controller is not None and not w.busy, timeout=T_OUT)
        w.binding.points.add(np.array([[0, 2, 48, 48]], float))
        qtbot.waitUntil(lambda: not w.busy and w.controller.session.can_undo, timeout=T_OUT)
        panel.labels_combo.setCurrentText(w.binding.labels.name)
        panel.measure()
        qtbot.waitUntil(lambda: panel.report is not None and not panel._measuring, timeout=T_OUT)
        viewer.layers.remove(layer)
        del layer
        qtbot.wait(100)  # napari deletes the layers' controls on the next turn of the event loop
        counts.append(_count(*types))
    assert counts[-1] == counts[0], counts  # nothing more after three studies than after one
    assert counts[-1]["SegmentController"] == counts[-1]["TaskStatusItem"] == counts[-1]["FunctionWorker"] == 0
