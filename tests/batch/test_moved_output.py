"""A batch output folder moved (another disk), copied or zipped to a collaborator, or mounted at
another path on a cluster's nodes: the files inside it are found where the folder is now, a
``--resume`` there segments and draws nothing again, and nothing reads a stale file at the place
the folder was written. Tiny phantom stacks (1, 4, 48, 48): an ED/ES pair ``s1_ED`` / ``s1_ES``
(a study row) and ``s2``; the fixture runs the model once (~8 s)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from batch_data import MAP, write_case

from medseg.cli import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CASES = ("s1_ED", "s1_ES", "s2")


def _batch(studies: Path, out: Path, *extra: str) -> int:
    return run_cli(["batch", str(studies), "-o", str(out), "--prompts-from", str(studies), "--key-slice", "--label-map", MAP,
                    "--measure", "--pdf", *extra])


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, Path]:
    """(studies folder, OUT_DIR of `batch --measure --pdf`), never changed by a test: each copies it."""
    studies, out = tmp_path_factory.mktemp("studies"), tmp_path_factory.mktemp("written") / "out"
    for case in CASES:
        write_case(studies, case, seed=6 if case == "s2" else 5, shape=(48, 48), n_slices=4)
    assert _batch(studies, out) == 0
    return studies, out


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["case"]: r for r in csv.DictReader(fh)}


def test_a_moved_folder_resumes_without_segmenting_or_drawing_again(written, tmp_path, monkeypatch):
    """``mv OUT elsewhere/OUT2`` then the same command with ``-o elsewhere/OUT2 --resume``: every
    case skipped as complete, every page kept (the study row's page was drawn again: its key held
    the label files' absolute paths, which only name the folder), and the tables name the files
    where they are now."""
    import medseg.batch.run as run
    import medseg.measure.study_pdf as sp

    studies, out = written
    first = shutil.copytree(out, tmp_path / "first")  # the folder as the batch left it (times kept, as mv to another disk keeps them)
    moved = tmp_path / "elsewhere" / "OUT2"
    moved.parent.mkdir()
    shutil.move(str(first), str(moved))
    drawn, segmented = [], []
    real_pdf, real_segment = sp.write_study_pdf, run._segment_case
    monkeypatch.setattr(sp, "write_study_pdf", lambda rep, path, **kw: drawn.append(Path(path).name) or real_pdf(rep, path, **kw))
    monkeypatch.setattr(run, "_segment_case", lambda case, *a: segmented.append(case.case) or real_segment(case, *a))
    assert _batch(studies, moved, "--resume") == 0
    assert segmented == [] and drawn == []
    summary, cohort = _rows(moved / "summary.csv"), _rows(moved / "cohort.csv")
    assert {c: summary[c]["reason"] for c in CASES} == dict.fromkeys(CASES, "complete output from an earlier run")
    assert {c: summary[c]["output"] for c in CASES} == {c: str(moved / f"{c}.nii.gz") for c in CASES}
    assert {c: cohort[c]["pdf"] for c in (*CASES, "s1")} == {c: str(moved / "pdf" / f"{c}.pdf") for c in (*CASES, "s1")}
    assert cohort["s1"]["lv.ef_pct"]


@pytest.mark.slow  # ~16 s on the shared 2-core CPU: the three cases segmented again, in two shards
def test_shards_run_at_two_mount_paths_merge_the_files_where_the_folder_is(written, tmp_path):
    """A cluster's array job whose nodes mount OUT_DIR at other paths (here: shard 1 wrote it at one
    path, shard 2 at another): the merging shard measured the ED/ES study row from the label file
    path shard 1 recorded, gone on its node ("not measured"), and wrote that path into the tables.
    The input folder too is mounted at another path on each node: the tables name the inputs where
    the merging node reads them (a DICOM study row reads its patient's data there)."""
    studies, _ = written
    node1, node2 = tmp_path / "node1" / "out", tmp_path / "node2" / "out"
    data1 = shutil.copytree(studies, tmp_path / "node1" / "studies")
    data2 = shutil.copytree(studies, tmp_path / "node2" / "studies")
    assert _batch(data1, node1, "--shard", "1/2") == 0  # s1_ED, s2
    shutil.move(str(node1), str(node2))
    assert _batch(data2, node2, "--shard", "2/2") == 0  # s1_ES, and the merge
    summary, cohort = _rows(node2 / "summary.csv"), _rows(node2 / "cohort.csv")
    assert {c: summary[c]["output"] for c in CASES} == {c: str(node2 / f"{c}.nii.gz") for c in CASES}
    assert {c: Path(summary[c]["input"]).parent for c in CASES} == dict.fromkeys(CASES, data2)
    assert {c: summary[c]["pdf"] for c in CASES} == {c: str(node2 / "pdf" / f"{c}.pdf") for c in CASES}
    assert cohort["s1"]["lv.ef_pct"] and not cohort["s1"].get("measure_note")
    assert cohort["s1"]["pdf"] == str(node2 / "pdf" / "s1.pdf") and (node2 / "pdf" / "s1.pdf").is_file()
    saved = json.loads((node2 / "summary.json").read_text(encoding="utf-8"))
    assert not any(str(node1) in json.dumps(r) for r in saved["cases"])


def test_methods_of_a_copy_never_read_the_original_folders_files(written, tmp_path):
    """A copy of the folder whose case was removed there (to run it again): METHODS.md of the copy
    described that case from the original folder's sidecar, which summary.json's absolute path
    still named (a folder run again since with other options, or another machine's file)."""
    from medseg.methods import gather

    _, out = written
    copy = shutil.copytree(out, tmp_path / "copy")
    for name in ("s2.nii.gz", "s2.json"):
        (copy / name).unlink()
    run = gather(copy)
    assert run.unreadable == ["s2"] and sorted(st.case for st in run.studies) == ["s1_ED", "s1_ES"]
    assert sorted(st.case for st in gather(out).studies) == list(CASES)  # the original, as it is
