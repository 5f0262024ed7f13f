"""`medseg batch` outputs under concurrency and interruption: a second batch writing the same
OUT_DIR is refused (it removed the first's temporary files as stale and mixed its outputs
with the first's), the lock of a batch killed outright does not block the next, and stopping
a pool of workers removes only the temporary files of the batch's own outputs; `segment` undoes
its writes on SIGTERM and removes the temporary files a run killed outright left."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from medseg._files import _tmp_prefix
from medseg.batch import BatchOptions, CaseSpec, run_batch
from medseg.cli import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="fcntl locks, POSIX signals")


def _cases(tmp_path: Path, n: int = 2) -> list[CaseSpec]:
    return [CaseSpec(f"c{i}", str(tmp_path / f"c{i}.nii.gz"), error="not run") for i in range(n)]


def _in_progress(out: Path, name: str) -> Path:
    """A temporary file as another batch's atomic write of ``name`` has it while writing."""
    tmp = out / f"{_tmp_prefix(out / name)}ab12cd34.tmp.nii.gz"
    tmp.write_bytes(b"being written")
    return tmp


@posix_only
def test_a_second_batch_on_the_same_output_folder_is_refused(tmp_path):
    """Two batches on one OUT_DIR: the second removed the first's in-progress temporary files
    as stale (the first's case then failed on its rename), replaced its summary with its own
    cases, and where they shared a case id could pair one's labels with the other's sidecar."""
    from medseg.batch.outdir import OutputFolderBusy, out_dir_lock

    out = tmp_path / "out"
    out.mkdir()
    with out_dir_lock(out):  # the first batch, writing c0
        tmp = _in_progress(out, "c0.nii.gz")
        with pytest.raises(OutputFolderBusy, match=r"another medseg batch \(process \d+ on .+\) is writing to .*out: wait for it"):
            run_batch(_cases(tmp_path), BatchOptions(out_dir=str(out), auto=True))
        assert tmp.exists() and not (out / "summary.json").exists()
    assert sorted(p.name for p in out.iterdir()) == [tmp.name]  # the lock file goes with its batch
    run_batch(_cases(tmp_path), BatchOptions(out_dir=str(out), auto=True))  # then the folder is free
    assert (out / "summary.json").exists()


@posix_only
def test_the_refusal_is_one_line(tmp_path, capsys):
    from medseg.batch.outdir import out_dir_lock

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "p1.nii.gz").write_bytes(b"not an image")
    (tmp_path / "out").mkdir()
    with out_dir_lock(tmp_path / "out"):
        assert run_cli(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--auto"]) == 1
    err = capsys.readouterr().err
    assert "another medseg batch" in err and "Traceback" not in err and not (tmp_path / "out" / "summary.csv").exists()


@posix_only
def test_the_lock_file_of_a_killed_batch_does_not_block(tmp_path):
    """kill -9 leaves the lock file, but the system released its lock: the next batch runs."""
    from medseg.batch.outdir import LOCK_NAME

    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text("4242 gone-host\n")
    run_batch(_cases(tmp_path), BatchOptions(out_dir=str(out), auto=True))
    assert (out / "summary.json").exists() and not (out / LOCK_NAME).exists()


@posix_only
def test_a_lock_file_another_user_left_still_locks(tmp_path, monkeypatch):
    """The lock file of another user's batch killed outright cannot be opened for writing: it is
    locked through a read-only descriptor (the batch failed on the open)."""
    import os

    from medseg.batch.outdir import LOCK_NAME, OutputFolderBusy, out_dir_lock

    real_open = os.open

    def not_writable(path, flags, *a):
        if str(path).endswith(LOCK_NAME) and flags & os.O_RDWR:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *a)

    (tmp_path / LOCK_NAME).write_text("4242 gone-host\n")
    monkeypatch.setattr(os, "open", not_writable)
    with out_dir_lock(tmp_path), pytest.raises(OutputFolderBusy), out_dir_lock(tmp_path):
        pass


def test_stopping_the_workers_removes_only_the_batch_s_temporary_files(tmp_path):
    """Ctrl-C / SIGTERM / a full disk with --workers removed every `.*.tmp*` file in OUT_DIR and
    its sub-folders, a user's own hidden files among them (the docs: no other hidden file)."""
    import concurrent.futures as cf
    import multiprocessing as mp

    from medseg._batch_exec import _stop_pool

    (tmp_path / "notes").mkdir()
    theirs = [tmp_path / ".draft.tmp", tmp_path / ".plan.tmp.txt", tmp_path / "notes" / ".todo.tmp"]
    for p in theirs:
        p.write_text("mine")
    cut_short = _in_progress(tmp_path, "c1.nii.gz")
    pool = cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"))  # no worker started: nothing submitted
    _stop_pool(pool, tmp_path, {}, ["c0", "c1"])
    assert not cut_short.exists() and all(p.exists() for p in theirs)


# --- medseg segment: kill PID, and what a run killed outright left ------------------------------


@pytest.fixture()
def study(tmp_path):
    from batch_data import write_case

    return write_case(tmp_path / "in", "c0", seed=10)


def _segment(image: Path, ref: Path, out: Path) -> int:
    from batch_data import MAP

    return run_cli(["segment", str(image), "-o", str(out / "c0.nii.gz"), "--prompts-from", str(ref), "--label-map", MAP,
                    "--review-png", str(out / "c0.png")])


@posix_only
def test_sigterm_while_segment_writes_leaves_nothing(study, tmp_path, monkeypatch, capsys):
    """`kill PID` while `segment` wrote its labels: the process died at once, leaving the review
    sheet of labels never written and the sidecar's temporary file (and, a moment later, a label
    file without its sidecar). SIGTERM now undoes the writes as Ctrl-C does: exit code 143."""
    import os
    import signal

    import medseg.io.writers as W

    def terminated_while_writing(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs between two bytecodes of this thread
            pass
        raise AssertionError("SIGTERM was not handled")

    class Unhandled(BaseException):
        pass

    def unhandled(signum, frame):  # without the fix SIGTERM would end pytest itself
        raise Unhandled()

    monkeypatch.setattr(W, "_write_label_file", terminated_while_writing)
    before = signal.signal(signal.SIGTERM, unhandled)
    try:
        rc = _segment(*study, tmp_path / "out")
    finally:
        signal.signal(signal.SIGTERM, before)
    assert rc == 143 and "interrupted (SIGTERM)" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_segment_removes_the_temporary_files_a_killed_run_left(study, tmp_path):
    """kill -9 during `segment`'s writes left `.c0.json.<hash>.<random>.tmp.json` (and the label
    file's, the sheet's) beside the output, and no later run removed them."""
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / f"{_tmp_prefix(out / name)}ab12cd34.tmp{suffix}" for name, suffix in
             (("c0.nii.gz", ".nii.gz"), ("c0.json", ".json"), ("c0.png", ".png"))]
    theirs = [out / ".c0.json.notes.tmp", out / f"{_tmp_prefix(out / 'c01.json')}ab12cd34.tmp.json"]
    for p in stale + theirs:
        p.write_bytes(b"half")
    assert _segment(*study, out) == 0
    assert [p for p in stale if p.exists()] == [] and all(p.exists() for p in theirs)
    assert {"c0.nii.gz", "c0.json", "c0.png"} <= {p.name for p in out.iterdir()}


def test_an_output_folder_removed_mid_batch_stops_it(tmp_path, monkeypatch):
    """`rm -rf OUT_DIR` during a batch: the next case's write made the folder anew and the batch
    went on, its summary listing as ok the cases whose outputs had gone with the folder."""
    import shutil

    import medseg.batch.run as R
    from medseg.errors import OutputDiskFull

    out = tmp_path / "out"

    def run_case(case, options):
        if case.case == "c1":
            shutil.rmtree(out)
            out.mkdir()  # as atomic_path makes it for the case's first output
        return {"case": case.case, "status": "ok", "reason": "", "seconds": 0.0, "output": "", "input": case.input}

    monkeypatch.setattr(R, "run_case", run_case)
    with pytest.raises(OutputDiskFull, match=r"stopped: the output folder .*out was removed or replaced while the batch ran \(case c1\).*--resume"):
        run_batch(_cases(tmp_path, 3), BatchOptions(out_dir=str(out), auto=True))
    assert not (out / "summary.json").exists()
