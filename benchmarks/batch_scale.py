"""`medseg batch` on hundreds of tiny studies: the per-case cost that is not the model.

    OMP_NUM_THREADS=1 python benchmarks/batch_scale.py WORK_DIR [--cases 300] [--discover 1000]

1. writes N phantom studies (1, 4, 48, 48) + ``_gt`` labels (made once; kept in WORK_DIR/in);
2. runs ``batch --prompts-from --key-slice --measure --workers 1`` in this process
   (``medseg.cli._app.run_cli``), recording the wall time, the time the first case ended, the
   seconds spent rewriting summary.csv/json after each case, the RSS after each case and the
   time of ``cohort.csv``/``cohort.png``;
3. adds one study and runs the same with ``--resume``: seconds until the new case starts
   (the N finished cases checked, re-measured and the summary rewritten for each);
4. ``evaluate --pairs IN --predicted OUT`` on the same studies (must not load the model);
5. ``discover_cases`` on ``--discover`` studies (made in WORK_DIR/in_discover) and one
   ``write_summary`` of 300 and 1,000 rows (the cost of each rewrite, which grows with the rows).
Prints the numbers as one JSON line. Not a test: it takes ~6 min for 300 cases on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "batch"))

from batch_data import MAP, write_case  # noqa: E402


def make(folder: Path, n: int) -> None:
    if len(list(folder.glob("c*_gt.nii.gz"))) >= n:
        return
    for i in range(n):
        write_case(folder, f"c{i:04d}", seed=i % 20, shape=(48, 48), n_slices=4)


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1e6


def instrumented_batch(argv: list[str]) -> dict:
    """Run ``medseg batch`` in this process, timing its parts through the module's own functions."""
    import medseg.batch.run as br
    from medseg.cli._app import run_cli

    t0, rss, done, spent = time.perf_counter(), [], [], {"summary": 0.0, "cohort": 0.0, "first_new": None}
    run_case, write_summary, write_cohort, segment_case = br.run_case, br.write_summary, br.write_cohort_with_studies, br._segment_case

    def timed(key, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[key] += time.perf_counter() - t
        return wrapper

    def case(*a, **k):
        res = run_case(*a, **k)
        rss.append(rss_mb())
        done.append(time.perf_counter() - t0)
        return res

    def segment(*a, **k):
        if spent["first_new"] is None:
            spent["first_new"] = time.perf_counter() - t0
        return segment_case(*a, **k)

    br.run_case, br.write_summary, br.write_cohort_with_studies, br._segment_case = case, timed("summary", write_summary), timed("cohort", write_cohort), segment
    try:
        rc = run_cli(argv)
    finally:
        br.run_case, br.write_summary, br.write_cohort_with_studies, br._segment_case = run_case, write_summary, write_cohort, segment_case
    wall = time.perf_counter() - t0
    n = len(done)
    return {"rc": rc, "wall_s": round(wall, 2), "cases": n, "first_case_done_s": round(done[0], 2) if done else None,
            "s_per_case_after_first": round((done[-1] - done[0]) / (n - 1), 3) if n > 1 else None,
            "summary_rewrites_s": round(spent["summary"], 2), "cohort_s": round(spent["cohort"], 2),
            "first_segmented_case_starts_s": round(spent["first_new"], 2) if spent["first_new"] is not None else None,
            "rss_mb_after_case": {i: round(rss[i - 1]) for i in (1, 10, 100, 300, 1000) if i <= n}}


def summary_rewrite_ms(out: Path, n: int) -> float:
    """Median ms of one write_summary of ``n`` rows like the run's (rows cycled, names made unique)."""
    import dataclasses

    from medseg.batch import BatchOptions
    from medseg.batch.cohort import KEY_MEASURES, write_summary

    s = json.loads((out / "summary.json").read_text())
    takes = {f.name for f in dataclasses.fields(BatchOptions)} - {"subjects"}  # settings also record e.g. model_sha256
    options = BatchOptions(**{k: v for k, v in s["settings"].items() if k in takes})
    rows = []
    for i in range(n):
        r = {k: ("" if v is None else v) for k, v in s["cases"][i % len(s["cases"])].items()}
        rows.append({**r, "case": f"r{i:05d}", "measures": {k: r.pop(k) for k in KEY_MEASURES if k in r}})
    scratch = out.parent / f"summary_{n}"
    scratch.mkdir(exist_ok=True)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        write_summary(scratch, rows, options)
        times.append(time.perf_counter() - t)
    return round(1000 * statistics.median(times[1:]), 1)  # the first write of these rows encodes every one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--discover", type=int, default=1000)
    args = ap.parse_args()
    work = args.work.absolute()
    inp, out, res = work / "in", work / "out", {"cases": args.cases}
    t = time.perf_counter()
    make(inp, args.cases)
    res["generate_s"] = round(time.perf_counter() - t, 1)
    common = ["--prompts-from", str(inp), "--key-slice", "--label-map", MAP, "--workers", "1", "--measure"]
    res["batch"] = instrumented_batch(["batch", str(inp), "-o", str(out), *common])
    for p in out.glob("c9999*"):  # left by an earlier run in the same WORK: the new study would be skipped
        p.unlink()
    write_case(inp, "c9999", seed=3, shape=(48, 48), n_slices=4)  # one study the first run did not see
    try:
        res["resume"] = instrumented_batch(["batch", str(inp), "-o", str(out), *common, "--resume"])
    finally:
        for p in inp.glob("c9999*"):
            p.unlink()
    import medseg.models as models
    from medseg.cli._app import run_cli

    loads, load_model = [], models.load_model
    models.load_model = lambda *a, **k: loads.append(1) or load_model(*a, **k)
    t = time.perf_counter()
    rc = run_cli(["evaluate", "--pairs", str(inp), "--label-map", MAP, "--predicted", str(out), "-o", str(work / "evaluate.json")])
    models.load_model = load_model
    res["evaluate_predicted"] = {"rc": rc, "wall_s": round(time.perf_counter() - t, 2), "model_loads": len(loads)}
    from medseg.batch import discover_cases

    make(work / "in_discover", args.discover)
    t = time.perf_counter()
    n = len(discover_cases(work / "in_discover", work / "in_discover"))
    res["discover"] = {"cases": n, "s": round(time.perf_counter() - t, 2)}
    res["summary_rewrite_ms"] = {n: summary_rewrite_ms(out, n) for n in (300, 1000)}
    res["load_avg"] = open("/proc/loadavg").read().split()[:3]
    print(json.dumps(res))


if __name__ == "__main__":
    main()
