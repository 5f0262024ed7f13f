"""`medseg batch --measure --pdf`: each measured case's page and each study row's (here the ED/ES
pair ``s1_ED`` / ``s1_ES``) in OUT_DIR/pdf/, named in summary.csv and cohort.csv; ``--resume``
writes a missing or older page (measuring that case again) and keeps a fresh one; a page that
fails is a note, not a failed batch; ``--pdf`` without ``--measure`` refused in one line.
Tiny phantom stacks (1, 4, 48, 48); the fixture runs the model once."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from batch_data import MAP, write_case

from medseg.cli import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CASES = ("s1_ED", "s1_ES")


def _batch(studies: Path, out: Path, *extra: str) -> int:
    return run_cli(["batch", str(studies), "-o", str(out), "--prompts-from", str(studies), "--key-slice", "--label-map", MAP,
                    "--workers", "1", "--measure", *extra])


@pytest.fixture(scope="module")
def paged(tmp_path_factory) -> tuple[Path, Path]:
    """(studies folder, OUT_DIR of `batch --measure --pdf` of an ED and an ES stack of study s1)."""
    studies, out = tmp_path_factory.mktemp("studies"), tmp_path_factory.mktemp("paged") / "out"
    for case in CASES:
        write_case(studies, case, seed=5, shape=(48, 48), n_slices=4)
    assert _batch(studies, out, "--pdf") == 0
    return studies, out


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["case"]: r for r in csv.DictReader(fh)}


def _spy(monkeypatch) -> list[dict]:
    """The pages written (their ``case`` and phases), each still written."""
    import medseg.measure.study_pdf as sp

    seen: list[dict] = []
    real = sp.write_study_pdf
    monkeypatch.setattr(sp, "write_study_pdf", lambda rep, path, **kw: seen.append({"path": Path(path), **kw}) or real(rep, path, **kw))
    return seen


def test_a_page_per_case_and_per_study_named_in_the_tables(paged):
    _, out = paged
    pages = {p.name: p.read_bytes() for p in (out / "pdf").iterdir()}
    assert sorted(pages) == ["s1.pdf", "s1_ED.pdf", "s1_ES.pdf"]
    assert all(b.startswith(b"%PDF") and len(b) > 5000 for b in pages.values())
    summary, cohort = _rows(out / "summary.csv"), _rows(out / "cohort.csv")
    assert {c: summary[c]["pdf"] for c in CASES} == {c: str(out / "pdf" / f"{c}.pdf") for c in CASES}
    assert cohort["s1"]["pdf"] == str(out / "pdf" / "s1.pdf") and cohort["s1"]["per_study"] == "TRUE"
    assert cohort["s1"]["lv.ef_pct"] and cohort["s1_ED"]["pdf"].endswith("s1_ED.pdf")


def test_study_page_shows_ed_and_es_contours(paged, tmp_path, monkeypatch):
    studies, out = paged
    seen = _spy(monkeypatch)
    again = shutil.copytree(out, tmp_path / "again")
    (again / "pdf" / "s1.pdf").unlink()  # drawn again on resume
    assert _batch(studies, again, "--pdf", "--resume") == 0
    study = [s for s in seen if s["path"].name == "s1.pdf"]
    assert len(study) == 1 and study[0]["case"] == "s1" and sorted(study[0]["labels"]) == ["ED", "ES"]
    assert all(study[0]["labels"][k].shape == (4, 48, 48) for k in ("ED", "ES"))
    assert set(study[0]["confidence"]) == {"ed", "es"}  # the model's, from the cases' sidecars
    assert study[0]["images"] is not None and sorted(study[0]["images"]) == ["ED", "ES"]  # the stacks segmented, under the contours


def test_resume_keeps_fresh_pages_and_writes_a_missing_one(paged, tmp_path, monkeypatch):
    import medseg.batch.measure_rows as mr

    studies, out = paged
    again = shutil.copytree(out, tmp_path / "again")
    measured: list[str] = []
    real = mr._measure
    monkeypatch.setattr(mr, "_measure", lambda out_, options, case_id, *a, **k: measured.append(case_id) or real(out_, options, case_id, *a, **k))
    assert _batch(studies, again, "--pdf", "--resume") == 0
    assert measured == []  # both pages fresh: the stored rows reused
    (again / "pdf" / "s1_ES.pdf").unlink()
    assert _batch(studies, again, "--pdf", "--resume") == 0
    assert measured == ["s1_ES"] and (again / "pdf" / "s1_ES.pdf").is_file()
    assert _rows(again / "summary.csv")["s1_ES"]["pdf"] == str(again / "pdf" / "s1_ES.pdf")


def test_resume_with_pdf_of_a_batch_measured_without(paged, tmp_path):
    studies, out = paged
    plain = shutil.copytree(out, tmp_path / "plain")
    shutil.rmtree(plain / "pdf")
    assert _batch(studies, plain, "--resume") == 0  # no --pdf: no pages, no column
    assert not (plain / "pdf").exists() and "pdf" not in _rows(plain / "summary.csv")["s1_ED"]
    assert _batch(studies, plain, "--resume", "--pdf") == 0
    assert sorted(p.name for p in (plain / "pdf").iterdir()) == ["s1.pdf", "s1_ED.pdf", "s1_ES.pdf"]


def test_a_failing_page_is_a_note_not_a_failure(paged, tmp_path, monkeypatch):
    import medseg.measure.study_pdf as sp

    studies, out = paged
    again = shutil.copytree(out, tmp_path / "again")
    real = sp.write_study_pdf

    def fails_for_es(rep, path, **kw):
        if Path(path).name == "s1_ES.pdf":
            raise RuntimeError("no room on the page")
        return real(rep, path, **kw)

    monkeypatch.setattr(sp, "write_study_pdf", fails_for_es)
    (again / "pdf" / "s1_ES.pdf").unlink()  # written again on resume
    assert _batch(studies, again, "--pdf", "--resume") == 0
    row = _rows(again / "summary.csv")["s1_ES"]
    assert row["status"] == "skipped" and row["pdf"] == "" and "study page not written: no room on the page" in row["measure_note"]
    assert row["volumes_ml.lv"]  # measured all the same
    assert not (again / "pdf" / "s1_ES.pdf").exists() and (again / "pdf" / "s1.pdf").is_file()


def test_shards_write_their_cases_pages_and_the_merge_the_studys(paged, tmp_path):
    studies, _ = paged
    out = tmp_path / "out"
    assert _batch(studies, out, "--pdf", "--shard", "1/2") == 0
    assert sorted(p.name for p in (out / "pdf").iterdir()) == ["s1_ED.pdf"]  # its case; the study waits for the merge
    assert _batch(studies, out, "--pdf", "--shard", "2/2") == 0
    assert sorted(p.name for p in (out / "pdf").iterdir()) == ["s1.pdf", "s1_ED.pdf", "s1_ES.pdf"]
    assert _rows(out / "cohort.csv")["s1"]["pdf"] == str(out / "pdf" / "s1.pdf")
    assert _rows(out / "summary.csv")["s1_ED"]["pdf"] == str(out / "pdf" / "s1_ED.pdf")


def test_pdf_needs_measure(tmp_path, capsys):
    studies, out = tmp_path / "in", tmp_path / "out"
    write_case(studies, "c1", seed=1, shape=(48, 48), n_slices=4)
    capsys.readouterr()
    assert run_cli(["batch", str(studies), "-o", str(out), "--prompts-from", str(studies), "--label-map", MAP, "--pdf"]) == 1
    err = capsys.readouterr().err
    assert "--pdf writes each study's measurements on a page: add --measure" in err and "Traceback" not in err
    assert not out.exists()


def _labels_case(folder: Path, case: str, lab, like) -> dict:
    from medseg.io import write_labels

    out = folder / f"{case}.nii.gz"
    write_labels(lab, like, out, MAP if like.modality != "US" else "lv=1,myo=2,la=4")
    return {"case": case, "status": "ok", "output": str(out), "input": f"{case}.nii.gz"}


def test_frames_and_echo_study_rows_get_their_pages(tmp_path, monkeypatch):
    """No model: the study rows of ACDC-like frames (``p1_frame01``, ``p1_frame03``) and of
    apical views (``e1_4CH_ED`` ...) measured from labels written here, each with its page; a
    study not measured keeps no older page."""
    import numpy as np

    from medseg.batch import echo_study_rows, stack_study_rows
    from medseg.io import Volume
    from medseg.phantoms import cine_sax_phantom, echo_apical_phantom

    seen = _spy(monkeypatch)
    ph = cine_sax_phantom(n_frames=4, n_slices=4, shape=(48, 48), seed=2)
    like = Volume(ph.image.array[:1], ph.image.affine)
    frames = [_labels_case(tmp_path, f"p1_frame{t + 1:02d}", ph.labels[t], like) for t in (0, 2)]
    (tmp_path / "pdf").mkdir()
    (tmp_path / "pdf" / "p2.pdf").write_bytes(b"old")  # a study that is not measured now
    failed = [{"case": "p2_frame01", "status": "failed", "output": "", "input": "x"}, {"case": "p2_frame02", "status": "failed", "output": "", "input": "x"}]
    rows = {r["case"]: r for r in stack_study_rows(frames + failed, pages=tmp_path)}
    assert rows["p1"]["pdf"] == str(tmp_path / "pdf" / "p1.pdf") and (tmp_path / "pdf" / "p1.pdf").read_bytes().startswith(b"%PDF")
    assert "pdf" not in rows["p2"] and not (tmp_path / "pdf" / "p2.pdf").exists()
    page = next(s for s in seen if s["case"] == "p1")
    assert page["frames"] == {"ED": rows["p1"]["cohort_row"]["ed_frame"], "ES": rows["p1"]["cohort_row"]["es_frame"]}
    assert set(page["frames"].values()) <= {1, 3} and sorted(page["labels"]) == ["ED", "ES"]  # the frames' numbers, as named

    views = []
    for view, name in (("a4c", "4CH"), ("a2c", "2CH")):
        ep = echo_apical_phantom(view, n_frames=8, seed=2)
        for phase in ("ED", "ES"):
            lab = ep.labels[ep.info[f"{phase.lower()}_frame"], 0]
            lab = np.where(np.isin(lab, (1, 2, 4)), lab, 0).astype(np.uint8)
            echo_like = Volume(np.zeros((1, 1, *lab.shape), np.float32), np.diag([0.3, 0.3, 1.0, 1.0]), modality="US")
            views.append(_labels_case(tmp_path, f"e1_{name}_{phase}", lab, echo_like))
    (row,) = echo_study_rows(views, pages=tmp_path)
    assert row["pdf"] == str(tmp_path / "pdf" / "e1.pdf") and (tmp_path / "pdf" / "e1.pdf").read_bytes().startswith(b"%PDF")
    page = next(s for s in seen if s["case"] == "e1")
    assert set(page["confidence"]) <= {"ed", "es", "a2c_ed", "a2c_es"} and all(v.shape[0] == 1 for v in page["labels"].values())
    assert echo_study_rows(views)[0].get("pdf") is None  # no --pdf: no page


def test_closing_line_names_the_pages(paged, capsys):
    """The batch's last line named cohort.csv and cohort.png but not the study pages of --pdf."""
    from medseg.cli.batch_cmd import _closing_line

    _, out = paged
    capsys.readouterr()
    _closing_line([{"status": "ok", "case": c} for c in CASES], out, measure=True)
    said = " ".join(capsys.readouterr().err.split())
    assert f"; 3 study pages in {out / 'pdf'}" in said


def test_resume_draws_a_study_page_again_only_when_its_inputs_changed(paged, tmp_path, monkeypatch):
    """A study row's page (ED/ES pair, frames, echo views) was drawn again on every resume and
    merge (~1 s a study: 40 min over 2,500 studies) although its cases' pages were kept."""
    import os

    studies, out = paged
    again = shutil.copytree(out, tmp_path / "again")
    assert _batch(studies, again, "--pdf", "--resume") == 0  # in its new folder: the page names other files, drawn again
    seen = _spy(monkeypatch)
    page = again / "pdf" / "s1.pdf"
    before = page.stat().st_mtime_ns
    assert _batch(studies, again, "--pdf", "--resume") == 0
    assert seen == [] and page.stat().st_mtime_ns == before and _rows(again / "cohort.csv")["s1"]["pdf"] == str(page)
    es = again / "s1_ES.nii.gz"  # its labels saved again (e.g. corrected): the study's page and the case's are drawn anew
    os.utime(es, ns=(es.stat().st_atime_ns, before + 10**9))
    assert _batch(studies, again, "--pdf", "--resume") == 0
    assert sorted(s["path"].name for s in seen) == ["s1.pdf", "s1_ES.pdf"]
