"""A full-screen echo DICOM exported without SequenceOfUltrasoundRegions: zero-click looked at the
whole screen without a word (LV in 11 pieces, LA beside the ECG). Now an image note
(``us_region_note``, :func:`medseg.io.us_region.screen_note`) says so when the screen shows a
trace across it apart from the image (an ECG); the 2-D image alone, a noise image, a screen with
its region and a NIfTI of the same pixels get none. `segment` prints it and keeps it in the sidecar."""

from __future__ import annotations

import json

import numpy as np
import pytest
from io_synth import us_region, write_us_screen

from medseg.cli import run_cli
from medseg.io import read_volume
from medseg.io.us_region import screen_note

ROWS, COLS, TOP, LEFT, SIDE = 200, 240, 10, 40, 160  # the screen, the sector's place and size on it


@pytest.fixture(scope="module")
def sector() -> np.ndarray:
    """(3, SIDE, SIDE) uint8: an apical 4-chamber phantom (0.7 mm pixels)."""
    from medseg.phantoms import echo_apical_phantom

    ph = echo_apical_phantom(view="a4c", n_frames=3, shape=(SIDE, SIDE), spacing=0.7, seed=3)
    return np.clip(ph.image.array[:, 0], 0, 255).astype(np.uint8)


def _screen(sector: np.ndarray, ecg: bool = True) -> np.ndarray:
    out = np.zeros((3, ROWS, COLS), np.uint8)
    out[:, TOP:TOP + SIDE, LEFT:LEFT + SIDE] = sector
    if ecg:
        xs = np.arange(10, COLS - 10)
        out[:, (185 + 6 * np.sin(xs / 9.0)).astype(int), xs] = 150  # a wavy trace under the sector
    return out


def _note(path) -> str | None:
    vol = read_volume(path)
    return screen_note(vol.meta, vol.array, vol.modality)


def test_a_screen_with_an_ecg_and_no_region_gets_the_note(tmp_path, sector):
    note = _note(write_us_screen(tmp_path / "n.dcm", _screen(sector), None))
    assert note is not None and note.startswith("no ultrasound region (SequenceOfUltrasoundRegions) in this echo DICOM")
    assert f"columns 10-229 of the {ROWS}x{COLS} image at rows 179-190" in note and "crop it to the sector, or give prompts" in note


def test_no_note_without_the_evidence(tmp_path, sector):
    assert _note(write_us_screen(tmp_path / "r.dcm", _screen(sector), [us_region((TOP, LEFT, TOP + SIDE - 1, LEFT + SIDE - 1))])) is None
    assert _note(write_us_screen(tmp_path / "s.dcm", _screen(sector, ecg=False), None)) is None  # the sector alone on the screen
    assert _note(write_us_screen(tmp_path / "t.dcm", sector, None)) is None  # the 2-D image alone, as a US DICOM
    noise = np.random.default_rng(0).integers(0, 200, (3, 120, 160), dtype=np.uint8)
    assert _note(write_us_screen(tmp_path / "u.dcm", noise, None)) is None
    import nibabel as nib

    nib.save(nib.Nifti1Image(_screen(sector).transpose(2, 1, 0), np.eye(4)), str(tmp_path / "s.nii.gz"))  # not a DICOM
    vol = read_volume(tmp_path / "s.nii.gz", modality="US")
    assert screen_note(vol.meta, vol.array, vol.modality) is None


def test_the_repo_echo_phantom_and_a_camus_like_png_get_no_note(tmp_path):
    from PIL import Image

    from medseg.phantoms import echo_apical_phantom

    ph = echo_apical_phantom(view="a4c", n_frames=4, seed=1, spacing=0.7)
    assert screen_note(ph.image.meta, ph.image.array, "US") is None
    Image.fromarray(np.clip(ph.image.array[0, 0], 0, 255).astype(np.uint8)).save(tmp_path / "p_4CH_ED.png")
    vol = read_volume(tmp_path / "p_4CH_ED.png", modality="US")
    assert screen_note(vol.meta, vol.array, vol.modality) is None


def test_segment_says_it_and_keeps_it_in_the_sidecar(tmp_path, sector, capsys):
    clip = write_us_screen(tmp_path / "a4c.dcm", _screen(sector), None)
    seg = tmp_path / "seg.nii.gz"
    capsys.readouterr()
    assert run_cli(["segment", str(clip), "--auto", "--frames", "0", "--pixel-spacing", "0.7", "-o", str(seg)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "note: " in err and "it looks like the scanner's whole screen" in err
    notes = json.loads(seg.with_name("seg.json").read_text())["provenance"]["image_notes"]
    assert "it looks like the scanner's whole screen" in notes["us_region_note"]


def test_an_api_replay_keeps_the_note_as_the_api_segment_did(tmp_path, sector, model):
    """A review found `segment_volume`'s sidecar with the note and `replay_sidecar`'s of the same
    image without it (the CLI replay had it)."""
    from medseg.io import write_labels
    from medseg.io.volume import with_pixel_spacing
    from medseg.replay_sidecar import read_recorded_session, replay_sidecar
    from medseg.segment import segment_volume

    clip = write_us_screen(tmp_path / "a4c.dcm", _screen(sector), None)
    vol = with_pixel_spacing(read_volume(clip), (0.7, 0.7), str(clip))
    res = segment_volume(vol, model, auto=True, frames=[0])
    write_labels(res.labels, vol, tmp_path / "seg.nii.gz", res.label_map, provenance=res.provenance)
    fresh = with_pixel_spacing(read_volume(clip), (0.7, 0.7), str(clip))
    assert "us_region_note" not in fresh.meta  # a fresh read has no note until segmenting notes it
    again = replay_sidecar(fresh, model, read_recorded_session(tmp_path / "seg.json"))
    write_labels(again.labels, fresh, tmp_path / "again.nii.gz", again.label_map, provenance=again.provenance)
    for name in ("seg.json", "again.json"):
        notes = json.loads((tmp_path / name).read_text())["provenance"]["image_notes"]
        assert "it looks like the scanner's whole screen" in notes["us_region_note"], name
