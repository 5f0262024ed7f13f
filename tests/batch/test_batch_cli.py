"""`medseg batch` end to end on tiny phantom studies: sequential, --workers, Dask, failures,
--resume and a non-writable output folder. Kept small: 3 cases of (1, 6, 96, 96)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from batch_data import MAP, read_labels, write_case

from medseg._batch_exec import cpu_budget, n_cores
from medseg.cli import run_cli

CASES = ("c1", "c2", "c3")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("studies")
    for i, case in enumerate(CASES):
        write_case(folder, case, seed=10 + i)
    return folder


def _batch(inp: Path, out: Path, *extra: str) -> int:
    return run_cli(["batch", str(inp), "-o", str(out), "--prompts-from", str(inp), "--label-map", MAP, *extra])


def _summary(out: Path) -> dict[str, dict]:
    return {r["case"]: r for r in json.loads((out / "summary.json").read_text())["cases"]}


def _threads(out: Path) -> set[int]:
    return {json.loads((out / f"{c}.json").read_text())["provenance"]["torch_threads"] for c in CASES}


def _same_labels(a: Path, b: Path, cases=CASES) -> None:
    for case in cases:
        assert np.array_equal(read_labels(a / f"{case}.nii.gz"), read_labels(b / f"{case}.nii.gz")), case


@pytest.fixture(scope="module")
def sequential(studies, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seq")
    assert _batch(studies, out, "--measure") == 0
    return out


def test_sequential_outputs_summary_and_cohort(studies, sequential):
    rows = _summary(sequential)
    assert sorted(rows) == list(CASES) and {r["status"] for r in rows.values()} == {"ok"}
    for case in CASES:
        labels = read_labels(sequential / f"{case}.nii.gz")
        ref = read_labels(studies / f"{case}_gt.nii.gz")
        assert labels.shape == ref.shape and set(np.unique(labels)) == {0, 1, 2, 3}
        dice = 2 * ((labels == 1) & (ref == 1)).sum() / ((labels == 1).sum() + (ref == 1).sum())
        assert dice > 0.7
        prov = json.loads((sequential / f"{case}.json").read_text())["provenance"]
        assert prov["command"] == "batch" and prov["case"] == case and len(prov["input_sha256"]) == 64
    assert float(rows["c1"]["volumes_ml.lv"]) > 0
    with open(sequential / "summary.csv") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["ok"] * 3
    with open(sequential / "cohort.csv") as f:
        cohort = list(csv.DictReader(f))
    assert [r["case"] for r in cohort] == list(CASES) and float(cohort[0]["lv_mass_g"]) > 0
    from PIL import Image

    assert Image.open(sequential / "cohort.png").size[0] > 300  # the cohort at a glance (mass, one-phase LV volume)


def test_workers_match_sequential(studies, sequential, tmp_path):
    assert _batch(studies, tmp_path, "--workers", "2") == 0
    assert {r["status"] for r in _summary(tmp_path).values()} == {"ok"}
    assert _threads(tmp_path) == {max(1, cpu_budget() // 2)}
    _same_labels(sequential, tmp_path)


def test_dask_cluster_matches_sequential(studies, sequential, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        assert _batch(studies, tmp_path, "--scheduler", cluster.scheduler_address) == 0
    assert {r["status"] for r in _summary(tmp_path).values()} == {"ok"}
    assert _threads(tmp_path) == {max(1, n_cores() // 2)}
    _same_labels(sequential, tmp_path)


def test_bad_cases_fail_alone(studies, tmp_path, capsys):
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(studies / "c1.nii.gz", inp)
    shutil.copy(studies / "c1_gt.nii.gz", inp)
    (inp / "corrupt.nii.gz").write_bytes(np.random.default_rng(0).bytes(3000))
    shutil.copy(studies / "c1_gt.nii.gz", inp / "corrupt_gt.nii.gz")
    write_case(inp, "nolabel", seed=5)
    (inp / "nolabel_gt.nii.gz").rename(inp / "elsewhere.bin")  # no reference for this case
    write_case(inp, "norv", seed=6, drop="rv")
    out = tmp_path / "out"
    assert _batch(inp, out) == 1
    rows = _summary(out)
    assert rows["c1"]["status"] == "ok"
    assert rows["corrupt"]["status"] == "failed" and "cannot read NIfTI" in rows["corrupt"]["reason"]
    assert rows["nolabel"]["status"] == "failed" and "no reference labels" in rows["nolabel"]["reason"]
    # a referenced structure its reference lacks: refused before the model runs
    assert rows["norv"]["status"] == "failed" and "names rv=3, but the reference labels norv_gt.nii.gz hold no such value" in rows["norv"]["reason"]
    assert not (out / "corrupt.nii.gz").exists() and not (out / "norv.nii.gz").exists()
    err = capsys.readouterr().err
    assert "failed corrupt: " in err and "batch: 3 of 4 cases failed: 1 ok, 0 skipped, 3 failed" in err


def test_prompts_file_per_case_and_prompt_outside(studies, tmp_path):
    cases = {"c1": {"prompts": [{"structure": "lv", "frame": 0, "slice": 3, "box": [30, 30, 60, 60], "propagate": True}]},
             "c2": {"prompts": [{"structure": "lv", "frame": 0, "slice": 9, "box": [30, 30, 60, 60]}]}}
    pfile = tmp_path / "prompts.json"
    pfile.write_text(json.dumps({"label_map": {"lv": 1}, "cases": cases}))
    out = tmp_path / "out"
    assert run_cli(["batch", str(studies), "-o", str(out), "--prompts", str(pfile)]) == 1
    rows = _summary(out)
    assert rows["c1"]["status"] == "ok"
    assert rows["c2"]["status"] == "failed" and "slice" in rows["c2"]["reason"]
    assert rows["c3"]["status"] == "failed" and "no prompts for case 'c3'" in rows["c3"]["reason"]


@pytest.mark.slow  # ~15 s on the shared 2-core CPU
def test_resume_redoes_only_missing_or_broken(studies, sequential, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(sequential, out)
    (out / "c1.nii.gz").unlink()
    data = (out / "c2.nii.gz").read_bytes()
    (out / "c2.nii.gz").write_bytes(data[: len(data) // 2])
    side = json.loads((out / "c3.json").read_text())
    (out / "c3.json").write_text(json.dumps({**side, "provenance": []}))  # valid JSON of another shape
    assert _batch(studies, out, "--resume", "--measure") == 0
    rows = _summary(out)
    assert [rows[c]["status"] for c in CASES] == ["ok", "ok", "ok"]
    assert "label file unreadable" in rows["c2"]["reason"] and rows["c3"]["reason"] == "redone: sidecar unreadable"
    _same_labels(sequential, out)
    with open(out / "cohort.csv") as f:
        assert [r["case"] for r in csv.DictReader(f)] == list(CASES)
    # changed settings are not "complete": --key-slice redoes every case
    assert _batch(studies, out, "--resume") == 0
    assert {r["status"] for r in _summary(out).values()} == {"skipped"}
    assert _batch(studies, out, "--resume", "--key-slice") == 0
    assert {r["reason"] for r in _summary(out).values()} == {"redone: settings changed"}
    # so does --min-confidence: outputs written without it are not what it asks for
    assert _batch(studies, out, "--resume", "--key-slice", "--min-confidence", "1.0") == 0
    assert json.loads((out / "summary.json").read_text())["n_handed_over"] == len(CASES)
    assert not list(out.glob("c*.nii.gz")) and not list(out.glob("c*.json"))  # no earlier labels left to look final


@pytest.mark.parametrize("where", ["under_a_file", "is_a_file"])
def test_unwritable_out_dir_fails_fast(studies, tmp_path, capsys, where):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "out" if where == "under_a_file" else blocker
    assert _batch(studies, out) == 1
    err = capsys.readouterr().err.strip()
    assert f"{blocker} is a file, not a folder" in err and len(err.splitlines()) == 1  # not "not writable: File exists"


@pytest.mark.parametrize("which", ["input", "--prompts-from"])
def test_the_output_folder_is_not_the_input_or_reference_folder(studies, tmp_path, capsys, which):
    """`batch DIR -o DIR` used to replace every DIR/<case>.nii.gz study with its labels."""
    inp, refs = tmp_path / "in", tmp_path / "refs"
    shutil.copytree(studies, inp)
    refs.mkdir()
    for case in CASES:
        shutil.move(inp / f"{case}_gt.nii.gz", refs / f"{case}_gt.nii.gz")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    out = inp if which == "input" else refs
    assert run_cli(["batch", str(inp), "-o", str(out), "--prompts-from", str(refs), "--label-map", MAP]) == 1
    err = capsys.readouterr().err.strip()
    assert f"is the {which} folder" in err and len(err.splitlines()) == 1
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_case_whose_sidecar_would_replace_the_prompts_file_fails_alone(studies, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    box = {"structure": "lv", "frame": 0, "slice": 3, "box": [30, 30, 60, 60]}
    pfile = out / "c1.json"  # the sidecar name of case c1's labels
    pfile.write_text(json.dumps({"label_map": {"lv": 1}, "cases": {c: {"prompts": [box]} for c in CASES}}))
    text = pfile.read_text()
    assert run_cli(["batch", str(studies), "-o", str(out), "--prompts", str(pfile)]) == 1
    rows = _summary(out)
    assert rows["c1"]["status"] == "failed" and "the sidecar JSON would replace the prompts file" in rows["c1"]["reason"]
    assert rows["c2"]["status"] == "ok" and "would replace" not in rows["c3"]["reason"] and pfile.read_text() == text


def test_measure_gives_echo_studies_their_ef_from_view_images(tmp_path, capsys, echo_views):
    inp = echo_views(tmp_path / "echo")
    out = tmp_path / "out"
    assert run_cli(["batch", str(inp), "-o", str(out), "--prompts-from", str(inp), "--label-map", "lv=1,myo=2,la=4", "--measure"]) == 0
    with open(out / "cohort.csv", newline="") as fh:
        rows = {r["case"]: r for r in csv.DictReader(fh)}
    assert rows["p1"]["method"] == "biplane_disks" and 20 < float(rows["p1"]["lv.ef_pct"]) < 80 and rows["p1"]["lv.edv_ml"] == ""
    assert "(1 row)" in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("args, message", [
    (["--auto", "--workers", "0"], "--workers must be 1 or more"),
    (["--auto", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "not both"),
    (["--auto", "--key-slice"], "--key-slice works with --prompts-from"),
    ([], "nothing to do"),
    # --prompts-from without --label-map: these references' sidecars name their map (tests/core/test_consistency_followups.py)
    (["--auto", "--no-basal-rule"], "--no-basal-rule is a measurement setting: add --measure"),
    (["--auto", "--label-map", "lv=one"], "lv"),
    (["--auto", "--structures", "lv,foo"], "unknown structure 'foo'"),  # once, before any case
    (["--prompts-from", "STUDIES", "--label-map", "lv=1", "--structures", "lv"], "add --auto"),
    (["--auto", "--subjects", "subjects.csv"], "add --measure"),
    (["--auto", "--modality", "XR"], "--modality must be one of CT, MR, US, OT"),
    (["--auto", "--measure", "--subjects", "missing.csv"], "subjects file not found"),
    (["--auto", "--min-confidence", "5"], "--min-confidence must be in [0, 1], got 5.0"),
    (["--prompts", "cases_list.json"], "'cases' must be an object of case id"),  # once, not in every case
])
def test_option_errors(studies, tmp_path, capsys, args, message):
    (tmp_path / "cases_list.json").write_text('{"cases": ["c1"]}')
    args = [str(studies) if a == "STUDIES" else str(tmp_path / a) if a.endswith(".json") else a for a in args]
    assert run_cli(["batch", str(studies), "-o", str(tmp_path / "o"), *args]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_review_columns_and_min_confidence(studies, tmp_path, capsys, monkeypatch):
    """The summary carries needs_review / confidence and the structures the flags name, sorted
    worst first, and the closing line counts those structures (a volume threshold of 0.99 here,
    so that the phantoms need review); --min-confidence 1.0 hands every case over (nothing
    written) without failing the batch."""
    import medseg.confidence as C

    fitted = C.calibration()
    monkeypatch.setattr(C, "calibration", lambda: {**fitted, "volume_threshold": 0.99})
    out = tmp_path / "rev"
    capsys.readouterr()
    assert _batch(studies, out) == 0
    rows = json.loads((out / "summary.json").read_text())["cases"]
    assert all(r["confidence"] != "" and isinstance(r["needs_review"], bool) for r in rows)
    named = {}
    for r in rows:
        prov = json.loads((out / f"{r['case']}.json").read_text())["provenance"]
        want = sorted({f["structure"] for f in prov["review"]["flags"] if f.get("structure")})
        assert r["review_structures"].split() == want
        for s in want:
            named[s] = named.get(s, 0) + r["needs_review"]
    line = " ".join(capsys.readouterr().err.split())
    assert named and all(named.values()) and all(f"{s} {n}" in line for s, n in named.items()) and "flags name" in line
    monkeypatch.undo()
    keys = [(not r["needs_review"], float(r["confidence"])) for r in rows]
    assert keys == sorted(keys)
    with open(out / "summary.csv") as f:
        assert {"needs_review", "confidence", "review_flags", "handed_over"} <= set(csv.DictReader(f).fieldnames)
    out2 = tmp_path / "abstain"
    assert _batch(studies, out2, "--min-confidence", "1.0") == 0
    s = json.loads((out2 / "summary.json").read_text())
    assert s["n_handed_over"] == len(CASES) and not list(out2.glob("*.nii.gz"))


def test_review_png_per_case_and_resume(studies, sequential, tmp_path):
    """--review-png writes <case>_review.png beside each case; --resume redoes a case whose PNG
    is missing and keeps the others."""
    from PIL import Image

    out = tmp_path / "png"
    shutil.copytree(sequential, out)
    assert _batch(studies, out, "--review-png", "--resume") == 0
    assert {r["reason"] for r in _summary(out).values()} == {"redone: no review PNG yet"}
    for case in CASES:
        with Image.open(out / f"{case}_review.png") as im:
            assert im.format == "PNG" and im.size[0] > 400
    (out / "c2_review.png").unlink()
    assert _batch(studies, out, "--review-png", "--resume") == 0
    assert [_summary(out)[c]["status"] for c in CASES] == ["skipped", "ok", "skipped"]
    assert (out / "c2_review.png").is_file()
    _same_labels(sequential, out)


def test_cohort_row_per_short_axis_study_from_its_ed_and_es_cases(tmp_path, capsys):
    """ED and ES stacks saved as separate cases (M&Ms-2's ``001_SA_ED`` / ``001_SA_ES``): one
    cohort row for the study, with the EF and mass `medseg measure --ed --es` gives."""
    import nibabel as nib

    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=8, n_slices=6, shape=(96, 96), seed=4)
    inp = tmp_path / "in"
    inp.mkdir()
    for phase in ("ED", "ES"):
        t = ph.info[f"{phase.lower()}_frame"]
        one = ph.image.with_array(ph.image.array[t:t + 1], frame_times_s=None)
        nib.save(nib.Nifti1Image(medseg_to_nifti(one.array.astype(np.float32), 3), one.affine), str(inp / f"s1_SA_{phase}.nii.gz"))
        write_labels(ph.labels[t:t + 1], one, inp / f"s1_SA_{phase}_gt.nii.gz", MAP)
    out = tmp_path / "out"
    assert run_cli(["batch", str(inp), "-o", str(out), "--prompts-from", str(inp), "--label-map", MAP, "--measure"]) == 0
    rows = {r["case"]: r for r in csv.DictReader((out / "cohort.csv").open())}
    assert set(rows) == {"s1_SA_ED", "s1_SA_ES", "s1_SA"}
    assert not (out / "cohort.png").exists()  # one study is one dot (not also its ED and ES cases): no overview of one
    assert run_cli(["measure", "--ed", str(out / "s1_SA_ED.nii.gz"), "--es", str(out / "s1_SA_ES.nii.gz"), "-o", str(tmp_path / "r.json")]) == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert float(rows["s1_SA"]["lv.ef_pct"]) == pytest.approx(rep["lv"]["ef_pct"], abs=1e-3) and 30 < rep["lv"]["ef_pct"] < 80
    assert float(rows["s1_SA"]["lv_mass_g"]) == pytest.approx(rep["lv_mass_g"], abs=1e-3)
    assert "(3 rows)" in " ".join(capsys.readouterr().err.split())
    # body data from a subjects file (a spreadsheet's export): BSA and indexed values for the
    # study, as `medseg measure --height-cm --weight-kg --sex` gives them; added on --resume
    subjects = tmp_path / "subjects.csv"
    subjects.write_text("patient;height_cm;weight_kg;sex;group\ns1_SA;180;80,5;F;DCM\ns9;170;70;M;NOR\n")
    capsys.readouterr()
    assert run_cli(["batch", str(inp), "-o", str(out), "--prompts-from", str(inp), "--label-map", MAP, "--measure", "--resume",
                    "--subjects", str(subjects)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "subjects: 3 of 3 cohort rows measured with a row" in err and "1 of its rows matched no case (s9)" in err
    assert {r["status"] for r in _summary(out).values()} == {"skipped"}  # measured again, not segmented again
    rows = {r["case"]: r for r in csv.DictReader((out / "cohort.csv").open())}
    assert {r["subject"] for r in rows.values()} == {"s1_SA"} and rows["s1_SA_ED"]["bsa_m2"] == ""
    assert run_cli(["measure", "--ed", str(out / "s1_SA_ED.nii.gz"), "--es", str(out / "s1_SA_ES.nii.gz"), "-o", str(tmp_path / "r2.json"),
                    "--height-cm", "180", "--weight-kg", "80.5", "--sex", "F"]) == 0
    rep = json.loads((tmp_path / "r2.json").read_text())
    assert float(rows["s1_SA"]["bsa_m2"]) == pytest.approx(rep["bsa_m2"], abs=1e-4) == pytest.approx((180 * 80.5 / 3600) ** 0.5, abs=1e-4)
    assert float(rows["s1_SA"]["indexed.lv_mass_g_m2"]) == pytest.approx(rep["indexed"]["lv_mass_g_m2"], abs=1e-3)
    assert rows["s1_SA"]["sex"] == "female"  # the same sex-specific reference-range flags
    assert {c.split("(")[0] for c in rows["s1_SA"]["flags"].split(";") if c} == {f["code"] for f in rep["flags"]}


def test_cohort_row_per_study_whose_frames_are_cases_acdc_style(tmp_path):
    """ACDC saves a study's ED and ES as ``patient001_frame01`` / ``patient001_frame12``: one
    cohort row for the study, ED and ES the frames of largest and smallest LV (named by their
    numbers), with `medseg measure --ed --es`'s EF and mass; the overview shows the study once."""
    import nibabel as nib

    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    inp = tmp_path / "in"
    inp.mkdir()
    for study, seed in (("p1", 4), ("p2", 5)):
        ph = cine_sax_phantom(n_frames=8, n_slices=6, shape=(96, 96), seed=seed)
        frames = {ph.info["es_frame"] + 1: ph.info["es_frame"], ph.info["ed_frame"] + 1: ph.info["ed_frame"]}
        for number, t in frames.items():  # ACDC numbers frames from 1
            one = ph.image.with_array(ph.image.array[t:t + 1], frame_times_s=None)
            nib.save(nib.Nifti1Image(medseg_to_nifti(one.array.astype(np.float32), 3), one.affine), str(inp / f"{study}_frame{number:02d}.nii.gz"))
            write_labels(ph.labels[t:t + 1], one, inp / f"{study}_frame{number:02d}_gt.nii.gz", MAP)
        if study == "p1":
            ed_no, es_no = ph.info["ed_frame"] + 1, ph.info["es_frame"] + 1
    out = tmp_path / "out"
    assert run_cli(["batch", str(inp), "-o", str(out), "--prompts-from", str(inp), "--label-map", MAP, "--measure"]) == 0
    rows = {r["case"]: r for r in csv.DictReader((out / "cohort.csv").open())}
    assert {"p1", "p2"} <= set(rows) and len(rows) == 6
    assert (int(rows["p1"]["ed_frame"]), int(rows["p1"]["es_frame"])) == (ed_no, es_no)
    assert run_cli(["measure", "--ed", str(out / f"p1_frame{ed_no:02d}.nii.gz"), "--es", str(out / f"p1_frame{es_no:02d}.nii.gz"),
                    "-o", str(tmp_path / "r.json")]) == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert float(rows["p1"]["lv.ef_pct"]) == pytest.approx(rep["lv"]["ef_pct"], abs=1e-3) and 30 < rep["lv"]["ef_pct"] < 80
    assert float(rows["p1"]["lv_mass_g"]) == pytest.approx(rep["lv_mass_g"], abs=1e-3)
    from medseg.batch import overview_rows

    assert [r["case"] for r in overview_rows(list(rows.values()))] == ["p1", "p2"]  # cohort.png: a dot per study
    # the segmentation's review state beside the numbers: a study as its frames (any flagged, lowest confidence)
    summary = _summary(out)
    for study in ("p1", "p2"):
        frames = [c for c in summary if c.startswith(f"{study}_frame")]
        assert rows[study]["needs_review"] == ("TRUE" if any(summary[c]["needs_review"] for c in frames) else "FALSE")  # as R reads it
        assert float(rows[study]["confidence"]) == min(float(summary[c]["confidence"]) for c in frames)
        assert all(rows[c]["confidence"] == str(summary[c]["confidence"]) for c in frames)
    assert (out / "cohort.png").is_file()


def test_ctrl_c_stops_the_worker_processes_and_their_queue(tmp_path):
    """Ctrl-C during `batch --workers N`: the workers ignore SIGINT (a worker that took it failed
    its case and went on with the next, so the batch ran its whole queue) and the parent ends
    them, cancels what is queued and removes the temporary files a cut-short case left."""
    import concurrent.futures as cf
    import multiprocessing as mp
    import os
    import signal
    import time

    from medseg._batch_exec import _init_worker, _stop_pool

    pool = cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(1,))
    ready, t0 = set(), time.time()
    while len(ready) < 2 and time.time() - t0 < 120:  # both workers started (their initializer ran)
        ready |= {f.result() for f in [pool.submit(os.getpid) for _ in range(4)]}
    futures = [pool.submit(time.sleep, 60) for _ in range(12)]
    time.sleep(0.5)
    procs = list(pool._processes.values())
    assert {p.pid for p in procs} == ready
    for p in procs:  # a terminal's Ctrl-C reaches the whole process group
        os.kill(p.pid, signal.SIGINT)
    time.sleep(0.5)
    assert all(p.is_alive() for p in procs)  # ignored by the workers
    (tmp_path / ".case01.nii.gz.k3j2ab_9.tmp.nii.gz").write_bytes(b"half")
    (tmp_path / "case00.nii.gz").write_bytes(b"done")
    t1 = time.time()
    _stop_pool(pool, tmp_path, futures, ["case00", "case01"])
    while any(p.is_alive() for p in procs) and time.time() - t1 < 15:  # the executor's own thread may reap them a moment later
        time.sleep(0.05)
    assert not any(p.is_alive() for p in procs)
    # the queue did not run: 2 running, and at most 3 in the executor's call queue (workers + 1) that cancel cannot reach
    assert sum(f.cancelled() for f in futures) >= len(futures) - 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case00.nii.gz"]


def test_a_full_output_disk_stops_the_batch(studies, tmp_path, capsys, monkeypatch):
    """The output disk fills: the case that hit it fails and the batch stops with one line
    (every later case was run and failed alike, a few seconds of model time each), its summary
    holding the cases done; --resume goes on once there is room."""
    import errno

    import medseg.io

    real, calls = medseg.io.write_labels, []

    def full_after_one(*a, **k):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*a, **k)

    with monkeypatch.context() as m:
        m.setattr(medseg.io, "write_labels", full_after_one)
        assert _batch(studies, tmp_path / "out") == 74  # EX_IOERR: retry once there is room
    rows = _summary(tmp_path / "out")
    assert {k: r["status"] for k, r in rows.items()} == {"c1": "ok", "c2": "failed"} and len(calls) == 2
    assert "No space left on device" in rows["c2"]["reason"]
    err = " ".join(capsys.readouterr().err.split())
    assert "stopped: cannot write the outputs: No space left on device" in err and f"{len(CASES) - 2} case(s) not run" in err
    assert _batch(studies, tmp_path / "out", "--resume") == 0
    assert sorted(r["status"] for r in _summary(tmp_path / "out").values()) == ["ok"] * (len(CASES) - 1) + ["skipped"]


def test_an_adapter_that_is_not_there_is_refused_before_any_case(studies, tmp_path, capsys):
    """`batch --adapter nosuch`: every case ran to the model loading and failed alike."""
    assert _batch(studies, tmp_path / "out", "--adapter", "nosuch-adapter") == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "adapter 'nosuch-adapter' not found" in err and not (tmp_path / "out" / "summary.csv").exists()


@pytest.mark.parametrize("model, said", [("nosuch", "unknown model 'nosuch'"), ("sam_vit_b", "needs your checkpoint file"),
                                         (".", "not a regular file")])
def test_a_model_that_is_not_there_is_refused_before_any_case(studies, tmp_path, capsys, model, said):
    """`batch --model nosuch`: every case failed alike ("every case: unknown model"), after a summary."""
    assert _batch(studies, tmp_path / "out", "--model", model) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert said in err and not (tmp_path / "out" / "summary.csv").exists()
