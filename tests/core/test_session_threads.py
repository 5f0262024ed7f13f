"""Session predictions in worker threads: the same result as one after another, parallel_map's
order, progress and errors, and the threads ended at once when a write fails."""

from __future__ import annotations

import numpy as np
import pytest
from session_helpers import box_of as _box

from medseg.errors import PromptError
from medseg.session import Session
from medseg.types import SlicePrompt


def test_predictions_in_threads_give_what_one_after_another_gives(model, phantom, monkeypatch):
    """With spare torch threads the two walk directions, zero-click's slices and the
    confidence's slices run in threads (each its own predictor): the labels, slice results,
    log and confidence must be those of running everything one after another."""
    import threading

    import torch

    lm = phantom.label_map.subset(["lv", "myo", "rv"])
    in_threads = []
    _in_worker = Session._in_worker

    def spy(self, fn, *args):
        in_threads.append(threading.current_thread().name)
        return _in_worker(self, fn, *args)

    monkeypatch.setattr(Session, "_in_worker", spy)

    def run(spare):
        monkeypatch.setattr(Session, "spare_threads", lambda self: spare)
        s = Session(phantom.image, model, lm)
        s.auto(["lv", "myo", "rv"], frames=[0])
        s.apply_prompt(SlicePrompt("lv", 1, 2, box=_box(phantom.labels[1, 2], 1)))
        s.propagate("lv", 1, 2, through="zt")
        return s.labels.copy(), s.log, s.confidence(), s.results

    threads = torch.get_num_threads()
    labels, log, conf, results = run(1)
    assert not in_threads
    labels2, log2, conf2, results2 = run(2)
    assert in_threads and all(n.startswith("medseg") for n in in_threads)
    assert torch.get_num_threads() == threads  # the split is undone
    assert (labels == labels2).all() and (labels2 == 1).any()
    assert log == log2 and results.keys() == results2.keys()
    # torch's one-thread kernels may sum in another order than its two-thread ones: the logits
    # agree to float precision, not always bit for bit
    for k, r in results.items():
        assert np.array_equal(r.roi, results2[k].roi) and r.score == pytest.approx(results2[k].score, abs=1e-5)
        assert np.allclose(r.logits, results2[k].logits, atol=1e-3)
    assert [(c.structure, c.frame, c.slice) for c in conf.slices] == [(c.structure, c.frame, c.slice) for c in conf2.slices]
    assert [c.confidence for c in conf.slices] == pytest.approx([c.confidence for c in conf2.slices], abs=1e-4)


def test_parallel_map_keeps_order_reports_progress_in_order_and_raises_the_first_error(session):
    import threading

    seen = []
    out = session.parallel_map(lambda x: (x, threading.current_thread().name), range(7), workers=2, done=seen.append)
    assert [x for x, _ in out] == list(range(7)) and seen == list(range(7))
    assert {n for _, n in out} <= {f"medseg_{i}" for i in range(2)}

    def fails_on_2_and_5(x):
        if x in (5, 2):
            raise PromptError(f"item {x} failed")
        return x

    with pytest.raises(PromptError, match="item 2 failed"):
        session.parallel_map(fails_on_2_and_5, range(7), workers=2)
    assert session.predictor is session._predictor  # the workers' predictors are gone with them


def test_a_failed_write_during_propagation_ends_the_walker_threads_at_once(session, phantom, monkeypatch):
    """A write that fails mid-walk must end the worker threads and torch's thread split right
    away, even while the exception (and the frames it holds) is still kept by whoever shows it."""
    import torch

    import medseg._threads as ms

    session.apply_prompt(SlicePrompt("lv", 0, 2, box=_box(phantom.labels[0, 2], 1)))
    monkeypatch.setattr(Session, "spare_threads", lambda self: 1 if getattr(self._tls, "predictor", None) else 2)
    threads = torch.get_num_threads()

    def disk_full(*args, **kwargs):
        raise PromptError("disk full")

    monkeypatch.setattr(Session, "_write", disk_full)
    with pytest.raises(PromptError, match="disk full") as err:
        session.propagate("lv", 0, 2)
    assert err.traceback  # the exception still holds the walk's frames here
    assert ms._SPLIT["depth"] == 0 and torch.get_num_threads() == threads
