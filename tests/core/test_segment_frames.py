"""`medseg segment CINE --auto --frames 0,11 | ed,es` and ``segment_volume(frames=...)``: only
those frames are segmented (the others empty, on the image's full grid), ED and ES are found by
a quick zero-click LV pass, the frames are recorded so ``--replay`` gives the same labels, and
``medseg info`` / ``medseg measure`` tell the segmented frames from the rest."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli
from medseg.errors import PromptError


@pytest.fixture(scope="module")
def cine():
    """A phantom cine whose ED (frame 2) and ES (frame 5) are neither its first nor its last frame."""
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=8, n_slices=5, shape=(96, 96), spacing=(10.0, 1.8, 1.8), seed=4)
    assert (ph.info["ed_frame"], ph.info["es_frame"]) == (2, 5)
    return ph


@pytest.fixture(scope="module")
def cine_file(cine, tmp_path_factory):
    from medseg.io.geometry import medseg_to_nifti

    d = tmp_path_factory.mktemp("frames")
    vol = cine.image
    nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 4), vol.affine), str(d / "cine.nii.gz"))
    return d / "cine.nii.gz"


def _labels(path) -> np.ndarray:
    from medseg.io import read_label_volume

    return read_label_volume(path).array


def test_parse_frames():
    from medseg.frame_pick import check_frames, parse_frames

    assert parse_frames("0,11") == (0, 11)
    assert parse_frames(" ED, es ,2-4,3") == ("ed", "es", 2, 3, 4)
    assert parse_frames([5, "es", np.int64(1)]) == (5, "es", 1)
    for bad, words in (("3,x", "'x' is not a frame number"), ("5-3", "runs backwards: write 3-5"), ("1,,2", "an empty entry"), ([-1], "count from 0")):
        with pytest.raises(PromptError, match=words):
            parse_frames(bad)
    with pytest.raises(PromptError, match=r"frames 8, 9 outside the image: it has 8 frames, numbered from 0 \(0-7\)"):
        check_frames((0, 8, 9), 8)


def test_segment_volume_frames_only_those(cine, model):
    from medseg.segment import segment_volume

    res = segment_volume(cine.image, model, auto=True, frames=[1, 6], confidence=False)
    assert res.labels.shape == cine.image.shape
    assert [t for t in range(8) if res.labels[t].any()] == [1, 6]
    assert res.provenance["settings"]["frames"] == [1, 6] and res.provenance["settings"]["frames_asked"] == "1,6"
    assert "frame_pick" not in res.provenance
    from medseg.prompt_file import prompts_from_labels

    with pytest.raises(PromptError, match="add --auto"):  # prompts name their own frames
        segment_volume(cine.image, model, prompts_from_labels(cine.labels, cine.label_map, key_slice=True), frames=[1])
    with pytest.raises(PromptError, match="frame 8 outside the image"):
        segment_volume(cine.image, model, auto=True, frames="0,8")


@pytest.mark.slow  # ~11 s on the shared 2-core CPU
def test_segment_cli_ed_es_replay_info_measure(cine, cine_file, tmp_path, capsys):
    """ED and ES found by the quick pass are the phantom's; only they are segmented; the replay of
    the sidecar gives the same labels; info and measure say which frames hold labels, and measure's
    ED, ES and EF come from those frames (an empty frame is not an LV of 0 mL)."""
    out = tmp_path / "seg.nii.gz"
    capsys.readouterr()
    assert run_cli(["segment", str(cine_file), "--auto", "--frames", "ed,es", "-o", str(out)]) == 0
    got = capsys.readouterr()
    said = " ".join((got.out + got.err).split())
    assert "ED frame 2, ES frame 5 by zero-click LV area" in said and "segmented 2, 5 of 8" in said
    side = json.loads((tmp_path / "seg.json").read_text())["provenance"]
    assert side["frame_pick"]["ed"] == 2 and side["frame_pick"]["es"] == 5
    assert side["settings"]["frames"] == [2, 5] and side["settings"]["frames_asked"] == "ed,es"
    labels = _labels(out)
    assert labels.shape == cine.image.shape and [t for t in range(8) if labels[t].any()] == [2, 5]

    again = tmp_path / "again.nii.gz"
    assert run_cli(["segment", str(cine_file), "-o", str(again), "--replay", str(tmp_path / "seg.json")]) == 0
    assert np.array_equal(_labels(again), labels)

    capsys.readouterr()
    assert run_cli(["info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frames_segmented"].startswith("2, 5 (--frames ed,es")

    assert run_cli(["measure", str(out), "-o", str(tmp_path / "REPORT.json")]) == 0
    rep = json.loads((tmp_path / "REPORT.json").read_text())
    assert (rep["ed_frame"], rep["es_frame"]) == (2, 5)
    assert [t for t, v in enumerate(rep["volume_curve_ml"]["lv"]) if v is not None] == [2, 5]
    truth = cine.info["ef_pct"]
    assert abs(rep["lv"]["ef_pct"] - truth) < 10, (rep["lv"]["ef_pct"], truth)
    note = [f for f in rep["flags"] if f["code"] == "labelled_frames_only"]
    assert len(note) == 1 and note[0]["frames"] == [2, 5] and "not read as 0 mL" in note[0]["message"]


@pytest.mark.parametrize("args, words", [
    (["--auto", "--frames", "0,8"], "--frames: frame 8 outside the image: it has 8 frames, numbered from 0 (0-7)"),
    (["--frames", "1"], "--frames picks the frames of the zero-click pass: add --auto"),
    (["--auto", "--frames", "e d"], "'e d' is not a frame number"),
])
def test_segment_cli_frames_refused(cine_file, tmp_path, capsys, args, words):
    """A bad --frames: one line, exit 1, nothing written (before the model loads)."""
    out = tmp_path / "x.nii.gz"
    capsys.readouterr()
    assert run_cli(["segment", str(cine_file), "-o", str(out), *args]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0] and "Traceback" not in lines[0], lines
    assert not list(tmp_path.iterdir())


def test_measure_cine_partly_labelled(cine):
    """Labels on some frames only (the phantom's truth on 1, 3, 5): ED and ES among them, the
    empty frames None in the curve, one ``labelled_frames_only`` note; a cine labelled on every
    frame has none."""
    from medseg.measure.report import measure_cine

    part = np.zeros_like(cine.labels)
    part[[1, 3, 5]] = cine.labels[[1, 3, 5]]
    rep = measure_cine(part, cine.image.affine, cine.label_map)
    assert (rep["ed_frame"], rep["es_frame"]) == (1, 5)  # 105 and 52 mL; frame 2 (114 mL) is not labelled
    assert [v is not None for v in rep["volume_curve_ml"]["lv"]] == [t in (1, 3, 5) for t in range(8)]
    assert [f["frames"] for f in rep["flags"] if f["code"] == "labelled_frames_only"] == [[1, 3, 5]]
    full = measure_cine(cine.labels, cine.image.affine, cine.label_map)
    assert (full["ed_frame"], full["es_frame"]) == (2, 5)
    assert not [f for f in full["flags"] if f["code"] == "labelled_frames_only"]
