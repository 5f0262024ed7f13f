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
def model():
    """The shipped default model, loaded once for the whole run (one torch thread)."""
    import torch

    from medseg.models import load_model

    torch.set_num_threads(1)  # predictable on shared 2-core machines
    return load_model("default")


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


@pytest.fixture()
def echo_views():
    """Write CAMUS-style apical views of one study into a folder: ``p1_4CH_ED.png`` (and ES, and
    2CH) with their ``_gt.png`` labels (lv=1, myo=2, la=4), from the echo phantom."""
    import numpy as np
    from PIL import Image

    from medseg.phantoms import echo_apical_phantom

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for view, name in (("a4c", "4CH"), ("a2c", "2CH")):
            ph = echo_apical_phantom(view, n_frames=8, seed=3)
            for phase in ("ED", "ES"):
                t = ph.info[f"{phase.lower()}_frame"]
                Image.fromarray(np.clip(ph.image.array[t, 0], 0, 255).astype(np.uint8)).save(folder / f"p1_{name}_{phase}.png")
                lab = np.where(np.isin(ph.labels[t, 0], (1, 2, 4)), ph.labels[t, 0], 0).astype(np.uint8)
                Image.fromarray(lab).save(folder / f"p1_{name}_{phase}_gt.png")
        return folder

    return make
