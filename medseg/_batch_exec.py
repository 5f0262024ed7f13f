"""Executors of :mod:`medseg.batch`: a spawned local process pool and a Dask cluster, and
the torch thread count per worker. Internal; use :func:`medseg.batch.run_batch`."""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import OutputDiskFull

if TYPE_CHECKING:
    from .batch import BatchOptions, CaseSpec, Result

MAX_ATTEMPTS = 3  # local pool: a case pending in this many broken pools, none of whose cases had started, fails
#: the reason of a case whose worker process died with it running alone
DIED_ALONE = ("the worker process died while reading/segmenting this case, run alone (a crash in a native decoder, "
              "or killed: out of memory?); other cases were not affected")


def run_local(cases: Sequence[CaseSpec], options: BatchOptions, workers: int, emit: Callable[[Result], None],
              run_one: Callable[[CaseSpec, BatchOptions], Result] | None = None) -> None:
    """``workers`` spawned processes (``options.threads`` torch threads each) running
    ``run_one`` (:func:`medseg.batch.run_case`) per case. A worker that dies (a native decoder's
    abort, the OOM killer) breaks the pool: the cases that had started in it are run again, each
    alone in a process of its own, where one that dies again fails (:data:`DIED_ALONE`); those
    that had not started go back to a new pool, uncharged. Were none started, every pending case
    is charged, and one pending in MAX_ATTEMPTS broken pools fails."""
    import multiprocessing as mp

    from .batch import failed_result, run_case

    run_one = run_one or run_case
    ctx = mp.get_context("spawn")
    pending, attempts = list(cases), Counter()
    while pending:
        state = ctx.RawArray("b", len(pending))  # per case: 1 once a worker started it, 2 once it returned
        broken = _run_pool(pending, options, min(workers, len(pending)), emit, run_one, state, ctx)
        if not broken:
            return
        started = [i for i in broken if state[i] == 1]
        if not started:  # a worker died with no case running (killed while idle): charge every case
            attempts.update(pending[i].case for i in broken)
            for i in broken:
                if attempts[pending[i].case] >= MAX_ATTEMPTS:
                    emit(failed_result(pending[i], f"a worker process died {MAX_ATTEMPTS} times while this case was pending "
                                                   "(killed, out of memory, or a crash)"))
            pending = [pending[i] for i in broken if attempts[pending[i].case] < MAX_ATTEMPTS]
            continue
        for i in started:  # each in a process of its own, one after another: only a case that kills its worker fails
            if _run_pool([pending[i]], options, 1, emit, run_one, None, ctx):
                emit(failed_result(pending[i], DIED_ALONE))
        pending = [pending[i] for i in broken if state[i] != 1]


def _run_pool(cases: Sequence[CaseSpec], options: BatchOptions, workers: int, emit: Callable[[Result], None],
              run_one: Callable[..., Result], state: Any, ctx: Any) -> list[int]:
    """Run ``cases`` in a pool of ``workers`` processes, emitting each result; the indices of
    the cases whose result a broken pool (a worker died) lost. ``state``: see :func:`_tracked`."""
    import concurrent.futures as cf
    from concurrent.futures.process import BrokenProcessPool

    from .batch import failed_result

    broken: list[int] = []
    pool = cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(options.threads or 1, os.getpid(), state))
    futures: dict = {}
    try:
        futures = {pool.submit(_tracked, run_one, c, options, i): i for i, c in enumerate(cases)}
        for fut in cf.as_completed(futures):
            try:
                res = fut.result()
            except BrokenProcessPool:
                broken.append(futures[fut])
                continue
            except Exception as e:
                res = failed_result(cases[futures[fut]], f"worker error: {type(e).__name__}: {e}")
            emit(res)  # outside the try: its OutputDiskFull stops the batch, it is no case's error
    except BaseException:  # Ctrl-C, a full disk (OutputDiskFull), an error writing the summary: stop now
        _stop_pool(pool, options.out_dir, futures, [c.case for c in cases])
        raise
    pool.shutdown(wait=True)
    return sorted(broken)


#: the worker's shared per-case state array (:func:`_init_worker`), None outside a tracked pool
_STATE: Any = None


def _tracked(run_one: Callable[..., Result], case: CaseSpec, options: BatchOptions, index: int) -> Result:
    """``run_one(case, options)`` in a worker, marking case ``index`` started (1) then returned
    (2) in the pool's shared state, which the parent reads when the pool breaks."""
    if _STATE is not None:
        _STATE[index] = 1
    res = run_one(case, options)
    if _STATE is not None:
        _STATE[index] = 2
    return res


def _stop_pool(pool: Any, out_dir: Any, futures: Any = (), case_ids: Sequence[str] = ()) -> None:
    """Cancel the queued cases (``futures``), end the workers (they ignore SIGINT: the parent
    decides) and remove the temporary files a case cut short left in ``out_dir`` (those of the
    outputs of ``case_ids``: :func:`medseg.batch.outdir.remove_stale_temp_files`; finished
    outputs were renamed into place, so none is half-written). Other hidden files stay."""
    import multiprocessing as mp

    from .batch.outdir import remove_stale_temp_files

    # the pool's workers: its own list, which its manager thread may already have cleared, and this process's children
    procs = {p.pid: p for p in [*(getattr(pool, "_processes", None) or {}).values(), *mp.active_children()]}.values()
    for fut in futures:
        fut.cancel()  # the pending ones, now (shutdown's cancel_futures does it later, from its thread)
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        p.terminate()
    for p in procs:
        p.join(timeout=10)
    remove_stale_temp_files(out_dir, case_ids)


def run_dask(cases: Sequence[CaseSpec], options: BatchOptions, scheduler: Any, emit: Callable[[Result], None]) -> None:
    """One task per case on a Dask cluster (address or ``distributed.Client``), results taken
    as they complete. Workers load the model themselves (nothing big is shipped)."""
    import uuid

    from distributed import Client, as_completed

    from ._files import shown
    from .batch import failed_result, run_case
    from .errors import MedsegError

    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler, timeout="20s") if own else scheduler
    except (OSError, TimeoutError, ValueError) as e:
        why = " ".join(str(e).split()) or type(e).__name__
        raise MedsegError(f"cannot reach the Dask scheduler at {scheduler}: {why}") from None
    try:
        opts = dataclasses.replace(options, threads_by_host=_threads_by_host(client))
        token = uuid.uuid4().hex[:8]  # keys are sent as UTF-8: a non-UTF-8 byte of a case name escaped (shown)
        futures = {client.submit(run_case, c, opts, key=f"medseg-batch-{shown(c.case)}-{i}-{token}", pure=False): c for i, c in enumerate(cases)}
        try:
            for fut in as_completed(futures):
                try:
                    res = fut.result()
                except Exception as e:  # KilledWorker, CancelledError, a worker without medseg, ...
                    res = failed_result(futures[fut], f"Dask task failed: {type(e).__name__}: {e}")
                fut.release()
                emit(res)  # outside the try: its OutputDiskFull stops the batch
        except (KeyboardInterrupt, OutputDiskFull):  # Ctrl-C, a full disk: the cluster's queued tasks go too
            client.cancel(list(futures), force=True)
            raise
    finally:
        if own:
            client.close()


def _threads_by_host(client: Any) -> tuple[tuple[str, int], ...]:
    try:
        info = client.scheduler_info(n_workers=-1)  # distributed >= 2025: all workers
    except TypeError:
        info = client.scheduler_info()
    per_host: Counter = Counter()
    for w in info["workers"].values():
        per_host[w["host"]] += int(w["nthreads"])
    return tuple(sorted(per_host.items()))


def set_threads(options: BatchOptions) -> None:
    """torch threads of this process: ``options.threads``; on a Dask worker, the host's cores
    divided by the worker threads on that host."""
    n = options.threads
    if options.threads_by_host:
        try:
            from distributed import get_worker

            host = get_worker().address.split("://")[-1].rsplit(":", 1)[0]
            n = max(1, n_cores() // dict(options.threads_by_host).get(host, 1))
        except (ImportError, ValueError):
            n = options.threads
    if n:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def n_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_budget() -> int:
    """CPUs the local worker processes of a batch share: :func:`n_cores` (the CPUs this process
    may run on: ``taskset``, a Slurm cpuset), no more than ``$OMP_NUM_THREADS`` when that is set
    (PBS sets it to the job's CPUs; a node that pins no CPUs shows all of its cores)."""
    text = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    omp = int(text) if text.isdigit() else 0
    return min(n_cores(), omp) if omp > 0 else n_cores()


def _init_worker(threads: int, parent_pid: int | None = None, state: Any = None) -> None:
    """Pool initializer: thread limits before torch is imported in the spawned process; Ctrl-C
    is the parent's to handle (a worker that took it would fail its case and take the next);
    the worker ends when its parent ``parent_pid`` does (:func:`_die_with_parent`); ``state``:
    the pool's shared per-case state (:func:`_tracked`)."""
    import signal

    global _STATE
    _STATE = state

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from ._environ import quiet_matplotlib_dirs

    quiet_matplotlib_dirs()  # as the CLI's own process (run_cli): a read-only HOME says nothing per worker
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if parent_pid is not None:
        _die_with_parent(parent_pid)


#: seconds between a worker's checks that its parent is still there
PARENT_CHECK_S = 0.5


def _die_with_parent(parent_pid: int) -> None:
    """End this worker process when the batch process ``parent_pid`` dies (kill -9, a crash):
    an orphan went on with its queue, writing outputs nobody collects, and then hung on the
    result pipe holding its model's memory. Linux: ``prctl(PR_SET_PDEATHSIG, SIGTERM)``; on every
    platform also a daemon thread that ends the process once ``os.getppid()`` changes. Temporary
    files a case cut short leaves are removed by the next run (:func:`medseg.batch.run_batch`)."""
    import sys
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # it died before the line above
        os._exit(1)

    def watch() -> None:
        import time

        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="medseg-parent-watch", daemon=True).start()
