"""A clinical-trial core lab's walk: every number traceable to its input, weights and human
edits. Provenance times are UTC with their zone; `measure` says when labels were edited by hand
since `segment` / `batch` wrote them (their sidecar's ``labels_sha256``); a `batch --resume`
after a model upgrade says which kept (corrected) cases hold the old weights' labels."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli

MAP = "lv=1,myo=2,rv=3"


@pytest.fixture()
def far_time_zone(monkeypatch):
    """The machine's clock in UTC+14: a local time passed off as UTC is 14 hours off."""
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _utc(stamp: str) -> datetime.datetime:
    assert isinstance(stamp, str) and stamp.endswith("Z"), stamp
    when = datetime.datetime.fromisoformat(stamp[:-1] + "+00:00")
    assert abs(when - datetime.datetime.now(datetime.UTC)) < datetime.timedelta(hours=1), stamp
    return when


def _frame_files(d: Path, phantom) -> tuple[Path, Path]:
    """One phantom frame as an image (NIfTI) and its labels in medseg's values (no sidecar)."""
    from medseg.io.geometry import medseg_to_nifti

    d.mkdir(parents=True, exist_ok=True)
    vol = phantom.image.with_array(phantom.image.array[:1], frame_times_s=None)
    nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(d / "img.nii.gz"))
    nib.save(nib.Nifti1Image(medseg_to_nifti(phantom.labels[:1].astype(np.uint8), 3), vol.affine), str(d / "gt.nii.gz"))
    return d / "img.nii.gz", d / "gt.nii.gz"


def _written(path: Path, like_image: Path, prov: dict) -> Path:
    """The labels of ``like_image``'s ``gt.nii.gz`` written by medseg with ``prov`` (and their
    ``labels_sha256``, as `batch` records it)."""
    from medseg.batch.kept import labels_sha256
    from medseg.io import read_label_volume, read_volume, write_labels

    lab = read_label_volume(like_image.parent / "gt.nii.gz").array
    write_labels(lab, read_volume(like_image), path, MAP, provenance={**prov, "labels_sha256": labels_sha256(lab)})
    return path


def _edit_by_hand(path: Path) -> None:
    """A reader's correction with nibabel, in place: some myocardium voxels erased."""
    img = nib.load(str(path))
    a = np.asarray(img.dataobj).copy()
    idx = np.argwhere(a == 2)[:40]
    a[tuple(idx.T)] = 0
    nib.save(nib.Nifti1Image(a, img.affine, img.header), str(path))


def _said(capsys) -> str:
    got = capsys.readouterr()
    return " ".join((got.out + got.err).split())


def test_measure_and_session_times_are_utc_with_their_zone(tmp_path, phantom, model, far_time_zone):
    from medseg.session import Session

    img, _ = _frame_files(tmp_path, phantom)
    lab = _written(tmp_path / "lab.nii.gz", img, {"command": "batch"})
    assert run_cli(["measure", str(lab), "-o", str(tmp_path / "r.json")]) == 0
    _utc(json.loads((tmp_path / "r.json").read_text())["inputs"]["created"])
    s = Session(phantom.image, model, phantom.label_map.subset(["lv"]))
    s.mark_reviewed("lv", 0, 2)
    _utc(s.log[-1]["time"])
    _utc(s.provenance()["created"])


def test_measure_says_labels_edited_by_hand_since_the_batch_wrote_them(tmp_path, phantom, capsys):
    img, _ = _frame_files(tmp_path, phantom)
    prov = {"command": "batch", "model_id": "default", "model_sha256": "a" * 64, "adapter_id": None, "adapter_sha256": None, "needs_review": True}
    lab = _written(tmp_path / "case.nii.gz", img, prov)
    rep, csv_out = tmp_path / "r.json", tmp_path / "r.csv"
    assert run_cli(["measure", str(lab), "-o", str(rep)]) == 0
    assert "labels_edited" not in json.loads(rep.read_text())["inputs"] and "changed since medseg wrote them" not in _said(capsys)
    _edit_by_hand(lab)
    assert run_cli(["measure", str(lab), "-o", str(rep), "--csv", str(csv_out)]) == 0
    assert json.loads(rep.read_text())["inputs"]["labels_edited"] == ["labels"]
    assert "case.nii.gz: labels changed since medseg wrote them" in _said(capsys)
    import csv

    with open(csv_out, newline="", encoding="utf-8") as fh:
        assert next(csv.DictReader(fh))["inputs.labels_edited"] == "labels"
    # napari's save over the file records the edit itself (edited_from): nothing to say
    side = tmp_path / "case.json"
    doc = json.loads(side.read_text())
    doc["provenance"]["edited_from"] = doc["provenance"].pop("command")
    side.write_text(json.dumps(doc))
    assert run_cli(["measure", str(lab), "-o", str(rep)]) == 0
    assert "labels_edited" not in json.loads(rep.read_text())["inputs"]


def test_segment_records_its_labels_digest_so_measure_sees_a_later_edit(tmp_path, phantom, model, capsys):
    from medseg.batch.kept import labels_sha256
    from medseg.io import read_label_volume

    img, gt = _frame_files(tmp_path, phantom)
    out = tmp_path / "seg.nii.gz"
    assert run_cli(["segment", str(img), "-o", str(out), "--prompts-from", str(gt), "--label-map", MAP, "--key-slice"]) == 0
    prov = json.loads((tmp_path / "seg.json").read_text())["provenance"]
    assert prov["labels_sha256"] == labels_sha256(read_label_volume(out).array)
    _edit_by_hand(out)
    assert run_cli(["measure", str(out), "-o", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["inputs"]["labels_edited"] == ["labels"]


@pytest.mark.parametrize("same_weights", [False, True])
def test_resume_after_an_upgrade_says_a_kept_case_holds_the_old_weights_labels(tmp_path, phantom, same_weights, capsys):
    """A case corrected and saved by another command (kept, never segmented again); the lab then
    upgrades the model and runs the same batch with --resume: the kept case's labels are the
    old model's, and its reason and the closing line say so."""
    from medseg._files import sha256_path
    from medseg.batch.weights import weights_sha256

    img, _ = _frame_files(tmp_path / "in", phantom)
    (tmp_path / "out").mkdir()
    sha = weights_sha256("default")[0] if same_weights else "a" * 64
    _written(tmp_path / "out" / "img.nii.gz", img, {"command": "segment", "input": str(img.resolve()), "input_sha256": sha256_path(img),
                                                     "model_id": "default", "model_sha256": sha, "adapter_id": None, "adapter_sha256": None,
                                                     "needs_review": False})
    (tmp_path / "in" / "gt.nii.gz").unlink()  # no case of its own
    run_cli(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--auto", "--resume"])
    said = _said(capsys)
    row = json.loads((tmp_path / "out" / "summary.json").read_text())["cases"][0]
    assert row["status"] == "skipped" and row["reason"].startswith("kept: ")
    if same_weights:
        assert "other weights" not in row["reason"] and "other weights" not in said
    else:
        assert row["reason"].endswith("model changed: made with other weights than this run's, its numbers are not this model's")
        assert "1 kept: labels corrected since, not segmented again; 1 of them made with other weights than this run's" in said
