"""`medseg batch` case outcomes: --min-confidence with a structure never found (handed over, not
failed), a case failing on a re-run into the same OUT_DIR (its earlier outputs removed), the
summary's confidence of the structures written, prompts entries naming no case, and an unreadable
image with --prompts-from beside it. Tiny phantom studies (1, 6, 96, 96); the confidences are
fixed per case (the scoring is stubbed), as in test_handed_over.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from batch_data import MAP, batch_prompted, stubbed_confidence, write_case

from medseg.cli import run_cli

#: volume confidence (lv, myo, rv) per case; "norv": its RV is taken away before scoring (never found)
CONF = {"ok1": (0.97, 0.97, 0.97), "part": (0.97, 0.80, 0.80), "norv": (0.60, 0.60, 0.0)}


def _fake_score_session(session, structures=None, cal=None, progress=None):
    from medseg.confidence import ConfidenceReport

    case = Path(session.volume.meta["path"]).name.split(".")[0]
    if case == "norv":  # the model found LV and myocardium but no RV on any slice
        session.labels[session.labels == session.label_map["rv"]] = 0
    rep = ConfidenceReport(thresholds={"slice": 0.3, "volume": 0.92})
    conf = dict(zip(("lv", "myo", "rv"), CONF.get(case, (0.97, 0.97, 0.97))))
    rep.volume = {n: conf[n] for n in (structures or session.structures) if (session.labels == session.label_map[n]).any()}
    return rep


@pytest.fixture(scope="module", autouse=True)
def stubbed():
    with stubbed_confidence(_fake_score_session):
        yield


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("studies")
    for i, case in enumerate(CONF):
        write_case(folder, case, seed=30 + i)
    return folder


_batch = batch_prompted


def _rows(out: Path) -> dict[str, dict]:
    return {r["case"]: r for r in json.loads((out / "summary.json").read_text())["cases"]}


def _copy(studies: Path, dest: Path, *cases: str) -> Path:
    dest.mkdir()
    for c in cases:
        for name in (f"{c}.nii.gz", f"{c}_gt.nii.gz"):
            shutil.copy(studies / name, dest / name)
    return dest


def test_low_structures_with_one_never_found_are_handed_over_not_failed(studies, tmp_path):
    """LV and myocardium below --min-confidence, the RV found on no slice: nothing is left to
    write, so the case is handed over (exit 0, its record written, the RV a structure_not_found
    flag of it), not failed "structure(s) never found on any slice: rv"; an earlier run's labels go."""
    inp = _copy(studies, tmp_path / "in", "norv")
    out = tmp_path / "out"
    assert _batch(inp, out) == 0  # no cut-off: written without its RV, flagged
    assert (out / "norv.nii.gz").is_file() and "structure_not_found" in _rows(out)["norv"]["review_flags"].split()
    assert _batch(inp, out, "--min-confidence", "0.9") == 0
    row = _rows(out)["norv"]
    assert row["status"] == "handed_over" and row["handed_over"].split() == ["lv", "myo"], row
    assert "every structure found is below --min-confidence 0.9 (lv, myo); not found: rv" in row["reason"]
    record = json.loads((out / "handed_over" / "norv.json").read_text())
    flags = {(f["code"], f.get("structure")) for f in record["review"]["flags"]}
    assert {("handed_over", "lv"), ("handed_over", "myo"), ("structure_not_found", "rv")} <= flags
    assert not (out / "norv.nii.gz").exists() and not (out / "norv.json").exists()


def test_summary_confidence_is_that_of_the_structures_written(studies, tmp_path):
    """A case keeping its LV (0.97) with myocardium and RV (0.80) handed over: its confidence is
    the lowest of what was written (0.97), the handed-over ones listed beside it; a case handed
    over whole keeps the lowest of those handed over (nothing was written)."""
    inp = _copy(studies, tmp_path / "in", "part", "norv")
    out = tmp_path / "out"
    assert _batch(inp, out, "--min-confidence", "0.9") == 0
    rows = _rows(out)
    assert rows["part"]["status"] == "ok" and rows["part"]["handed_over"].split() == ["myo", "rv"]
    assert rows["part"]["confidence"] == 0.97 and rows["part"]["needs_review"] is True
    assert rows["norv"]["status"] == "handed_over" and rows["norv"]["confidence"] == 0.6
    side = json.loads((out / "part.json").read_text())["provenance"]
    assert side["confidence"]["volume"]["myo"] == 0.8  # the sidecar keeps every structure's confidence


def test_a_case_failing_on_a_rerun_keeps_no_outputs_of_the_earlier_run(studies, tmp_path):
    """A re-run into the same OUT_DIR in which a case fails (its image now unreadable; its
    reference labels now gone) removes the labels, sidecar and review sheet the earlier run wrote,
    so the folder holds no outputs its summary does not vouch for; labels saved by another
    command are kept. --resume then segments the case again and afterwards skips it; a --resume run
    in which a case fails before it runs (no reference) leaves its outputs to later checks and says so."""
    inp = _copy(studies, tmp_path / "in", "ok1", "part")
    out = tmp_path / "out"
    assert _batch(inp, out, "--review-png") == 0
    good = (inp / "ok1.nii.gz").read_bytes()
    (inp / "ok1.nii.gz").write_bytes(b"\x1f\x8b\x08not gzip")
    assert _batch(inp, out, "--review-png") == 1
    row = _rows(out)["ok1"]
    assert row["status"] == "failed" and row["output"] == "" and "cannot read" in row["reason"], row
    assert not any((out / f"ok1{e}").exists() for e in (".nii.gz", ".json", "_review.png"))
    assert (out / "part.nii.gz").is_file() and (out / "part_review.png").is_file()
    (inp / "ok1.nii.gz").write_bytes(good)
    assert _batch(inp, out, "--review-png", "--resume") == 0
    rows = _rows(out)
    assert rows["ok1"]["status"] == "ok" and rows["part"]["status"] == "skipped" and (out / "ok1.nii.gz").is_file()
    assert _batch(inp, out, "--review-png", "--resume") == 0
    assert {r["status"] for r in _rows(out).values()} == {"skipped"}
    (inp / "part_gt.nii.gz").unlink()  # a case failing before it runs (no reference labels now)
    assert _batch(inp, out, "--review-png", "--resume") == 1  # --resume: left for a later run's checks, and said so
    assert "its labels of an earlier run left as they were" in _rows(out)["part"]["reason"] and (out / "part.nii.gz").is_file()
    side = json.loads((out / "ok1.json").read_text())
    side["provenance"]["command"] = "segment"  # ok1's labels saved by another command: not the batch's to remove
    (out / "ok1.json").write_text(json.dumps(side))
    (inp / "ok1_gt.nii.gz").unlink()
    assert _batch(inp, out, "--review-png") == 1
    rows = _rows(out)
    assert "no reference labels for case 'part'" in rows["part"]["reason"] and "no reference labels" in rows["ok1"]["reason"]
    assert not (out / "part.nii.gz").exists() and not (out / "part.json").exists() and not (out / "part_review.png").exists()
    assert (out / "ok1.nii.gz").is_file() and (out / "ok1.json").is_file()


def test_unreadable_image_beside_references_fails_with_the_read_error(studies, tmp_path):
    """--prompts-from INPUT_DIR: an unreadable image with no labels beside it fails as unreadable,
    not as "no reference labels"; and the reason for a readable one names no "or nothing" (the
    bare name is its own image), which labels in another folder may be."""
    from medseg.batch import find_reference
    from medseg.errors import PromptError

    inp = _copy(studies, tmp_path / "in", "ok1")
    (inp / "broken.nii.gz").write_bytes(b"\x1f\x8b\x08not really gzip at all")
    shutil.copy(studies / "part.nii.gz", inp / "nolab.nii.gz")
    out = tmp_path / "out"
    assert _batch(inp, out) == 1
    rows = _rows(out)
    assert rows["broken"]["status"] == "failed" and "cannot read NIfTI" in rows["broken"]["reason"], rows["broken"]
    assert "no reference labels for case 'nolab'" in rows["nolab"]["reason"] and "or nothing" not in rows["nolab"]["reason"]
    with pytest.raises(PromptError, match=r"_manual or nothing, \+"):
        find_reference("nolab", studies, inp / "nolab.nii.gz")  # another folder: nolab.nii.gz there would be its labels


def test_prompts_entries_naming_no_case_are_reported(studies, tmp_path, capsys):
    """An entry of a --prompts file naming no case of the batch ("patient999") is said, as the
    --subjects rows that matched no case are; a file whose entries all name cases says nothing."""
    inp = _copy(studies, tmp_path / "in", "ok1")
    prompt = {"prompts": [{"structure": "lv", "frame": 0, "slice": 3, "box": [30, 30, 60, 60]}]}
    pfile = tmp_path / "prompts.json"
    pfile.write_text(json.dumps({"label_map": {"lv": 1}, "cases": {"ok1": prompt, "patient999": prompt}}))
    capsys.readouterr()
    run_cli(["batch", str(inp), "-o", str(tmp_path / "out"), "--prompts", str(pfile)])
    cap = capsys.readouterr()
    said = " ".join((cap.err + cap.out).split())
    assert _rows(tmp_path / "out")["ok1"]["status"] == "ok"  # the entry for ok1 was the one used
    assert f"prompts: 1 of the 2 cases of {pfile} matched no case of the batch (patient999)" in said
    pfile.write_text(json.dumps({"label_map": {"lv": 1}, "cases": {"ok1": prompt}}))
    run_cli(["batch", str(inp), "-o", str(tmp_path / "out2"), "--prompts", str(pfile)])
    cap = capsys.readouterr()
    assert "matched no case" not in cap.err + cap.out


def test_segment_says_which_structure_was_not_found_when_the_others_are_handed_over(studies, tmp_path, capsys):
    """`medseg segment` hands the same case over (exit 3, nothing written) and says the RV was not
    found rather than "every structure is below" the cut-off."""
    capsys.readouterr()
    out = tmp_path / "norv_out.nii.gz"
    rc = run_cli(["segment", str(studies / "norv.nii.gz"), "-o", str(out), "--prompts-from", str(studies / "norv_gt.nii.gz"),
                  "--label-map", MAP, "--min-confidence", "0.9"])
    got = capsys.readouterr()
    said = got.out + got.err
    assert rc == 3 and not out.exists()
    assert "every structure found is below --min-confidence 0.9 (lv, myo); not found: rv; nothing written (exit code 3)" in said


def test_an_unexpected_error_or_a_skip_keeps_the_earlier_outputs(studies, tmp_path, monkeypatch):
    """A review found the earlier run's labels, sidecars and stored rows deleted when a re-run
    died of a runtime error (out of memory, a bug) rather than of the case's own fault: kept now,
    and the case fails with the error."""
    import medseg.segment

    inp = _copy(studies, tmp_path / "in", "ok1")
    out = tmp_path / "out"
    assert _batch(inp, out) == 0
    before = (out / "ok1.nii.gz").read_bytes()

    def out_of_memory(*a, **k):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(medseg.segment, "segment_volume", out_of_memory)
    assert _batch(inp, out, "--review-png") == 1
    row = _rows(out)["ok1"]
    assert row["status"] == "failed" and "out of memory" in row["reason"]
    assert (out / "ok1.nii.gz").read_bytes() == before and (out / "ok1.json").is_file()


def test_a_failing_case_removes_only_what_batch_wrote(studies, tmp_path):
    """The case's SEG folder loses only the files `--dicom-seg` writes (a user's notes there and
    the folder stay); labels under a sidecar of an earlier medseg that recorded no digest are not
    known to be unchanged: kept; under --resume a case failing in its run keeps its outputs."""
    inp = _copy(studies, tmp_path / "in", "ok1", "part")
    out = tmp_path / "out"
    assert _batch(inp, out) == 0
    seg = out / "ok1_seg"
    seg.mkdir()
    (seg / "ok1.dcm").write_bytes(b"a SEG of an earlier run")
    (seg / "ok1_frame03.json").write_text("{}")
    (seg / "my_notes.txt").write_text("mine")
    side = json.loads((out / "part.json").read_text())
    del side["provenance"]["labels_sha256"]  # a sidecar of an earlier medseg: whether the labels changed is not known
    (out / "part.json").write_text(json.dumps(side))
    good = (inp / "ok1.nii.gz").read_bytes()
    (inp / "ok1.nii.gz").write_bytes(b"\x1f\x8b\x08not gzip")
    (inp / "part_gt.nii.gz").unlink()
    assert _batch(inp, out) == 1
    assert not (out / "ok1.nii.gz").exists() and not (seg / "ok1.dcm").exists() and not (seg / "ok1_frame03.json").exists()
    assert (seg / "my_notes.txt").read_text() == "mine"
    assert (out / "part.nii.gz").is_file() and (out / "part.json").is_file()
    (inp / "ok1.nii.gz").write_bytes(good)
    assert _batch(inp, out) == 1  # ok1 again; part still has no reference labels
    assert (out / "ok1.nii.gz").is_file()
    (inp / "ok1.nii.gz").write_bytes(b"\x1f\x8b\x08not gzip")
    assert _batch(inp, out, "--resume", "--review-png") == 1  # --review-png: ok1 is run again, and fails under --resume
    assert (out / "ok1.nii.gz").is_file() and (out / "ok1.json").is_file()
