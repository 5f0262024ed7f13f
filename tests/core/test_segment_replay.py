"""`medseg segment IMAGE -o OUT --replay SIDECAR`: a segmentation replayed from the provenance
sidecar of its labels gives the labels the original run wrote (segment with a label map,
batch zero-click with --min-confidence, a session with brush edits as napari records it, a DICOM
SEG of a cine); bad sidecars, another image, prompt options: one line, nothing written."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli
from medseg.io import read_label_volume

ACDC_MAP = "lv=3,myo=2,rv=1"


@pytest.fixture(scope="module")
def study(tmp_path_factory, phantom):
    """One phantom frame as NIfTI, its reference labels in ACDC's values (lv=3, myo=2, rv=1,
    no sidecar), and a key-slice run with that label map (ks.nii.gz + ks.json)."""
    from medseg.io.geometry import medseg_to_nifti

    d = tmp_path_factory.mktemp("replay")
    vol = phantom.image.with_array(phantom.image.array[:1], frame_times_s=None)
    nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(d / "img.nii.gz"))
    lab = phantom.labels[0]
    acdc = np.select([lab == phantom.label_map["lv"], lab == phantom.label_map["myo"], lab == phantom.label_map["rv"]], [3, 2, 1], 0)
    nib.save(nib.Nifti1Image(medseg_to_nifti(acdc[None].astype(np.uint8), 3), vol.affine), str(d / "gt.nii.gz"))
    assert run_cli(["segment", str(d / "img.nii.gz"), "-o", str(d / "ks.nii.gz"), "--prompts-from", str(d / "gt.nii.gz"),
                    "--label-map", ACDC_MAP, "--key-slice"]) == 0
    return d


def _labels(path) -> np.ndarray:
    return read_label_volume(path).array


def _said(capsys) -> str:
    """What the command printed (the console's lines, rewrapped as one)."""
    got = capsys.readouterr()
    return " ".join((got.out + got.err).split())


def _prov(path) -> dict:
    return json.loads(Path(path).read_text())["provenance"]


def test_replay_gives_the_labels_of_a_key_slice_run_in_its_label_map(study, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "r.nii.gz"
    assert run_cli(["segment", str(study / "img.nii.gz"), "-o", str(out), "--replay", str(study / "ks.json")]) == 0
    said = _said(capsys)
    assert "replaying 6 actions of a segment session from" in said and "note:" not in said
    original = _labels(study / "ks.nii.gz")
    assert np.array_equal(_labels(out), original) and set(np.unique(original)) == {0, 1, 2, 3}
    assert json.loads((tmp_path / "r.json").read_text())["label_map"] == {"lv": 3, "myo": 2, "rv": 1}
    prov, was = _prov(tmp_path / "r.json"), _prov(study / "ks.json")
    assert prov["actions"] == was["actions"] and prov["settings"] == was["settings"]
    assert prov["replayed_from"] == str((study / "ks.json").resolve()) and prov["input_sha256"] == was["input_sha256"]
    # the replay's own label file stands for its sidecar, and replays the same again
    assert run_cli(["segment", str(study / "img.nii.gz"), "-o", str(tmp_path / "rr.nii.gz"), "--replay", str(out)]) == 0
    assert np.array_equal(_labels(tmp_path / "rr.nii.gz"), original)


def test_recorded_model_version_and_overrides_are_noted(study, tmp_path, capsys):
    doc = json.loads((study / "ks.json").read_text())
    doc["provenance"].update(medseg_version="0.0.1", model_id="my_model")  # same weights (sha256), another name and version
    (tmp_path / "side.json").write_text(json.dumps(doc))
    args = ["segment", str(study / "img.nii.gz"), "-o", str(tmp_path / "r.nii.gz"), "--replay", str(tmp_path / "side.json")]
    capsys.readouterr()
    assert run_cli(args) == 1  # not found by its name: say how to give it
    assert "model 'my_model'" in _said(capsys) and not (tmp_path / "r.nii.gz").exists()
    assert run_cli([*args, "--model", "default"]) == 0
    said = _said(capsys)
    assert "--model default given: it replaces the recorded model my_model" in said
    assert "recorded with medseg 0.0.1, replayed with" in said and "recorded with model" not in said  # the weights are the same
    assert np.array_equal(_labels(tmp_path / "r.nii.gz"), _labels(study / "ks.nii.gz"))


def test_replay_of_batch_zero_click_hands_over_what_the_run_handed_over(study, model, tmp_path, capsys):
    """A batch --auto --min-confidence sidecar: the clear of the structure handed over is redone
    by the confidence cut, not replayed, so the replay's sidecar hands it over too."""
    from medseg.io import read_volume
    from medseg.segment import segment_volume

    conf = segment_volume(read_volume(study / "img.nii.gz"), model, auto=True).confidence["volume"]
    low, second = sorted(conf.values())[:2]
    assert second - low > 1e-3, conf
    cut = round((low + second) / 2, 4)
    (tmp_path / "in").mkdir()
    shutil.copy(study / "img.nii.gz", tmp_path / "in" / "p1.nii.gz")
    assert run_cli(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--auto", "--min-confidence", str(cut)]) == 0
    side = tmp_path / "out" / "p1.json"
    handed = _prov(side)["handed_over"]
    assert handed == [min(conf, key=conf.get)] and _prov(side)["actions"][-1]["op"] == "clear"
    out = tmp_path / "r.nii.gz"
    capsys.readouterr()
    assert run_cli(["segment", str(study / "img.nii.gz"), "-o", str(out), "--replay", str(side)]) == 0
    assert f"--min-confidence {cut:g}" in _said(capsys)
    assert np.array_equal(_labels(out), _labels(tmp_path / "out" / "p1.nii.gz"))
    prov = _prov(tmp_path / "r.json")
    assert prov["handed_over"] == handed and prov["actions"] == _prov(side)["actions"]


def test_replay_of_a_session_with_brush_edits_locks_undo_and_review_marks(study, model, tmp_path, capsys):
    """What napari records (Session.record_edits after a brush stroke) replays to the same labels;
    its sidecar holds no image sha256: a note says the image is not checked."""
    from medseg.io import read_volume, write_labels
    from medseg.session import Session
    from medseg.types import Box, SlicePrompt

    vol = read_volume(study / "img.nii.gz")
    gt = _labels(study / "gt.nii.gz")[0]
    s = Session(vol, model, "lv=1,myo=2,rv=3")

    def box(value, z):
        ys, xs = np.nonzero(gt[z] == value)
        return Box(ys.min(), xs.min(), ys.max(), xs.max())

    s.apply_prompt(SlicePrompt("lv", 0, 3, box=box(3, 3)))
    s.propagate("lv", 0, 3)
    s.lock("lv")
    s.apply_prompt(SlicePrompt("rv", 0, 3, box=box(1, 3)))
    s.undo()
    s.redo()
    before = s.labels.copy()
    s.labels[0, 2, 5:15, 5:15] = 2  # brush
    s.labels[0, 3][s.labels[0, 3] == 1] = 0  # eraser: the LV of slice 3
    s.record_edits(before)
    s.apply_prompt(SlicePrompt("myo", 0, 3, box=box(2, 3)))
    s.mark_reviewed("myo", 0, 3, "checked")
    prov = {"tool": "medseg-napari", "source": str(study / "img.nii.gz"), **s.provenance()}
    assert {"edit", "lock", "undo", "redo", "review"} <= {a["op"] for a in prov["actions"]}
    write_labels(s.labels, vol, tmp_path / "nap.nii.gz", s.label_map, provenance=prov)
    capsys.readouterr()
    assert run_cli(["segment", str(study / "img.nii.gz"), "-o", str(tmp_path / "r.nii.gz"), "--replay", str(tmp_path / "nap.json")]) == 0
    said = _said(capsys)
    assert "medseg-napari session" in said and "records no image sha256" in said
    assert np.array_equal(_labels(tmp_path / "r.nii.gz"), s.labels) and (s.labels[0, 2, 5:15, 5:15] == 2).all()


def _dicom_series(folder: Path, vol) -> Path:
    """The (T, Z, Y, X) phantom as a DICOM MR cine series (axial, one file per frame and slice)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
    from io_synth import MR_STORAGE, _base
    from pydicom.uid import generate_uid

    folder.mkdir()
    study, series = generate_uid(), generate_uid()
    dz, dy, dx = vol.spacing
    pixels = np.round(vol.array / max(float(vol.array.max()), 1e-6) * 1000).astype(np.int16)
    for t in range(vol.n_frames):
        for z in range(vol.n_slices):
            ds = _base(MR_STORAGE, study, series, "1.2.3.4.5")
            ds.Modality, ds.SeriesDescription, ds.InstanceNumber = "MR", "CINE SA", t * vol.n_slices + z + 1
            ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, z * dz], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
            ds.PixelSpacing, ds.SliceThickness, ds.TriggerTime = [dy, dx], dz, t * 300.0
            ds.Rows, ds.Columns = pixels.shape[2:]
            ds.PixelData = pixels[t, z].tobytes()
            ds.save_as(folder / f"IM{t:02d}{z:02d}.dcm", enforce_file_format=True)
    return folder


@pytest.mark.slow  # ~13 s on the shared 2-core CPU
def test_replay_of_a_dicom_seg_of_a_cine(phantom, tmp_path, capsys):
    """A cine's SEG is written one frame a file (seg_frameNN.dcm, each sidecar with the whole
    session): `--replay seg.dcm` reads it; the replayed SEGs hold the same labels."""
    folder = _dicom_series(tmp_path / "dcm", phantom.image.with_array(phantom.image.array[:2], frame_times_s=None))
    assert run_cli(["segment", str(folder), "-o", str(tmp_path / "seg.dcm"), "--auto", "--structures", "lv,myo"]) == 0
    assert sorted(p.name for p in tmp_path.glob("seg_frame*.dcm")) == ["seg_frame00.dcm", "seg_frame01.dcm"]
    assert run_cli(["segment", str(folder), "-o", str(tmp_path / "r.dcm"), "--replay", str(tmp_path / "seg.dcm")]) == 0
    assert run_cli(["segment", str(folder), "-o", str(tmp_path / "r.nii.gz"), "--replay", str(tmp_path / "seg_frame01.json")]) == 0
    whole = _labels(tmp_path / "r.nii.gz")
    for t in (0, 1):
        original = _labels(tmp_path / f"seg_frame{t:02d}.dcm")
        assert (original > 0).any() and np.array_equal(_labels(tmp_path / f"r_frame{t:02d}.dcm"), original)
        assert np.array_equal(whole[t], original[0])


def _edit(study: Path, tmp: Path, change) -> Path:
    doc = json.loads((study / "ks.json").read_text())
    change(doc)
    (tmp / "side.json").write_text(json.dumps(doc))
    return tmp / "side.json"


def _box_outside(doc):
    doc["provenance"]["actions"][0]["prompt"]["box"] = [10, 10, 900, 40]


BAD = {  # case: (how the sidecar or the command is made, what the one line says)
    "prompt_option": (lambda s, t: ["--replay", str(s / "ks.json"), "--auto", "--label-map", ACDC_MAP], "leave out --label-map, --auto"),
    "through": (lambda s, t: ["--replay", str(s / "ks.json"), "--through", "z"], "leave out --through"),
    "other_image_alone": (lambda s, t: ["--auto", "--other-image"], "--other-image works with --replay"),
    "missing": (lambda s, t: ["--replay", str(t / "nope.json")], "no such file"),
    "truncated": (lambda s, t: ["--replay", str(_write(t, (s / "ks.json").read_text()[:400]))], "not valid JSON"),
    "not_a_sidecar": (lambda s, t: ["--replay", str(_write(t, '{"shape": [1, 2]}'))], "not a medseg sidecar"),
    "image_given": (lambda s, t: ["--replay", str(s / "img.nii.gz")], "no sidecar img.json beside it"),
    "outside": (lambda s, t: ["--replay", str(_edit(s, t, _box_outside))], "action 1 of 6 in the log is malformed"),
    "unknown_op": (lambda s, t: ["--replay", str(_edit(s, t, lambda d: d["provenance"]["actions"][1].update(op="paint")))],
                   "cannot replay unknown action 'paint'"),
    "unknown_structure": (lambda s, t: ["--replay", str(_edit(s, t, lambda d: d["provenance"]["actions"][1].update(structure="lvot")))],
                          "names structure 'lvot'"),
    "no_label_map": (lambda s, t: ["--replay", str(_edit(s, t, lambda d: (d.pop("label_map"), d["provenance"].pop("label_map"))))],
                     "records no label_map"),
    "no_actions": (lambda s, t: ["--replay", str(_edit(s, t, lambda d: d["provenance"].update(actions=[])))], "no actions to replay"),
    "handed_over_record": (lambda s, t: ["--replay", str(_write(t, json.dumps({"command": "batch", "case": "p1", "status": "handed_over"})))],
                           "handed over with no labels written"),
    "adapter_not_found": (lambda s, t: ["--replay", str(_edit(s, t, lambda d: d["provenance"].update(adapter_id="nosuch")))],
                          "records adapter 'nosuch'"),
    "another_image": (lambda s, t: ["--replay", str(_edit(s, t, lambda d: d["provenance"].update(input_sha256="0" * 64)))],
                      "--other-image replays it anyway"),
    "onto_the_sidecar": (lambda s, t: ["--replay", str(s / "ks.json"), "-o", str(s / "ks.nii.gz")], "would replace the replayed sidecar"),
}


def _write(tmp: Path, text: str) -> Path:
    (tmp / "side.json").write_text(text)
    return tmp / "side.json"


@pytest.mark.parametrize("case", list(BAD))
def test_bad_replay_is_one_line_and_writes_nothing(case, study, tmp_path, capsys):
    make, message = BAD[case]
    before = sorted(p.name for p in study.iterdir())
    extra = make(study, tmp_path)
    out = ["-o", str(tmp_path / "out" / "r.nii.gz")] if "-o" not in extra else []
    capsys.readouterr()
    rc = run_cli(["segment", str(study / "img.nii.gz"), *out, *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith("error:") and "Traceback" not in err and len(err.splitlines()) <= 2, err
    assert message in " ".join(err.split())
    assert not (tmp_path / "out").exists() and sorted(p.name for p in study.iterdir()) == before
