"""One apical view over time stored as a 3-D file (CAMUS ``*_half_sequence``: its third axis is
time) read as a short-axis stack: `segment` flagged ``lv_mass_implausible`` ("LV mass 6 g") and said
nothing about the axis. Now the review keeps measure's ``long_axis_stack`` note (informational)
and judges no short-axis LV mass of such a stack; `segment` prints the note, as `measure` does."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from medseg.review import measurement_flags, review_segmentation

#: a 3-D file's (X, Y, Z) axes as (Z, Y, X) slices: 0.7 mm pixels, 1 mm "slices" (frames)
AFFINE = np.array([[0, 0, 0.7, 0], [0, 0.7, 0, 0], [1.0, 0, 0, 0], [0, 0, 0, 1]], float)


@pytest.fixture(scope="module")
def half_sequence():
    from medseg.phantoms import echo_apical_phantom

    ph = echo_apical_phantom("a4c", n_frames=16, shape=(224, 224), spacing=0.7, seed=3)
    return ph, ph.labels[0:7, 0]  # frames 0-6 of one view, as 7 slices


def test_the_review_of_a_long_axis_stack_notes_it_and_judges_no_mass(half_sequence):
    ph, stack = half_sequence
    from medseg.measure import measure_phase

    assert measure_phase(stack, AFFINE, ph.label_map)["lv_mass_g"] < 20  # what was flagged "LV mass 6 g is outside 20-400 g"
    got = review_segmentation(stack, AFFINE, ph.label_map, asked=["lv", "myo", "la"])
    codes = [f["code"] for f in got["flags"]]
    assert "lv_mass_implausible" not in codes and codes.count("long_axis_stack") == 1
    note = next(f for f in got["flags"] if f["code"] == "long_axis_stack")
    assert note["level"] == "measurement" and "measure with `medseg measure --clip`" in note["message"]
    assert got["needs_review"] is False  # the note is information, not a review flag


@pytest.mark.parametrize("where", ["report", "phase"])
def test_measurement_flags_leave_out_the_mass_of_a_long_axis_stack(where):
    note = {"code": "long_axis_stack", "severity": "warning", "structure": "lv", "message": "these look like one long-axis view"}
    plain = {"lv_mass_g": 6.0, "flags": []}
    assert [f["code"] for f in measurement_flags(plain)] == ["lv_mass_implausible"]
    stacked = {"lv_mass_g": 6.0, "flags": [note]} if where == "report" else {"lv_mass_g": 6.0, "flags": [], "phases": {"ed": {"flags": [note]}}}
    assert [f["code"] for f in measurement_flags(stacked)] == ["long_axis_stack"]


def test_segment_prints_the_note_and_keeps_it_in_the_sidecar(tmp_path, capsys):
    """`segment <half-sequence image> --auto --modality US`: the note on the console and in the review flags, no mass flag."""
    from medseg.cli import run_cli
    from medseg.phantoms import echo_apical_phantom

    ph = echo_apical_phantom("a4c", n_frames=8, shape=(160, 160), spacing=0.7, seed=3)
    img = np.clip(ph.image.array[0:6, 0], 0, 255).astype(np.uint8)  # (6, Y, X): frames along the file's third axis
    nib.save(nib.Nifti1Image(np.ascontiguousarray(img.transpose(2, 1, 0)), np.diag([0.7, 0.7, 1.0, 1.0])), str(tmp_path / "half.nii.gz"))
    seg = tmp_path / "seg.nii.gz"
    capsys.readouterr()
    assert run_cli(["segment", str(tmp_path / "half.nii.gz"), "--auto", "--modality", "US", "-o", str(seg)]) == 0
    said = capsys.readouterr()
    out = " ".join((said.out + said.err).split())
    assert "note: the LV is on all 6 slices with about the same area" in out and "lv_mass_implausible" not in out
    flags = json.loads(seg.with_name("seg.json").read_text())["provenance"]["review"]["flags"]
    assert "long_axis_stack" in [f["code"] for f in flags] and "lv_mass_implausible" not in [f["code"] for f in flags]
