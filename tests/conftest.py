"""Shared test fixtures. Real-data tests use ``shared_data`` and skip when ../shared/data is
absent, so the suite passes on a fresh machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDSEG_SHARED_DATA", REPO.parent / "shared" / "data"))

requires_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")

#: fixtures that open Qt widgets or a napari viewer: a test that uses one needs a display
GUI_FIXTURES = frozenset({"qtbot", "qapp", "make_napari_viewer", "make_napari_viewer_proxy"})


def _no_gui() -> str | None:
    """Why Qt widget tests cannot run here, or None (Qt aborts the whole process without a display)."""
    import importlib.util
    import sys

    if importlib.util.find_spec("napari") is None or importlib.util.find_spec("pytestqt") is None:
        return "napari / pytest-qt not installed"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display: run the napari widget tests under xvfb-run -a"
    return None


@pytest.hookimpl(tryfirst=True)  # before -m deselects: `-m "not gui"` must see the markers added here
def pytest_collection_modifyitems(config, items):
    """Keep the markers true whatever a module says: a test that uses a Qt / napari fixture is
    ``gui`` (and skips without a display), one that uses ``shared_data`` is ``realdata`` (and
    every ``realdata`` test skips without ../shared/data)."""
    no_gui = _no_gui()
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & GUI_FIXTURES and item.get_closest_marker("gui") is None:
            item.add_marker(pytest.mark.gui)
        if "shared_data" in fixtures and item.get_closest_marker("realdata") is None:
            item.add_marker(pytest.mark.realdata)
        if item.get_closest_marker("realdata") is not None and not SHARED_DATA.is_dir():
            item.add_marker(pytest.mark.skip(reason="../shared/data is absent"))
        if no_gui and item.get_closest_marker("gui") is not None:
            item.add_marker(pytest.mark.skip(reason=no_gui))


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
