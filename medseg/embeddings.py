"""Embedding cache: the encoder is the expensive step, so its output is kept per
(data key, ROI, model, adapter) and reused for every prompt that needs the same crop.

The in-memory cache is a small LRU. The optional disk cache stores each entry as a
safetensors file whose header carries a signature (key, model sha256, adapter id, medseg
version); an entry whose signature does not match is refused and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path

import numpy as np
import torch


def array_key(array: np.ndarray) -> str:
    """A short content hash of an array (shape, dtype and bytes)."""
    h = hashlib.blake2b(digest_size=12)
    a = np.ascontiguousarray(array)
    h.update(str((a.shape, a.dtype.str)).encode())
    h.update(a.tobytes())
    return h.hexdigest()


class EmbeddingCache:
    """LRU of image embeddings keyed by (data key, roi, model id, adapter id). Safe to share
    between threads (a session's predictions may run in parallel, :meth:`medseg.session.Session.parallel_map`)."""

    def __init__(self, max_items: int = 256, disk_dir: str | Path | None = None) -> None:
        self.max_items = int(max_items)
        self._items: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self._lock = threading.RLock()
        self.disk_dir = Path(disk_dir) if disk_dir else None
        self.hits = 0
        self.misses = 0

    @staticmethod
    def make_key(data_key: Hashable, roi: np.ndarray, model_sha: str, adapter_id: str | None) -> tuple:
        return (data_key, tuple(np.round(np.asarray(roi, dtype=np.float64), 3).tolist()), model_sha, adapter_id)

    def get(self, key: tuple) -> torch.Tensor | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
        if self.disk_dir is not None:
            emb = self._load_disk(key)
            if emb is not None:
                with self._lock:
                    self.hits += 1
                self._store(key, emb)
                return emb
        with self._lock:
            self.misses += 1
        return None

    def put(self, key: tuple, embedding: torch.Tensor) -> None:
        self._store(key, embedding)
        if self.disk_dir is not None:
            self._save_disk(key, embedding)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def _store(self, key: tuple, embedding: torch.Tensor) -> None:
        with self._lock:
            self._items[key] = embedding
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    # -- disk -----------------------------------------------------------------------------
    def _signature(self, key: tuple) -> str:
        from . import __version__

        return json.dumps({"key": repr(key), "medseg": __version__}, sort_keys=True)

    def _disk_path(self, key: tuple) -> Path:
        name = hashlib.sha256(self._signature(key).encode()).hexdigest()[:32]
        return self.disk_dir / f"{name}.safetensors"  # type: ignore[operator]

    def _save_disk(self, key: tuple, embedding: torch.Tensor) -> None:
        from safetensors.torch import save_file

        from ._files import atomic_path

        with atomic_path(self._disk_path(key)) as tmp:
            save_file({"embedding": embedding.detach().cpu().contiguous()}, str(tmp), metadata={"signature": self._signature(key)})

    def _load_disk(self, key: tuple) -> torch.Tensor | None:
        from safetensors import safe_open

        path = self._disk_path(key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                if (f.metadata() or {}).get("signature") != self._signature(key):
                    return None
                return f.get_tensor("embedding")
        except Exception:  # a corrupt cache entry is recomputed, never trusted
            return None
