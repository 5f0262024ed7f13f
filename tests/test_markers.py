"""The markers in pyproject.toml mean what they say, so `-m "not gui"` and `-m "not gui and not
slow"` are safe quick loops: tests/conftest.py marks a test that uses a Qt / napari fixture
``gui`` and one that uses ``shared_data`` ``realdata``, and skips those without a display or
without ../shared/data. 43 widget tests were once selected by `-m "not gui"` (they used ``qtbot``
without the marker); an ACDC test that read ../shared/data was not ``realdata``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

SAMPLE = '''
import pytest

def test_widget(qtbot):
    pass

def test_data(shared_data):
    pass

@pytest.mark.realdata
def test_marked_data():
    raise AssertionError("ran without ../shared/data")

def test_plain():
    pass
'''


def _pytest(tmp_path: Path, *args: str, shared: str) -> str:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(PYTHONPATH=str(TESTS), MEDSEG_SHARED_DATA=shared, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-xvfb", "-p", "conftest", "-rs",
                          "--rootdir", str(tmp_path), "-c", os.devnull, "-W", "ignore::pytest.PytestUnknownMarkWarning", *args, "test_sample.py"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    return out.stdout + out.stderr


def test_markers_follow_the_fixtures_a_test_uses(tmp_path):
    gui = _pytest(tmp_path, "--collect-only", "-m", "gui", shared=str(tmp_path))
    assert "test_sample.py::test_widget" in gui and "test_plain" not in gui and "test_data" not in gui, gui
    data = _pytest(tmp_path, "--collect-only", "-m", "realdata", shared=str(tmp_path))
    assert "test_sample.py::test_data" in data and "test_sample.py::test_marked_data" in data and "test_widget" not in data, data


def test_realdata_and_gui_tests_skip_without_data_or_display(tmp_path):
    out = _pytest(tmp_path, shared=str(tmp_path / "absent"))
    assert "1 passed, 3 skipped" in out, out
    assert "../shared/data is absent" in out and ("no display" in out or "pytest-qt not installed" in out), out
