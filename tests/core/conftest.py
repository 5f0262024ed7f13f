"""Fixtures for core tests: the shipped model and a small cine phantom."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def model():
    import torch

    from medseg.models import load_model

    torch.set_num_threads(1)  # predictable on shared 2-core machines
    return load_model("default")


@pytest.fixture(scope="session")
def phantom():
    from medseg.phantoms import cine_sax_phantom

    return cine_sax_phantom(n_frames=3, n_slices=6, shape=(112, 112), spacing=(10.0, 1.5, 1.5), seed=3)
