"""Shared test fixtures. Real-data tests use ``shared_data`` and skip when ../shared/data is
absent, so the suite passes on a fresh machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDSEG_SHARED_DATA", REPO.parent / "shared" / "data"))

requires_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture()
def end_check_weights():
    """Make RV end-check weights for any model (all-zero coefficients; tests stub the
    probability): the behaviour of the check is tested, not the shipped fit."""
    from medseg import end_check

    def make(max_trim: int) -> dict:
        zero = {"w0": 0.0, "w": [0.0] * len(end_check.FEATURES)}
        return {"structure": "rv", "context": ["lv", "myo"], "features": list(end_check.FEATURES), "ends": {"base": zero, "apex": zero},
                "threshold": 0.5, "max_trim": max_trim, "model_sha256": None}

    return make
