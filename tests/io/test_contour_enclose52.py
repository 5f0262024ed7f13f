"""Sunnybrook contours whose epicardium does not enclose the endocardium (SC-HF-I-6's o-contours
are copies of SC-HF-I-1's in the shared data): contour_labels warns, naming the images, and
examples/sunnybrook_references.py says it on a ``warning:`` line; well-placed contours are quiet."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
from io_synth import write_cine_series

from medseg.io import read_volume
from medseg.io.contours import ContourWarning, contour_labels, unenclosed


def _rect(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def test_share_of_the_endocardium_inside_the_epicardium():
    inner = _rect(10, 10, 20, 20)
    contours = {1: {"i": inner, "o": _rect(6, 6, 24, 24)},  # encloses: not listed
                2: {"i": inner, "o": _rect(16, 6, 34, 24)},  # shifted 10 px right: about half inside
                3: {"i": inner},  # no epicardium (an ES frame): not listed
                4: {"i": inner, "o": _rect(11, 6, 29, 24)}}  # shifted 5 px: about 90 % inside, at the edge
    bad = unenclosed(contours, (40, 40))
    assert set(bad) <= {2, 4} and 2 in bad
    assert 0.3 < bad[2] < 0.6
    assert unenclosed({1: {"i": inner, "o": _rect(60, 60, 70, 70)}}, (40, 40)) == {1: 0.0}  # off the image entirely


def _series_with_contours(tmp_path: Path, shift: int) -> Path:
    """A 2-slice, 1-phase synthetic series; each image gets an endocardial square and an epicardial
    one around it shifted ``shift`` px to the right."""
    series = write_cine_series(tmp_path / "dicoms" / "P1", n_slices=2, n_phases=1, rows=30, cols=30)
    for f in series.folder.glob("*.dcm"):
        n = int(f.stem[2:])  # IM0003.dcm -> 3
        for kind, xy in (("i", _rect(10, 10, 18, 18)), ("o", _rect(7 + shift, 7, 21 + shift, 21))):
            sub = tmp_path / "contourfiles" / "C1" / f"{kind}-contours"
            sub.mkdir(parents=True, exist_ok=True)
            np.savetxt(sub / f"IM-0001-{n:04d}-{kind}contour-manual.txt", xy, fmt="%.2f")
    (tmp_path / "link.csv").write_text("patient_id,original_id\nP1,C1\n")
    return series.folder


@pytest.mark.parametrize("shift", [0, 12])
def test_contour_labels_warns_once_when_the_epicardium_misses(tmp_path, shift):
    folder = _series_with_contours(tmp_path, shift)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = contour_labels(read_volume(folder), tmp_path / "contourfiles" / "C1")
    said = [str(w.message) for w in caught if issubclass(w.category, ContourWarning)]
    assert (labels.array == 1).any() and (labels.array == 2).any()  # still written: a warning, not a refusal
    if shift == 0:
        assert said == []
    else:
        assert len(said) == 1 and "\n" not in said[0]
        assert "in 2 of 2 image(s)" in said[0] and "does not enclose the endocardial one" in said[0]


def test_the_example_says_the_warning_and_still_writes(tmp_path, capsys):
    _series_with_contours(tmp_path, 12)
    path = Path(__file__).resolve().parents[2] / "examples" / "sunnybrook_references.py"
    spec = importlib.util.spec_from_file_location("sunnybrook_references", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.main(tmp_path, tmp_path / "refs")
    err = capsys.readouterr().err
    assert [r["label"] for r in rows] == ["P1.dcm"] and (tmp_path / "refs" / "P1.dcm").exists()
    assert [ln for ln in err.splitlines() if ln.startswith("warning: P1: ")] and "does not enclose" in err
