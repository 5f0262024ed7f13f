"""medseg.measure is a pure library: no torch, GUI or CLI toolkit, no matplotlib until a plot."""

from __future__ import annotations

import subprocess
import sys


def test_measure_imports_stay_light():
    code = (
        "import sys\n"
        "import medseg.measure as m\n"
        "from medseg.measure import report, aha, echo, qc, volumes, thickness, geometry, reference, export, plots\n"
        "m.measure_phase\n"
        "bad = [n for n in ('torch', 'napari', 'qtpy', 'PyQt5', 'PyQt6', 'magicgui', 'typer', 'rich', 'matplotlib') if n in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
