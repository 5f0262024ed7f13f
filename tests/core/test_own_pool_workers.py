"""medseg in process pools of the user's own (docs/batch.md, *Your own pipeline*): a process
forked after a model loaded does not hang, each worker's torch threads, results that pickle."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys

import pytest

from medseg.errors import MedsegError

FORK_AFTER_LOAD = r"""
import os, sys
import torch
torch.set_num_threads(2)
from medseg.models import load_model
load_model("default")  # runs multi-threaded torch ops in this (the parent) process
(torch.randn(256, 256) @ torch.randn(256, 256)).sum()
pid = os.fork()
if pid == 0:  # the child: its first multi-threaded op hung forever (GNU OpenMP after fork)
    import medseg._batch_exec
    from medseg.workers import init_worker
    medseg._batch_exec.cpu_budget = lambda: 2
    init_worker(1)  # a pool's initializer: would give this worker both CPUs, but it was forked
    x = torch.randn(400_000)
    float((x * 2).sum()); (torch.randn(256, 256) @ torch.randn(256, 256)).sum()
    os._exit(0 if torch.get_num_threads() == 1 else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_process_forked_after_load_model_runs_torch_instead_of_hanging():
    proc = subprocess.Popen([sys.executable, "-c", FORK_AFTER_LOAD], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the parent and its hung child
        proc.communicate()
        pytest.fail("the forked child hung in its first torch operation")
    assert proc.returncode == 0, err[-2000:]


def test_worker_threads_share_the_cpus(monkeypatch):
    from medseg import _batch_exec
    from medseg.workers import worker_threads

    monkeypatch.setattr(_batch_exec, "cpu_budget", lambda: 8)
    assert [worker_threads(n) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    with pytest.raises(MedsegError, match="workers must be 1 or more"):
        worker_threads(0)


def test_init_worker_sets_torch_threads_and_the_thread_variables(monkeypatch):
    import torch

    from medseg import _batch_exec
    from medseg.workers import init_worker

    before = torch.get_num_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.setenv(var, "7")
    monkeypatch.setattr(_batch_exec, "cpu_budget", lambda: 2)
    try:
        init_worker(2)
        assert torch.get_num_threads() == 1
        assert {os.environ[v] for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")} == {"1"}
    finally:
        torch.set_num_threads(before)


def test_what_a_worker_returns_pickles(model):
    """Volumes, prompt sets, label maps, SegmentResults (with their confidence) and reports cross
    process boundaries (a pool's results); a Session does not (it holds locks and threads)."""
    from medseg.labels import LabelMap
    from medseg.measure import measure_phase
    from medseg.phantoms import cine_sax_phantom
    from medseg.segment import segment_volume
    from medseg.session import Session

    ph = cine_sax_phantom(n_frames=1, n_slices=4, shape=(64, 64), spacing=(10.0, 2.5, 2.5), seed=3)
    res = segment_volume(ph.image, model, auto=True, label_map="lv=1,myo=2,rv=3")
    report = measure_phase(res.labels[0], ph.image.affine, res.label_map)
    for obj in (ph.image, LabelMap.parse("lv=1,myo=2,rv=3"), report):
        assert repr(pickle.loads(pickle.dumps(obj))) == repr(obj)
    back = pickle.loads(pickle.dumps(res))
    assert (back.labels == res.labels).all() and back.label_map == res.label_map
    assert back.confidence["volume"] == res.confidence["volume"] and back.provenance == res.provenance
    with pytest.raises(TypeError, match=r"a medseg Session cannot be pickled .* return session\.labels and session\.provenance\(\)"):
        pickle.dumps(Session(ph.image, model, "lv=1,myo=2,rv=3"))
