"""Checks of an adapter folder before and after peft loads it: ``adapter_config.json`` key by
key, the weights' names, ranks, dtypes and values (:func:`check_adapter_file`), and the weights a
loaded model expected (:func:`check_loaded_keys`); ``medseg.json``'s fields (:func:`check_adapter_meta`).
Imports nothing heavy (safetensors and peft only inside the functions that need them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import CheckpointError

ENCODER_TARGETS = ("qkv",)
DECODER_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")

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


#: the target_modules ``medseg adapt`` writes: the encoder's qkv, with or without the decoder's projections
MEDSEG_TARGETS = (frozenset(ENCODER_TARGETS), frozenset(ENCODER_TARGETS + DECODER_TARGETS))


def check_medseg_lora(folder: Path, cfg: dict[str, Any]) -> None:
    """The LoRA is one ``medseg adapt`` writes (``adapters.lora_config``): target_modules qkv, or
    qkv and the decoder's projections; ``lora_alpha`` 2 x r; no per-module ranks or alphas. The
    weights' sha256 does not cover adapter_config.json: lora_alpha 16 -> 64 in a copy loaded
    without a word, changed every mask and was recorded as the same adapter (``adapt --init-from``
    refused it). A config :func:`check_adapter_config` passed."""
    where = f"{folder}/adapter_config.json"
    if frozenset(cfg["target_modules"]) not in MEDSEG_TARGETS:
        raise CheckpointError(f"{where}: target_modules must be qkv, or qkv and {', '.join(DECODER_TARGETS)} (what medseg adapt writes), "
                              f"got {_show(cfg['target_modules'])}")
    for key in ("rank_pattern", "alpha_pattern"):
        if cfg.get(key):
            raise CheckpointError(f"{where}: {key} must be empty (medseg's adapters give every module rank r and lora_alpha 2 x r), "
                                  f"got {_show(cfg[key])}")
    if cfg["lora_alpha"] != 2 * cfg["r"]:
        raise CheckpointError(f"{where}: lora_alpha must be 2 x r = {2 * cfg['r']} (the scaling medseg trains and loads its adapters with), "
                              f"got {_show(cfg['lora_alpha'])}: edited by hand, or not made by medseg adapt; get the adapter folder again")


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
    floating point, and weights that hold NaN, Inf or absurd values (:func:`check_adapter_values`);
    a LoRA other than medseg's (:func:`check_medseg_lora`), a medseg.json without the base it was
    trained for (:func:`check_adapter_base`). Used by :func:`attach_adapter`, ``medseg models``, ``batch`` and ``adapt --init-from``."""
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
    from ._json_files import read_json_file

    path = folder / "adapter_config.json"
    cfg = read_json_file(path, expect=None, error=CheckpointError, allow_nan=True)  # check_adapter_config names a wrong kind, NaN
    check_adapter_config(folder, cfg)
    if json.detect_encoding(path.read_bytes()) != "utf-8":  # peft reads it again as plain UTF-8: a byte-order mark or UTF-16 failed there
        raise CheckpointError(f"{path} starts with a byte-order mark or is UTF-16, which peft cannot read: save it as UTF-8 (no BOM)")
    _check_adapter_keys(weights, cfg, {k: shape for k, (shape, _) in header.items()})
    check_medseg_lora(folder, cfg)  # after the keys: a rank_pattern the weights do not have is said as such
    for k, (_, dtype) in header.items():
        if dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"{weights}: weight {_show(k)} is {dtype} (adapter weights are floating point: {', '.join(FLOAT_DTYPES)})")
    check_adapter_values(weights)
    check_recorded_sha256(folder)
    from ._json_files import json_file_problem

    meta, problem = json_file_problem(folder / "medseg.json", allow_nan=True)
    if problem is None and isinstance(meta, dict):  # else read_adapter_meta says why
        check_adapter_base(folder, meta)


#: the adapter folder format this medseg reads (medseg.json ``format``)
ADAPTER_FORMAT = "medseg-adapter/1"


def check_adapter_meta(folder: Path, meta: dict[str, Any]) -> None:
    """Refuse a medseg.json of another format than :data:`ADAPTER_FORMAT` (an adapter made by a
    newer medseg loaded as if this one knew its folder; a folder without ``format``, written by
    hand, is read as this one), and one whose fields medseg reads are of another kind
    (:data:`_META`; each may be absent): ``"description": 5`` broke ``medseg models``,
    ``"training": ["a"]`` ``evaluate --adapter``, both as "unexpected" errors."""
    fmt = meta.get("format", ADAPTER_FORMAT)
    if fmt != ADAPTER_FORMAT:
        from . import __version__

        made = f" (made by medseg {_show(meta['medseg_version'])})" if "medseg_version" in meta else ""
        raise CheckpointError(f"{folder}: adapter format {_show(fmt)}{made}; this medseg ({__version__}) reads {ADAPTER_FORMAT}: "
                              "update medseg, or ask for an adapter made with this version")
    training = meta.get("training")
    fields = [(k, meta[k], _META[k]) for k in _META if k in meta]
    if isinstance(training, dict):
        fields += [(f"training.{k}", training[k], _TRAINING[k]) for k in _TRAINING if k in training]
    for key, value, (ok, allowed) in fields:
        if not ok(value):
            raise CheckpointError(f"{folder}/medseg.json: {key} must be {allowed}, got {_show(value)} (edited by hand, or damaged): "
                                  "get the adapter folder again")


def check_adapter_base(folder: Path, meta: dict[str, Any]) -> str:
    """The base model sha256 medseg.json records (:func:`check_adapter_meta` checked its kind):
    without it loading said "trained for base sha256 None" and ``medseg models`` called the
    adapter usable."""
    base = meta.get("base_model_sha256")
    if base is None:
        raise CheckpointError(f"{folder}/medseg.json records no base_model_sha256 (the base model the adapter was trained for, "
                              "which loading checks): not a folder medseg adapt wrote; get the adapter folder again")
    return str(base).lower()


def _sha256_text(v: Any) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v.lower())


def _text(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _texts(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _label_map(v: Any) -> bool:
    from .labels import STRUCTURE_NAMES

    values = list(v.values()) if isinstance(v, dict) else []
    return bool(values) and all(k in STRUCTURE_NAMES for k in v) and len(set(values)) == len(values) and \
        all(type(x) is int and 1 <= x <= 65535 for x in values)


#: medseg.json fields medseg reads (each may be absent): field -> (check, what is allowed)
_META: dict[str, tuple[Any, str]] = {
    "base_model_sha256": (_sha256_text, "the base model's sha256 (64 hex digits)"),
    **{k: (_text, "text or null") for k in ("base_model_id", "description", "modality", "view", "medseg_version", "date")},
    "label_map": (_label_map, "an object {structure: value}, structures among lv, myo, rv, la, ra, aorta, pa, values 1..65535 each once"),
    "training": (lambda v: isinstance(v, dict), "an object"),
    "validation_dice": (lambda v: isinstance(v, dict) and all(x is None or isinstance(x, (dict, str)) for x in v.values()),
                        "an object {base: {structure: Dice}, adapted: {...}, ...}"),
    "history": (lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v), "a list of objects (one per validation)"),
}
_TRAINING: dict[str, tuple[Any, str]] = {
    "pairs": (_texts, "a list of case names (text)"),
    "val_pairs": (_texts, "a list of case names (text)"),
    "data_sha256": (lambda v: isinstance(v, dict) and all(isinstance(x, list) for x in v.values()), "an object {train: [...], val: [...]}"),
    "config": (lambda v: isinstance(v, dict), "an object"),
}


def nested_adapter(folder: Path) -> Path | None:
    """The one adapter folder inside ``folder`` where ``folder`` is none itself: a zip unpacked into
    a folder of its own name (``NAME/NAME/medseg.json``); None otherwise."""
    if (folder / "medseg.json").is_file():
        return None
    try:
        inner = [p for p in folder.iterdir() if p.is_dir() and (p / "medseg.json").is_file()]
    except OSError:
        return None
    return inner[0] if len(inner) == 1 else None


def check_recorded_sha256(folder: Path) -> None:
    """``adapter_model.safetensors`` has the sha256 its medseg.json records (``adapter_sha256``,
    as the outputs made with it record it; written by ``medseg adapt``): a file damaged in transfer
    or another adapter's weights copied in loaded as this card's adapter, with nothing said.
    A medseg.json that records none (older adapters) is not checked."""
    from ._files import sha256_file
    from ._json_files import json_file_problem

    meta, problem = json_file_problem(folder / "medseg.json", allow_nan=True)
    if problem is not None:
        return  # read_adapter_meta says why
    recorded = meta.get("adapter_sha256")
    if recorded is None:
        return
    if not (isinstance(recorded, str) and len(recorded) == 64 and all(c in "0123456789abcdef" for c in recorded.lower())):
        raise CheckpointError(f"{folder}/medseg.json: adapter_sha256 must be the weights' sha256 (64 hex digits), got {_show(recorded)} "
                              "(edited by hand, or damaged): get the adapter folder again")
    weights = folder / "adapter_model.safetensors"
    digest = sha256_file(weights)
    if digest != recorded.lower():
        shown = f"{recorded[:16]}..."
        raise CheckpointError(f"{weights}: sha256 {digest[:16]}... is not the {shown} its medseg.json records "
                              "(damaged in transfer, or another adapter's weights): get the adapter folder again")


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


def check_loaded_keys(peft_model, name: str, weights: Path) -> None:
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
