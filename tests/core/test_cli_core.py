"""End-to-end CLI: info, segment, models, evaluate, bench contract; bad input -> one line, non-zero
exit, nothing written."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli


@pytest.fixture(scope="module")
def study(tmp_path_factory, phantom):
    """A 3-D phantom frame as NIfTI with its labels (lv=1, myo=2, rv=3)."""
    d = tmp_path_factory.mktemp("study")
    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti

    vol = phantom.image.with_array(phantom.image.array[:1], frame_times_s=None)
    nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(d / "img.nii.gz"))
    write_labels(phantom.labels[:1], vol, d / "gt.nii.gz", phantom.label_map.subset(["lv", "myo", "rv"]))
    return d


def _files(d):
    return sorted(p.name for p in d.iterdir())


def test_info_json(study, capsys):
    assert run_cli(["info", str(study / "img.nii.gz"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["shape"] == [1, 6, 112, 112] and d["axes"] == ["t", "z", "y", "x"]
    assert d["spacing_mm"] == [10.0, 1.5, 1.5] and d["n_frames"] == 1 and d["n_slices"] == 6
    assert "label_map" not in d


def test_info_of_labels_medseg_wrote_names_their_map_image_and_review(study, tmp_path, capsys):
    from medseg.io import read_label_volume, read_volume, write_labels

    assert run_cli(["info", str(study / "gt.nii.gz"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["label_map"] == "lv=1, myo=2, rv=3" and "labels_of" not in d
    out = tmp_path / "seg.nii.gz"
    write_labels(read_label_volume(study / "gt.nii.gz").array, read_volume(study / "img.nii.gz"), out, "lv=1,myo=2,rv=3",
                 provenance={"input": str(study / "img.nii.gz"), "needs_review": True})
    assert run_cli(["info", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["label_map"], d["labels_of"], d["needs_review"]) == ("lv=1, myo=2, rv=3", str(study / "img.nii.gz"), True)
    assert run_cli(["info", str(out)]) == 0
    assert "needs_review" in capsys.readouterr().out


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


def test_evaluate_reports_hd95_in_pixels_without_spacing(tmp_path):
    """A PNG has no pixel size: its HD95 is reported under hd95_px, never as millimetres."""
    from PIL import Image

    from medseg.phantoms import echo_apical_phantom

    ph = echo_apical_phantom("a2c", seed=2)
    Image.fromarray(ph.image.array[0, 0].astype(np.uint8)).save(tmp_path / "echo.png")
    Image.fromarray(ph.labels[0, 0].astype(np.uint8)).save(tmp_path / "echo_gt.png")
    (tmp_path / "pairs.csv").write_text("image,label\necho.png,echo_gt.png\n")
    out = tmp_path / "r.json"
    lm = ",".join(f"{n}={ph.label_map[n]}" for n in ("lv", "myo", "la"))
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "pairs.csv"), "--label-map", lm, "--prompt", "box", "-o", str(out)]) == 0
    r = json.loads(out.read_text())
    assert "hd95_mm" not in r["summary"] and set(r["summary"]["hd95_px"]) == {"lv", "myo", "la"}
    assert "hd95_px" in r["cases"][0] and r["summary"]["dice"]["lv"] > 0.8


def test_models_lists_default_with_hash(capsys):
    assert run_cli(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    default = next(r for r in rows if r["name"] == "default")
    assert default["sha256"] == default["registry_sha256"] and default["size_mb"] > 1


def test_evaluate_box_and_errors(study, tmp_path, capsys):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"image,label\n{study / 'img.nii.gz'},{study / 'gt.nii.gz'}\n")
    out = tmp_path / "r.json"
    assert run_cli(["evaluate", "--pairs", str(pairs), "--label-map", "lv=1,myo=2,rv=3", "--prompt", "box", "-o", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["summary"]["n_cases"] == 1 and r["summary"]["dice"]["lv"] > 0.85 and "rv" in r["summary"]["hd95_mm"]
    assert "review" in r["summary"]
    row = f"{study / 'img.nii.gz'},{study / 'gt.nii.gz'}"
    (tmp_path / "img2.nii.gz").write_bytes((study / "img.nii.gz").read_bytes())  # another image, the same case and phase
    for bad, msg in [("image,label\n", "no rows"), (f"image,label\n{tmp_path / 'x.nii.gz'},{study / 'gt.nii.gz'}\n", "not found"),
                     (f"image,label\n{study / 'img.nii.gz'}\n", "row 2: the 'label' cell is empty"),  # a short row
                     ("image,label\n,x\n", "row 2: the 'image' cell is empty"),  # a row of empty cells (Excel's ;;) is skipped
                     (f"image,label\n{row}\n{row}\n", "row 3 repeats row 2 (the same image, labels and case)"),
                     (f"image,label,case,phase\n{row},p1,ED\n{tmp_path / 'img2.nii.gz'},{study / 'gt.nii.gz'},p1,ED\n", "row 3 repeats row 2 (case p1 ED)"),
                     (b"\xff\xfe\x00\x00x\x00", "not a readable CSV text file")]:
        pairs.write_bytes(bad) if isinstance(bad, bytes) else pairs.write_text(bad)
        out2 = tmp_path / "r2.json"
        assert run_cli(["evaluate", "--pairs", str(pairs), "--label-map", "lv=1", "--prompt", "box", "-o", str(out2)]) == 1
        assert msg in capsys.readouterr().err and not out2.exists()
    pairs.write_text(f"image,label\n{study / 'img.nii.gz'},{study / 'gt.nii.gz'}\n")
    assert run_cli(["evaluate", "--pairs", str(pairs), "--label-map", "la=7", "--prompt", "box", "-o", str(out2)]) == 1
    assert not out2.exists()
    capsys.readouterr()
    assert run_cli(["evaluate", "--pairs", str(pairs), "--label-map", "lv=1", "--prompt", "box", "-o", str(out2), "--workers", "0"]) == 1
    assert "--workers must be 1 or more" in capsys.readouterr().err and not out2.exists()


def test_import_medseg_is_light():
    import subprocess
    import sys

    code = "import sys, medseg, medseg.io, medseg.labels, medseg.types; bad=[m for m in ('napari','qtpy','PyQt6','magicgui','typer','rich','torch') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_error_text_with_brackets_is_printed_not_parsed(tmp_path, capsys):
    """Rich markup in an error message (paths, lists) must not crash the error printer."""
    bad = tmp_path / "[x]" / "missing[/bold].nii.gz"
    assert run_cli(["info", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "[/bold]" in err and "Traceback" not in err


@pytest.mark.slow  # ~16 s on the shared 2-core CPU
def test_evaluate_reports_lv_and_rv_function_errors_for_ed_es_pairs(phantom, tmp_path, capsys):
    """Rows with case + ED/ES phase get LVEF / mass / EDV and RVEF / RV EDV errors against the
    reference measured the same way (box prompts on a phantom: small errors)."""
    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.measure import measure_ed_es

    lm = phantom.label_map.subset(["lv", "myo", "rv"])
    lv = (phantom.labels == lm["lv"]).sum(axis=(1, 2, 3))
    frames = {"ED": int(lv.argmax()), "ES": int(lv.argmin())}
    rows = ["image,label,case,phase"]
    for ph, t in frames.items():
        vol = phantom.image.with_array(phantom.image.array[t : t + 1], frame_times_s=None)
        nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(tmp_path / f"{ph}.nii.gz"))
        write_labels(phantom.labels[t : t + 1], vol, tmp_path / f"{ph}_gt.nii.gz", lm)
        rows.append(f"{tmp_path / f'{ph}.nii.gz'},{tmp_path / f'{ph}_gt.nii.gz'},p1,{ph}")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "r.json"
    spec = ",".join(f"{n}={lm[n]}" for n in ("lv", "myo", "rv"))
    capsys.readouterr()
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "pairs.csv"), "--label-map", spec, "--prompt", "box", "-o", str(out)]) == 0
    assert "mean absolute error over 1 ED/ES cases: LVEF" in " ".join(capsys.readouterr().err.split())
    r = json.loads(out.read_text())
    s = r["summary"]
    assert s["n_clinical_cases"] == 1
    assert 0 <= s["lvef_mae"] < 5 and 0 <= s["rvef_mae"] < 5 and 0 <= s["rv_edv_mae_ml"] < 10
    truth = measure_ed_es(phantom.labels[frames["ED"]], phantom.labels[frames["ES"]], phantom.image.affine, lm)
    c = next(c for c in r["cases"] if c.get("clinical"))["clinical"]
    assert abs(c["rvef_ref"] - truth["rv"]["ef_pct"]) < 1e-6 and abs(c["rvef_pred"] - c["rvef_ref"]) == pytest.approx(s["rvef_mae"])
    assert c["wall_thickening_ref_pct"] == pytest.approx(truth["wall_thickening_pct"]["global"]) and 0 <= s["wall_thickening_mae_pct"] < 15
    # the same pairs in 2 worker processes: the same result, rows in the pairs' order
    out2 = tmp_path / "r2.json"
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "pairs.csv"), "--label-map", spec, "--prompt", "key-slice", "-o", str(out2), "--workers", "2"]) == 0
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "pairs.csv"), "--label-map", spec, "--prompt", "key-slice", "-o", str(out)]) == 0
    r, r2 = json.loads(out.read_text()), json.loads(out2.read_text())
    for c in r["cases"] + r2["cases"]:
        del c["seconds"]
    for x in (r, r2):
        del x["settings"]["created"]  # the date each was made
    assert r2 == r and [c["phase"] for c in r2["cases"]] == ["ED", "ES"]


def test_evaluate_pairs_from_a_folder_of_images_with_labels_beside_them(study, tmp_path, capsys):
    """--pairs DIR (for evaluate and adapt): each image with its C_gt / C_labels / ... file, in
    the folder and its sub-folders (ACDC's layout); images without labels are left out; the
    scores are those of the same pairs given as a CSV."""
    import shutil

    from medseg.evaluation import read_pairs

    d = tmp_path / "cohort"
    (d / "p1").mkdir(parents=True)
    shutil.copy(study / "img.nii.gz", d / "p1" / "p1_frame01.nii.gz")
    shutil.copy(study / "gt.nii.gz", d / "p1" / "p1_frame01_gt.nii.gz")
    shutil.copy(study / "img.nii.gz", d / "p1" / "p1_4d.nii.gz")  # no labels: left out
    shutil.copy(study / "img.nii.gz", d / "p2.nii.gz")
    shutil.copy(study / "gt.nii.gz", d / "p2_seg.nii.gz")
    assert [(p.case, p.label.name) for p in read_pairs(d)] == [("p1_frame01", "p1_frame01_gt.nii.gz"), ("p2", "p2_seg.nii.gz")]
    (tmp_path / "pairs.csv").write_text(f"image,label,case\n{d / 'p1' / 'p1_frame01.nii.gz'},{d / 'p1' / 'p1_frame01_gt.nii.gz'},p1_frame01\n"
                                        f"{d / 'p2.nii.gz'},{d / 'p2_seg.nii.gz'},p2\n")
    for src, out in ((d, tmp_path / "a.json"), (tmp_path / "pairs.csv", tmp_path / "b.json")):
        assert run_cli(["evaluate", "--pairs", str(src), "--label-map", "lv=1,myo=2,rv=3", "--prompt", "box", "-o", str(out)]) == 0
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert a["summary"]["dice"] == b["summary"]["dice"] and a["summary"]["n_cases"] == 2
    (tmp_path / "none").mkdir()
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "none"), "--label-map", "lv=1", "--prompt", "box", "-o", str(tmp_path / "c.json")]) == 1
    assert "no image with its labels beside it" in capsys.readouterr().err


def test_evaluate_folder_phases_from_names_and_single_views_give_no_volumes(study, tmp_path):
    """M&Ms-2's names (001_SA_ED, 001_LA_ES): the ED/ES part gives the phase and pairs them into
    one case; a single long-axis view per phase gives Dice but no volumes (it used to stop the
    whole evaluation with "a volume needs at least 2 slices")."""
    from medseg.evaluation import read_pairs
    from medseg.io import read_label_volume, read_volume, write_labels
    from medseg.io.geometry import medseg_to_nifti

    d = tmp_path / "001"
    d.mkdir()
    vol, ref = read_volume(study / "img.nii.gz"), read_label_volume(study / "gt.nii.gz")
    one = vol.with_array(vol.array[:, 3:4])
    for phase in ("ED", "ES"):
        (d / f"001_SA_{phase}.nii.gz").write_bytes((study / "img.nii.gz").read_bytes())
        (d / f"001_SA_{phase}_gt.nii.gz").write_bytes((study / "gt.nii.gz").read_bytes())
        nib.save(nib.Nifti1Image(medseg_to_nifti(one.array.astype(np.float32), 3), one.affine), str(d / f"001_LA_{phase}.nii.gz"))
        write_labels(ref.array[:, 3:4], one, d / f"001_LA_{phase}_gt.nii.gz", "lv=1,myo=2,rv=3")
    assert sorted((p.case, p.phase) for p in read_pairs(tmp_path)) == [("001_LA", "ED"), ("001_LA", "ES"), ("001_SA", "ED"), ("001_SA", "ES")]
    out = tmp_path / "r.json"
    assert run_cli(["evaluate", "--pairs", str(tmp_path), "--label-map", "lv=1,myo=2,rv=3", "--prompt", "box", "-o", str(out)]) == 0
    s = json.loads(out.read_text())["summary"]
    assert s["n_cases"] == 4 and s["n_clinical_cases"] == 1 and s["lvef_mae"] < 5  # SA ED = SA ES here: EF 0 both ways


def test_evaluate_writes_a_case_csv_plots_and_limits_of_agreement(study, tmp_path, capsys):
    """--csv: one row per case; --plots: Dice, confidence vs Dice and (ED/ES cases) Bland-Altman;
    summary.agreement: bias and 95 % limits of agreement; an output that is an input is refused
    before any work."""
    import csv

    from PIL import Image

    img, gt = study / "img.nii.gz", study / "gt.nii.gz"
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("image,label,case,phase\n" + "".join(f"{img},{gt},{c},{p}\n" for c in ("a", "b") for p in ("ED", "ES")))
    out, table, plots = tmp_path / "r.json", tmp_path / "cases.csv", tmp_path / "plots"
    assert run_cli(["evaluate", "--pairs", str(pairs), "--label-map", "lv=1,myo=2,rv=3", "--prompt", "box", "-o", str(out),
                    "--csv", str(table), "--plots", str(plots)]) == 0
    r = json.loads(out.read_text())
    rows = list(csv.DictReader(table.open()))
    assert [(x["case"], x["phase"]) for x in rows] == [("a", "ED"), ("a", "ES"), ("b", "ED"), ("b", "ES")]
    assert float(rows[0]["dice.lv"]) == pytest.approx(r["cases"][0]["dice"]["lv"], abs=1e-4) and rows[0]["lvef_pred"] != "" and rows[1]["lvef_pred"] == ""
    ef = r["summary"]["agreement"]["lvef"]
    d = [c["clinical"]["lvef_pred"] - c["clinical"]["lvef_ref"] for c in r["cases"] if "clinical" in c]
    assert ef["n"] == 2 and ef["bias"] == pytest.approx(np.mean(d)) and ef["loa"] == pytest.approx([np.mean(d) - 1.96 * np.std(d, ddof=1), np.mean(d) + 1.96 * np.std(d, ddof=1)])
    assert sorted(p.name for p in plots.iterdir()) == ["bland_altman.png", "confidence.png", "dice.png"]
    assert all(Image.open(p).size[0] > 300 for p in plots.iterdir())
    assert "limits of agreement" in capsys.readouterr().err
    before = pairs.read_bytes()
    assert run_cli(["evaluate", "--pairs", str(pairs), "--label-map", "lv=1", "-o", str(tmp_path / "r2.json"), "--csv", str(pairs)]) == 1
    assert "would replace the pairs file" in capsys.readouterr().err and pairs.read_bytes() == before and not (tmp_path / "r2.json").exists()


def test_evaluate_gives_echo_studies_their_ef_from_view_images(tmp_path, echo_views):
    """CAMUS-style views (p1_4CH_ED.png, ..._gt.png): evaluate measures LV EF by the biplane
    method of disks on the model's and the expert's labels, as `medseg measure --ed --es
    --a2c-ed --a2c-es` does on each; no pixel spacing, so EF and no volumes."""
    inp = echo_views(tmp_path / "echo")
    out = tmp_path / "r.json"
    assert run_cli(["evaluate", "--pairs", str(inp), "--label-map", "lv=1,myo=2,la=4", "--prompt", "box", "-o", str(out)]) == 0
    r = json.loads(out.read_text())
    row = next(c for c in r["cases"] if "clinical" in c)
    assert (row["case"], row["phase"], r["summary"]["n_echo_studies"]) == ("p1_4CH", "ED", 1)
    views = {k: str(inp / f"p1_{k}_gt.png") for k in ("4CH_ED", "4CH_ES", "2CH_ED", "2CH_ES")}
    assert run_cli(["measure", "--ed", views["4CH_ED"], "--es", views["4CH_ES"], "--a2c-ed", views["2CH_ED"], "--a2c-es", views["2CH_ES"],
                    "--label-map", "lv=1,myo=2,la=4", "-o", str(tmp_path / "m.json")]) == 0
    ref = json.loads((tmp_path / "m.json").read_text())["lv"]
    assert row["clinical"]["method"] == "biplane_disks" and row["clinical"]["lvef_ref"] == pytest.approx(ref["ef_pct"], abs=1e-6)
    assert r["summary"]["lvef_mae"] == pytest.approx(abs(row["clinical"]["lvef_pred"] - ref["ef_pct"])) and r["summary"]["lvef_mae"] < 10
    assert "edv_pred_ml" not in row["clinical"]


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


@pytest.mark.parametrize("argv, message", [
    (["segment", "img.nii.gz"], "Missing option '-o' / '--out'"),
    (["segment", "img.nii.gz", "-o", "x.nii.gz", "--bogus"], "No such option: --bogus"),
    (["evaluate", "--prompt", "box", "-o", "r.json"], "Missing option '--pairs'"),
    (["measure"], "Missing option '-o' / '--out' / '--output'"),
])
def test_usage_errors_print_clicks_message_and_exit_2(argv, message, capsys):
    """A missing or unknown option is click's usage message and exit code 2, whichever copy of
    click typer raises (typer >= 0.29 vendors its own): not 'unexpected MissingParameter'."""
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "unexpected" not in err and "Traceback" not in err


def test_version(capsys):
    from medseg import __version__

    assert run_cli(["--version"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"medseg {__version__}"  # then python/torch/numpy and the model's sha256


def test_evaluate_folder_pairs_a_study_whose_frames_are_cases_acdc_style(tmp_path):
    """ACDC's folder (patient001_frame01 and _frame12 with their _gt): the two frames of a study
    are its ED and ES (largest and smallest reference LV), scored for LVEF and mass as the same
    pairs given in a CSV with their phases."""
    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=8, n_slices=5, shape=(80, 80), seed=6)
    d = tmp_path / "acdc" / "patient001"
    d.mkdir(parents=True)
    rows = []
    for phase in ("ES", "ED"):
        t = ph.info[f"{phase.lower()}_frame"]
        one = ph.image.with_array(ph.image.array[t:t + 1], frame_times_s=None)
        img, gt = d / f"patient001_frame{t + 1:02d}.nii.gz", d / f"patient001_frame{t + 1:02d}_gt.nii.gz"
        nib.save(nib.Nifti1Image(medseg_to_nifti(one.array.astype(np.float32), 3), one.affine), str(img))
        write_labels(ph.labels[t:t + 1], one, gt, "lv=1,myo=2,rv=3")
        rows.append(f"{img},{gt},patient001,{phase}")
    (tmp_path / "pairs.csv").write_text("image,label,case,phase\n" + "\n".join(rows) + "\n")
    results = []
    for src, out in ((tmp_path / "acdc", tmp_path / "a.json"), (tmp_path / "pairs.csv", tmp_path / "b.json")):
        assert run_cli(["evaluate", "--pairs", str(src), "--prompt", "box", "-o", str(out)]) == 0
        results.append(json.loads(out.read_text()))
    a, b = results
    assert a["summary"]["n_clinical_cases"] == b["summary"]["n_clinical_cases"] == 1
    for key in ("lvef_mae", "lv_mass_mae_g", "edv_mae_ml"):
        assert a["summary"][key] == pytest.approx(b["summary"][key], abs=1e-6)
    ed = ph.info["ed_frame"] + 1
    assert {c["case"]: c["phase"] for c in a["cases"]} == {f"patient001_frame{ed:02d}": "ED", f"patient001_frame{ph.info['es_frame'] + 1:02d}": "ES"}


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


def test_ctrl_c_and_a_full_disk_are_one_line(study, tmp_path, capsys, monkeypatch):
    """Ctrl-C: typer turns KeyboardInterrupt into Exit(130), so "interrupted" was never said;
    a disk that fills during a write raises an OSError naming no file, which read as an
    "unexpected OSError"."""
    import errno

    import medseg.io

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(medseg.io, "read_volume", interrupt)
        assert run_cli(["info", str(study / "img.nii.gz")]) == 130
    # not "a batch goes on with --resume", which it said after every command
    assert capsys.readouterr().err.strip() == "interrupted: medseg info left no output half-written"

    import medseg._files

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(medseg._files, "write_json_atomic", full)
    assert run_cli(["measure", str(study / "gt.nii.gz"), "-o", str(tmp_path / "r.json")]) == 74  # EX_IOERR
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot write the output: No space left on device" in err and "unexpected" not in err


def test_info_prints_text_from_files_as_it_is(study, tmp_path, capsys):
    """A sidecar's label names (or a DICOM description) holding rich markup or an escape
    sequence: `info` raised a MarkupError on "[/]" and passed ESC to the terminal."""
    import shutil

    for name in ("gt.nii.gz", "gt.json"):
        shutil.copy(study / name, tmp_path / name)
    side = json.loads((tmp_path / "gt.json").read_text())
    side["label_map"]["[/]x\x1b]0;T\x07"] = 9
    (tmp_path / "gt.json").write_text(json.dumps(side))
    capsys.readouterr()
    assert run_cli(["info", str(tmp_path / "gt.nii.gz")]) == 0
    out = capsys.readouterr().out
    assert "[/]x" in out and "\x1b" not in out and "\x07" not in out


def test_an_error_after_a_progress_bar_is_the_only_line_on_stderr(tmp_path, capsys):
    """Piped or logged (no terminal), the progress bar is not drawn: its transient bar printed an
    empty line before the one-line error of every command that shows one."""
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((48, 48, 3), np.float32), np.diag([1.5, 1.5, 8.0, 1.0])), str(tmp_path / "blank.nii.gz"))
    assert run_cli(["segment", str(tmp_path / "blank.nii.gz"), "--auto", "-o", str(tmp_path / "s.nii.gz")]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [err.strip()] and err.startswith("error: the image holds no signal")



def test_console_lines_stay_whole_when_not_a_terminal(capsys):
    """Piped or logged, a message is one line however long (rich broke them at column 80,
    "25.0 \\n% of the good ones"); tables still fit the width."""
    from rich.table import Table

    from medseg.cli._app import console, stdout

    msg = "review flags: " + "; ".join(f"{i}.0 % of the good ones" for i in range(8))
    console.print(msg, markup=False)
    stdout.print(msg, markup=False)
    cap = capsys.readouterr()
    assert cap.err == msg + "\n" and cap.out == msg + "\n"
    t = Table("case", "note")
    t.add_row("patient001", "a long note " * 12)
    stdout.print(t)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 5 and all(len(line) <= stdout.width for line in lines)


def test_zero_click_probe_line_gives_slice_runs():
    """A CT's probe line listed 40 and more slice numbers; runs now read as ranges."""
    from medseg.cli.segment_cmd import probe_lines

    prov = {"actions": [{"op": "auto", "probed": [{"structure": "rv", "frame": 0, "slices": [*range(12, 54), 60]}]}]}
    assert probe_lines(prov) == ["zero-click: RV not found by its prompt on frame 0; found by clicks beside the myocardium on slices "
                                 "12-53, 60 (check it)"]
