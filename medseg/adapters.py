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
import warnings
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
    from .models.registry import asset_dirs, medseg_home

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
    shipped = [d for d in asset_dirs("adapters") if d != medseg_home("adapters")]
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
    if p.is_file():  # its adapter_model.safetensors or medseg.json, as peft users point at a file
        raise CheckpointError(f"adapter {name_or_path!r} is a file: an adapter is a folder ({', '.join(ADAPTER_FILES)}); "
                              f"give its folder{' ' + repr(str(p.parent)) if p.name in ADAPTER_FILES else ''} or its name")
    raise CheckpointError(f"adapter {name_or_path!r} not found (not a folder, and no adapter of that name in "
                          f"{', '.join(str(d) for d in asset_dirs('adapters'))})")


def adapter_origin(name_or_path: str) -> str:
    """Which folder ``--adapter`` names, in one line for ``segment`` and ``batch`` to print (the
    sidecar records it too): ``adapter lge: /home/u/.medseg/adapters/lge ($MEDSEG_HOME/adapters;
    it hides the shipped /opt/medseg/adapters/lge)``. A folder of a name that is also searched
    for (in $MEDSEG_HOME/adapters, the shipped adapters, or the working folder) hides the others
    of that name: a user's LGE adapter ran where the shipped one was meant, and nothing said so.
    CheckpointError as :func:`find_adapter` when there is none."""
    from .models.registry import asset_dirs, medseg_home

    folder = find_adapter(name_or_path)
    dirs = asset_dirs("adapters")
    home = medseg_home("adapters")
    where = ("$MEDSEG_HOME/adapters" if home is not None and folder.parent == home else
             "shipped" if folder.parent in dirs else None)
    hidden = [h for h in same_named_adapters(folder) if h.parent != home] if Path(name_or_path).name == name_or_path else []
    notes = [n for n in (where, f"it hides the shipped {hidden[0]}" if hidden else None) if n]
    named = "adapter" if Path(name_or_path).expanduser().resolve() == folder.resolve() else f"adapter {name_or_path}"  # a folder given: once
    return f"{named}: {folder.resolve()}" + (f" ({'; '.join(notes)})" if notes else "")


def same_named_adapters(folder: Path) -> list[Path]:
    """The other adapter folders of ``folder``'s name in the folders ``--adapter NAME`` searches
    ($MEDSEG_HOME/adapters, then the shipped ones): those the name does not load when ``folder``
    comes first."""
    from .models.registry import asset_dirs

    return [d / folder.name for d in asset_dirs("adapters") if (d / folder.name).is_dir() and (d / folder.name).resolve() != folder.resolve()]


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


def trained_on(folder: Path, cases: list[str], images: list[Path] | None = None) -> list[str]:
    """The cases among ``cases`` named as a volume the adapter in ``folder`` was trained on (its
    medseg.json ``training.pairs``), a part after ``_`` aside (``subject3_DE`` is ``subject3``):
    scores on them are no validation of the adapter. ``images`` (one per case): also the cases
    whose image has the sha256 of a training image (``training.data_sha256.train[].image_sha256``,
    where medseg.json records them), so a renamed copy is caught too."""
    try:
        training = read_adapter_meta(folder).get("training") or {}
    except CheckpointError:
        return []
    names = [n for n in (training.get("pairs") or []) if isinstance(n, str) and n]
    named = [c for c in cases if any(c == n or c.startswith(n + "_") or n.startswith(c + "_") for n in names)]
    recorded = (training.get("data_sha256") or {}).get("train") if isinstance(training.get("data_sha256"), dict) else None
    digests = {r.get("image_sha256") for r in recorded if isinstance(r, dict)} - {None} if isinstance(recorded, list) else set()
    if not digests or images is None:
        return named
    from ._files import sha256_path

    return named + [c for c, im in zip(cases, images) if c not in named and sha256_path(im) in digests]


#: the largest LoRA rank medseg trains or loads (the widest layers LoRA adapts have 256 features)
MAX_RANK = 256
#: the largest lora_alpha (and alpha_pattern value) medseg loads: medseg writes 2 x rank
MAX_ALPHA = 16 * MAX_RANK
#: the largest |weight| an adapter may hold: medseg's own stay below 1 (cmr-lge: 0.41); a weight
#: of 1e30 loaded and every mask came out empty, blamed on the image
MAX_ADAPTER_WEIGHT = 1e4
#: safetensors dtypes an adapter's weights may have (a bool lora_B loaded as 0/1 and halved the LV)
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
KNOWN_TARGETS = ENCODER_TARGETS + DECODER_TARGETS
STRUCTURE_MODULES = ["structure_embed"]
_PREFIX = "base_model.model."  # peft's key prefix in adapter_model.safetensors

#: settings of peft features medseg's adapters do not use, with the values peft writes when they are
#: off (DoRA, LoRA bias, rsLoRA, Megatron, layer selection, data-driven initialisations, ...)
_OFF: dict[str, tuple[Any, ...]] = {
    **dict.fromkeys(("task_type", "megatron_config", "exclude_modules", "layer_replication", "layers_pattern", "layers_to_transform",
                     "target_parameters", "trainable_token_indices", "alora_invocation_tokens", "arrow_config", "corda_config",
                     "eva_config", "kasa_config", "lora_ga_config", "monteclora_config", "velora_config"), (None,)),
    **dict.fromkeys(("use_dora", "lora_bias", "use_rslora", "use_qalora", "fan_in_fan_out", "ensure_weight_tying"), (False,)),
    "use_bdlora": (None, False), "loftq_config": ({}, None), "bias": ("none",), "megatron_core": ("megatron.core", None),
}


def _one_of(value: Any, allowed: tuple[Any, ...]) -> bool:
    return any(type(value) is type(a) and value == a for a in allowed)  # True is not 1, 0.0 is not false


def _whole(lo: int, hi: int) -> Any:
    return lambda v: type(v) is int and lo <= v <= hi


def _positive(hi: float) -> Any:
    return lambda v: type(v) in (int, float) and 0 < v <= hi


def _names(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and len(set(map(str, v))) == len(v) and all(isinstance(m, str) and m in KNOWN_TARGETS for m in v)


def _pattern(ok: Any) -> Any:
    return lambda v: isinstance(v, dict) and all(k in KNOWN_TARGETS and ok(x) for k, x in v.items())


#: adapter_config.json, key by key: what medseg loads (anything else is refused)
_SETTINGS: dict[str, tuple[Any, str]] = {
    "peft_type": (lambda v: v == "LORA", '"LORA"'),
    "r": (_whole(1, MAX_RANK), f"a whole number in 1..{MAX_RANK}"),
    "lora_alpha": (_positive(MAX_ALPHA), f"a number in (0, {MAX_ALPHA}]"),
    "rank_pattern": (_pattern(_whole(1, MAX_RANK)), f"an object {{module: rank}}, modules among {', '.join(KNOWN_TARGETS)}, ranks 1..{MAX_RANK}"),
    "alpha_pattern": (_pattern(_positive(MAX_ALPHA)), f"an object {{module: alpha}}, modules among {', '.join(KNOWN_TARGETS)}, alphas in (0, {MAX_ALPHA}]"),
    "target_modules": (_names, f"a list of module names among {', '.join(KNOWN_TARGETS)}"),
    "modules_to_save": (lambda v: _one_of(v, (None, STRUCTURE_MODULES)), 'null or ["structure_embed"]'),
    "lora_dropout": (lambda v: type(v) in (int, float) and 0 <= v < 1, "a number in [0, 1)"),
    "init_lora_weights": (lambda v: _one_of(v, (True, False, "gaussian")),
                          'true, false or "gaussian" (data-driven ones such as "pissa", "olora", "loftq", "corda", "eva" rewrite the base weights)'),
    "inference_mode": (lambda v: type(v) is bool, "true or false"),
    "peft_version": (lambda v: isinstance(v, str), "a version string"),
    "base_model_name_or_path": (lambda v: v is None or isinstance(v, str), "null or a string"),
    "revision": (lambda v: v is None or isinstance(v, str), "null or a string"),
    "auto_mapping": (lambda v: v is None or isinstance(v, dict), "null or an object"),
    "qalora_group_size": (lambda v: type(v) is int, "a whole number"),
    **{k: ((lambda v, a=allowed: _one_of(v, a)), f"{' or '.join(json.dumps(a) for a in allowed)} (medseg's adapters do not use it)")
       for k, allowed in _OFF.items()},
}
_REQUIRED = ("peft_type", "r", "lora_alpha", "target_modules")


def _show(value: Any) -> str:
    """A value from an untrusted file, as JSON on one line (control characters escaped), cut short."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def check_adapter_config(folder: Path, cfg: Any) -> dict[str, Any]:
    """Validate ``adapter_config.json`` against what medseg's adapters use: peft builds whatever
    it names (``"r": 2000000`` or a rank_pattern of that asked for gigabytes; ``"pissa"``
    rewrote the base weights; a ``task_type`` or ``megatron_config`` failed inside peft), so
    every key must be one medseg knows, with a value in its range. Returns the config."""
    where = f"{folder}/adapter_config.json"
    if not isinstance(cfg, dict) or cfg.get("peft_type") != "LORA":
        raise CheckpointError(f"{where} is not a LoRA adapter's (peft_type {_show(cfg.get('peft_type')) if isinstance(cfg, dict) else None}; "
                              'medseg loads "LORA")')
    for key in [*_REQUIRED, *cfg]:
        if key not in _SETTINGS:
            raise CheckpointError(f"{where}: unknown setting {_show(key)} (medseg reads the settings of a peft LoRA; remove it)")
        ok, allowed = _SETTINGS[key]
        if not ok(cfg.get(key)):
            label = "rank r" if key == "r" else key
            raise CheckpointError(f"{where}: {label} must be {allowed}, got {_show(cfg[key]) if key in cfg else 'nothing'}")
    for key in ("rank_pattern", "alpha_pattern"):
        stray = sorted(set(cfg.get(key) or {}) - set(cfg["target_modules"]))
        if stray:
            raise CheckpointError(f"{where}: {key} names {stray[0]!r}, which target_modules ({', '.join(cfg['target_modules'])}) does not")
    return cfg


def _check_adapter_keys(weights: Path, cfg: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> None:
    """The weights the config implies, without the model: A and B of every LoRA module (of a
    module target_modules names, with the module's rank) and the modules_to_save, nothing else.
    (:func:`attach_adapter` then compares them with the model's own, key for key.)"""
    r, ranks, targets = cfg["r"], cfg.get("rank_pattern") or {}, cfg["target_modules"]
    saved = set(cfg.get("modules_to_save") or ())
    lora: dict[str, dict[str, tuple[int, ...]]] = {}
    found = set()
    for k, shape in shapes.items():
        parts = k[len(_PREFIX):].split(".") if k.startswith(_PREFIX) else []
        if len(parts) >= 3 and parts[-2] in ("lora_A", "lora_B") and parts[-1] == "weight" and parts[-3] in targets:
            lora.setdefault(".".join(parts[:-2]), {})[parts[-2]] = shape
        elif len(parts) == 2 and parts[0] in saved:
            found.add(parts[0])
        else:
            raise CheckpointError(f"{weights}: unexpected weight {_show(k)} (adapter_config.json names LoRA weights of {', '.join(targets)} "
                                  f"and {', '.join(sorted(saved)) or 'no modules_to_save'})")
    if saved - found:
        raise CheckpointError(f"{weights}: holds no weights of {sorted(saved - found)[0]!r}, which adapter_config.json's modules_to_save names")
    for module, kinds in sorted(lora.items()):
        if set(kinds) != {"lora_A", "lora_B"}:
            raise CheckpointError(f"{weights}: {module} has {' '.join(kinds)} but not {({'lora_A', 'lora_B'} - set(kinds)).pop()}")
        rank = ranks.get(module.rsplit(".", 1)[-1], r)
        a, b = kinds["lora_A"], kinds["lora_B"]
        if len(a) != 2 or len(b) != 2 or a[0] != rank or b[1] != rank:
            raise CheckpointError(f"{weights}: LoRA weights of another rank than its config's r = {rank} ({module} A {a}, B {b})")


def check_adapter_file(folder: Path) -> None:
    """Refuse a corrupt, foreign or unsupported adapter before peft touches it: an unreadable
    file, a safetensors file that is not one or holds no LoRA weights, an
    ``adapter_config.json`` outside what medseg's adapters use (:func:`check_adapter_config`),
    weights other than those the config implies or of another rank, weights that are not
    floating point, and weights that hold NaN, Inf or absurd values (:func:`check_adapter_values`).
    Used by :func:`attach_adapter`, ``medseg models``, ``batch`` and ``adapt --init-from``."""
    from safetensors import safe_open

    weights = folder / "adapter_model.safetensors"
    if not os.access(weights, os.R_OK):
        raise CheckpointError(f"{weights}: not readable (permission denied)")
    try:
        with safe_open(str(weights), framework="pt") as f:
            header = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except Exception as e:
        raise CheckpointError(f"{weights} is corrupt or not safetensors ({type(e).__name__})") from None
    if not header or not any("lora_" in k for k in header):
        raise CheckpointError(f"{weights} holds no LoRA weights (foreign file?)")
    try:
        cfg = json.loads((folder / "adapter_config.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{folder}/adapter_config.json is not readable JSON ({type(e).__name__})") from None
    check_adapter_config(folder, cfg)
    _check_adapter_keys(weights, cfg, {k: shape for k, (shape, _) in header.items()})
    for k, (_, dtype) in header.items():
        if dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"{weights}: weight {_show(k)} is {dtype} (adapter weights are floating point: {', '.join(FLOAT_DTYPES)})")
    check_adapter_values(weights)


def check_adapter_values(weights: Path) -> None:
    """Refuse an adapter whose weights hold NaN or Inf (a diverged run: attached, every mask came
    out empty) or values beyond ±:data:`MAX_ADAPTER_WEIGHT` (finite, and just as fatal). One
    tensor at a time; an adapter is small (a LoRA of rank 8: about 0.5 MB)."""
    from safetensors import safe_open

    from .models.checkpoints import check_finite

    try:
        with safe_open(str(weights), framework="pt") as f:
            for k in f.keys():
                t = f.get_tensor(k)
                check_finite({k: t}, f"adapter {weights}")
                top = float(t.abs().max()) if t.numel() else 0.0
                if top > MAX_ADAPTER_WEIGHT:
                    raise CheckpointError(f"adapter {weights}: weight {_show(k)} holds values up to {top:.3g} (medseg's adapters stay within "
                                          f"±{MAX_ADAPTER_WEIGHT:g}: a diverged or damaged training run); re-export or train it again")
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
    name = peft_name(adapter_name or folder.name)
    first = not hasattr(loaded.model, "load_adapter")
    existed = name in getattr(loaded.model, "peft_config", {})
    active = getattr(loaded.model, "active_adapter", None)
    try:
        with warnings.catch_warnings():  # peft's own two-line warnings (missing keys, ...): said below, in one line
            warnings.simplefilter("ignore")
            if first:
                peft_model = PeftModel.from_pretrained(loaded.model, str(folder), adapter_name=name)
            else:
                peft_model = loaded.model
                peft_model.load_adapter(str(folder), adapter_name=name)
                peft_model.set_adapter(name)
            _check_loaded_keys(peft_model, name, folder / "adapter_model.safetensors")
    except Exception as e:  # an adapter is untrusted input: whatever peft raises on it is said in one line
        if not first and not existed and name in loaded.model.peft_config:
            with warnings.catch_warnings():  # the adapters attached before stay usable
                warnings.simplefilter("ignore")
                loaded.model.delete_adapter(name)
                if active in loaded.model.peft_config:
                    loaded.model.set_adapter(active)
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"adapter {folder.name} does not fit this model ({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
    loaded.model = peft_model
    loaded.model.eval()
    loaded.model.to(loaded.device)
    loaded.adapter_id = adapter_name or folder.name
    loaded.adapter_sha256 = sha256_file(folder / "adapter_model.safetensors")
    loaded.info = {**loaded.info, "adapter": meta, "adapter_sha256s": {**loaded.info.get("adapter_sha256s", {}), loaded.adapter_id: loaded.adapter_sha256}}
    return loaded


def peft_name(name: str) -> str:
    """The name peft knows an attached adapter by: peft keeps adapters in module dicts, whose keys
    cannot hold a ``.`` (an adapter folder ``lge.v2`` was refused as "does not fit this model"),
    so a dot is ``_dot_`` there; medseg (provenance, napari, :func:`switch_adapter`) names the
    adapter as given."""
    return name.replace(".", "_dot_")


def _check_loaded_keys(peft_model, name: str, weights: Path) -> None:
    """The adapter file holds exactly the weights its config gives this model: peft loads what
    matches and leaves the rest as initialised (a LoRA without its B, a structure token never
    read), with only a warning."""
    from peft import get_peft_model_state_dict
    from safetensors import safe_open

    want = set(get_peft_model_state_dict(peft_model, adapter_name=name))
    with safe_open(str(weights), framework="pt") as f:
        have = set(f.keys())
    missing, unexpected = sorted(want - have), sorted(have - want)
    if missing or unexpected:
        what = f"lacks {len(missing)} weight(s) this model's LoRA needs (first {missing[0]!r})" if missing else \
            f"holds {len(unexpected)} weight(s) this model has no place for (first {unexpected[0]!r})"
        raise CheckpointError(f"adapter {weights}: {what}; adapter_config.json and the weights do not go together")


def switch_adapter(loaded, name: str | None):
    """Select an attached adapter by name, or None for the bare base model."""
    m = loaded.model
    if name is None:
        if hasattr(m, "base_model"):
            m.base_model.disable_adapter_layers()  # adapters stay attached for later switching
        loaded.adapter_id, loaded.adapter_sha256 = None, None
        return loaded
    if not hasattr(m, "set_adapter") or peft_name(name) not in m.peft_config:
        attached = [k.replace("_dot_", ".") for k in getattr(m, "peft_config", {}) or []]
        raise CheckpointError(f"adapter {name!r} is not attached (attached: {', '.join(attached) or 'none'})")
    m.base_model.enable_adapter_layers()
    m.set_adapter(peft_name(name))
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
    from .models.registry import asset_dirs, medseg_home

    rows, seen = [], {}
    home = medseg_home("adapters")
    for d in asset_dirs("adapters"):
        if not d.is_dir():
            continue
        for folder in sorted(p for p in d.iterdir() if p.is_dir() and (p / "medseg.json").is_file()):
            if folder.name in seen:  # --adapter NAME loads the first: a user's adapter named as a shipped one hides it
                first = seen[folder.name]
                if home is not None and Path(first["source"]).parent == home and first.get("sha256"):
                    first["hides"] = str(folder)
                continue
            try:
                meta = read_adapter_meta(folder)
                check_adapter_file(folder)
                f = folder / "adapter_model.safetensors"
                size, digest = round(f.stat().st_size / 1e6, 2), sha256_file(f)
            except (CheckpointError, OSError) as e:  # one broken or unreadable folder does not hide the others
                rows.append({"name": folder.name, "kind": "adapter", "source": f"broken: {' '.join(str(e).split())}"})
                seen[folder.name] = rows[-1]
                continue
            rows.append({"name": folder.name, "kind": "adapter", "size_mb": size, "sha256": digest,
                         "description": meta.get("description", ""), "source": str(folder), "base_model_sha256": meta.get("base_model_sha256"),
                         "structures": [str(n) for n in (meta.get("label_map") or {})] if isinstance(meta.get("label_map"), dict) else []})
            seen[folder.name] = rows[-1]
    return rows
