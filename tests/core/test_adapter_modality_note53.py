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


def test_scoring_an_adapters_labels_of_its_training_case_says_so(tmp_path, capsys):
    """`evaluate --predicted` on labels the LGE adapter made (their sidecar's adapter_id) of a case
    its medseg.json names as a training volume gives the note `evaluate --adapter` gives; before,
    only a run with --adapter checked."""
    import json

    import nibabel as nib

    from medseg.io import read_volume, write_labels

    sys.path.insert(0, str(Path(__file__).parents[1] / "batch"))
    from batch_data import MAP, write_case

    data, pred = tmp_path / "data", tmp_path / "pred"
    pred.mkdir()
    for case, seed in (("subject3", 3), ("subject1", 4)):
        img, ref = write_case(data, case, seed=seed)
        labels = nib.load(str(ref)).get_fdata().astype("uint8")
        write_labels(labels.transpose(2, 1, 0)[None], read_volume(img), pred / f"{case}.nii.gz", MAP,
                     provenance={"adapter_id": "cmr-lge", "command": "segment"})
    capsys.readouterr()
    assert run_cli(["evaluate", "--pairs", str(data), "--predicted", str(pred), "--label-map", MAP, "-o", str(tmp_path / "e.json")]) == 0
    got = capsys.readouterr()
    said = " ".join((got.out + got.err).split())
    assert "note: 1 of the 2 cases are named as volumes the adapter was trained on (subject3)" in said
    assert json.loads((tmp_path / "e.json").read_text())["summary"]["adapter_trained_on"] == ["subject3"]
