"""Model registry: names -> builders + weights + sha256. Nothing is ever downloaded.

``--model`` accepts:
  * ``default`` — the shipped cardiac model in ``checkpoints/`` (sha256 checked);
  * ``sam_vit_b=PATH``, ``sam_vit_l=PATH``, ``sam_vit_h=PATH``, ``medsam_vit_b=PATH`` — an
    official state dict the user already has (``torch.load(weights_only=True)``, strict keys);
  * a path to a medseg ``.safetensors`` checkpoint (e.g. one made by ``medseg train``), recorded
    as ``FOLDER/STEM`` (``labA_run1/best``: :func:`medseg.models.own.checkpoint_id`; the shipped
    default model's weights, by sha256, as ``default``);
  * a ``medseg train`` output folder (its ``best.safetensors``); ``NAME`` or ``NAME/STEM``: such a
    folder in ``$MEDSEG_HOME/models`` (its ``best.safetensors``, or ``STEM.safetensors``), when
    nothing of that path is here (a folder here comes first, as for ``--adapter``);
  * a path to a ``.pth`` SAM state dict (architecture detected from its shapes; SAM input
    normalisation assumed — name it ``medsam_vit_b=PATH`` for MedSAM).
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError

if TYPE_CHECKING:  # torch-free at import time
    from .network import ModelConfig

DEFAULT_CHECKPOINT_NAME = "medseg_default.safetensors"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    kind: str  # "medseg" or "sam"
    variant: str | None = None  # SAM variant: vit_b / vit_l / vit_h
    input_norm: str = "unit"
    shipped_file: str | None = None


REGISTRY: dict[str, ModelEntry] = {
    "default": ModelEntry("default", "medseg cardiac model (shipped, CPU-fast ViT, structure prompts)", "medseg", shipped_file=DEFAULT_CHECKPOINT_NAME),
    "sam_vit_b": ModelEntry("sam_vit_b", "Segment Anything ViT-B (user-supplied weights)", "sam", "vit_b", "sam"),
    "sam_vit_l": ModelEntry("sam_vit_l", "Segment Anything ViT-L (user-supplied weights)", "sam", "vit_l", "sam"),
    "sam_vit_h": ModelEntry("sam_vit_h", "Segment Anything ViT-H (user-supplied weights)", "sam", "vit_h", "sam"),
    "medsam_vit_b": ModelEntry("medsam_vit_b", "MedSAM ViT-B (user-supplied weights)", "sam", "vit_b", "medsam"),
}


def medseg_home(kind: str | None = None) -> Path | None:
    """``$MEDSEG_HOME`` (``~`` expanded: a job script's quoted ``MEDSEG_HOME="~/medseg"`` was
    searched as a folder named ``~``), or its ``kind`` sub-folder; None when it is not set."""
    home = os.environ.get("MEDSEG_HOME")
    if not home:
        return None
    return Path(home).expanduser() / kind if kind else Path(home).expanduser()


def asset_dirs(kind: str) -> list[Path]:
    """Folders searched for shipped assets (``checkpoints`` or ``adapters``), in order:
    $MEDSEG_HOME/<kind>, the source tree's top-level folder (editable installs), and
    <data>/share/medseg/<kind> (wheel installs: where pip put the wheel's data files)."""
    out = []
    if medseg_home():
        out.append(medseg_home(kind))
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file():  # a checkout; installed, this is site-packages
        out.append(root / kind)
    for d in _installed_share_dirs(kind):
        if d not in out:
            out.append(d)
    return out


def _installed_share_dirs(kind: str) -> list[Path]:
    """share/medseg/<kind> of this installed copy: <sys.prefix>/share is only where a venv's pip
    puts data files; ``pip install --user`` puts them in ~/.local/share, Debian's system pip in
    /usr/local/share, ``--prefix P`` in P/share (read from the wheel's RECORD beside the package),
    ``--target T`` in T/share."""
    site = Path(__file__).resolve().parents[2]
    found = [site / "share" / "medseg" / kind]  # first: --target's RECORD names ../../share, not T/share
    for info in sorted(site.glob("medseg-*.dist-info")):
        try:
            lines = (info / "RECORD").read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            parts = Path(line.split(",", 1)[0]).parts
            hit = next((i for i in range(len(parts) - 3) if parts[i:i + 3] == ("share", "medseg", kind)), None)
            if hit is not None:
                found.append(Path(os.path.normpath(site.joinpath(*parts[:hit + 3]))))
                break
    found.append(Path(sys.prefix) / "share" / "medseg" / kind)
    existing = [d for d in dict.fromkeys(found) if d.is_dir()]
    return existing or [Path(sys.prefix) / "share" / "medseg" / kind]


def shipped_checkpoint(filename: str = DEFAULT_CHECKPOINT_NAME) -> Path:
    for d in asset_dirs("checkpoints"):
        if (d / filename).is_file():
            return d / filename
    raise CheckpointError(f"shipped checkpoint {filename} not found in {', '.join(str(d) for d in asset_dirs('checkpoints'))}")


def shipped_sha256(filename: str = DEFAULT_CHECKPOINT_NAME) -> str | None:
    """The sha256 recorded for a shipped checkpoint in ``checkpoints/SHA256SUMS.json``."""
    for d in asset_dirs("checkpoints"):
        f = d / "SHA256SUMS.json"
        if f.is_file():
            return json.loads(f.read_text()).get(filename)
    return None


@dataclass
class LoadedModel:
    """A model ready for inference, with the identity recorded in provenance."""

    model: Any  # PromptableSAM
    model_id: str
    sha256: str
    info: dict[str, Any] = field(default_factory=dict)
    adapter_id: str | None = None
    adapter_sha256: str | None = None
    device: str = "cpu"

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    def __repr__(self) -> str:  # not the network's module tree (11 kB in a notebook)
        adapter = f", adapter_id={self.adapter_id!r}" if self.adapter_id else ""
        return f"LoadedModel(model_id={self.model_id!r}, sha256={self.sha256[:12] + '...'!r}{adapter}, device={self.device!r})"

    def provenance(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "model_sha256": self.sha256, "adapter_id": self.adapter_id, "adapter_sha256": self.adapter_sha256}


def load_model(spec: str | os.PathLike[str] | None = "default", device: str = "cpu", adapter: str | os.PathLike[str] | None = None) -> LoadedModel:
    """Resolve ``--model`` (see module docstring) and load the weights onto ``device``; with
    ``adapter`` (``--adapter``: a shipped name or a folder) attach that LoRA adapter
    (:func:`medseg.adapters.attach_adapter`, which checks it was trained for this base model)."""
    from ..workers import guard_fork

    guard_fork()  # a process forked from this one runs torch on one thread: it hung on more
    loaded = _load_base(spec, device)
    if adapter:
        from ..adapters import attach_adapter

        loaded = attach_adapter(loaded, adapter)
    return loaded


def _load_base(spec: str | os.PathLike | None, device: str) -> LoadedModel:
    from .checkpoints import load_checkpoint, load_official_sam

    spec = "default" if spec is None else str(spec)
    device = check_device(device)
    if spec == "default":
        path = shipped_checkpoint()
        model, digest, info = load_checkpoint(path, shipped_sha256())
        return LoadedModel(model.to(device), "default", digest, info, device=device)
    name, _, path_text = spec.partition("=")
    if path_text and name in REGISTRY and REGISTRY[name].kind == "sam":
        e = REGISTRY[name]
        model, digest = load_official_sam(path_text, e.variant, e.name, e.input_norm)
        return LoadedModel(model.to(device), name, digest, device=device)
    path = check_model_spec(spec)
    if path.suffix == ".safetensors":
        model, digest, info = load_checkpoint(path)
        from .own import checkpoint_id

        return LoadedModel(model.to(device), checkpoint_id(path, digest), digest, info, device=device)
    variant = _detect_sam_variant(path)
    model, digest = load_official_sam(path, variant, f"sam_{variant}", "sam")
    return LoadedModel(model.to(device), f"sam_{variant}", digest, device=device)


def check_model_spec(spec: str) -> Path:
    """``--model`` that is no shipped name nor ``NAME=PATH``: the checkpoint file it names, without
    reading it; CheckpointError (one line) for a registry name without its file, a name medseg
    does not know, or a path that is not a regular file. ``batch`` checks it before its cases
    (an unknown name failed every case, one after another)."""
    if spec in REGISTRY:
        raise CheckpointError(f"model {spec!r} needs your checkpoint file: use --model {spec}=/path/to/weights.pth (nothing is downloaded)")
    from .own import BEST, find_own_model

    path = Path(spec)
    if not path.exists():
        own = find_own_model(spec)  # a lab's model by name ($MEDSEG_HOME/models/NAME), as adapters are found
        if own is not None:
            return own
        raise CheckpointError(f"unknown model {spec!r}; use one of: default, " + ", ".join(f"{n}=PATH" for n in REGISTRY if n != "default")
                              + ", a checkpoint path, or the name of a folder in $MEDSEG_HOME/models (medseg models lists them)")
    if path.is_dir() and (path / BEST).is_file():  # a medseg train output folder: its best.safetensors, as by name
        return path / BEST
    if not path.is_file():  # a folder, a FIFO or a device would be read forever
        raise CheckpointError(f"--model {spec}: not a regular file" + (" (nor a medseg train folder: no best.safetensors in it)" * path.is_dir()))
    return path


def _detect_sam_variant(path: Path) -> str:
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:
        raise CheckpointError(f"{path}: neither a medseg .safetensors checkpoint nor a weights-only SAM state dict") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):  # as load_official_sam unwraps it
        state = state["model"]
    key = "image_encoder.patch_embed.proj.weight"
    w = state.get(key) if isinstance(state, dict) else None
    dims = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}
    if not isinstance(w, torch.Tensor) or w.dim() != 4 or int(w.shape[0]) not in dims:
        found = "none" if w is None else f"a {w.dim()}-d tensor of shape {tuple(w.shape)}" if isinstance(w, torch.Tensor) else f"a value of type {type(w).__name__}"
        raise CheckpointError(f"{path}: not a SAM state dict ({key} must be a 4-d tensor of width 768, 1024 or 1280 (ViT-B/L/H), found {found})")
    return dims[int(w.shape[0])]


def check_device(device: str) -> str:
    """``device`` ("cpu", "cuda" or "cuda:N") when it can be used here; CheckpointError otherwise:
    a malformed index (``cuda:abc``) or one past the GPUs here (``cuda:1`` on a one-GPU
    workstation) passed this check and failed only at the model's loading (every case of a
    batch) with torch's "invalid device ordinal"."""
    index = re.fullmatch(r"cuda(?::([0-9]+))?", device)
    if re.fullmatch(r"mps(:0)?", device):  # an Apple-silicon Mac: torch's Metal backend, never tried with medseg's models
        raise CheckpointError(f"--device {device} (Apple's Metal) is not supported: on a Mac medseg runs on the cpu "
                              "(leave --device out); cuda is the GPU it runs on")
    if device != "cpu" and index is None:
        raise CheckpointError(f"unknown device {device!r}; allowed: cpu, cuda, cuda:N (N: a GPU's index, from 0)")
    if index is not None:
        import torch

        if not torch.cuda.is_available():
            raise CheckpointError("--device cuda was requested but no CUDA GPU is available here")
        n = torch.cuda.device_count()
        if index.group(1) is not None and int(index.group(1)) >= n:
            raise CheckpointError(f"--device {device}: this machine has {n} CUDA GPU{'s' if n != 1 else ''} "
                                  f"({'cuda:0' if n == 1 else f'cuda:0 to cuda:{n - 1}'})")
    return device
