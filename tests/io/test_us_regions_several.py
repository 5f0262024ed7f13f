"""An echo screen with more than one calibrated 2-D ultrasound region: a dual view, or a 2-D
image beside a zoomed one, each region with its own PhysicalDeltaX/Y.

medseg takes the first region for the pixel size and zero-click's box
(:mod:`medseg.io.us_region`). It took it without a word: whatever was labelled in the second
view was measured at the first's pixel size (half or twice the true lengths), and zero-click
never looked there. Now ``meta["us_region_note"]`` (``medseg info``'s "us region" row) says how
many 2-D regions the screen holds, which one was taken with its pixel size, and what that means
for the others; a colour-flow box inside the 2-D image with its pixel size is no second view."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from io_synth import us_region, write_us_screen
from pydicom.dataset import Dataset

from medseg.cli import run_cli
from medseg.io import read_volume

ROWS, COLS = 240, 400
LEFT = (20, 10, 219, 189)  # [row0, col0, row1, col1] of the left view; RIGHT: of the right one
RIGHT = (20, 210, 219, 389)


def _region(box, delta_cm: float, data_type: int = 1) -> Dataset:
    return us_region(box, delta_cm=(delta_cm, delta_cm), data_type=data_type)


def _screen(path: Path, regions: list[Dataset]) -> Path:
    """A 2-frame US multi-frame DICOM of ROWS x COLS with ``regions``."""
    pixels = np.random.default_rng(1).integers(0, 200, (2, ROWS, COLS), dtype=np.uint8)
    return write_us_screen(path, pixels, regions, patient="ECHO02", frame_time_ms=40.0)


def test_two_views_of_different_pixel_sizes_say_which_was_taken_and_what_is_wrong(tmp_path):
    """A 2-D image (0.7 mm) beside a zoomed one (0.35 mm): the first is taken, as before (box and
    pixel size), and the note names both regions, both pixel sizes and that the second view's
    labels come out at the wrong scale."""
    vol = read_volume(_screen(tmp_path / "dual.dcm", [_region(LEFT, 0.07), _region(RIGHT, 0.035)]))
    assert vol.meta["us_region"] == list(LEFT) and vol.spacing[1:] == pytest.approx((0.7, 0.7))
    note = vol.meta["us_region_note"]
    assert note.startswith("2 calibrated 2-D ultrasound regions on the screen")
    assert "the first, rows 20-219, columns 10-189, taken (0.7 x 0.7 mm pixels; zero-click looks only there)" in note
    assert "rows 20-219, columns 210-389 has 0.35 x 0.35 mm pixels: what is labelled there is measured at 0.7 x 0.7 mm, wrong for it" in note


def test_two_views_of_one_pixel_size_say_zero_click_looks_only_in_the_first(tmp_path):
    """A dual view at one depth: the pixel size is right for both, but zero-click looks only in
    the first: the note says so (the second is segmented with clicks or a box)."""
    vol = read_volume(_screen(tmp_path / "dual.dcm", [_region(LEFT, 0.05), _region(RIGHT, 0.05)]))
    assert vol.meta["us_region"] == list(LEFT) and vol.spacing[1:] == pytest.approx((0.5, 0.5))
    note = vol.meta["us_region_note"]
    assert "2 calibrated 2-D ultrasound regions" in note and "(0.5 x 0.5 mm pixels; zero-click looks only there)" in note
    assert note.endswith("rows 20-219, columns 210-389 has the same pixel size, but zero-click does not look there")
    assert "wrong" not in note


def test_a_colour_flow_box_inside_the_2d_image_is_no_second_view(tmp_path):
    """A colour Doppler clip's colour-flow region (RegionDataType 2) lies inside the 2-D image
    with its pixel size: part of the one view, no note; one of another pixel size inside it is
    still said (its pixels are not the image's)."""
    inner = (60, 50, 160, 150)
    vol = read_volume(_screen(tmp_path / "colour.dcm", [_region(LEFT, 0.07), _region(inner, 0.07, data_type=2)]))
    assert vol.meta["us_region"] == list(LEFT) and "us_region_note" not in vol.meta
    zoom = read_volume(_screen(tmp_path / "zoom.dcm", [_region(LEFT, 0.07), _region(inner, 0.02)]))
    assert "rows 60-160, columns 50-150 has 0.2 x 0.2 mm pixels" in zoom.meta["us_region_note"]


def test_a_first_region_whose_box_is_ignored_says_zero_click_looks_at_the_whole_screen(tmp_path):
    """The first region's box is the placeholder 0, 0, 0, 0 (ignored: zero-click on the whole
    screen, as before); its pixel size is still the image's, and the note on the second region
    does not claim zero-click is confined to the first."""
    vol = read_volume(_screen(tmp_path / "placeholder.dcm", [_region((0, 0, 0, 0), 0.07), _region(RIGHT, 0.07)]))
    assert "us_region" not in vol.meta and vol.spacing[1:] == pytest.approx((0.7, 0.7))
    note = vol.meta["us_region_note"]
    assert "is under 16 pixels wide" in note and "zero-click looks at the whole screen" in note
    assert note.endswith("rows 20-219, columns 210-389 has the same pixel size")


def test_medseg_info_shows_the_several_regions_note(tmp_path, capsys):
    """`medseg info` shows the note in its "us region" row and `--json` as ``us_region_note``."""
    clip = str(_screen(tmp_path / "dual.dcm", [_region(LEFT, 0.07), _region(RIGHT, 0.035)]))
    assert run_cli(["info", clip]) == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "us region rows 20-219, columns 10-189: the 2-D image" in text and "2 calibrated 2-D ultrasound regions on the screen" in text
    assert "has 0.35 x 0.35 mm pixels" in text
    assert run_cli(["info", "--json", clip]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["us_region"] == list(LEFT) and "has 0.35 x 0.35 mm pixels" in d["us_region_note"]


def test_a_colour_flow_box_listed_before_its_2d_image_is_not_taken_for_it(tmp_path):
    """A colour-flow box (RegionDataType 2) listed first, inside the 2-D image of its pixel size:
    it was taken as the image (zero-click looked only in the box, and the note called the screen
    a dual view); the 2-D image is taken, and no note."""
    colour = _region((60, 50, 150, 120), 0.07, data_type=2)
    vol = read_volume(_screen(tmp_path / "cf.dcm", [colour, _region(LEFT, 0.07)]))
    assert vol.meta["us_region"] == list(LEFT) and "us_region_note" not in vol.meta
