"""Sweep of today's additions as a user breaks them: one series exported as several enhanced
multi-frame files (a part of the stack each) became one half-heart case per file in
`medseg batch`; a logged progress line printed a plain-text column's format string
("{task.description}") instead of its text."""

from __future__ import annotations

import sys
from pathlib import Path

import pydicom
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

import medseg.cli._app as app

sys.path.insert(0, str(Path(__file__).parent))
from test_enhanced_dicom_walk import NX, NY, T, Z, _write_enhanced  # noqa: E402  (its enhanced MR cine)


def test_one_series_in_several_enhanced_files_stays_one_case(tmp_path):
    """An enhanced cine of 4 slices saved as two files of 2 slices each (one SeriesInstanceUID):
    each file has frames at two positions, and `discover_cases` made each file a case (half a
    stack each, measured as a whole heart); the folder reads as the whole (T, Z, Y, X) cine."""
    from medseg.batch import discover_cases
    from medseg.io import read_volume

    src, folder = _write_enhanced(tmp_path / "all.dcm"), tmp_path / "in" / "cine"
    folder.mkdir(parents=True)
    whole = pydicom.dcmread(src)
    for i, (z0, z1) in enumerate(((0, 2), (2, Z))):
        part = pydicom.dcmread(src)
        part.SOPInstanceUID = part.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        part.PerFrameFunctionalGroupsSequence = Sequence(list(whole.PerFrameFunctionalGroupsSequence[z0 * T:z1 * T]))
        part.NumberOfFrames = (z1 - z0) * T
        part.PixelData = whole.PixelData[z0 * T * NY * NX * 2:z1 * T * NY * NX * 2]
        part.save_as(folder / f"part{i}.dcm", enforce_file_format=True)
    cases = discover_cases(tmp_path / "in")
    assert [(c.case, c.error) for c in cases] == [("cine", None)]
    assert read_volume(cases[0].input).shape == (T, Z, NY, NX)


def test_a_logged_line_renders_a_plain_text_column_as_rich_does(monkeypatch, capsys):
    now = [0.0]
    monkeypatch.setattr(app, "_clock", lambda: now[0])
    bar = app._logged_progress_class()("[bold]{task.description}[/]", console=app.console, disable=True, log_lines=True)
    with bar:
        task = bar.add_task("packing", total=None)  # no total: no time left, no crash
        now[0] += 61.0
        bar.advance(task)
    assert capsys.readouterr().err.splitlines() == ["  ... packing (0:01:01 elapsed)"]
