"""Handing freed memory back to the operating system during long runs.

A slice's prediction allocates and frees a few buffers of 1-2 MB (torch tensors of a 512 x 512
slice's logits and sampling grid). glibc's malloc raises its mmap threshold to the largest block
freed, so after the first such buffer they are carved from the heap (one heap per thread),
where the pages they leave free stay in the process: on a 320 x 512 x 512 CT zero-click the
process grew by ~0.7 GB of such free pages (BENCHMARKS.md, "Large inputs"). :func:`trim_heap`
returns them (``malloc_trim``); :class:`HeapTrimmer` calls it every so many slices. Elsewhere
(macOS, Windows, musl) both do nothing. No result depends on either: they only free pages no
live object uses.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from functools import lru_cache

#: slices (predictions written or scanned) between two trims; a trim of a ~2 GB heap takes a few ms
TRIM_EVERY = 32


@lru_cache(maxsize=1)
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def trim_heap() -> bool:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim(0)``). True when it ran
    (glibc), False where there is no such call."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True


class HeapTrimmer:
    """Counts slices and calls :func:`trim_heap` every ``every`` of them (thread-safe).
    ``trims`` counts the trims asked for."""

    def __init__(self, every: int = TRIM_EVERY) -> None:
        self.every = max(1, int(every))
        self.trims = 0
        self._count = 0
        self._lock = threading.Lock()

    def tick(self, n: int = 1) -> None:
        with self._lock:
            self._count += n
            if self._count < self.every:
                return
            self._count = 0
            self.trims += 1
        trim_heap()
