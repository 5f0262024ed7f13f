"""`medseg batch` robustness: relative paths on a Dask cluster with another working folder,
--resume against changed model / adapter weights, worker processes that outlive a killed
batch, SIGTERM, an INPUT_DIR that is one DICOM series, study rows of cohort.csv whose cases
failed, stale temporary files, and the closing and stopping lines. Tiny phantom studies
(1, 6, 96, 96); most checks run no model."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from batch_data import MAP, write_case

from medseg.cli import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _summary(out: Path) -> dict[str, dict]:
    return {r["case"]: r for r in json.loads((out / "summary.json").read_text())["cases"]}


# --- 1. paths a worker with another working folder can use ---------------------------------


def test_dask_workers_in_another_folder_get_absolute_paths(tmp_path, monkeypatch):
    """`batch in -o out --scheduler ADDR` from one folder, the cluster started in another: the
    workers read `in/c1.nii.gz` and wrote `out/...` relative to their own folder (every case
    "no such file", or labels written where nobody looks). Every path is absolute now, and so
    are the summary's input / output columns."""
    from distributed import LocalCluster

    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    write_case(here / "in", "c1", seed=10)
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    # one worker process of 2 threads: 1 torch thread (2 spin on a busy 2-core machine, many times slower)
    with LocalCluster(n_workers=1, processes=True, threads_per_worker=2, dashboard_address=None) as cluster:
        monkeypatch.chdir(here)
        rc = run_cli(["batch", "in", "-o", "out", "--prompts-from", "in", "--label-map", MAP, "--scheduler", cluster.scheduler_address])
    assert rc == 0
    row = _summary(here / "out")["c1"]
    assert row["status"] == "ok"
    assert row["input"] == str(here / "in" / "c1.nii.gz") and row["output"] == str(here / "out" / "c1.nii.gz")
    prov = json.loads((here / "out" / "c1.json").read_text())["provenance"]
    assert prov["reference"] == str(here / "in" / "c1_gt.nii.gz")
    assert not list(elsewhere.rglob("*.nii.gz"))


def test_cases_and_options_are_made_absolute(tmp_path, monkeypatch):
    from medseg.batch import BatchOptions, discover_cases

    write_case(tmp_path / "in", "c1", seed=10)
    (tmp_path / "m.safetensors").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    (case,) = discover_cases("in", prompts_from="in")
    assert case.input == str(tmp_path / "in" / "c1.nii.gz") and case.reference == str(tmp_path / "in" / "c1_gt.nii.gz")
    opts = BatchOptions(out_dir="out", prompts="p.json", model="m.safetensors").absolute()
    assert (opts.out_dir, opts.prompts, opts.model) == (str(tmp_path / "out"), str(tmp_path / "p.json"), str(tmp_path / "m.safetensors"))
    assert BatchOptions(out_dir="o", model="sam_vit_b=w.pth").absolute().model == f"sam_vit_b={tmp_path / 'w.pth'}"
    assert BatchOptions(out_dir="o").absolute().model == "default"


# --- 2. --resume and the model's / adapter's weights ----------------------------------------


def test_resume_redoes_cases_made_with_other_model_weights(tmp_path):
    """One tensor of a `--model` file changed in place: --resume kept the labels of the old
    weights ("skipped"); the sidecar's model_sha256 is compared with the file's now."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from medseg._files import sha256_file
    from medseg.models.registry import shipped_checkpoint

    write_case(tmp_path / "in", "c1", seed=10)
    model = tmp_path / "m.safetensors"
    shutil.copy(shipped_checkpoint(), model)
    args = ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--prompts-from", str(tmp_path / "in"), "--label-map", MAP,
            "--model", str(model)]
    assert run_cli(args) == 0
    assert run_cli([*args, "--resume"]) == 0 and _summary(tmp_path / "out")["c1"]["status"] == "skipped"
    with safe_open(str(model), "pt") as f:
        meta = f.metadata()
    state = load_file(str(model))
    key = next(k for k in state if k.startswith("mask_decoder.") and state[k].dtype.is_floating_point)
    state[key] = state[key] * 1.5
    save_file(state, str(model), metadata=meta)
    assert run_cli([*args, "--resume"]) == 0
    assert _summary(tmp_path / "out")["c1"]["reason"] == "redone: model changed"
    prov = json.loads((tmp_path / "out" / "c1.json").read_text())["provenance"]
    assert prov["model_sha256"] == sha256_file(model)  # the new weights were loaded, not this process's cached model


def test_resume_redoes_cases_made_with_another_adapter(tmp_path):
    """An adapter retrained in the same folder (same name, other weights): "adapter changed"."""
    from medseg._files import sha256_file
    from medseg.batch import BatchOptions, CaseSpec, output_problem
    from medseg.io import read_volume, write_labels
    from medseg.models.registry import shipped_checkpoint

    image, _ = write_case(tmp_path / "in", "c1", seed=10)
    adapter = tmp_path / "lge"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights 1")
    opts = BatchOptions(out_dir=str(tmp_path / "out"), auto=True, adapter=str(adapter), resume=True)
    case = CaseSpec("c1", str(image))
    vol = read_volume(image)
    prov = {"command": "batch", "input_sha256": sha256_file(image), "input_shape": list(vol.shape), "batch_signature": opts.signature(),
            "model_sha256": sha256_file(shipped_checkpoint()), "adapter_sha256": sha256_file(adapter / "adapter_model.safetensors")}
    write_labels(np.zeros(vol.shape, np.uint8), vol, tmp_path / "out" / "c1.nii.gz", MAP, provenance=prov)
    assert output_problem(case, opts) is None
    (adapter / "adapter_model.safetensors").write_bytes(b"weights 2, retrained")
    assert output_problem(case, opts) == "adapter changed"
    assert output_problem(case, BatchOptions(out_dir=str(tmp_path / "out"), auto=True, resume=True)) == "adapter changed"
    write_labels(np.zeros(vol.shape, np.uint8), vol, tmp_path / "out" / "c1.nii.gz", MAP, provenance={**prov, "model_sha256": "0" * 64})
    assert output_problem(case, opts) == "model changed"
    # a case handed over entirely: its record holds the weights' sha256 too, another adapter runs it again
    from medseg.batch import handed_over_path, handed_over_record

    record = {**prov, "case": "c1", "status": "handed_over"}
    handed_over_path(opts.out_dir, "c1").parent.mkdir()
    handed_over_path(opts.out_dir, "c1").write_text(json.dumps(record))
    assert handed_over_record(case, opts) is None
    handed_over_path(opts.out_dir, "c1").write_text(json.dumps({**record, "adapter_sha256": sha256_file(adapter / "adapter_model.safetensors")}))
    assert handed_over_record(case, opts) is not None


# --- 3. the worker processes of a killed batch, SIGTERM ---------------------------------------


def _children(pid: int) -> list[int]:
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            return [p.pid for p in psutil.Process(pid).children()]
        except psutil.NoSuchProcess:
            return []
    kids = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(d.name))
        except (OSError, IndexError, ValueError):
            continue
    return kids


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its new parent to reap it is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state not in ("Z", "X")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _start_batch(tmp_path: Path, n_cases: int = 3) -> tuple[subprocess.Popen, list[int]]:
    """`medseg batch --workers 2` in a process of its own, returned once both workers exist."""
    inp = tmp_path / "in"
    for i in range(n_cases):
        write_case(inp, f"c{i}", seed=10 + i)
    cmd = [sys.executable, "-m", "medseg", "batch", str(inp), "-o", str(tmp_path / "out"), "--prompts-from", str(inp), "--label-map", MAP,
           "--workers", "2"]
    log = open(tmp_path / "log.txt", "w")  # not a pipe: a worker that outlives the batch would hold it open
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    log.close()
    t0 = time.time()
    workers: list[int] = []
    while len(workers) < 2 and time.time() - t0 < 120 and proc.poll() is None:
        workers = [k for k in _children(proc.pid) if "spawn_main" in _cmdline(k)]
        time.sleep(0.05)
    if len(workers) < 2:
        proc.kill()
        proc.wait()
        pytest.fail(f"the batch's workers did not start: {(tmp_path / 'log.txt').read_text()}")
    time.sleep(1.0)  # their initializer ran
    return proc, workers


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    t0 = time.time()
    while any(_alive(p) for p in pids) and time.time() - t0 < seconds:
        time.sleep(0.1)
    left = [p for p in pids if _alive(p)]
    for p in left:  # never leave orphans behind on the test machine
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    return left


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_killing_the_batch_ends_its_worker_processes(tmp_path):
    """kill -9 of `batch --workers 2`: the spawned workers went on with their queue, then hung on
    the result pipe (700 MB each). They end with their parent now."""
    proc, workers = _start_batch(tmp_path)
    all_children = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _gone_within(workers, 8) == []
    _gone_within(all_children, 8)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_stops_the_batch_like_ctrl_c(tmp_path):
    """`kill PID` (a job scheduler's time limit): exit -15, no summary, orphan workers. Now as
    Ctrl-C: the workers end, the summary is written, "interrupted", exit code 143."""
    proc, workers = _start_batch(tmp_path, n_cases=4)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    finally:
        left = _gone_within(workers, 8)
    err = (tmp_path / "log.txt").read_text()
    assert proc.returncode == 143 and left == [], err
    assert "interrupted (SIGTERM)" in err and "--resume" in err and "Traceback" not in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_cases"] < 4


# --- 4. INPUT_DIR that is one DICOM series --------------------------------------------------


def _io_synth():
    path = str(Path(__file__).resolve().parents[1] / "io")
    if path not in sys.path:
        sys.path.insert(0, path)
    import io_synth

    return io_synth


def test_an_input_folder_that_is_one_dicom_series_is_one_case(tmp_path):
    """`batch SERIES_FOLDER` made a 2-D case of every .dcm file (18 for a Sunnybrook cine), while
    `batch PARENT` and `medseg info SERIES_FOLDER` read it as one cine."""
    from medseg.batch import discover_cases

    series = tmp_path / "study" / "SCD01"
    _io_synth().write_cine_series(series, n_slices=3, n_phases=2)
    (series / ".DS_Store").write_bytes(b"x")
    cases = discover_cases(series)
    assert [(c.case, c.input) for c in cases] == [("SCD01", str(series))]
    assert [(c.case, c.input) for c in discover_cases(tmp_path / "study")] == [("SCD01", str(series))]
    out_inside = series / "out"  # OUT_DIR inside it is left aside
    out_inside.mkdir()
    assert [c.case for c in discover_cases(series, exclude=[out_inside])] == ["SCD01"]
    # a folder that also holds other images or case folders is searched as before
    (tmp_path / "mixed").mkdir()
    for f in sorted(series.glob("*.dcm"))[:2]:
        shutil.copy(f, tmp_path / "mixed" / f.name)
    write_case(tmp_path / "mixed", "p1", seed=1)
    assert "p1" in [c.case for c in discover_cases(tmp_path / "mixed")]


# --- 5. study rows of cohort.csv whose cases failed ----------------------------------------


def _frame_cases(folder: Path, study: str, numbers: tuple[int, ...], seed: int = 4) -> list[dict]:
    """ok results of ``<study>_frameNN`` cases (labels written, as a batch would)."""
    from medseg.io import write_labels
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=8, n_slices=6, shape=(64, 64), seed=seed)
    rows = []
    for n, t in zip(numbers, (ph.info["ed_frame"], ph.info["es_frame"]), strict=False):
        one = ph.image.with_array(ph.image.array[t:t + 1], frame_times_s=None)
        out = folder / f"{study}_frame{n:02d}.nii.gz"
        write_labels(ph.labels[t:t + 1], one, out, MAP)
        rows.append({"case": out.name[:-7], "status": "ok", "reason": "", "output": str(out), "input": f"/in/{out.name}"})
    return rows


def _failed(case: str, reason: str = "cannot read NIfTI") -> dict:
    return {"case": case, "status": "failed", "reason": reason, "output": "", "input": f"/in/{case}.nii.gz"}


def test_study_rows_are_kept_with_a_note_when_their_cases_fail(tmp_path):
    """cohort.csv lost ACDC's study row `patient001` (no measure_note) when (a) a failed case had
    the study's id, (b) one of its frames failed; cohort.png then showed the frames left as
    studies of their own. The same for `<study>_ED` / `_ES`."""
    from medseg.batch import overview_rows, stack_study_rows, write_cohort

    a = [*_frame_cases(tmp_path, "patient001", (1, 12)), _failed("patient001")]
    b = [*_frame_cases(tmp_path, "patient002", (1,), seed=5), _failed("patient002_frame12")]
    c = [{**_frame_cases(tmp_path, "s3_SA_ED", (1,), seed=6)[0], "case": "s3_SA_ED"}, _failed("s3_SA_ES", "no reference labels")]
    rows = {r["case"]: r for r in stack_study_rows(a + b + c)}
    assert set(rows) == {"patient001", "patient002", "s3_SA"}
    assert rows["patient001"]["cohort_row"]["lv.ef_pct"] > 0  # measured from its frames, the clash said
    assert "case patient001 (patient001.nii.gz, failed) has the study's id" in rows["patient001"]["measure_note"]
    assert "cohort_row" not in rows["patient002"]
    assert rows["patient002"]["measure_note"] == "not measured: patient002_frame12 failed (cannot read NIfTI)"
    assert rows["s3_SA"]["measure_note"] == "not measured: s3_SA_ES failed (no reference labels)"
    # a measured case of the study's id keeps its row; the study's row says why it has no numbers
    d = [*_frame_cases(tmp_path, "p4", (1, 12), seed=7), {"case": "p4", "status": "ok", "input": "/in/p4.nii.gz", "cohort_row": {"x": 1}}]
    (row,) = stack_study_rows(d)
    assert "cohort_row" not in row and row["measure_note"].startswith("not measured as a study: case p4 (p4.nii.gz, ok) has the study's id")
    # cohort.csv keeps the row; cohort.png shows the study (no dot), not its frame left over as a study
    results = [{**r, "cohort_row": {"lv.ef_pct": 50.0}} if r["status"] == "ok" else r for r in b]
    write_cohort(tmp_path, results + stack_study_rows(b))
    with open(tmp_path / "cohort.csv", newline="") as fh:
        cohort = {r["case"]: r for r in csv.DictReader(fh)}
    assert cohort["patient002"]["measure_note"].startswith("not measured: patient002_frame12 failed")
    assert [r["case"] for r in overview_rows(list(cohort.values()))] == ["patient002"]


# --- 6. stale temporary files ----------------------------------------------------------------


def test_stale_temporary_files_are_removed_at_the_start(tmp_path):
    """`.summary.csv.*.tmp.csv`, `.cohort.png.*.tmp.png` and a skipped case's
    `.c1.nii.gz.*.tmp.nii.gz` a killed run left survived every --resume. run_batch removes
    those of its outputs (this version's names and older ones), and nothing else."""
    from medseg._files import _tmp_prefix
    from medseg.batch import BatchOptions, CaseSpec, run_batch

    out = tmp_path / "out"
    (out / "handed_over").mkdir(parents=True)
    (out / "measured").mkdir()
    (out / "c1_seg").mkdir()
    stale = [out / "measured" / f"{_tmp_prefix(out / 'c1.json')}abcdefgh.tmp.json",  # a stored measure row (--measure)
             out / f"{_tmp_prefix(out / 'cohort.png')}a1b2c3d4.tmp.png", out / ".summary.csv.k3j2ab_9.tmp.csv",  # older: no hash
             out / f"{_tmp_prefix(out / 'c1.nii.gz')}zz99yy88.tmp.nii.gz", out / f"{_tmp_prefix(out / 'c1.json')}abcdefgh.tmp.json",
             out / "handed_over" / f"{_tmp_prefix(out / 'c2.json')}abcdefgh.tmp.json",
             out / "c1_seg" / f"{_tmp_prefix(out / 'c1_frame01.dcm')}abcdefgh.tmp.dcm"]
    kept = [out / ".notes.tmp", out / ".c1.nii.gz.backup", out / f"{_tmp_prefix(out / 'c10.nii.gz')}abcdefgh.tmp.nii.gz",
            out / "keep.tmp.csv", out / "measured" / f"{_tmp_prefix(out / 'c10.json')}abcdefgh.tmp.json"]
    for p in stale + kept:
        p.write_bytes(b"half")
    cases = [CaseSpec("c1", str(tmp_path / "c1.nii.gz"), error="not run"), CaseSpec("c2", str(tmp_path / "c2.nii.gz"), error="not run")]
    run_batch(cases, BatchOptions(out_dir=str(out), auto=True, resume=True))
    assert [p for p in stale if p.exists()] == [] and all(p.exists() for p in kept)


def test_long_names_sharing_their_start_get_temporary_names_of_their_own(tmp_path):
    """The temporary name kept the first 64 characters of the target's: two case ids sharing
    them matched each other's pattern (one's clean-up could delete the other's file)."""
    from medseg._files import atomic_path, stale_temp_files

    a, b = tmp_path / ("x" * 70 + "_a.nii.gz"), tmp_path / ("x" * 70 + "_b.nii.gz")
    with atomic_path(a) as tmp_a:
        tmp_a.write_bytes(b"in progress")
        assert stale_temp_files(b) == [] and stale_temp_files(a) == [tmp_a]


# --- 7. the closing and stopping lines -------------------------------------------------------


def test_one_case_is_one_case(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "p1.nii.gz").write_bytes(b"not an image")
    assert run_cli(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--auto"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "batch: 1 case in this process" in err and "batch: 1 of 1 case failed" in err and "1 cases" not in err


def test_an_output_folder_that_turns_read_only_says_how_far_it_got(tmp_path, monkeypatch):
    """The output folder turned read-only after the first case: the one line named the summary's
    temporary file only; it says how many cases were done and that --resume goes on."""
    import errno

    import medseg.batch.run as R
    from medseg.batch import BatchOptions, CaseSpec, run_batch
    from medseg.errors import OutputDiskFull

    real, calls = R.write_summary, []

    def read_only_after_one(*a, **k):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".summary.csv.abcd.tmp.csv"))
        return real(*a, **k)

    monkeypatch.setattr(R, "write_summary", read_only_after_one)
    monkeypatch.setattr(R, "run_case", lambda case, options: {"case": case.case, "status": "ok", "reason": "", "seconds": 0.0,
                                                              "output": "", "input": case.input})
    cases = [CaseSpec(f"c{i}", str(tmp_path / f"c{i}.nii.gz")) for i in range(4)]
    with pytest.raises(OutputDiskFull) as e:
        run_batch(cases, BatchOptions(out_dir=str(tmp_path / "out"), auto=True))
    msg = str(e.value)
    assert "cannot write the summary: Read-only file system" in msg and "case c1" in msg
    assert "2 of 4 cases done, 2 case(s) not run" in msg and "--resume" in msg and ".tmp" not in msg


def test_a_full_disk_stops_a_batch_of_worker_processes_too(tmp_path):
    """With --workers the stop raised in the result callback was taken for the case's own
    error: the case was rewritten as "worker error: OutputDiskFull" and the batch went on."""
    from medseg._batch_exec import run_local
    from medseg.batch import BatchOptions, CaseSpec
    from medseg.errors import OutputDiskFull

    seen = []

    def emit(res):
        seen.append(res["case"])
        if len(seen) == 1:
            raise OutputDiskFull("stopped: cannot write the outputs: No space left on device")

    cases = [CaseSpec(f"c{i}", str(tmp_path / f"c{i}.nii.gz"), error="not run") for i in range(4)]
    with pytest.raises(OutputDiskFull):
        run_local(cases, BatchOptions(out_dir=str(tmp_path), auto=True, threads=1), 2, emit)
    assert len(seen) == 1
