"""An echo screen's ultrasound region note reaches the label sidecar and the measure report.

The reader notes when a full-screen echo DICOM's region box was clipped to the image, ignored,
or one of several (``meta["us_region_note"]``, :mod:`medseg.io.us_region`); `medseg info`
showed it, but the label sidecar (``provenance.image_notes``) and `medseg measure`'s report
(``inputs``) kept only the other image notes, so whoever read the labels later never learnt that
the region zero-click looked in (and the pixel size came from) was clipped or ignored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from io_synth import us_region, write_us_screen

from medseg.cli import run_cli
from medseg.io import read_volume, write_labels

ROWS, COLS, TOP, LEFT, SIDE = 200, 240, 20, 40, 160  # the screen, the sector's place and size on it
GOOD = (TOP, LEFT, TOP + SIDE - 1, LEFT + SIDE - 1)  # (row0, col0, row1, col1), inclusive
WIDE = (TOP, LEFT, TOP + SIDE - 1, 400)  # reaches past the screen's right edge: clipped


@pytest.fixture(scope="module")
def screen() -> np.ndarray:
    """(3, ROWS, COLS) uint8: an apical 4-chamber phantom (0.7 mm pixels) in the sector."""
    from medseg.phantoms import echo_apical_phantom

    ph = echo_apical_phantom(view="a4c", n_frames=3, shape=(SIDE, SIDE), spacing=0.7, seed=3)
    out = np.zeros((3, ROWS, COLS), np.uint8)
    out[:, TOP:TOP + SIDE, LEFT:LEFT + SIDE] = np.clip(ph.image.array[:, 0], 0, 255).astype(np.uint8)
    return out


def _measure(labels: Path, tmp: Path) -> dict:
    out = tmp / "report.json"
    assert run_cli(["measure", str(labels), "-o", str(out)]) == 0
    return json.loads(out.read_text())["inputs"]


def test_a_clipped_region_note_reaches_the_sidecar_and_the_report(tmp_path, screen, capsys):
    """`segment --auto` of a clip whose region box reaches outside the screen: the console says
    the reader's note, the sidecar's image_notes and `measure`'s inputs carry it word for word."""
    clip = write_us_screen(tmp_path / "a4c.dcm", screen, [us_region(WIDE)])
    note = read_volume(clip).meta["us_region_note"]
    assert f"clipped to rows {TOP}-{TOP + SIDE - 1}, columns {LEFT}-{COLS - 1}" in note
    seg = tmp_path / "seg.nii.gz"
    capsys.readouterr()
    assert run_cli(["segment", str(clip), "--auto", "-o", str(seg)]) == 0
    assert note in " ".join(capsys.readouterr().err.split())
    prov = json.loads(seg.with_name("seg.json").read_text())["provenance"]
    assert prov["image_notes"] == {"us_region_note": note}
    assert _measure(seg, tmp_path)["us_region_note"] == note


def test_a_good_region_gives_no_note_key(tmp_path, screen):
    """A region inside the screen: no note in the image, none in the sidecar or the report."""
    vol = read_volume(write_us_screen(tmp_path / "a4c.dcm", screen, [us_region(GOOD)]))
    assert vol.meta["us_region"] == list(GOOD) and "us_region_note" not in vol.meta
    labels = np.zeros(vol.shape, np.uint8)
    labels[:, :, 80:120, 90:130] = 1  # an LV in every frame
    seg, side = write_labels(labels, vol, tmp_path / "seg.nii.gz", "lv=1")
    assert "image_notes" not in json.loads(side.read_text())["provenance"]
    assert "us_region_note" not in _measure(seg, tmp_path)


def test_the_several_regions_note_reaches_the_sidecar(tmp_path, screen):
    """Two calibrated 2-D regions of different pixel sizes (a zoomed view beside the image): the
    note naming the one not taken is kept with the labels too."""
    zoom = us_region((TOP, 205, TOP + 30, COLS - 1), delta_cm=(0.035, 0.035))
    vol = read_volume(write_us_screen(tmp_path / "dual.dcm", screen, [us_region(GOOD), zoom]))
    note = vol.meta["us_region_note"]
    assert "2 calibrated 2-D ultrasound regions" in note
    labels = np.zeros(vol.shape, np.uint8)
    labels[:, :, 80:120, 90:130] = 1
    seg, side = write_labels(labels, vol, tmp_path / "seg.nii.gz", "lv=1")
    assert json.loads(side.read_text())["provenance"]["image_notes"] == {"us_region_note": note}
    assert _measure(seg, tmp_path)["us_region_note"] == note
