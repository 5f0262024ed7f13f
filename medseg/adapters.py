"""LoRA adapters (peft): apply, save, load, switch, merge; the adapter folder format.

An adapter folder holds ``adapter_config.json`` + ``adapter_model.safetensors`` (peft's own
format), ``medseg.json`` (base model id and sha256, modality, view, label map, training data
summary, validation Dice before/after, medseg version, date, the weights' sha256) and a ``README.md``
card. Loading onto a base whose sha256 differs from ``medseg.json`` is refused, naming both (and
the ``--model`` its ``base_model_id`` names), and so are weights of another sha256 than it records,
a ``format`` this medseg does not read, fields of another kind and a LoRA other than medseg's.

LoRA targets the image encoder's attention ``qkv`` linears and, by default, the mask
decoder's attention projections; the structure tokens can be trained too (a tiny
``modules_to_save``), so zero-click mode adapts with the rest. The base stays frozen and
promptable; ``peft`` is imported only when an adapter is used (it pulls in transformers).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from .adapter_checks import (  # noqa: F401 (medseg.adapters.* as before)
    ADAPTER_FORMAT,
    DECODER_TARGETS,
    ENCODER_TARGETS,
    MAX_RANK,
    STRUCTURE_MODULES,
    check_adapter_base,
    check_adapter_config,
    check_adapter_file,
    check_adapter_meta,
    check_adapter_values,
    check_loaded_keys,
    check_medseg_lora,
    nested_adapter,
)
from .errors import CheckpointError, MedsegError

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
    from ._files import _jsonable, sha256_file

    out = check_adapter_out(out_dir)
    tmp = out.with_name(f".{out.name}.tmp-{int(time.time() * 1000)}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        peft_model.save_pretrained(str(tmp), safe_serialization=True)
        made = {"format": ADAPTER_FORMAT, "medseg_version": __version__, "date": time.strftime("%Y-%m-%d")}
        digest = sha256_file(tmp / "adapter_model.safetensors")  # checked on load: a damaged or swapped file is refused
        (tmp / "medseg.json").write_text(json.dumps(_jsonable({**made, **meta, "adapter_sha256": digest}), indent=2, allow_nan=False) + "\n")
        (tmp / "README.md").write_text(card.rstrip("\n") + f"\n\nMade with medseg {made['medseg_version']} on {made['date']}. "
                                       f"`adapter_model.safetensors` sha256 `{digest}`: what is made with this adapter records it "
                                       "as `adapter_sha256` (cite it with the adapter's name); a file that no longer has it is refused.\n")
        umask = os.umask(0)
        os.umask(umask)
        for f in tmp.iterdir():  # safetensors writes 0600: an adapter folder is shared like any other output
            os.chmod(f, 0o666 & ~umask)
        _swap_in(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` to ``out``; an adapter already there is renamed aside
    first and deleted only once the new one is in place (it was deleted first: a Ctrl-C before
    the rename, whose ``finally`` then deleted ``tmp``, lost both). A failed or interrupted swap
    puts the old one back."""
    aside = out.with_name(f".{out.name}.old-{int(time.time() * 1000)}") if out.exists() else None
    try:
        if aside is not None:
            out.rename(aside)
        tmp.rename(out)
    except BaseException:
        if aside is not None and aside.exists() and not out.exists():
            aside.rename(out)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


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


def modality_note(name_or_path: str, modality: str | None) -> str | None:
    """A line when the adapter ``name_or_path`` was trained on another modality than the image's
    (its medseg.json ``modality``, e.g. ``LGE-MR``, against the image's ``MR``/``CT``/``US``): the
    LGE adapter run on a CT drew a 316 mL LA without a word. None when they agree, or either is
    not known (``OT``, no modality recorded)."""
    try:
        meta = read_adapter_meta(find_adapter(name_or_path))
    except (MedsegError, OSError):
        return None
    trained = str(meta.get("modality") or "").upper()
    image = str(modality or "").upper()
    known = ("MR", "CT", "US")
    family = next((k for k in known if trained == k or trained.endswith("-" + k) or trained.startswith(k + "-")), None)
    if family is None or image not in known or image == family:
        return None
    return (f"the adapter {Path(str(name_or_path)).name} was trained on {meta.get('modality')} images and this image is {image}: "
            "its masks may be poor (an adapter serves the scanner and sequence it was trained on)")


def read_adapter_meta(folder: Path) -> dict[str, Any]:
    missing = [f for f in ADAPTER_FILES if not (folder / f).is_file()]
    if missing:
        inner = nested_adapter(folder)
        hint = f"; it holds the adapter folder {inner.name!r} (unpacked one folder too deep?): give that folder or move it up" if inner else ""
        raise CheckpointError(f"{folder}: not a medseg adapter folder (missing {', '.join(missing)}){hint}")
    from ._json_files import read_json_file

    meta = read_json_file(folder / "medseg.json", error=CheckpointError, allow_nan=True)  # a byte-order mark is fine; not JSON, a list are not (a NaN loss of a diverged run, as earlier releases wrote it, is)
    check_adapter_meta(folder, meta)
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
    recorded = (training.get("data_sha256") or {}).get("train") if isinstance(training.get("data_sha256"), dict) else None
    return cases_trained_on(training.get("pairs"), recorded, cases, images)


def cases_trained_on(pairs: Any, recorded: Any, cases: list[str], images: list[Path] | None = None) -> list[str]:
    """The cases among ``cases`` named as one of the training volumes ``pairs`` (a part after ``_``
    aside), then those whose image has the ``image_sha256`` of a ``recorded`` entry; an adapter's
    medseg.json and a ``medseg train --pairs`` checkpoint's header record both."""
    from ._nfc import nfc  # names in Unicode NFC: the training folder named on a Mac (NFD), the evaluated one elsewhere

    names = [nfc(n) for n in (pairs or []) if isinstance(n, str) and n] if isinstance(pairs, list) else []
    named = [c for c in cases if any(k == n or k.startswith(n + "_") or n.startswith(k + "_") for n in names for k in (nfc(c),))]
    digests = {r.get("image_sha256") for r in recorded if isinstance(r, dict)} - {None} if isinstance(recorded, list) else set()
    if not digests or images is None:
        return named
    from ._files import sha256_path

    return named + [c for c, im in zip(cases, images) if c not in named and sha256_path(im) in digests]


def attach_adapter(loaded, name_or_path: str, adapter_name: str | None = None):
    """Load an adapter onto a loaded base model (sha256-checked). Several adapters can be
    attached under different names; :func:`switch_adapter` selects one at run time."""
    from peft import PeftModel

    from ._files import sha256_file

    folder = find_adapter(name_or_path)
    meta = read_adapter_meta(folder)
    if check_adapter_base(folder, meta) != loaded.sha256:
        raise CheckpointError(wrong_base(folder, meta, loaded))
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
            check_loaded_keys(peft_model, name, folder / "adapter_model.safetensors")
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


def wrong_base(folder: Path, meta: dict[str, Any], loaded) -> str:
    """Why an adapter does not load onto ``loaded``, naming the base it records (``base_model_id``,
    e.g. ``mybase/best``) and the ``--model`` that loads it; the sha256 prefixes alone left the
    user to find which model that was."""
    base_id, base = meta.get("base_model_id"), str(meta["base_model_sha256"])[:16]
    shown_id = base_id if isinstance(base_id, str) and base_id.isprintable() and 0 < len(base_id) <= 200 else None
    have = f"the loaded model is {loaded.model_id} (sha256 {loaded.sha256[:16]}...)"
    if shown_id is None:
        return f"adapter {folder.name} was trained for base sha256 {base}... but {have}: load the model it was trained for with --model"
    if shown_id == loaded.model_id:  # the model of that name is another now (a retrained or updated base)
        return (f"adapter {folder.name} was trained for base model {shown_id} (sha256 {base}...) but {have}: the model of that name "
                "has changed since; load the checkpoint the adapter was trained for (--model PATH), or train the adapter again")
    return f"adapter {folder.name} was trained for base model {shown_id} (sha256 {base}...) but {have}: give --model {shlex.quote(shown_id)}"


def peft_name(name: str) -> str:
    """The name peft knows an attached adapter by: peft keeps adapters in module dicts, whose keys
    cannot hold a ``.`` (an adapter folder ``lge.v2`` was refused as "does not fit this model"),
    so a dot is ``_dot_`` there; medseg (provenance, napari, :func:`switch_adapter`) names the
    adapter as given."""
    return name.replace(".", "_dot_")


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


#: the folders :func:`save_adapter` writes beside an adapter while it saves (left by a killed run)
_SAVING = re.compile(r"\..+\.(tmp|old)-\d+")


def _holds_adapter(folder: Path) -> bool:
    """A folder ``--adapter NAME`` would try: one holding any of an adapter's files (a medseg.json
    lost, a bare peft save: listed as broken, saying why; such folders were left out, while
    ``--adapter NAME`` still found and refused them), or an adapter one folder down."""
    return any((folder / f).is_file() for f in ADAPTER_FILES) or nested_adapter(folder) is not None


def list_adapters() -> list[dict[str, Any]]:
    """Shipped and user adapters (``adapters/`` and ``$MEDSEG_HOME/adapters``)."""
    from ._files import sha256_file
    from .models.registry import asset_dirs, medseg_home

    rows, seen = [], {}
    home = medseg_home("adapters")
    for d in asset_dirs("adapters"):
        if not d.is_dir():
            continue
        try:
            folders = sorted(p for p in d.iterdir() if p.is_dir() and not _SAVING.fullmatch(p.name) and _holds_adapter(p))
        except OSError as e:
            rows.append({"name": str(d), "kind": "adapter", "source": f"broken: cannot list the folder ({e.strerror or e})"})
            continue
        for folder in folders:
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
                         **{k: meta.get(k) for k in ("modality", "view", "date", "medseg_version")},
                         "structures": [str(n) for n in (meta.get("label_map") or {})] if isinstance(meta.get("label_map"), dict) else []})
            seen[folder.name] = rows[-1]
    return rows
