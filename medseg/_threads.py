"""Torch's CPU threads divided among Python threads that predict at once
(:meth:`medseg.session.Session.parallel_map`, the frame walks of :mod:`medseg.propagation`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

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
