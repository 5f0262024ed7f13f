"""Predictions at once in Python threads: torch's CPU threads divided among them
(:func:`split_torch_threads`, also used by the frame walks of :mod:`medseg.propagation`) and
:class:`ThreadedPredictions`, the part of :class:`medseg.session.Session` that runs them."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_SPLIT_LOCK = threading.Lock()
_SPLIT = {"depth": 0, "threads": 0}  # open blocks, torch's count before the first


@contextlib.contextmanager
def split_torch_threads(workers: int) -> Iterator[None]:
    """Divide torch's CPU threads among ``workers`` threads started inside the block. The
    setting is process-wide: blocks entered at the same time (two sessions in one process)
    share one split, and the last one out restores torch's count."""
    import torch

    with _SPLIT_LOCK:
        if _SPLIT["depth"] == 0:
            _SPLIT["threads"] = torch.get_num_threads()
            torch.set_num_threads(max(1, _SPLIT["threads"] // workers))
        _SPLIT["depth"] += 1
    try:
        yield
    finally:
        with _SPLIT_LOCK:
            _SPLIT["depth"] -= 1
            if _SPLIT["depth"] == 0:
                torch.set_num_threads(_SPLIT["threads"])


# Predictions at once in threads (Session.parallel_map): the Python between torch calls holds
# the GIL, so many threads contend for it; measured on 2 cores only, so kept to a few, each with
# its share of torch's threads.
MAX_PARALLEL = 4


class ThreadedPredictions:
    """Predictions of a :class:`~medseg.session.Session` in worker threads, each with its own
    predictor and one shared embedding cache. The session provides ``model``, ``_predictor``,
    ``_tls`` (a ``threading.local``) and ``_heap`` (a :class:`medseg._memory.HeapTrimmer`,
    ticked once per item done)."""

    @property
    def predictor(self):
        """The :class:`~medseg.predictor.SlicePredictor` of the calling thread (worker threads of
        :meth:`parallel_map` have their own; all share one embedding cache)."""
        return getattr(self._tls, "predictor", None) or self._predictor

    def spare_threads(self) -> int:
        """How many predictions may run at once: torch's threads on the CPU, at most
        :data:`MAX_PARALLEL`; 1 on a GPU or inside a worker already (``medseg batch --workers
        N`` gives each process its share)."""
        import torch

        if self.model.device != "cpu" or getattr(self._tls, "predictor", None) is not None:
            return 1
        return max(1, min(torch.get_num_threads(), MAX_PARALLEL))

    def parallel_map(self, fn: Callable[[Any], Any], items: Iterable[Any], workers: int | None = None,
                     done: Callable[[int], None] | None = None) -> list[Any]:
        """``[fn(item) for item in items]``, with up to ``workers`` (default
        :meth:`spare_threads`) items at a time in threads, each with its own predictor (one
        shared embedding cache) and torch's threads divided between them: on a small CPU two
        slices on one core each finish sooner than one after the other on both, since the
        model's small matrices do not split well across cores. ``fn`` must only *predict*
        (read the session, run the model), never write labels, results or the log: the
        session is changed on the calling thread only, so every result is the same as run
        one by one. ``done(i)`` is called on the calling thread as item ``i``'s result arrives,
        in item order (progress). The first error (in item order) is raised after all items
        finished."""
        items = list(items)
        workers = min(self.spare_threads() if workers is None else int(workers), len(items))
        out: list[Any] = []
        if workers <= 1:
            for i, x in enumerate(items):
                out.append(fn(x))
                self._heap.tick()
                if done:
                    done(i)
            return out
        from concurrent.futures import ThreadPoolExecutor

        errors: list[BaseException] = []
        with split_torch_threads(workers), ThreadPoolExecutor(workers, thread_name_prefix="medseg") as pool:
            for i, (res, err) in enumerate(pool.map(lambda x: self._in_worker(fn, x), items)):
                out.append(res)
                self._heap.tick()
                if err is not None:
                    errors.append(err)
                if done:
                    done(i)
        if errors:
            raise errors[0]
        return out

    def _in_worker(self, fn: Callable[..., Any], *args: Any) -> tuple[Any, BaseException | None]:
        """Run ``fn(*args)`` on this (worker) thread with its own predictor; returns (result,
        error), the error caught so the caller raises it in order."""
        from .predictor import SlicePredictor

        self._tls.predictor = SlicePredictor(self.model, cache=self._predictor.cache, modality=self._predictor.modality)
        try:
            return fn(*args), None
        except BaseException as e:  # handed to the calling thread, which raises it
            return None, e
        finally:
            del self._tls.predictor
