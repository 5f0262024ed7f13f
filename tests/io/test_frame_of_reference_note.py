"""A DICOM series whose images each carry another FrameOfReferenceUID (Sunnybrook's anonymiser):
medseg stacks them by their positions and a DICOM SEG written for them references the first
image's, without a word before. Now said at read time (``meta``), by ``medseg info`` and in a
label sidecar's ``image_notes``; a series of one frame of reference gets no note."""

from __future__ import annotations

import json

import numpy as np
import pydicom
from io_synth import write_cine_series
from pydicom.uid import generate_uid

from medseg.cli import run_cli
from medseg.io import read_volume, write_labels

NOTE = "FrameOfReferenceUIDs (an anonymiser's renaming?): stacked by their positions as one frame of reference"


def _own_frames_of_reference(folder):
    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(f)
        ds.FrameOfReferenceUID = generate_uid()
        ds.save_as(f, enforce_file_format=True)


def test_images_in_several_frames_of_reference_are_said(tmp_path, capsys):
    s = write_cine_series(tmp_path / "cine", n_slices=3, n_phases=2)
    assert "frame_of_reference_note" not in read_volume(s.folder).meta
    _own_frames_of_reference(s.folder)
    vol = read_volume(s.folder)
    assert vol.meta["frame_of_reference_note"].startswith(f"the 6 images carry 6 {NOTE}")

    assert run_cli(["info", str(s.folder), "--json"]) == 0
    assert NOTE in json.loads(capsys.readouterr().out)["frame_of_reference_note"]

    lab = np.zeros(vol.shape, np.uint8)
    lab[:, 0:2, 3:8, 2:6] = 1
    written = write_labels(lab, vol, tmp_path / "seg.dcm", "lv=1")
    seg = pydicom.dcmread(next(p for p in written if p.suffix == ".dcm"))
    first = pydicom.dcmread(vol.meta["files"][0][0], stop_before_pixels=True)
    assert seg.FrameOfReferenceUID == first.FrameOfReferenceUID
    side = json.loads(next(p for p in written if p.suffix == ".json").read_text())
    assert NOTE in side["provenance"]["image_notes"]["frame_of_reference_note"]
