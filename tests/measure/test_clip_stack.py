"""One apical view over the cycle stored as a 3-D file (CAMUS ``*_half_sequence.nii.gz``: nothing
in the NIfTI says its third axis is time) was measured as a short-axis stack: "LV 2.9 mL", its
frames summed as slices, no hint. Now the stack is flagged ``long_axis_stack`` (with a note on
the terminal) and ``medseg measure --clip`` measures it as the clip it is."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseg.cli import run_cli
from medseg.io import Volume, write_labels
from medseg.io.volume import affine_from_spacing
from medseg.measure.echo import measure_echo_clip
from medseg.measure.report import measure_phase
from medseg.phantoms import cine_sax_phantom, echo_apical_phantom

ECHO_MAP = "lv=1,myo=2,rv=3,la=4,ra=5"
PX = 0.3


@pytest.fixture(scope="module")
def clip():
    p = echo_apical_phantom("a4c", n_frames=10, seed=1)
    return p.labels[:, 0].astype(np.uint8), p.info  # (T, Y, X)


@pytest.fixture(scope="module")
def clip_file(clip, tmp_path_factory):
    lab, _ = clip
    like = Volume(np.zeros((1, *lab.shape), np.float32), affine_from_spacing((1.0, PX, PX)), modality="US", meta={"format": "nifti"})
    out, _ = write_labels(lab, like, tmp_path_factory.mktemp("clip") / "a4c_half_sequence.nii.gz", ECHO_MAP)
    return out


def _codes(report):
    return [f["code"] for f in report["flags"]]


def test_a_clip_stored_as_slices_is_flagged_and_a_short_axis_stack_is_not(clip):
    lab, _ = clip
    rep = measure_phase(lab, affine_from_spacing((1.0, PX, PX)), ECHO_MAP)
    flag = next(f for f in rep["flags"] if f["code"] == "long_axis_stack")
    assert flag["n_slices"] == 10 and "--clip" in flag["message"] and "open (not around the cavity) on 10 of them" in flag["message"]
    no_myo = np.where(lab == 2, 0, lab)  # without myocardium, the left atrium beside the LV tells
    assert "left atrium beside it on 10" in next(f["message"] for f in measure_phase(no_myo, affine_from_spacing((1.0, PX, PX)), ECHO_MAP)["flags"]
                                                  if f["code"] == "long_axis_stack")
    sax = cine_sax_phantom(n_frames=2, n_slices=8, shape=(96, 96), seed=2)
    assert "long_axis_stack" not in _codes(measure_phase(sax.labels[0], sax.image.affine, "lv=1,myo=2,rv=3"))
    # the LV on every slice of a short-axis stack cut to the LV: its myocardium closes round the cavity
    lv_rows = [z for z in range(sax.labels.shape[1]) if (sax.labels[0, z] == 1).any()]
    assert "long_axis_stack" not in _codes(measure_phase(sax.labels[0, lv_rows], sax.image.affine, "lv=1,myo=2,rv=3"))


def test_measure_says_so_and_clip_measures_the_frames(clip, clip_file, tmp_path, capsys):
    lab, info = clip
    assert run_cli(["measure", str(clip_file), "--label-map", ECHO_MAP, "-o", str(tmp_path / "stack.json")]) == 0
    assert "long_axis_stack" in _codes(json.loads((tmp_path / "stack.json").read_text()))
    assert "measure with `medseg measure --clip`" in capsys.readouterr().err.replace("\n", " ")

    assert run_cli(["measure", str(clip_file), "--clip", "--label-map", ECHO_MAP, "-o", str(tmp_path / "clip.json")]) == 0
    rep = json.loads((tmp_path / "clip.json").read_text())
    want = measure_echo_clip(lab, label_map=ECHO_MAP, spacing_mm=(PX, PX))
    assert rep["method"] == "single_plane_disks_clip" == want["method"]
    assert (rep["ed_frame"], rep["es_frame"]) == (info["ed_frame"], info["es_frame"]) == (want["ed_frame"], want["es_frame"])
    assert rep["lv"]["ef_pct"] == pytest.approx(want["lv"]["ef_pct"]) and rep["lv"]["edv_ml"] == pytest.approx(want["lv"]["edv_ml"])
    assert "long_axis_stack" not in _codes(rep)


def test_clip_refuses_what_is_no_clip(clip_file, tmp_path, capsys):
    assert run_cli(["measure", "--ed", str(clip_file), "--es", str(clip_file), "--clip", "-o", str(tmp_path / "r.json")]) != 0
    assert "--clip reads LABELS" in capsys.readouterr().err
    sax = cine_sax_phantom(n_frames=3, n_slices=4, shape=(64, 64), seed=2)
    out, _ = write_labels(sax.labels.astype(np.uint8), sax.image, tmp_path / "cine.nii.gz", "lv=1,myo=2,rv=3")
    assert run_cli(["measure", str(out), "--clip", "-o", str(tmp_path / "r2.json")]) != 0
    err = capsys.readouterr().err
    assert "is already a cine (3 frames of 4 slices)" in err and "\n" not in err.strip()
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "r2.json").exists()
