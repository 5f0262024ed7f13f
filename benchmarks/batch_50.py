"""`medseg batch` on 50 small phantom studies: local workers vs a Dask cluster, and crashes.

    python benchmarks/batch_50.py [--cases 50] [--keep DIR]

1. writes N cine short-axis phantoms (1, 6, 96, 96) + ``_gt`` reference labels;
2. ``--workers 2`` and a Dask ``LocalCluster`` of 2 single-thread workers; outputs must match
   voxel for voxel;
3. kills one pool worker mid-run (the pool is restarted for the pending cases), then
   ``--resume``; kills one Dask worker mid-run (Dask reschedules), then ``--resume``; kills
   the whole batch (SIGKILL to its process group) mid-run, then ``--resume``. After each,
   every case must be present and equal to step 2's output.
Prints the timings (seconds) as a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "batch"))

from batch_data import MAP, read_labels, write_case  # noqa: E402


def batch_cmd(inp: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "medseg", "batch", str(inp), "-o", str(out), "--prompts-from", str(inp), "--label-map", MAP, *extra]


def run(inp: Path, out: Path, *extra: str) -> tuple[float, int, dict]:
    t0 = time.perf_counter()
    proc = subprocess.run(batch_cmd(inp, out, *extra), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"batch crashed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds, proc.returncode, summary(out)


def summary(out: Path) -> dict:
    s = json.loads((out / "summary.json").read_text())
    return {k: s[k] for k in ("n_cases", "n_ok", "n_skipped", "n_failed")}


def n_outputs(out: Path) -> int:
    return len(list(out.glob("*.json"))) - sum((out / n).exists() for n in ("summary.json",))


def start_and_kill(inp: Path, out: Path, after: int, kill, *extra: str) -> tuple[float, int, dict]:
    """Start a batch, call ``kill(proc)`` once ``after`` cases are written, wait for the end."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(batch_cmd(inp, out, *extra), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    while proc.poll() is None and (not out.is_dir() or n_outputs(out) < after):
        time.sleep(0.2)
    if proc.poll() is not None:
        raise SystemExit(f"batch ended before the kill: {proc.stderr.read()[-2000:]}")
    kill(proc)
    proc.wait()
    seconds = time.perf_counter() - t0
    return seconds, proc.returncode, summary(out) if (out / "summary.json").exists() else {}


def kill_pool_worker(proc: subprocess.Popen) -> None:
    import psutil

    workers = [c for c in psutil.Process(proc.pid).children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]
    if not workers:
        raise SystemExit("no pool worker process found to kill")
    workers[0].kill()


def kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)


def check_same(ref: Path, out: Path, cases: list[str]) -> None:
    for case in cases:
        if not (out / f"{case}.nii.gz").is_file():
            raise SystemExit(f"{out}: case {case} is missing")
        if not np.array_equal(read_labels(ref / f"{case}.nii.gz"), read_labels(out / f"{case}.nii.gz")):
            raise SystemExit(f"{out}: case {case} differs from {ref}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=50)
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="medseg-batch50-"))
    root.mkdir(parents=True, exist_ok=True)
    inp, cases, t = root / "in", [f"case{i:03d}" for i in range(args.cases)], {}
    t0 = time.perf_counter()
    for i, case in enumerate(cases):
        write_case(inp, case, seed=1000 + i)
    t["generate"] = time.perf_counter() - t0
    rows, early = [], max(2, args.cases // 5)

    def record(name: str, res: tuple[float, int, dict], note: str = "") -> None:
        t[name] = res[0]
        rows.append((name, res[0], res[1], res[2], note))
        print(f"{name:<26} {res[0]:7.1f} s  exit {res[1]}  {res[2]}  {note}", flush=True)

    record("workers2", run(inp, root / "w2", "--workers", "2"))
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        addr = cluster.scheduler_address
        record("dask2", run(inp, root / "dask", "--scheduler", addr))
        check_same(root / "w2", root / "dask", cases)
        print("dask == workers: identical labels", flush=True)

        def kill_dask_worker(proc: subprocess.Popen) -> None:
            pid = next(iter(client.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)

        record("dask2_kill_worker", start_and_kill(inp, root / "dask_kill", early, kill_dask_worker, "--scheduler", addr), "1 worker SIGKILLed")
        record("dask2_kill_worker_resume", run(inp, root / "dask_kill", "--resume", "--scheduler", addr))
        check_same(root / "w2", root / "dask_kill", cases)
    record("workers2_kill_worker", start_and_kill(inp, root / "w2_kill", early, kill_pool_worker, "--workers", "2"), "1 worker SIGKILLed")
    record("workers2_kill_worker_resume", run(inp, root / "w2_kill", "--resume", "--workers", "2"))
    check_same(root / "w2", root / "w2_kill", cases)
    record("workers2_kill_batch", start_and_kill(inp, root / "w2_crash", args.cases // 2, kill_group, "--workers", "2"), "whole batch SIGKILLed")
    res = run(inp, root / "w2_crash", "--resume", "--workers", "2")
    record("workers2_kill_batch_resume", res)
    check_same(root / "w2", root / "w2_crash", cases)
    if res[2]["n_ok"] + res[2]["n_skipped"] != args.cases or res[2]["n_failed"]:
        raise SystemExit(f"resume after the crash did not complete every case: {res[2]}")
    print(f"all checks passed: {args.cases} cases, every crashed run resumed to identical labels ({root})")
    print(json.dumps({"cases": args.cases, "cpu_count": os.cpu_count(), "seconds": {k: round(v, 2) for k, v in t.items()},
                      "cases_per_minute": {k: round(60 * args.cases / t[k], 1) for k in ("workers2", "dask2")}}))


if __name__ == "__main__":
    main()
