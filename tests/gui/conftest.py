"""Fixtures for the napari plugin tests.

The pure-Python tests (controller, reader, writer, measurement logic) need no napari/Qt; the
widget tests (marked ``gui``) skip when napari is absent and run under ``xvfb-run -a``.
One model is loaded per test session; torch uses the widget's default CPU thread count and
is restored afterwards.
"""

from __future__ import annotations

import threading

import pytest


@pytest.fixture(scope="session")
def model_provider():
    from medseg_napari._controller import ModelProvider, default_threads, guard_triton_import

    guard_triton_import()  # as the widget does: the gui tests create OpenGL canvases (Mesa under Xvfb)
    import torch

    before = torch.get_num_threads()
    provider = ModelProvider(threads=default_threads())
    yield provider
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def loaded_model(model_provider):
    return model_provider.get("default", "cpu")


@pytest.fixture(scope="session")
def small_cine():
    """A 4-frame, 7-slice, 96 x 96 short-axis cine phantom (Volume, truth labels, info)."""
    from medseg.phantoms import cine_sax_phantom

    p = cine_sax_phantom(n_frames=4, n_slices=7, shape=(96, 96), spacing=(10.0, 1.8, 1.8), seed=3)
    return p.image, p.labels, p.info


@pytest.fixture()
def gate(monkeypatch):
    """The Measure panel's measurements wait for the returned event (set at teardown, so none is left running)."""
    from medseg_napari import _measure

    ev, measure = threading.Event(), _measure.measure_labels

    def held(*a, **k):
        ev.wait(30)
        return measure(*a, **k)

    monkeypatch.setattr(_measure, "measure_labels", held)
    yield ev
    ev.set()


@pytest.fixture()
def notes(monkeypatch):
    """The napari notifications the segmentation dock raises."""
    from medseg_napari._qt import segment_widget

    got: list[str] = []
    monkeypatch.setattr(segment_widget, "_notify", got.append)
    return got
