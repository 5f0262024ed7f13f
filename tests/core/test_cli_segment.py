"""`medseg segment` end to end: labels and provenance, review sheet, prompts, zero-click; bad
input and outputs it cannot or must not write -> one line, non-zero exit, nothing written."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli


def _files(d):
    return sorted(p.name for p in d.iterdir())


def test_segment_prompts_from_key_slice_writes_labels_and_provenance(study, tmp_path):
    out = tmp_path / "seg.nii.gz"
    rc = run_cli(["segment", str(study / "img.nii.gz"), "-o", str(out), "--prompts-from", str(study / "gt.nii.gz"),
                  "--label-map", "lv=1,myo=2,rv=3", "--key-slice"])
    assert rc == 0
    seg = nib.load(str(out))
    ref = nib.load(str(study / "gt.nii.gz"))
    assert seg.shape == ref.shape and np.allclose(seg.affine, ref.affine)
    a, b = np.asanyarray(seg.dataobj), np.asanyarray(ref.dataobj)
    for v in (1, 2, 3):
        assert 2 * ((a == v) & (b == v)).sum() / ((a == v).sum() + (b == v).sum()) > 0.75
    side = json.loads((tmp_path / "seg.json").read_text())
    prov = side["provenance"]
    assert side["label_map"] == {"lv": 1, "myo": 2, "rv": 3}
    assert len(prov["input_sha256"]) == 64 and prov["model_id"] == "default" and prov["actions"]
    assert set(prov["confidence"]["volume"]) == {"lv", "myo", "rv"} and "needs_review" in prov
    # absolute paths: `measure --plots` finds the image from any folder
    assert prov["input"] == str((study / "img.nii.gz").resolve()) and prov["reference"] == str((study / "gt.nii.gz").resolve())
    assert len(prov["reference_sha256"]) == 64 and prov["key_slice"] is True


def test_segment_says_which_slices_the_rv_end_check_removed(study, tmp_path, capsys, monkeypatch, end_check_weights):
    from medseg import end_check

    weights = end_check_weights(max_trim=2)
    monkeypatch.setattr(end_check, "weights", lambda: weights)
    monkeypatch.setattr(end_check, "probability", lambda *a: 0.9)  # every end slice judged not RV
    args = ["segment", str(study / "img.nii.gz"), "--prompts-from", str(study / "gt.nii.gz"), "--label-map", "lv=1,myo=2,rv=3", "--key-slice"]
    capsys.readouterr()
    assert run_cli([*args, "-o", str(tmp_path / "s.nii.gz")]) == 0
    assert "RV end check removed RV on slices 0, 1, 4, 5" in " ".join(capsys.readouterr().err.split())  # two per end
    actions = json.loads((tmp_path / "s.json").read_text())["provenance"]["actions"]
    removed = [r for a in actions for r in a.get("removed", [])]
    seg = np.asanyarray(nib.load(str(tmp_path / "s.nii.gz")).dataobj).T  # (Z, Y, X)
    assert removed and all(r["rule"] == "rv_end_check" and not (seg[r["slice"]] == 3).any() for r in removed)


def test_segment_review_png(study, tmp_path, capsys):
    from PIL import Image

    args = ["segment", str(study / "img.nii.gz"), "--prompts-from", str(study / "gt.nii.gz"), "--label-map", "lv=1,myo=2,rv=3", "--key-slice"]
    assert run_cli([*args, "-o", str(tmp_path / "s.nii.gz"), "--review-png", str(tmp_path / "sheet.png")]) == 0
    with Image.open(tmp_path / "sheet.png") as im:
        assert im.format == "PNG" and im.size[0] > 500
    capsys.readouterr()
    assert run_cli([*args, "-o", str(tmp_path / "t.nii.gz"), "--review-png", str(tmp_path / "sheet.jpg")]) == 1
    assert "--review-png must name a .png" in capsys.readouterr().err and not (tmp_path / "t.nii.gz").exists()


def test_segment_with_prompts_file(study, tmp_path):
    gt = np.asanyarray(nib.load(str(study / "gt.nii.gz")).dataobj).T  # (Z, Y, X)
    ys, xs = np.nonzero(gt[3] == 1)
    prompts = {"prompts": [{"structure": "lv", "slice": 3, "box": [int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max())], "propagate": True}]}
    pf = tmp_path / "p.json"
    pf.write_text(json.dumps(prompts))
    assert run_cli(["segment", str(study / "img.nii.gz"), "-o", str(tmp_path / "o.nii.gz"), "--prompts", str(pf)]) == 0
    a = np.asanyarray(nib.load(str(tmp_path / "o.nii.gz")).dataobj).T
    assert (a == 1).any(axis=(1, 2)).sum() >= 3  # propagated beyond the prompted slice


def test_auto_mode(study, tmp_path):
    assert run_cli(["segment", str(study / "img.nii.gz"), "-o", str(tmp_path / "a.nii.gz"), "--auto", "--structures", "lv,myo"]) == 0
    a = np.asanyarray(nib.load(str(tmp_path / "a.nii.gz")).dataobj)
    assert set(np.unique(a)) <= {0, 1, 2} and (a == 1).sum() > 100
    # the sidecar (and a DICOM SEG's segments) name the structures segmented, in medseg's values
    assert json.loads((tmp_path / "a.json").read_text())["label_map"] == {"lv": 1, "myo": 2}


def test_segment_names_a_structure_it_was_asked_for_and_did_not_find(study, tmp_path, capsys, monkeypatch):
    import medseg.segment

    real = medseg.segment.segment_volume

    def without_myo(*a, **k):  # as if zero-click found no myocardium anywhere
        res = real(*a, **k)
        res.labels[res.labels == res.label_map["myo"]] = 0
        return res

    monkeypatch.setattr(medseg.segment, "segment_volume", without_myo)
    assert run_cli(["segment", str(study / "img.nii.gz"), "-o", str(tmp_path / "a.nii.gz"), "--auto", "--structures", "lv,myo"]) == 0
    cap = capsys.readouterr()
    out = " ".join((cap.out + cap.err).split())
    assert "lv: " in out and "not found: myo;" in out


@pytest.mark.parametrize("case", ["missing", "zero_bytes", "random_dcm", "truncated", "empty_dir", "nan", "blank", "prompt_outside", "absent_label", "bad_map", "both_prompts", "axes_mixed_up", "box_of_three",
                                  "prompt_format", "unknown_structure", "map_misses_a_value", "labels_as_image", "no_heart", "into_the_dicom_folder"])
def test_segment_bad_input_one_line_no_output(case, study, tmp_path, capsys):
    img, out = str(study / "img.nii.gz"), tmp_path / "out" / "seg.nii.gz"
    extra = ["--prompts-from", str(study / "gt.nii.gz"), "--label-map", "lv=1"]
    if case == "missing":
        img = str(tmp_path / "nope.nii.gz")
    elif case == "zero_bytes":
        (tmp_path / "z.nii.gz").write_bytes(b"")
        img = str(tmp_path / "z.nii.gz")
    elif case == "random_dcm":
        (tmp_path / "r.dcm").write_bytes(np.random.default_rng(0).bytes(4000))
        img = str(tmp_path / "r.dcm")
    elif case == "truncated":
        data = (study / "img.nii.gz").read_bytes()
        (tmp_path / "t.nii.gz").write_bytes(data[: len(data) // 2])
        img = str(tmp_path / "t.nii.gz")
    elif case == "empty_dir":
        (tmp_path / "empty").mkdir()
        img = str(tmp_path / "empty")
    elif case == "nan":
        nib.save(nib.Nifti1Image(np.full((8, 8, 3), np.nan, np.float32), np.eye(4)), str(tmp_path / "n.nii.gz"))
        img = str(tmp_path / "n.nii.gz")
    elif case == "blank":  # an all-zero export: the model would draw a heart into it
        nib.save(nib.Nifti1Image(np.zeros((32, 32, 3), np.float32), np.eye(4)), str(tmp_path / "b.nii.gz"))
        img, extra = str(tmp_path / "b.nii.gz"), ["--auto"]
    elif case == "prompt_outside":
        (tmp_path / "p.json").write_text(json.dumps({"prompts": [{"structure": "lv", "slice": 0, "points": [[500, 3]]}]}))
        extra = ["--prompts", str(tmp_path / "p.json")]
    elif case == "absent_label":
        extra = ["--prompts-from", str(study / "gt.nii.gz"), "--label-map", "lv=9"]
    elif case == "bad_map":
        extra = ["--prompts-from", str(study / "gt.nii.gz"), "--label-map", "lv=one"]
    elif case == "both_prompts":
        extra += ["--prompts", str(tmp_path / "x.json")]
    elif case == "axes_mixed_up":  # slice axis saved in-plane: 6-pixel-wide "slices"
        nib.save(nib.Nifti1Image(np.random.default_rng(0).random((64, 6, 40)).astype(np.float32), np.eye(4)), str(tmp_path / "s.nii.gz"))
        img, extra = str(tmp_path / "s.nii.gz"), ["--auto"]
    elif case == "box_of_three":
        (tmp_path / "p.json").write_text(json.dumps({"prompts": [{"structure": "lv", "slice": 0, "box": [3, 4, 20]}]}))
        extra = ["--prompts", str(tmp_path / "p.json")]
    elif case == "prompt_format":
        (tmp_path / "p.json").write_text(json.dumps({"format": "medseg-prompts/2", "prompts": [{"structure": "lv", "slice": 0, "box": [3, 4, 20, 20]}]}))
        extra = ["--prompts", str(tmp_path / "p.json")]
    elif case == "unknown_structure":
        extra = ["--auto", "--structures", "lv,lvot"]
    elif case == "map_misses_a_value":  # a typo: the RV (3) would be left out without a word
        extra = ["--prompts-from", str(study / "gt.nii.gz"), "--label-map", "lv=1,myo=2,rv=4"]
    elif case == "labels_as_image":  # labels medseg wrote, given where the image goes
        img, extra = str(study / "gt.nii.gz"), ["--auto"]
    elif case == "no_heart":  # zero-click finds nothing: an empty label file would look like a result
        nib.save(nib.Nifti1Image(np.random.default_rng(1).random((64, 64, 2)).astype(np.float32), np.diag([1.5, 1.5, 8.0, 1.0])), str(tmp_path / "noise.nii.gz"))
        img, extra = str(tmp_path / "noise.nii.gz"), ["--auto"]
    elif case == "into_the_dicom_folder":  # a file written there would be read back as part of the study
        (tmp_path / "dcm").mkdir()
        img, out, extra = str(tmp_path / "dcm"), tmp_path / "dcm" / "seg.nii.gz", ["--auto"]
    rc = run_cli(["segment", img, "-o", str(out), *extra])
    err = capsys.readouterr().err.strip()
    expected = {"axes_mixed_up": "too small to hold a heart", "box_of_three": "'box' must be [y0, x0, y1, x1]",
                "prompt_format": "'medseg-prompts/2' is not one this medseg reads", "unknown_structure": "unknown structure 'lvot'",
                "map_misses_a_value": "names rv=4, but the reference labels gt.nii.gz hold no such value; they hold 1, 2, 3, of which 3",
                "labels_as_image": "is a label file medseg wrote", "no_heart": "no structure found (lv, myo, rv) in",
                "into_the_dicom_folder": "would be written into the image folder"}
    assert expected.get(case, "") in err
    assert rc != 0
    assert err.startswith("error:") and "Traceback" not in err and len(err.splitlines()) <= 2
    assert not out.exists() and not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("name, message", [
    ("seg.dcm", "DICOM SEG needs an image read from DICOM"),
    ("seg.png", "PNG holds one 2-D slice, this image has 1 frame(s) x 6 slice(s)"),
    ("seg.txt", "supported endings are"),
])
def test_segment_refuses_an_output_it_cannot_write_before_segmenting(name, message, study, tmp_path, capsys, monkeypatch):
    import medseg.models

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(medseg.models, "load_model", no_model)
    rc = run_cli(["segment", str(study / "img.nii.gz"), "-o", str(tmp_path / name), "--auto"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith("error:") and message in err and len(err.splitlines()) == 1
    assert _files(tmp_path) == []


@pytest.mark.parametrize("kind", ["image", "prompts_sidecar", "reference", "review_is_output", "other_labels_sidecar"])
def test_segment_never_replaces_an_input_or_another_labels_sidecar(kind, study, tmp_path, capsys, monkeypatch):
    """`segment img.nii.gz -o img.nii.gz` used to replace the image with its labels; a prompts
    file p.json was replaced by the sidecar of -o p.nii.gz; seg.mha took seg.nii.gz's sidecar."""
    import shutil

    import medseg.models

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the outputs were checked")

    monkeypatch.setattr(medseg.models, "load_model", no_model)
    img = tmp_path / "img.nii.gz"
    shutil.copy(study / "img.nii.gz", img)
    args = ["--auto"]
    if kind == "image":
        out, message = img, "the output labels would replace the image"
    elif kind == "prompts_sidecar":
        (tmp_path / "p.json").write_text(json.dumps({"prompts": [{"structure": "lv", "slice": 3, "box": [40, 40, 70, 70]}]}))
        out, args, message = tmp_path / "p.nii.gz", ["--prompts", str(tmp_path / "p.json")], "the sidecar JSON would replace the prompts file"
    elif kind == "reference":
        shutil.copy(study / "gt.nii.gz", tmp_path / "gt.nii.gz")
        out, args = tmp_path / "gt.nii.gz", ["--prompts-from", str(tmp_path / "gt.nii.gz"), "--label-map", "lv=1"]
        message = "the output labels would replace the reference labels"
    elif kind == "review_is_output":
        from PIL import Image

        Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "one.png")
        img, out, args = tmp_path / "one.png", tmp_path / "s.png", ["--auto", "--review-png", str(tmp_path / "s.png")]
        message = "is both the output labels and the review sheet"
    else:
        from medseg.io import read_label_volume, write_labels

        write_labels(read_label_volume(study / "gt.nii.gz").array[0], read_label_volume(study / "gt.nii.gz"), tmp_path / "seg.nii.gz", "lv=1,myo=2,rv=3")
        out, message = tmp_path / "seg.mha", "seg.json is the sidecar of"
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    rc = run_cli(["segment", str(img), "-o", str(out), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith("error:") and message in err and len(err.splitlines()) == 1
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_one_sidecar_for_one_segmentation_in_two_formats_never_for_two(study, tmp_path):
    """A re-run replaces its own sidecar; the same labels and provenance written as .nii.gz and
    .mha share seg.json (it lists both); other labels to seg.mha would take seg.nii.gz's
    label map and provenance, and are refused (write_labels and segment's check)."""
    from medseg.errors import ImageWriteError
    from medseg.io import read_label_volume, write_labels

    ref = read_label_volume(study / "gt.nii.gz")
    for _ in range(2):
        write_labels(ref.array[0], ref, tmp_path / "seg.nii.gz", "lv=1,myo=2,rv=3", provenance={"run": 1})
    assert json.loads((tmp_path / "seg.json").read_text())["labels"] == ["seg.nii.gz"]
    write_labels(ref.array[0], ref, tmp_path / "seg.mha", "lv=1,myo=2,rv=3", provenance={"run": 1})
    assert json.loads((tmp_path / "seg.json").read_text())["labels"] == ["seg.nii.gz", "seg.mha"]
    with pytest.raises(ImageWriteError, match="is the sidecar of .*seg.nii.gz"):
        write_labels(ref.array[0], ref, tmp_path / "seg.nrrd", "lv=1,myo=2,rv=3", provenance={"run": 2})
    assert not (tmp_path / "seg.nrrd").exists() and json.loads((tmp_path / "seg.json").read_text())["provenance"]["run"] == 1
    for name in ("seg.nii.gz", "seg.mha"):  # the files it described are gone: the sidecar is free
        (tmp_path / name).unlink()
    write_labels(ref.array[0], ref, tmp_path / "seg.nrrd", "lv=1,myo=2,rv=3", provenance={"run": 2})
    assert json.loads((tmp_path / "seg.json").read_text())["labels"] == ["seg.nrrd"]


@pytest.mark.parametrize("where", ["under_a_file", "proc", "a_folder"])
def test_outputs_that_cannot_be_written_are_refused_before_the_work(where, study, tmp_path, capsys, monkeypatch):
    """An output folder that is a file, or that refuses new files (/proc refuses them even to
    root): one line, exit 1, before the model is loaded (it used to fail after segmenting with
    "unexpected FileNotFoundError")."""
    from pathlib import Path

    import medseg.models

    monkeypatch.setattr(medseg.models, "load_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("model loaded")))
    if where == "under_a_file":
        (tmp_path / "f").write_text("x")
        out = tmp_path / "f" / "sub" / "seg.nii.gz"
    elif where == "a_folder":
        out = tmp_path / "seg.nii.gz"
        out.mkdir()
    else:
        if not Path("/proc/self").is_dir():
            pytest.skip("no /proc on this system")
        out = Path("/proc/medseg-test/seg.nii.gz")
    assert run_cli(["segment", str(study / "img.nii.gz"), "--auto", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot write into" if where != "a_folder" else "error: ") and len(err.splitlines()) == 1
    assert where != "a_folder" or "is a folder" in err


def test_segment_modality_is_recorded_and_checked(study, tmp_path, capsys):
    """--modality segments the image as that modality (recorded in the provenance with where
    it came from); a modality medseg does not know is one line, before any work."""
    out = tmp_path / "seg.nii.gz"
    assert run_cli(["segment", str(study / "img.nii.gz"), "-o", str(out), "--auto", "--modality", "mr"]) == 0
    prov = json.loads((tmp_path / "seg.json").read_text())["provenance"]
    assert (prov["modality"], prov["modality_from"]) == ("MR", "--modality")
    capsys.readouterr()
    assert run_cli(["segment", str(study / "img.nii.gz"), "-o", str(tmp_path / "x.nii.gz"), "--auto", "--modality", "XR"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: --modality must be one of CT, MR, US, OT, got 'XR'" and not (tmp_path / "x.nii.gz").exists()
    from medseg.batch import BatchOptions

    assert BatchOptions(out_dir=str(tmp_path), modality="CT").signature() != BatchOptions(out_dir=str(tmp_path)).signature()
    (tmp_path / "pairs.csv").write_text(f"image,label\n{study / 'img.nii.gz'},{study / 'gt.nii.gz'}\n")
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "pairs.csv"), "--prompt", "auto", "-o", str(tmp_path / "r.json"), "--modality", "XR"]) == 1
    assert "--modality must be one of" in capsys.readouterr().err and not (tmp_path / "r.json").exists()
    from medseg.cli._options import with_modality
    from medseg.evaluation import read_pairs

    assert [p.modality for p in with_modality(read_pairs(tmp_path / "pairs.csv"), "ct")] == ["CT"]


def test_zero_click_probe_line_gives_slice_runs():
    """A CT's probe line listed 40 and more slice numbers; runs now read as ranges."""
    from medseg.cli.segment_cmd import probe_lines

    prov = {"actions": [{"op": "auto", "probed": [{"structure": "rv", "frame": 0, "slices": [*range(12, 54), 60]}]}]}
    assert probe_lines(prov) == ["zero-click: RV not found by its prompt on frame 0; found by clicks beside the myocardium on slices "
                                 "12-53, 60 (check it)"]
