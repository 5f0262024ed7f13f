"""`medseg batch --workers 2` with a case that kills its worker process (a native decoder's
abort: GDCM on a damaged JPEG 2000 did, rc 134): the pool broke, every case pending in it was
charged an attempt, and the crashing case broke each new pool too, so every case failed with
"a worker process died 3 times while this case was pending". Now the cases that had started
in the broken pool run again one at a time, alone: only the case that kills its worker fails,
with a reason saying so; the cases that had not started go on in a new pool, uncharged.

The case that crashes is injected through :func:`medseg._batch_exec.run_local`'s ``run_one``
(a function of this module, importable in the spawned workers)."""

from __future__ import annotations

import os
import time

from medseg._batch_exec import DIED_ALONE, run_local
from medseg.batch import BatchOptions, CaseSpec


def _abort_on_boom(case: CaseSpec, options: BatchOptions) -> dict:
    """A case run: "boom*" ends its process as a native abort does (SIGABRT, no Python error)."""
    if case.case.startswith("boom"):
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
        os.abort()
    time.sleep(0.1)  # the other worker's case is running when "boom" aborts
    return {"case": case.case, "status": "ok", "reason": "", "seconds": 0.1, "output": "", "input": case.input, "pid": os.getpid()}


def _run(tmp_path, names: list[str], workers: int = 2) -> list[dict]:
    seen: list[dict] = []
    cases = [CaseSpec(n, str(tmp_path / f"{n}.nii.gz")) for n in names]
    run_local(cases, BatchOptions(out_dir=str(tmp_path), auto=True, threads=1), workers, seen.append, run_one=_abort_on_boom)
    return seen


def test_a_case_that_kills_its_worker_fails_alone_and_the_good_cases_complete(tmp_path):
    names = ["a", "boom", "c", "d", "e", "f"]
    seen = _run(tmp_path, names)
    by_case = {r["case"]: r for r in seen}
    assert sorted(r["case"] for r in seen) == sorted(names)  # each case reported once
    for n in ("a", "c", "d", "e", "f"):
        assert by_case[n]["status"] == "ok", by_case[n]
    assert by_case["boom"]["status"] == "failed"
    assert by_case["boom"]["reason"] == DIED_ALONE
    assert "died while reading/segmenting this case" in DIED_ALONE and "native decoder" in DIED_ALONE


def test_two_crashing_cases_fail_and_the_rest_complete(tmp_path):
    names = ["boom1", "a", "b", "boom2", "c"]
    by_case = {r["case"]: r for r in _run(tmp_path, names)}
    assert sorted(by_case) == sorted(names)
    assert {n: r["status"] for n, r in by_case.items()} == {"boom1": "failed", "boom2": "failed", "a": "ok", "b": "ok", "c": "ok"}
    assert by_case["boom2"]["reason"] == DIED_ALONE


def test_the_good_cases_of_a_pool_share_its_workers(tmp_path):
    """With no crash, the cases run in the pool's processes as before (no process per case)."""
    seen = _run(tmp_path, [f"c{i}" for i in range(6)])
    assert all(r["status"] == "ok" for r in seen) and len(seen) == 6
    assert len({r["pid"] for r in seen}) <= 2
