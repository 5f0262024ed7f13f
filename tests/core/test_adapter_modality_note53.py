"""`segment --adapter` says when the adapter was trained on another modality than the image's.

A CT review ran the shipped LGE adapter on a CT without a word (LA 316 mL, myocardium confidence
0.57); its card says "for LGE only" and its medseg.json records `modality: LGE-MR`."""

from __future__ import annotations

import sys
from pathlib import Path

from medseg.adapters import modality_note
from medseg.cli import run_cli


def test_the_note_names_the_adapters_modality_and_the_images():
    said = modality_note("cmr-lge", "CT")
    assert said.startswith("the adapter cmr-lge was trained on LGE-MR images and this image is CT")
    assert modality_note("cmr-lge", "MR") is None and modality_note("cmr-lge", "OT") is None and modality_note("no-such", "CT") is None


def test_segment_prints_it(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).parents[1] / "batch"))
    from batch_data import write_case

    img, _ = write_case(tmp_path, "c1", seed=3)
    capsys.readouterr()
    assert run_cli(["segment", str(img), "--auto", "--modality", "CT", "--adapter", "cmr-lge", "-o", str(tmp_path / "o.nii.gz")]) == 1  # an MR phantom windowed as CT: nothing found, said after the note
    got = capsys.readouterr()
    assert "note: the adapter cmr-lge was trained on LGE-MR images and this image is CT" in " ".join((got.out + got.err).split())
