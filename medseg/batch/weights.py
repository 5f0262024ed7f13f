"""Which weights a batch case was segmented with: the sha256 of the files ``--model`` and
``--adapter`` name (without loading them), hashed once per process and file version, and whether
a case's sidecar records others (``--resume``: "model changed", "adapter changed")."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from .cases import BatchOptions


def weights_sha256(model: str, adapter: str | None = None) -> tuple[str | None, str | None]:
    """sha256 of the weights ``--model`` and ``--adapter`` name (the files: the model is not
    loaded), as the loaded model's provenance records them (``model_sha256``, ``adapter_sha256``;
    None: no adapter, or a file that is not there). Hashed once per process and file version
    (path, size, modification time, inode), not once per case."""
    from .._files import resolved
    from ..errors import CheckpointError

    def sha(path: Path | None) -> str | None:
        try:
            st = path.stat() if path is not None else None
        except OSError:
            return None
        return _file_sha256(str(resolved(path)), st.st_size, st.st_mtime_ns, st.st_ino) if st is not None else None

    try:
        model_sha = sha(_model_file(model))
    except CheckpointError:
        model_sha = None
    if not adapter:
        return model_sha, None
    from ..adapters import find_adapter

    try:
        return model_sha, sha(find_adapter(adapter) / "adapter_model.safetensors")
    except CheckpointError:
        return model_sha, None


def _model_file(model: str) -> Path | None:
    """The weights file of ``--model`` (:func:`medseg.models.load_model`'s rules: a ``medseg
    train`` folder or a name in $MEDSEG_HOME/models is its ``best.safetensors``)."""
    from ..models.registry import REGISTRY, check_model_spec, shipped_checkpoint

    if model in ("default", None):
        return shipped_checkpoint()
    name, _, path_text = str(model).partition("=")
    if path_text and name in REGISTRY:
        return Path(path_text)
    return None if model in REGISTRY else check_model_spec(str(model))


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int, inode: int) -> str:
    from .._files import sha256_file

    return sha256_file(path)


def _weights_changed(prov: dict[str, Any], options: BatchOptions) -> str | None:
    """"model changed" / "adapter changed" when the weights a sidecar (or handed-over record)
    records are not those ``options`` name now (other weights in the same file or folder, a new
    default checkpoint); else None."""
    model_sha, adapter_sha = weights_sha256(options.model, options.adapter)
    if model_sha is None or prov.get("model_sha256") != model_sha:
        return "model changed"
    if prov.get("adapter_sha256") != adapter_sha:
        return "adapter changed"
    return None
