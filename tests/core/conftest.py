"""Fixtures for core tests: a small cine phantom (the shipped model: ``model`` in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def phantom():
    from medseg.phantoms import cine_sax_phantom

    return cine_sax_phantom(n_frames=3, n_slices=6, shape=(112, 112), spacing=(10.0, 1.5, 1.5), seed=3)
