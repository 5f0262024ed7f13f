"""LoRA adapters (peft): apply, save, load, switch, merge; the adapter folder format.

An adapter folder holds ``adapter_config.json`` + ``adapter_model.safetensors`` (peft's own
format), ``medseg.json`` (base model id and sha256, modality, view, label map, training data
summary, validation Dice before/after, medseg version, date) and a ``README.md`` card.
Loading onto a base whose sha256 differs from ``medseg.json`` is refused, naming both.

LoRA targets the image encoder's attention ``qkv`` linears and, by default, the mask
decoder's attention projections; the structure tokens can be trained too (a tiny
``modules_to_save``), so zero-click mode adapts with the rest. The base stays frozen and
promptable; ``peft`` is imported only when an adapter is used (it pulls in transformers).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from .errors import CheckpointError

ENCODER_TARGETS = ("qkv",)
DECODER_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "medseg.json")


def lora_config(rank: int = 8, alpha: int | None = None, decoder: bool = True, structures: bool = True, dropout: float = 0.0):
    from peft import LoraConfig

    targets = list(ENCODER_TARGETS) + (list(DECODER_TARGETS) if decoder else [])
    return LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, lora_dropout=dropout, target_modules=targets,
                      modules_to_save=["structure_embed"] if structures else None, bias="none")


def apply_lora(model, config) -> Any:
    """Wrap a PromptableSAM in a peft model with a fresh LoRA adapter named ``default``;
    only the adapter's parameters are trainable."""
    from peft import get_peft_model

    return get_peft_model(model, config)


def base_network(model):
    """The underlying PromptableSAM of a plain or peft-wrapped model."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def check_adapter_out(out_dir: str | Path, init_from: str | None = None) -> Path:
    """Refuse, in one line, an adapter output that would replace something else: a file, or a
    folder that is not empty and not a medseg adapter (writing an adapter replaces its folder,
    so ``-o ~/data`` would otherwise delete the data), the ``--init-from`` adapter training
    starts from, an adapter shipped with medseg; and a place that cannot be written."""
    from ._files import check_writable_folder
    from .errors import ImageWriteError
    from .models.registry import asset_dirs

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ImageWriteError(f"{out} is a file; the adapter is a folder: choose another name")
    if init_from is not None:
        try:
            start = find_adapter(init_from)
        except CheckpointError:
            start = None  # check_init_adapter says why
        if start is not None and start.resolve() == out.resolve():
            raise ImageWriteError(f"{out} is the --init-from adapter training starts from: write the new one to another folder")
    shipped = [d for d in asset_dirs("adapters") if not os.environ.get("MEDSEG_HOME") or d != Path(os.environ["MEDSEG_HOME"]) / "adapters"]
    for d in shipped:
        if d.is_dir() and (out.resolve() == d.resolve() or d.resolve() in out.resolve().parents):
            raise ImageWriteError(f"{out} is in the folder of the adapters shipped with medseg ({d}): write yours to another "
                                  "folder (or to $MEDSEG_HOME/adapters/NAME to use it by name)")
    if out.is_dir() and any(out.iterdir()) and not (out / "medseg.json").is_file():
        raise ImageWriteError(f"{out} exists and is not a medseg adapter folder (writing the adapter replaces the folder): choose a new name")
    check_writable_folder(out.parent)
    if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):  # found only when the trained adapter is written: lost
        raise ImageWriteError(f"{out} exists and cannot be replaced (not writable): choose another folder")
    return out


def save_adapter(peft_model, out_dir: str | Path, meta: dict[str, Any], card: str) -> Path:
    """Write the adapter folder atomically (a temp folder renamed into place)."""
    from . import __version__

    out = check_adapter_out(out_dir)
    tmp = out.with_name(f".{out.name}.tmp-{int(time.time() * 1000)}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        peft_model.save_pretrained(str(tmp), safe_serialization=True)
        (tmp / "medseg.json").write_text(json.dumps({"format": "medseg-adapter/1", "medseg_version": __version__, "date": time.strftime("%Y-%m-%d"), **meta}, indent=2) + "\n")
        (tmp / "README.md").write_text(card)
        umask = os.umask(0)
        os.umask(umask)
        for f in tmp.iterdir():  # safetensors writes 0600: an adapter folder is shared like any other output
            os.chmod(f, 0o666 & ~umask)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def find_adapter(name_or_path: str) -> Path:
    """A folder path, or the name of a shipped adapter (top-level ``adapters/<name>``)."""
    from .models.registry import asset_dirs

    p = Path(name_or_path)
    if p.is_dir():
        return p
    for d in asset_dirs("adapters"):
        if (d / name_or_path).is_dir():
            return d / name_or_path
    raise CheckpointError(f"adapter {name_or_path!r} not found (not a folder, and no adapter of that name in "
                          f"{', '.join(str(d) for d in asset_dirs('adapters'))})")


def read_adapter_meta(folder: Path) -> dict[str, Any]:
    missing = [f for f in ADAPTER_FILES if not (folder / f).is_file()]
    if missing:
        raise CheckpointError(f"{folder}: not a medseg adapter folder (missing {', '.join(missing)})")
    try:
        meta = json.loads((folder / "medseg.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{folder}/medseg.json is not valid JSON") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{folder}/medseg.json is not a JSON object")
    return meta


#: the largest LoRA rank medseg trains or loads (the widest layers LoRA adapts have 256 features)
MAX_RANK = 256


def check_adapter_file(folder: Path) -> None:
    """Refuse a corrupt or foreign adapter before peft touches it: an unreadable file, a
    safetensors file that is not one or holds no LoRA weights, an ``adapter_config.json``
    that is not a LoRA of a sane rank (peft would build layers of any rank it names: ``"r":
    2000000`` asked for gigabytes) or whose weights are not of its rank, and weights that hold
    NaN or Inf (:func:`check_adapter_finite`)."""
    from safetensors import safe_open

    weights = folder / "adapter_model.safetensors"
    if not os.access(weights, os.R_OK):
        raise CheckpointError(f"{weights}: not readable (permission denied)")
    try:
        with safe_open(str(weights), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:
        raise CheckpointError(f"{weights} is corrupt or not safetensors ({type(e).__name__})") from None
    if not shapes or not any("lora_" in k for k in shapes):
        raise CheckpointError(f"{weights} holds no LoRA weights (foreign file?)")
    try:
        cfg = json.loads((folder / "adapter_config.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{folder}/adapter_config.json is not readable JSON ({type(e).__name__})") from None
    r, alpha = (cfg.get("r"), cfg.get("lora_alpha")) if isinstance(cfg, dict) else (None, None)
    if not isinstance(cfg, dict) or cfg.get("peft_type") != "LORA":
        raise CheckpointError(f"{folder}/adapter_config.json is not a LoRA adapter's (peft_type {cfg.get('peft_type') if isinstance(cfg, dict) else None!r})")
    if not isinstance(r, int) or isinstance(r, bool) or not 1 <= r <= MAX_RANK:
        raise CheckpointError(f"{folder}/adapter_config.json: rank r must be a whole number in 1..{MAX_RANK}, got {r!r}")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0 < alpha <= 16 * MAX_RANK:
        raise CheckpointError(f"{folder}/adapter_config.json: lora_alpha must be a positive number, got {alpha!r}")
    per_module = cfg.get("rank_pattern") or {}  # ranks set per module: their shapes are theirs
    wrong = [] if per_module else [k for k, shape in shapes.items() if ("lora_A" in k and shape[:1] != (r,)) or ("lora_B" in k and shape[1:2] != (r,))]
    if wrong:
        raise CheckpointError(f"{weights}: LoRA weights of another rank than its config's r = {r} ({wrong[0]} is {shapes[wrong[0]]})")
    check_adapter_finite(weights)


def check_adapter_finite(weights: Path) -> None:
    """Refuse an adapter whose weights hold NaN or Inf (a diverged run): attached, every mask
    came out empty. One tensor at a time; an adapter is small (a LoRA of rank 8: about 0.5 MB)."""
    from safetensors import safe_open

    from .models.checkpoints import check_finite

    try:
        with safe_open(str(weights), framework="pt") as f:
            for k in f.keys():
                check_finite({k: f.get_tensor(k)}, f"adapter {weights}")
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"{weights} is corrupt or not safetensors ({type(e).__name__})") from None


def attach_adapter(loaded, name_or_path: str, adapter_name: str | None = None):
    """Load an adapter onto a loaded base model (sha256-checked). Several adapters can be
    attached under different names; :func:`switch_adapter` selects one at run time."""
    from peft import PeftModel

    from ._files import sha256_file

    folder = find_adapter(name_or_path)
    meta = read_adapter_meta(folder)
    base_sha = meta.get("base_model_sha256")
    if base_sha != loaded.sha256:
        raise CheckpointError(f"adapter {folder.name} was trained for base sha256 {str(base_sha)[:16]}... but the loaded model is {loaded.sha256[:16]}... ({loaded.model_id})")
    check_adapter_file(folder)
    name = adapter_name or folder.name
    try:
        if hasattr(loaded.model, "load_adapter"):
            loaded.model.load_adapter(str(folder), adapter_name=name)
            loaded.model.set_adapter(name)
        else:
            loaded.model = PeftModel.from_pretrained(loaded.model, str(folder), adapter_name=name)
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"adapter {folder.name} does not fit this model ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
    loaded.model.eval()
    loaded.model.to(loaded.device)
    loaded.adapter_id = name
    loaded.adapter_sha256 = sha256_file(folder / "adapter_model.safetensors")
    loaded.info = {**loaded.info, "adapter": meta, "adapter_sha256s": {**loaded.info.get("adapter_sha256s", {}), name: loaded.adapter_sha256}}
    return loaded


def switch_adapter(loaded, name: str | None):
    """Select an attached adapter by name, or None for the bare base model."""
    m = loaded.model
    if name is None:
        if hasattr(m, "base_model"):
            m.base_model.disable_adapter_layers()  # adapters stay attached for later switching
        loaded.adapter_id, loaded.adapter_sha256 = None, None
        return loaded
    if not hasattr(m, "set_adapter") or name not in m.peft_config:
        raise CheckpointError(f"adapter {name!r} is not attached (attached: {', '.join(getattr(m, 'peft_config', {}) or []) or 'none'})")
    m.base_model.enable_adapter_layers()
    m.set_adapter(name)
    loaded.adapter_id = name
    loaded.adapter_sha256 = loaded.info.get("adapter_sha256s", {}).get(name)  # provenance names the active adapter's file
    return loaded


def merge_adapter(loaded):
    """Merge the active adapter into the base weights (faster inference, no switching)."""
    if not hasattr(loaded.model, "merge_and_unload"):
        raise CheckpointError("no adapter attached to merge")
    loaded.model = loaded.model.merge_and_unload()
    return loaded


def unload_adapters(loaded):
    """Remove all adapters and return the untouched base model."""
    if hasattr(loaded.model, "unload"):
        loaded.model = loaded.model.unload()
    loaded.adapter_id, loaded.adapter_sha256 = None, None
    return loaded


def list_adapters() -> list[dict[str, Any]]:
    """Shipped and user adapters (``adapters/`` and ``$MEDSEG_HOME/adapters``)."""
    from ._files import sha256_file
    from .models.registry import asset_dirs

    rows, seen = [], set()
    for d in asset_dirs("adapters"):
        if not d.is_dir():
            continue
        for folder in sorted(p for p in d.iterdir() if p.is_dir() and (p / "medseg.json").is_file()):
            if folder.name in seen:
                continue
            seen.add(folder.name)
            try:
                meta = read_adapter_meta(folder)
                check_adapter_file(folder)
                f = folder / "adapter_model.safetensors"
                size, digest = round(f.stat().st_size / 1e6, 2), sha256_file(f)
            except (CheckpointError, OSError) as e:  # one broken or unreadable folder does not hide the others
                rows.append({"name": folder.name, "kind": "adapter", "source": f"broken: {' '.join(str(e).split())}"})
                continue
            rows.append({"name": folder.name, "kind": "adapter", "size_mb": size, "sha256": digest,
                         "description": meta.get("description", ""), "source": str(folder), "base_model_sha256": meta.get("base_model_sha256")})
    return rows
