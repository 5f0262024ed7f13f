"""Safe checkpoint loading and saving.

* medseg checkpoints: safetensors with the architecture (``ModelConfig``) and training
  summary in the header metadata. Nothing is unpickled.
* official SAM / MedSAM ``.pth`` state dicts: ``torch.load(weights_only=True)`` and strict
  key matching; mismatches are reported by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_path, sha256_file
from ..errors import CheckpointError
from .network import ModelConfig, PromptableSAM, build_skeleton, materialize, sam_config


def save_checkpoint(model: PromptableSAM, path: str | Path, info: dict[str, Any] | None = None, half: bool = False) -> Path:
    """Write a medseg safetensors checkpoint atomically; returns the path.

    ``half`` stores weights as float16 (halves the file; they load back as float32)."""
    from safetensors.torch import save_file

    from .. import __version__

    tensors = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"format": "medseg-checkpoint/1", "config": json.dumps(model.config.to_dict()), "medseg_version": __version__, "info": json.dumps(info or {})}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def read_checkpoint_header(path: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """(config, info) stored in a medseg checkpoint, without loading the weights."""
    config, info, _ = _read_header(path)
    return config, info


def _read_header(path: str | Path) -> tuple[ModelConfig, dict[str, Any], dict[str, tuple[int, ...]]]:
    """(config, info, the shape of every tensor in the file), from the header alone."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    if meta.get("format") != "medseg-checkpoint/1" or "config" not in meta:
        raise CheckpointError(f"{path}: safetensors file is not a medseg checkpoint (no medseg config in its header)")
    try:
        config, info = json.loads(meta["config"]), json.loads(meta.get("info", "{}"))
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: its medseg header is not JSON ({' '.join(str(e).split())[:100]})") from None
    if not isinstance(config, dict) or not isinstance(info, dict):
        raise CheckpointError(f"{path}: its medseg header's config and info must be JSON objects")
    try:
        return ModelConfig.from_dict(config), info, shapes
    except (TypeError, ValueError) as e:  # a field of the wrong type or out of range: checked before any layer is built
        raise CheckpointError(f"{path}: its model config is not one medseg can build ({' '.join(str(e).split())[:200]})") from None


def load_checkpoint(path: str | Path, expected_sha256: str | None = None) -> tuple[PromptableSAM, str, dict[str, Any]]:
    """Load a medseg checkpoint strictly. Returns (model in eval mode, sha256, info).

    The header's config is checked first (types, ranges, total size), then the names and
    shapes of the file's tensors against that config's network built on the meta device (no
    memory), then the weights are read and checked (finite, dtypes), and only then is the
    network allocated: a small file cannot make medseg allocate gigabytes."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    digest = sha256_file(path)
    if expected_sha256 and digest != expected_sha256:
        raise CheckpointError(f"{path}: sha256 {digest[:16]}... does not match the registry's {expected_sha256[:16]}...")
    config, info, shapes = _read_header(path)
    skeleton = _skeleton(config, path)
    own = skeleton.state_dict()
    check_state_fits(own, shapes, None, str(path), config.name)  # before a byte of the weights is read
    state = load_file(str(path))
    check_finite(state, f"checkpoint {path}")
    check_float32_range(state, str(path))
    check_state_fits(own, {k: tuple(v.shape) for k, v in state.items()}, {k: v.dtype for k, v in state.items()}, str(path), config.name)
    return materialize(skeleton, state).eval(), digest, info


def _skeleton(config: ModelConfig, source: str | Path) -> PromptableSAM:
    """:func:`build_skeleton`, a config that slipped past ``ModelConfig``'s checks named in one line."""
    try:
        return build_skeleton(config)
    except (AssertionError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{source}: its model config is not one medseg can build ({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None


#: what a file with NaN / Inf weights is told (its source is named before)
RETRAIN = "re-export or train it again"


def first_non_finite(obj: Any, prefix: str = "") -> str | None:
    """The name of the first floating-point tensor in ``obj`` (a tensor, or dicts / lists /
    tuples of them, as a state dict or an optimizer state nests them) that holds NaN or Inf;
    None when all are finite. Other values (step counts, scores) are not looked at."""
    if isinstance(obj, torch.Tensor):
        if not (obj.is_floating_point() or obj.is_complex()) or obj.numel() == 0:
            return None
        # x * 0 is 0 for every finite x and NaN for NaN / Inf: one sum says whether all are
        # finite, four times faster than torch.isfinite(t).all() (3 ms for the shipped model)
        return None if bool((obj.detach() * 0).sum() == 0) else prefix
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for k, v in items:
        bad = first_non_finite(v, f"{prefix}.{k}" if prefix else str(k))
        if bad is not None:
            return bad
    return None


def check_finite(state: Any, source: str, advice: str = RETRAIN) -> None:
    """Refuse weights holding NaN or Inf (a diverged or damaged training run) with a one-line
    :class:`CheckpointError` naming ``source`` and the first bad tensor: loaded, they fail later
    on an image that is fine, or give empty masks."""
    bad = first_non_finite(state)
    if bad is not None:
        raise CheckpointError(f"{source}: weight {bad!r} holds NaN or Inf values (a diverged or damaged training run); {advice}")


def check_float32_range(state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse float64 weights beyond float32's range (the model holds float32: they would load
    as Inf); float16 and bfloat16 always fit."""
    big = torch.finfo(torch.float32).max
    for k, v in state.items():
        if v.dtype == torch.float64 and v.numel() and float(v.abs().max()) > big:
            raise CheckpointError(f"{source}: weight {k!r} holds float64 values beyond the float32 range the model holds (|x| <= {big:.3g})")


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line error naming the mismatched keys,
    shapes or dtypes (:func:`check_state_fits`)."""
    check_state_fits(model.state_dict(), {k: tuple(v.shape) for k, v in state.items()}, {k: v.dtype for k, v in state.items()},
                     source, getattr(model, "config", None) and model.config.name)
    model.load_state_dict(state, strict=True)


def dtype_fits(own: torch.dtype, got: torch.dtype) -> bool:
    """Whether a tensor of dtype ``got`` may fill a model tensor of dtype ``own``: floating-point
    weights from any floating-point dtype (float16 files load as float32), integers from
    integers or booleans, booleans from booleans. ``load_state_dict`` would cast anything."""
    if own.is_floating_point:
        return got.is_floating_point
    if own.is_complex:
        return got.is_floating_point or got.is_complex
    if own == torch.bool:
        return got == torch.bool
    return not (got.is_floating_point or got.is_complex)


def check_state_fits(own: dict[str, torch.Tensor], shapes: dict[str, tuple[int, ...]], dtypes: dict[str, torch.dtype] | None,
                     source: str, arch: str | None) -> None:
    """Refuse, in one line naming the tensors, weights whose names, ``shapes`` or ``dtypes``
    (None: not checked) do not fit the model's state dict ``own`` (a meta-device one will do)."""
    missing = sorted(set(own) - set(shapes))
    unexpected = sorted(set(shapes) - set(own))
    common = sorted(set(own) & set(shapes))
    bad_shape = [k for k in common if tuple(own[k].shape) != tuple(shapes[k])]
    bad_dtype = [k for k in common if dtypes is not None and not dtype_fits(own[k].dtype, dtypes[k])]
    if not (missing or unexpected or bad_shape or bad_dtype):
        return
    parts = []
    if missing:
        parts.append(f"missing keys {_few(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {_few(unexpected)}")
    if bad_shape:
        k = bad_shape[0]
        parts.append(f"shape mismatch at {k} ({tuple(shapes[k])} in file vs {tuple(own[k].shape)} in model) and {len(bad_shape) - 1} more")
    if bad_dtype:
        k = bad_dtype[0]
        allowed = "floating-point" if own[k].dtype.is_floating_point else str(own[k].dtype).removeprefix("torch.")
        parts.append(f"dtype mismatch at {k} ({str(dtypes[k]).removeprefix('torch.')} in file, allowed: {allowed}) and {len(bad_dtype) - 1} more")
    raise CheckpointError(f"{source}: weights do not fit the {arch} architecture: " + "; ".join(parts))


def _few(keys: list[str], n: int = 3) -> str:
    shown = ", ".join(keys[:n])
    return f"[{shown}{', ...' if len(keys) > n else ''}] ({len(keys)} in all)"


def load_official_sam(path: str | Path, variant: str, name: str, input_norm: str) -> tuple[PromptableSAM, str]:
    """Load an official SAM/MedSAM state dict (``sam_vit_b_01ec64.pth``, ``medsam_vit_b.pth``).

    Uses ``torch.load(weights_only=True)`` (no arbitrary unpickling) and strict keys.
    Returns (model in eval mode, sha256)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    digest = sha256_file(path)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot be read as a weights-only PyTorch state dict ({type(e).__name__})") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    check_finite(state, f"checkpoint {path}")
    check_float32_range(state, str(path))
    skeleton = build_skeleton(sam_config(variant, name, input_norm))  # no memory until the weights fit
    check_state_fits(skeleton.state_dict(), {k: tuple(v.shape) for k, v in state.items()}, {k: v.dtype for k, v in state.items()}, str(path), name)
    return materialize(skeleton, dict(state)).eval(), digest
