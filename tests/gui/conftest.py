"""Fixtures for the napari plugin tests.

The pure-Python tests (controller, reader, writer, measurement logic) need no napari/Qt; the
widget tests (marked ``gui``) skip when napari is absent and run under ``xvfb-run -a``.
One model is loaded per test session; torch uses the widget's default CPU thread count and
is restored afterwards.
"""

from __future__ import annotations

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
