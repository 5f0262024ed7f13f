"""`medseg segment --replay` of a `--auto --frames ed,es` run: the replay's sidecar carries the
recorded ``frame_pick`` (how ED and ES were found) and the console says "ED frame .., ES frame ..",
as the original run's; replayed onto another image (--other-image) the pick is not carried but noted."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli


def _said(capsys) -> str:
    got = capsys.readouterr()
    return " ".join((got.out + got.err).split())


def _prov(path: Path) -> dict:
    return json.loads(path.read_text())["provenance"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A small phantom cine (.nii.gz and the same voxels as .nii) and its `--auto --frames ed,es` run."""
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    d = tmp_path_factory.mktemp("pick52")
    vol = cine_sax_phantom(n_frames=6, n_slices=4, shape=(64, 64), spacing=(10.0, 1.8, 1.8), seed=4).image
    img = nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 4), vol.affine)
    nib.save(img, str(d / "cine.nii.gz"))
    nib.save(img, str(d / "cine.nii"))  # the same image, another file (another sha256)
    assert run_cli(["segment", str(d / "cine.nii.gz"), "--auto", "--frames", "ed,es", "-o", str(d / "seg.nii.gz")]) == 0
    return d


def test_replay_carries_and_says_the_recorded_frame_pick(recorded, tmp_path, capsys):
    from medseg.cli.segment_cmd import frames_line
    from medseg.io import read_label_volume

    pick = _prov(recorded / "seg.json")["frame_pick"]
    out = tmp_path / "again.nii.gz"
    capsys.readouterr()
    assert run_cli(["segment", str(recorded / "cine.nii.gz"), "-o", str(out), "--replay", str(recorded / "seg.json")]) == 0
    said = _said(capsys)
    assert np.array_equal(read_label_volume(out).array, read_label_volume(recorded / "seg.nii.gz").array)
    assert _prov(tmp_path / "again.json")["frame_pick"] == pick
    assert f"ED frame {pick['ed']}, ES frame {pick['es']} by zero-click LV area" in said
    assert frames_line(_prov(recorded / "seg.json"), 6) in said  # the original run's line, word for word


def test_replay_onto_another_image_notes_the_pick_and_does_not_carry_it(recorded, tmp_path, capsys):
    pick = _prov(recorded / "seg.json")["frame_pick"]
    out = tmp_path / "other.nii.gz"
    capsys.readouterr()
    assert run_cli(["segment", str(recorded / "cine.nii"), "-o", str(out), "--replay", str(recorded / "seg.json"), "--other-image"]) == 0
    said = _said(capsys)
    assert "frame_pick" not in _prov(tmp_path / "other.json")
    assert f"ED frame {pick['ed']} and ES frame {pick['es']} were found on the recorded image" in said
    assert "by zero-click LV area" not in said


@pytest.mark.parametrize("damage", [{"ed": "2"}, {"slices": []}, {"seconds": None}, {"es": 99}, None])
def test_a_hand_edited_frame_pick_is_not_carried(recorded, damage):
    from medseg.replay_sidecar import read_recorded_session, recorded_frame_pick

    rec = read_recorded_session(recorded / "seg.json")
    assert recorded_frame_pick(rec) == rec.provenance["frame_pick"]
    if damage is None:
        rec.provenance.pop("frame_pick")
    else:
        rec.provenance["frame_pick"] = {**rec.provenance["frame_pick"], **damage}
    assert recorded_frame_pick(rec) is None
