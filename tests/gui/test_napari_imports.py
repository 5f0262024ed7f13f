"""Importing the plugin is light; the manifest is valid and every python_name imports."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

MANIFEST = Path(__file__).resolve().parents[2] / "napari_plugin" / "napari.yaml"
QT_FREE = ["medseg_napari", "medseg_napari._reader", "medseg_napari._writer", "medseg_napari._sample_data",
           "medseg_napari._controller", "medseg_napari._measure", "medseg_napari._layers", "medseg_napari._scripting",
           "medseg_napari._review"]


def test_import_loads_no_torch_napari_or_qt():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in QT_FREE) +
            "bad = [m for m in ('torch', 'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui') if m in sys.modules]\n"
            "assert not bad, bad\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def _python_names() -> list[str]:
    """Every ``python_name`` in napari.yaml (a regex: no YAML library needed to collect)."""
    return re.findall(r"^\s*python_name:\s*(\S+)\s*$", MANIFEST.read_text(), flags=re.M)


def test_manifest_lists_package_data():
    assert MANIFEST.is_file()
    assert len(_python_names()) == 8


@pytest.mark.parametrize("python_name", _python_names())
def test_every_python_name_imports(python_name):
    module, _, attr = python_name.partition(":")
    if "._qt." in module:
        pytest.importorskip("napari")
        pytest.importorskip("qtpy")
    obj = getattr(importlib.import_module(module), attr)
    assert callable(obj)


def test_npe2_validate():
    npe2 = pytest.importorskip("npe2")
    pm = npe2.PluginManifest.from_file(MANIFEST)
    assert pm.name == "medseg"
    pytest.importorskip("napari")
    pm.validate_imports()
    out = subprocess.run([sys.executable, "-m", "npe2", "validate", "medseg"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "valid" in out.stdout, out.stdout + out.stderr
