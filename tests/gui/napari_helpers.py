"""Helpers shared by the napari plugin tests (imported by name: pytest puts this folder on
sys.path, as tests/io does for io_synth)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def io_synth():
    """tests/io/io_synth.py (synthetic DICOM series writers), loaded by path."""
    if "io_synth" in sys.modules:
        return sys.modules["io_synth"]
    path = Path(__file__).resolve().parents[1] / "io" / "io_synth.py"
    spec = importlib.util.spec_from_file_location("io_synth", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["io_synth"] = mod  # dataclasses look their module up while it executes
    spec.loader.exec_module(mod)
    return mod


def gui_ready() -> str | None:
    """Why the napari widget tests cannot run here (napari or pytest-qt missing, no display:
    Qt aborts the whole process without one, and the offscreen platform has no OpenGL), or None."""
    if importlib.util.find_spec("napari") is None or importlib.util.find_spec("pytestqt") is None:
        return "napari / pytest-qt not installed"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display: run the napari widget tests under xvfb-run -a"
    return None


def start_widget(viewer, qtbot, models, image_name: str, timeout_ms: int = 60_000):
    """A segmentation dock on ``viewer`` with a session started on its image ``image_name``,
    once the model is loaded and the widget idle."""
    from medseg_napari._qt.segment_widget import SegmentWidget

    w = SegmentWidget(viewer, models=models)
    viewer.window.add_dock_widget(w, name="medseg: segmentation")
    w.ui.image.setCurrentText(image_name)
    w.start_session()
    qtbot.waitUntil(lambda: w.controller is not None and not w.busy, timeout=timeout_ms)
    return w


def measure_panel(viewer, vol, truth, names):
    """A Measure panel docked in ``viewer`` over label layers ``names``, each a copy of ``truth`` on ``vol``'s grid."""
    from medseg_napari._layers import layer_geometry
    from medseg_napari._qt.measure_widget import MeasureWidget

    for name in names:
        viewer.add_labels(np.array(truth), name=name, **layer_geometry(vol))
    w = MeasureWidget(viewer)
    viewer.window.add_dock_widget(w, name="medseg: measurement")
    return w
