"""METHODS.md's numbers agree with summary.json and cohort.csv (a study whose frames are separate
cases, a failed case, a case handed over whole), it reads each case's sidecar as
:func:`medseg.io.read_sidecar` does everywhere, and it quotes no local path, on a tiny phantom batch."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from batch_data import MAP, write_case

from medseg.cli import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """p1_frame01 + p1_frame02: one study's two frames as separate cases (ACDC's layout); c2: one
    frame; c3: a damaged file (fails). --key-slice --measure."""
    inp, out = tmp_path_factory.mktemp("in"), tmp_path_factory.mktemp("out")
    write_case(inp, "p1_frame01", seed=1, shape=(64, 64), n_slices=5)
    write_case(inp, "p1_frame02", seed=2, shape=(64, 64), n_slices=5)
    write_case(inp, "c2", seed=4, shape=(64, 64), n_slices=5)
    (inp / "c3.nii.gz").write_bytes(b"not a nifti")
    shutil.copy(inp / "c2_gt.nii.gz", inp / "c3_gt.nii.gz")
    assert run_cli(["batch", str(inp), "-o", str(out), "--prompts-from", str(inp), "--label-map", MAP, "--key-slice", "--measure"]) == 1
    return out


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def test_the_text_counts_cases_as_the_summary_and_studies_as_cohort_csv(batch):
    """"segmented in 3 studies" stood beside "2 studies in cohort.csv" and summary.json's 4 cases:
    a study's two frames were two "studies" in one paragraph and one in the next."""
    from medseg._files import read_medseg_csv

    text, s = (batch / "METHODS.md").read_text(encoding="utf-8"), _summary(batch)
    assert (s["n_cases"], s["n_ok"], s["n_failed"]) == (4, 3, 1)
    studies = [r for r in read_medseg_csv(batch / "cohort.csv") if r["per_study"] == "TRUE"]
    assert sorted(r["case"] for r in studies) == ["c2", "p1"]
    assert f"segmented in {s['n_ok'] + s['n_skipped']} cases (one image file or folder each)" in text
    assert f"{s['n_failed']} case failed (" in text
    assert f"flagged {s['n_needs_review']} of the 3 cases segmented for review" in text  # none handed over: the summary's count
    assert f"Cases (summary.json): {s['n_cases']} ({s['n_ok']} segmented in the last run" in text
    assert f"({len(studies)} studies in cohort.csv; 1 of them measured from 2 cases, the separate images of their frames" in text
    assert not re.search(r"\b3 studies\b", text)  # the three segmented images are cases, not studies


def test_a_case_handed_over_is_in_the_review_count_as_in_the_summary(batch, tmp_path):
    """summary.json counts a case handed over whole as needing review; the paragraph counted
    only the flagged cases it had labels of, and the two numbers disagreed unexplained."""
    from medseg.methods import methods_text

    out = tmp_path / "out"
    shutil.copytree(batch, out)
    s = _summary(out)
    for row in s["cases"]:
        if row["case"] == "c2":
            row.update(status="handed_over", output="", needs_review=True, reason="handed over for manual review: every structure is below --min-confidence 0.9")
    s.update(n_ok=s["n_ok"] - 1, n_handed_over=1, n_needs_review=sum(bool(r["needs_review"]) for r in s["cases"]))
    (out / "summary.json").write_text(json.dumps(s), encoding="utf-8")
    text = methods_text(out)
    flagged = int(re.search(r"flagged (\d+) of the 2 cases segmented for review", text).group(1))
    assert flagged + 1 == s["n_needs_review"]
    assert f"In all, {s['n_needs_review']} of the 4 cases need review (summary.json, those handed over included)." in text
    assert "1 case handed over for manual segmentation" in text


def test_a_failure_quotes_the_file_name_not_the_local_path(batch):
    """"1 study failed (cannot read NIfTI file /home/me/in/c3.nii.gz: ...)": the input's path
    inside the reason reached a paper's text."""
    text = (batch / "METHODS.md").read_text(encoding="utf-8")
    src = next(r["input"] for r in _summary(batch)["cases"] if r["case"] == "c3")
    assert str(Path(src).parent) not in text and "(cannot read NIfTI file c3.nii.gz: not a NIfTI file" in text


@pytest.mark.parametrize("damage", ["bom", "nested", "bad_map", "truncated", "not_object", "none"])
def test_sidecars_are_read_as_read_sidecar_reads_them(batch, tmp_path, damage):
    """methods parsed each sidecar with json.loads: one nested too deep raised RecursionError
    (METHODS.md was not written), one whose label map is invalid ({"lv": -1}) was described while
    every other command refuses it. A case is left out exactly when read_sidecar gives nothing."""
    from medseg.io import read_sidecar
    from medseg.io.writers import sidecar_problem
    from medseg.methods import gather

    out = tmp_path / "out"
    shutil.copytree(batch, out)
    side = out / "c2.json"
    good = side.read_text(encoding="utf-8")
    if damage == "bom":
        side.write_bytes(b"\xef\xbb\xbf" + good.encode())
    elif damage == "nested":
        side.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    elif damage == "bad_map":
        obj = json.loads(good)
        obj["label_map"] = {"lv": -1, "myo": 2, "rv": 3}
        side.write_text(json.dumps(obj), encoding="utf-8")
    elif damage == "truncated":
        side.write_text(good[: len(good) // 2], encoding="utf-8")
    elif damage == "not_object":
        side.write_text("[1, 2]", encoding="utf-8")
    s = _summary(out)
    for row in s["cases"]:  # the copy's own files
        row["output"] = str(out / Path(row["output"]).name) if row["output"] else ""
    (out / "summary.json").write_text(json.dumps(s), encoding="utf-8")
    run = gather(out)
    readable = sidecar_problem(out / "c2.nii.gz") is None and read_sidecar(out / "c2.nii.gz") is not None
    if damage != "bom":  # a byte-order mark: as read_sidecar decides (it refuses one today)
        assert readable == (damage == "none")
    assert ("c2" in run.unreadable) == (not readable)
    assert ("c2" in [st.case for st in run.studies]) == readable


def test_a_moved_output_folder_is_still_described(batch, tmp_path):
    """summary.json names each output by its absolute path: a batch folder copied elsewhere (to
    write the paper on another machine) had every sidecar "unreadable"."""
    from medseg.methods import methods_text

    shutil.copytree(batch, tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")
    s = _summary(tmp_path / "b")
    s["cases"] = [{**r, "output": r["output"].replace(str(batch), str(tmp_path / "a"))} for r in s["cases"]]
    (tmp_path / "b" / "summary.json").write_text(json.dumps(s), encoding="utf-8")
    text = methods_text(tmp_path / "b")
    assert "segmented in 3 cases" in text and "could not be read" not in text


def test_a_study_of_cases_whose_names_hold_spaces_counts_each_case_once():
    """cohort.csv's ``phases`` joins the cases' label files with spaces; the count split it on
    whitespace, so "pat 1_ED.nii.gz pat 1_ES.nii.gz" was "measured from 4 cases"."""
    from medseg._methods_facts import _joined

    assert "1 of them measured from 2 cases" in _joined([{"phases": "pat 1_ED.nii.gz pat 1_ES.nii.gz"}])
    assert "1 of them measured from 3 cases" in _joined([{"phases": "a b_frame01.nii.gz a b_frame05.nii.gz a b_frame09.nii.gz"}])
    assert "1 of them measured from 4 cases" in _joined([{"views": "4CH_ED 4CH_ES 2CH_ED 2CH_ES"}])


def test_a_copied_output_folder_is_described_from_its_own_sidecars(batch, tmp_path):
    """A batch folder copied (not moved) and the original run again with other options: the
    copy's text read the original's sidecars through summary.json's absolute paths."""
    from medseg.methods import methods_text

    copy = tmp_path / "copy"
    shutil.copytree(batch, copy)
    c2 = next(r for r in _summary(batch)["cases"] if r["case"] == "c2")
    side = Path(c2["output"]).with_suffix("").with_suffix(".json")
    original = side.read_text(encoding="utf-8")
    try:
        side.write_text("{ damaged", encoding="utf-8")  # the original folder's sidecar, changed since the copy
        text = methods_text(copy)
        assert "could not be read" not in text and "segmented in 3 cases" in text
    finally:
        side.write_text(original, encoding="utf-8")
