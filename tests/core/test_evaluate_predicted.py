"""``medseg evaluate --predicted DIR`` (or a ``prediction`` column): labels made before are
scored like the model's own run, without loading the model."""

from __future__ import annotations

import hashlib
import json

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli

SPEC = "lv=1,myo=2,rv=3"


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, phantom):
    """ED and ES frames of the phantom as NIfTI images + references, and PAIRS.csv."""
    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti

    d = tmp_path_factory.mktemp("pairs")
    lm = phantom.label_map.subset(["lv", "myo", "rv"])
    lv = (phantom.labels == lm["lv"]).sum(axis=(1, 2, 3))
    rows = ["image,label,case,phase"]
    for ph, t in (("ED", int(lv.argmax())), ("ES", int(lv.argmin()))):
        vol = phantom.image.with_array(phantom.image.array[t : t + 1], frame_times_s=None)
        nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(d / f"p1_{ph}.nii.gz"))
        write_labels(phantom.labels[t : t + 1], vol, d / f"p1_{ph}_gt.nii.gz", lm)
        rows.append(f"p1_{ph}.nii.gz,p1_{ph}_gt.nii.gz,p1,{ph}")
    (d / "pairs.csv").write_text("\n".join(rows) + "\n")
    return d


def _strip(result):
    for c in result["cases"]:
        for k in ("seconds", "prediction", "prediction_sha256"):
            c.pop(k, None)
    return result


def test_batch_outputs_score_as_the_models_own_run(pairs, tmp_path, capsys):
    """`batch --prompts-from --key-slice` then `evaluate --predicted OUT_DIR` gives the Dice,
    clinical errors and review-flag statistics of `evaluate --prompt key-slice`, and names the
    model the labels came from."""
    out = tmp_path / "out"
    assert run_cli(["batch", str(pairs), "-o", str(out), "--prompts-from", str(pairs), "--label-map", SPEC, "--key-slice"]) == 0
    model_run, scored = tmp_path / "model.json", tmp_path / "scored.json"
    assert run_cli(["evaluate", "--pairs", str(pairs / "pairs.csv"), "--label-map", SPEC, "--prompt", "key-slice", "-o", str(model_run)]) == 0
    capsys.readouterr()
    assert run_cli(["evaluate", "--pairs", str(pairs / "pairs.csv"), "--label-map", SPEC, "--predicted", str(out), "-o", str(scored),
                    "--csv", str(tmp_path / "cases.csv")]) == 0
    assert f"2 volumes, labels in {out}" in " ".join(capsys.readouterr().err.split())
    a, b = (json.loads(p.read_text()) for p in (model_run, scored))
    assert [c["prediction"] for c in b["cases"]] == [str(out / "p1_ED.nii.gz"), str(out / "p1_ES.nii.gz")]
    # which labels were scored, by content: a prediction re-written later does not pass for the one scored
    assert [c["prediction_sha256"] for c in b["cases"]] == [hashlib.sha256((out / f"p1_{ph}.nii.gz").read_bytes()).hexdigest() for ph in ("ED", "ES")]
    assert _strip(b)["cases"] == _strip(a)["cases"]
    assert b["summary"] == a["summary"] and "review" in b["summary"] and b["summary"]["n_clinical_cases"] == 1
    assert b["settings"]["prompt"] is None and b["settings"]["models"] == [
        {"model_id": "default", "model_sha256": a["settings"]["model_sha256"], "adapter_id": None, "adapter_sha256": None, "n_cases": 2}]
    assert "prediction" in (tmp_path / "cases.csv").read_text().splitlines()[0]


def test_labels_of_another_tool_with_their_own_values(pairs, tmp_path, capsys):
    """Labels without a sidecar in other values (--predicted-label-map), here the reference
    itself: Dice 1 and no clinical error; no review statistics (they carry none); structures
    the given map leaves out are listed as not scored, not counted as misses. The same files
    given in a `prediction` column score the same."""
    from medseg.io import read_label_volume

    pred = tmp_path / "reader2"
    pred.mkdir()
    for ph in ("ED", "ES"):
        ref = read_label_volume(pairs / f"p1_{ph}_gt.nii.gz")
        img = nib.load(str(pairs / f"p1_{ph}_gt.nii.gz"))
        swapped = np.select([img.get_fdata() == 1, img.get_fdata() == 3, img.get_fdata() == 2], [3, 1, 2], 0).astype(np.uint8)
        nib.save(nib.Nifti1Image(swapped, img.affine), str(pred / f"p1_{ph}.nii.gz"))
        assert ref.array.max() == 3
    r = tmp_path / "r.json"
    assert run_cli(["evaluate", "--pairs", str(pairs / "pairs.csv"), "--label-map", SPEC, "--predicted", str(pred),
                    "--predicted-label-map", "lv=3,myo=2,rv=1", "-o", str(r)]) == 0
    s = json.loads(r.read_text())["summary"]
    assert s["dice"] == {"lv": 1.0, "myo": 1.0, "rv": 1.0} and s["lvef_mae"] == 0.0 and s["rvef_mae"] == 0.0 and "review" not in s
    assert s["wall_thickening_mae_pct"] == 0.0 and s["agreement"]["wall_thickening"]["n"] == 1
    capsys.readouterr()
    assert run_cli(["evaluate", "--pairs", str(pairs / "pairs.csv"), "--label-map", SPEC, "--predicted", str(pred),
                    "--predicted-label-map", "lv=3", "-o", str(r)]) == 0
    assert "not scored, absent from the predicted labels' map: p1 (myo, rv)" in " ".join(capsys.readouterr().err.split())
    res = json.loads(r.read_text())
    assert res["summary"]["dice"] == {"lv": 1.0} and res["cases"][0]["not_predicted"] == ["myo", "rv"]
    # the prediction column of PAIRS.csv
    lines = (pairs / "pairs.csv").read_text().splitlines()
    (tmp_path / "p.csv").write_text("\n".join([lines[0] + ",prediction"] + [f"{pairs / ln.split(',')[0]},{pairs / ln.split(',')[1]},p1,"
                                               f"{ln.split(',')[3]},{pred / ln.split(',')[0]}" for ln in lines[1:]]) + "\n")
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "p.csv"), "--label-map", SPEC, "--predicted-label-map", "lv=3,myo=2,rv=1",
                    "-o", str(r)]) == 0
    assert json.loads(r.read_text())["summary"]["dice"] == {"lv": 1.0, "myo": 1.0, "rv": 1.0}
    capsys.readouterr()
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "p.csv"), "--label-map", SPEC, "--predicted", str(pred), "-o", str(r)]) == 1
    assert "give one of them" in capsys.readouterr().err


def test_bad_predicted_input_is_one_line_before_any_output(pairs, tmp_path, capsys):
    from medseg.io import read_volume, write_labels

    part = tmp_path / "part"
    part.mkdir()
    vol = read_volume(pairs / "p1_ED.nii.gz")
    write_labels(np.zeros(vol.shape, np.uint8), vol, part / "p1_ED.nii.gz", SPEC)
    small = vol.with_array(vol.array[:, :, :50, :50])
    other = tmp_path / "other"
    other.mkdir()
    for ph in ("ED", "ES"):
        write_labels(np.zeros(small.shape, np.uint8), small, other / f"p1_{ph}.nii.gz", SPEC)
    out = tmp_path / "r.json"
    base = ["evaluate", "--pairs", str(pairs / "pairs.csv"), "--label-map", SPEC, "-o", str(out)]
    cases = [
        (["--predicted", str(part)], "no labels in"),  # p1_ES has none
        (["--predicted", str(pairs)], "are its reference"),  # the references' own folder
        (["--predicted", str(tmp_path / "nothing")], "--predicted must be a folder"),
        (["--predicted", str(other), "--prompt", "box"], "--prompt: not used when scoring labels made before"),
        (["--predicted-label-map", "lv=1"], "--predicted-label-map goes with --predicted"),
        (["--predicted", str(other)], "predicted labels of case p1"),  # another grid
        # a map that does not fit the files: the LV value is not there, theirs are named by nothing
        (["--predicted", str(pairs_swapped(tmp_path, pairs)), "--predicted-label-map", "lv=5,myo=2,rv=3"],
         "hold no lv=5 but value(s) 1 that their label map (lv=5,myo=2,rv=3) does not name"),
    ]
    for extra, msg in cases:
        capsys.readouterr()
        assert run_cli(base + extra) == 1, extra
        err = capsys.readouterr().err.strip()
        assert msg in " ".join(err.split()) and len(err.splitlines()) <= 2 and "Traceback" not in err, (extra, err)
        assert not out.exists()


def pairs_swapped(tmp_path, pairs):
    """The references as predictions, without sidecars (plain files in the references' values)."""
    folder = tmp_path / "plain"
    folder.mkdir(exist_ok=True)
    for ph in ("ED", "ES"):
        img = nib.load(str(pairs / f"p1_{ph}_gt.nii.gz"))
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj).astype(np.uint8), img.affine), str(folder / f"p1_{ph}.nii.gz"))
    return folder


def test_a_broken_sidecar_of_a_prediction_is_refused_unless_its_map_is_given(pairs, tmp_path, capsys):
    """Predicted labels whose sidecar JSON is cut short: without --predicted-label-map the case
    fails naming the sidecar and that option; with it, the labels are read in the map given."""
    import shutil

    pred = tmp_path / "pred"
    pred.mkdir()
    for ph in ("ED", "ES"):
        shutil.copy(pairs / f"p1_{ph}_gt.nii.gz", pred / f"p1_{ph}.nii.gz")
        (pred / f"p1_{ph}.json").write_text('{"label_map": {"lv": 1, "myo"')
    r = tmp_path / "r.json"
    capsys.readouterr()
    assert run_cli(["evaluate", "--pairs", str(pairs / "pairs.csv"), "--label-map", SPEC, "--predicted", str(pred), "-o", str(r)]) != 0
    assert "p1_ED.json beside the labels is not valid JSON" in " ".join(capsys.readouterr().err.split())
    assert run_cli(["evaluate", "--pairs", str(pairs / "pairs.csv"), "--label-map", SPEC, "--predicted", str(pred),
                    "--predicted-label-map", SPEC, "-o", str(r)]) == 0
    assert json.loads(r.read_text())["summary"]["dice"] == {"lv": 1.0, "myo": 1.0, "rv": 1.0}
