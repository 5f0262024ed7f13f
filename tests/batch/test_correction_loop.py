"""The correction loop after a cohort batch (docs/batch.md, *Correcting a batch*): a flagged case
corrected in napari (the segmentation widget's controller: Load session, paint, Mark reviewed,
Save labels over ``OUT/<case>.nii.gz``; or the reader + writer: a label layer opened from the
batch's output, painted and saved over it), then ``medseg batch --resume --measure`` and
``medseg evaluate --predicted OUT``. A re-run used to segment the corrected case again
(``redone: input changed``), replacing the corrected labels without a word."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from batch_data import MAP, read_labels, write_case

from medseg.cli import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RV = 3


def _batch(inp: Path, out: Path, *extra: str) -> int:
    return run_cli(["batch", str(inp), "-o", str(out), "--prompts-from", str(inp), "--label-map", MAP, "--measure", "--review-png", *extra])


def _summary(out: Path) -> dict[str, dict]:
    return {r["case"]: r for r in json.loads((out / "summary.json").read_text())["cases"]}


def _cohort(out: Path) -> dict[str, dict]:
    with open(out / "cohort.csv", newline="", encoding="utf-8") as fh:
        return {r["case"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def batched(tmp_path_factory) -> tuple[Path, Path]:
    """Two phantom studies (with references) and the batch's outputs."""
    root = tmp_path_factory.mktemp("loop")
    for i, case in enumerate(("c1", "c2")):
        write_case(root / "in", case, seed=20 + i, shape=(64, 64), n_slices=4)
    assert _batch(root / "in", root / "out") == 0
    return root / "in", root / "out"


@pytest.fixture()
def out(batched, tmp_path) -> Path:
    shutil.copytree(batched[1], tmp_path / "out")
    return tmp_path / "out"


def _correct_in_napari(studies: Path, out: Path, case: str) -> np.ndarray:
    """As the reviewer with the segmentation widget: Load session (the batch's sidecar), erase the
    RV on its largest slice with the brush, check, mark every flag reviewed, save over the case."""
    from medseg_napari._controller import SegmentController
    from medseg_napari._review import ReviewList

    from medseg.io import read_volume
    from medseg.models import load_model

    vol = read_volume(studies / f"{case}.nii.gz")
    buf = np.zeros(vol.shape, np.uint8)
    ctl = SegmentController(vol, buf, load_model("default"), source=str(studies / f"{case}.nii.gz"))
    assert ctl.load_session(out / f"{case}.json") == []
    assert np.array_equal(buf, read_labels(out / f"{case}.nii.gz"))  # the batch's labels, replayed
    z = int(np.argmax((buf[0] == RV).sum(axis=(1, 2))))
    buf[0, z][buf[0, z] == RV] = 0  # napari's eraser writes the layer's buffer
    ctl.mark_painted()
    ctl.record_edits()  # the widget records a stroke once napari has written it
    review = ReviewList(ctl.session)
    review.check()
    for i in range(len(review.rows)):
        review.mark_reviewed(i)
    ctl.save(out / f"{case}.nii.gz")
    return buf.copy()


def test_resume_keeps_and_remeasures_labels_corrected_in_napari(batched, out):
    studies = batched[0]
    rv_before = float(_cohort(out)["c1"]["volumes_ml.rv"])
    corrected = _correct_in_napari(studies, out, "c1")
    saved = (out / "c1.nii.gz").read_bytes()
    prov = json.loads((out / "c1.json").read_text())["provenance"]
    assert prov["tool"] == "medseg-napari" and "command" not in prov
    ops = [a["op"] for a in prov["actions"]]
    marks = ops.count("review")
    assert marks >= 1 and ops[-1 - marks:] == ["edit"] + ["review"] * marks  # the brush, then the review marks
    assert all(a.get("time") for a in prov["actions"] if a["op"] == "review")
    assert prov["needs_review"] is False  # every flag marked reviewed
    sheet = (out / "c1_review.png").read_bytes()

    assert _batch(studies, out, "--resume") == 0
    assert (out / "c1.nii.gz").read_bytes() == saved  # not segmented again
    assert np.array_equal(read_labels(out / "c1.nii.gz"), corrected)
    row = _summary(out)["c1"]
    assert row["status"] == "skipped" and row["reason"].startswith("kept: labels edited by hand in medseg-napari (1 edit")
    assert row["needs_review"] is False
    assert _summary(out)["c2"]["reason"] == "complete output from an earlier run"
    assert float(_cohort(out)["c1"]["volumes_ml.rv"]) < rv_before  # measured from the corrected labels
    assert (out / "c1_review.png").read_bytes() != sheet  # the sheet redrawn from them

    assert _batch(studies, out) == 0  # a plain re-run (no --resume) keeps them too
    assert (out / "c1.nii.gz").read_bytes() == saved
    assert _summary(out)["c1"]["reason"].startswith("kept: ")


def test_a_label_layer_opened_from_the_batch_output_is_saved_over_it_with_its_edit(batched, out, capsys):
    """File > Save Selected Layer(s) on the labels opened from OUT/<case>.nii.gz: refused as "the
    labels would replace the image the labels were drawn on"; saved elsewhere, the sidecar lost
    the batch's provenance."""
    from medseg_napari._reader import read_image
    from medseg_napari._writer import write_label_layer

    studies = batched[0]
    data, kwargs, kind = read_image(str(out / "c2.nii.gz"))[0]
    assert kind == "labels"
    data = np.array(data)
    z = int(np.argmax((data[0] == RV).sum(axis=(1, 2))))
    data[0, z][data[0, z] == RV] = 0
    write_label_layer(out / "c2.nii.gz", data, kwargs)
    prov = json.loads((out / "c2.json").read_text())["provenance"]
    assert prov["edited_from"] == "batch" and "command" not in prov
    assert prov["actions"][-1]["op"] == "edit" and prov["actions"][-1]["slices"][0]["slice"] == z
    assert prov["source"] == str((studies / "c2.nii.gz").resolve())
    saved = (out / "c2.nii.gz").read_bytes()

    assert _batch(studies, out, "--resume") == 0
    assert (out / "c2.nii.gz").read_bytes() == saved
    assert _summary(out)["c2"]["reason"].startswith("kept: labels edited by hand in medseg-napari (1 edit")
    assert "(1 kept: labels corrected since" in capsys.readouterr().err

    # the edit replays: segment --replay gives the corrected labels
    assert run_cli(["segment", str(studies / "c2.nii.gz"), "-o", str(out.parent / "replay.nii.gz"), "--replay", str(out / "c2.json")]) == 0
    assert np.array_equal(read_labels(out.parent / "replay.nii.gz"), read_labels(out / "c2.nii.gz"))


def test_hand_saved_labels_of_another_image_fail_the_case_and_stay(batched, out):
    studies = batched[0]
    side = json.loads((out / "c1.json").read_text())
    side["provenance"] = {**side["provenance"], "tool": "medseg-napari", "input_sha256": "0" * 64}
    del side["provenance"]["command"]
    (out / "c1.json").write_text(json.dumps(side))
    saved = (out / "c1.nii.gz").read_bytes()
    assert _batch(studies, out, "--resume") == 1
    row = _summary(out)["c1"]
    assert row["status"] == "failed" and "for another image" in row["reason"] and "not overwritten" in row["reason"]
    assert (out / "c1.nii.gz").read_bytes() == saved


def test_evaluate_predicted_says_which_labels_were_edited_by_hand(batched, out, tmp_path, capsys):
    from medseg.edits import edited_by_hand

    studies = batched[0]
    _correct_in_napari(studies, out, "c1")
    report = tmp_path / "eval.json"
    assert run_cli(["evaluate", "--pairs", str(studies), "--label-map", MAP, "--predicted", str(out), "-o", str(report)]) == 0
    cases = {c["case"]: c for c in json.loads(report.read_text())["cases"]}
    assert cases["c1"].get("edited_by_hand") is True and "edited_by_hand" not in cases["c2"]
    assert "note: 1 case holds labels edited by hand after the model (c1" in capsys.readouterr().err
    assert json.loads(report.read_text())["summary"]["review"]["volumes"]["n"] == len(cases["c2"]["dice"])  # c1 left out
    assert not edited_by_hand(json.loads((out / "c2.json").read_text())["provenance"])


def test_needs_review_is_cleared_only_when_every_flag_is_marked_reviewed():
    from medseg_napari._review import review_provenance

    flags = [{"code": "needs_review", "level": "slice", "structure": "rv", "frame": 0, "slice": 2, "confidence": 0.5},
             {"code": "needs_review", "level": "volume", "structure": "myo", "confidence": 0.8}]
    review = {"needs_review": True, "flags": flags, "confidence": {}, "reviewed": []}
    assert review_provenance(review, 1)["needs_review"] is True
    one = [{"op": "review", "structure": "rv", "frame": 0, "slice": 2, "note": "needs_review"}]
    assert review_provenance({**review, "reviewed": one}, 1) | {"confidence": None} == {
        "confidence": None, "review": {"needs_review": True, "flags": flags}, "needs_review": True, "flags_reviewed": 1}
    both = one + [{"op": "review", "structure": "myo", "frame": None, "slice": None, "note": "needs_review"}]
    out = review_provenance({**review, "reviewed": both}, 1)
    assert out["needs_review"] is False and out["flags_reviewed"] == 2
    assert out["review"]["needs_review"] is True  # the flags themselves are kept as found


def test_labels_changed_in_another_program_under_the_batch_sidecar_are_kept(batched, out):
    """Labels corrected in ITK-SNAP or 3D Slicer are saved over OUT/<case>.nii.gz and the batch's
    sidecar stays: the batch took them for its own output and a re-run without --resume (or with
    other settings) segmented the case again over them. The sidecar's labels_sha256 tells."""
    import nibabel as nib

    studies = batched[0]
    path = out / "c1.nii.gz"
    assert json.loads((out / "c1.json").read_text())["provenance"]["labels_sha256"]
    img = nib.load(str(path))
    data = np.asarray(img.dataobj).copy()
    assert (data == RV).any()
    data[data == RV] = 0  # the RV erased, as another program saves it (the sidecar left as it was)
    nib.save(nib.Nifti1Image(data, img.affine, img.header), str(path))
    edited = read_labels(path)

    assert _batch(studies, out) == 0  # no --resume: every batch output is redone, this one is kept
    assert np.array_equal(read_labels(path), edited)
    rows = _summary(out)
    assert rows["c1"]["status"] == "skipped" and rows["c1"]["reason"].startswith("kept: labels changed since the batch wrote them")
    assert rows["c2"]["status"] == "ok"  # the batch's own, unchanged output: segmented again as asked
    assert _cohort(out)["c1"]["volumes_ml.rv"] in ("", "0", "0.0")  # measured from the edited labels: no RV left
