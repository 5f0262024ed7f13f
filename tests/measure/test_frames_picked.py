"""``segment --frames ed,es,0-4`` on a whole cine: ED and ES are found on every frame, then ED, ES
and frames 0-4 are segmented. ``measure`` judged those labelled frames a clip ending at ED and ES
(``phase_at_clip_end``: "the true end-systole may lie outside them") although ED and ES had been
found on all frames; the labels' sidecar's ``frame_pick`` now says so."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from measure_phantoms import LVPhantom, centred_affine, rasterise

from medseg.measure.report import measure_cine

SHAPE = (9, 64, 64)
AFF = centred_affine((10.0, 1.5, 1.5), SHAPE, shift_mm=(0.3, 0.2, -3.3))
N = 12  # ED at frame 0, ES at frame 6
KEPT = [0, 1, 2, 3, 4, 6]  # --frames ed,es,0-4


@pytest.fixture(scope="module")
def part():
    cycle = np.stack([rasterise(LVPhantom(r_cav=20.0 + 4.0 * np.cos(2 * np.pi * t / N)), AFF, SHAPE) for t in range(N)])
    out = np.zeros_like(cycle)
    out[KEPT] = cycle[KEPT]
    return out


def _clip_ends(rep: dict) -> set[str]:
    return {f["phase"] for f in rep["flags"] if f["code"] == "phase_at_clip_end" and f["structure"] == "lv"}


def test_phases_picked_on_every_frame_are_not_clip_ends(part):
    assert _clip_ends(measure_cine(part, AFF, "lv=1,myo=2,rv=3")) == {"ed", "es"}  # what measure said before
    rep = measure_cine(part, AFF, "lv=1,myo=2,rv=3", picked_phases={"ed": 0, "es": 6, "slices": [3, 4, 5]})
    assert (rep["ed_frame"], rep["es_frame"]) == (0, 6) and not _clip_ends(rep)
    note = [f for f in rep["flags"] if f["code"] == "labelled_frames_only"]
    assert len(note) == 1 and "ED (frame 0), ES (frame 6) found on all 12 frames" in note[0]["message"]
    # a phase the labels put elsewhere than the pick keeps its warning
    assert _clip_ends(measure_cine(part, AFF, "lv=1,myo=2,rv=3", picked_phases={"ed": 0, "es": 7})) == {"es"}


def test_measure_cli_reads_frame_pick_unless_the_labels_were_edited(part, tmp_path):
    from medseg.batch.kept import labels_sha256
    from medseg.cli import run_cli
    from medseg.io import Volume, write_labels

    out = tmp_path / "seg.nii.gz"  # as segment writes it: the pick and the digest of the labels written
    write_labels(part, Volume(np.zeros(part.shape, np.float32), AFF), out, "lv=1,myo=2,rv=3",
                 provenance={"frame_pick": {"ed": 0, "es": 6}, "labels_sha256": labels_sha256(part)})
    assert run_cli(["measure", str(out), "-o", str(tmp_path / "r.json")]) == 0
    assert not _clip_ends(json.loads((tmp_path / "r.json").read_text()))

    edited = nib.load(out)  # one voxel changed by hand: the sidecar's pick no longer speaks for these labels
    arr = np.asarray(edited.dataobj).copy()
    arr[tuple(np.argwhere(arr == 1)[0])] = 2
    nib.save(nib.Nifti1Image(arr, edited.affine, edited.header), out)
    assert run_cli(["measure", str(out), "-o", str(tmp_path / "r2.json")]) == 0
    assert _clip_ends(json.loads((tmp_path / "r2.json").read_text())) == {"ed", "es"}
