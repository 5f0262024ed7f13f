"""medseg in worker processes of your own (``concurrent.futures.ProcessPoolExecutor``,
``multiprocessing.Pool``, joblib): torch's CPU threads per process, and the fork guard.

N processes each running torch with its default thread count (every CPU) on a machine of C
CPUs run N x C threads, which is slower than one process; :func:`init_worker` given as the
pool's initializer gives each worker its share, ``max(1, C // N)`` threads (C: the CPUs this
process may run on, no more than ``$OMP_NUM_THREADS`` when set), as ``medseg batch --workers N``
does::

    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp
    from medseg.workers import init_worker

    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"),
                             initializer=init_worker, initargs=(2,)) as pool:
        results = list(pool.map(segment_one, paths))

A process forked (``multiprocessing``'s default start method on Linux before Python 3.14)
from one that had run torch on several threads hung at its first torch operation: torch's
OpenMP cannot start its threads again in the child. Once :func:`medseg.models.load_model` has
run, a forked child runs torch on one thread instead (:func:`guard_fork`), so it works, if no
faster than one thread allows; 'spawn' (or 'forkserver') workers get their share.
"""

from __future__ import annotations

import os
import sys

_STATE = {"guarded": False, "forked_after_torch": False}


def worker_threads(workers: int) -> int:
    """torch threads for each of ``workers`` processes sharing this machine: ``max(1, C //
    workers)``, C the CPUs this process may run on (``taskset``, a Slurm cpuset), no more than
    ``$OMP_NUM_THREADS`` when set."""
    from ._batch_exec import cpu_budget

    if int(workers) < 1:
        from .errors import MedsegError

        raise MedsegError(f"workers must be 1 or more, got {workers}")
    return max(1, cpu_budget() // int(workers))


def init_worker(workers: int) -> None:
    """Pool initializer (``initializer=init_worker, initargs=(N,)``): this worker's torch threads,
    :func:`worker_threads`\\ (N). Set before torch loads in a spawned worker (also MKL's and
    OpenBLAS's); a worker forked from a process that had loaded a model keeps one thread
    (:func:`guard_fork`)."""
    n = worker_threads(workers)
    if _STATE["forked_after_torch"]:
        n = 1
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


def guard_fork() -> None:
    """Make processes forked from this one from now on run torch on one thread (once per
    process; called by :func:`medseg.models.load_model`). Without it a forked child's first
    multi-threaded torch operation hung forever when this process had run one (GNU OpenMP's
    threads do not survive ``fork``)."""
    if _STATE["guarded"] or not hasattr(os, "register_at_fork"):
        return
    _STATE["guarded"] = True
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _after_fork_in_child() -> None:
    if "torch" not in sys.modules:
        return
    _STATE["forked_after_torch"] = True
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
