"""A lab's own checkpoints (``medseg train`` output folders): the model id a checkpoint file is
recorded under, ``--model NAME`` for a folder in ``$MEDSEG_HOME/models`` (as ``--adapter NAME``
finds ``$MEDSEG_HOME/adapters/NAME``), the rows ``medseg models`` lists and what ``medseg info``
says of a checkpoint file. Everything is read from the safetensors header: nothing is unpickled
and no weight is loaded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError

#: the sub-folder of $MEDSEG_HOME searched for ``--model NAME``; NAME is a ``medseg train`` output folder
OWN_DIR = "models"
#: the file of such a folder that ``--model NAME`` loads (``--model NAME/last`` the other)
BEST = "best.safetensors"


def checkpoint_id(path: str | os.PathLike, sha256: str | None = None) -> str:
    """The model id a medseg checkpoint file is recorded under (sidecars, REPORT.json, batch and
    evaluate outputs): its folder's name and its stem, ``labA_run1/best``. Every ``medseg train``
    run writes ``best.safetensors`` and ``last.safetensors``: the stem alone (``best``) told two
    labs' models apart only by their sha256. Symbolic links are not followed, so a file loaded
    as ``--model NAME`` ($MEDSEG_HOME/models/NAME/best.safetensors) is ``NAME/best`` however the
    folder got there, and that id loads it again (``--model NAME/best``, replay).

    A file whose ``sha256`` (its contents) is the shipped default model's is ``default``, however
    it was given (its path, a link, a copy): the id ``--model default`` records, which loads the
    same weights again on any install; by path it was ``checkpoints/medseg_default``."""
    if sha256:
        from .registry import shipped_sha256

        if sha256 == shipped_sha256():
            return "default"
    p = Path(os.path.abspath(Path(path).expanduser()))
    return f"{p.parent.name}/{p.stem}" if p.parent.name else p.stem


def find_own_model(spec: str, option: str = "--model") -> Path | None:
    """The checkpoint ``--model spec`` names in ``$MEDSEG_HOME/models``: ``NAME`` is
    ``NAME/best.safetensors``, ``NAME/STEM`` is ``NAME/STEM.safetensors``; None when MEDSEG_HOME
    is not set or there is no such folder. CheckpointError (one line) for a folder of that name
    without the file (``option``: the option it names, e.g. --init-from)."""
    from .registry import medseg_home

    home = medseg_home(OWN_DIR)
    parts = Path(spec).parts
    if home is None or not 1 <= len(parts) <= 2 or Path(spec).is_absolute() or any(p in ("..", ".", "~") for p in parts):
        return None
    folder = home / parts[0]
    f = folder / (BEST if len(parts) == 1 else f"{parts[1].removesuffix('.safetensors')}.safetensors")
    if f.is_file():
        return f
    if not folder.is_dir():
        return None
    there = sorted(p.stem for p in folder.glob("*.safetensors"))
    raise CheckpointError(f"{option} {spec}: $MEDSEG_HOME/{OWN_DIR}/{parts[0]} has no {f.name}"
                          + (f" (it holds {', '.join(s + '.safetensors' for s in there)}: {option} {parts[0]}/{there[0]})" if there else
                             " (a model there is a `medseg train` output folder: its best.safetensors)"))


def describe_checkpoint(path: str | os.PathLike, digest: bool = True) -> dict[str, Any]:
    """What a medseg checkpoint file is, from its header alone: architecture, structures, what it
    was trained and validated on, steps, validation score, the checkpoint it started from, size
    and sha256 (``digest``). CheckpointError (one line) for a file that is not one."""
    from .._files import sha256_file
    from .checkpoints import read_checkpoint_header

    path = Path(path)
    config, info = read_checkpoint_header(path)
    data = info.get("data") if isinstance(info.get("data"), dict) else None
    training = info.get("training") if isinstance(info.get("training"), dict) else {}
    sha = sha256_file(path) if digest else None
    out: dict[str, Any] = {"path": str(path), "kind": "medseg checkpoint", "model_id": checkpoint_id(path, sha),
                           "size_mb": round(path.stat().st_size / 1e6, 2), **({"sha256": sha} if digest else {}),
                           "architecture": f"{config.name} ({config.img_size} px input, {config.depth} blocks of width {config.embed_dim})",
                           "structures": list(config.structures)}
    try:
        from ..training.card import _trained_on, _validated_on

        if data is not None:
            out["trained_on"] = _trained_on(data).replace("`", "")
            out["validated_on"] = _validated_on(data).replace("`", "")
    except (KeyError, TypeError, AttributeError):  # a header written by hand or an older medseg: said as not recorded
        pass
    if "lineage" in info:  # the shipped model: several rounds, its header's "training" is the first one's
        out["trained_on"] = f"{len(info['lineage']) if isinstance(info['lineage'], list) else 'several'} rounds (header info.lineage; checkpoints/README.md)"
        training, data = {}, None
    out.setdefault("trained_on", "not recorded in its header")
    if isinstance(training.get("steps"), int):
        out["steps"] = training["steps"]
    val = info.get("validation") if isinstance(info.get("validation"), dict) else {}
    if isinstance(val.get("score"), (int, float)) and any(str(k).startswith(("box/", "auto/")) for k in val):
        out["validation_score"] = f"{val['score']:.4f} at step {val.get('step')} (mean box Dice + 0.5 x mean zero-click Dice)"
    elif data is not None:
        out["validation_score"] = "none (no validation slices: the last step)"
    init = (data or {}).get("init_from")
    start = init.get("sha256") if isinstance(init, dict) else training.get("init_from_sha256")
    if "lineage" not in info:
        out["started_from"] = f"sha256 {start}" if isinstance(start, str) else "from scratch" if data is not None else "not recorded"
    if digest:
        from .registry import shipped_sha256

        if out["sha256"] == shipped_sha256():
            out["note"] = "the shipped default model: --model default loads it (recorded as model_id default)"
    return out


def own_model_names() -> list[str]:
    """The names ``--model NAME`` loads from ``$MEDSEG_HOME/models`` (folders with a
    ``best.safetensors``; nothing is read or hashed), for the napari plugin's model box."""
    from .registry import REGISTRY, medseg_home

    home = medseg_home(OWN_DIR)
    if home is None or not home.is_dir():
        return []
    try:
        return sorted(p.name for p in home.iterdir() if p.name not in REGISTRY and (p / BEST).is_file())
    except OSError:  # an unreadable folder: no names, the widget still opens
        return []


def list_own_models() -> list[dict[str, Any]]:
    """``medseg models`` rows of the folders in ``$MEDSEG_HOME/models`` (``--model NAME``): one
    per folder with a ``best.safetensors`` (a broken one is said as its source, and does not
    hide the others)."""
    from .registry import REGISTRY, medseg_home

    home = medseg_home(OWN_DIR)
    if home is None or not home.is_dir():
        return []
    try:
        folders = sorted(p for p in home.iterdir() if p.is_dir() and any(p.glob("*.safetensors")))
    except OSError as e:
        return [{"name": f"$MEDSEG_HOME/{OWN_DIR}", "kind": "model", "source": f"broken: {e.strerror or e}"}]
    rows = []
    for folder in folders:
        row: dict[str, Any] = {"name": folder.name, "kind": "model"}
        try:
            if folder.name in REGISTRY:
                raise CheckpointError(f"named as the built-in model {folder.name!r}, which --model {folder.name} loads: rename the folder")
            if not (folder / BEST).is_file():
                find_own_model(folder.name)  # raises, naming the files there
            d = describe_checkpoint(folder / BEST)
        except (CheckpointError, OSError) as e:
            rows.append({**row, "source": f"broken: {' '.join(str(e).split())}"})
            continue
        rows.append({**row, "size_mb": d["size_mb"], "sha256": d["sha256"], "path": str(folder / BEST), "source": str(folder / BEST),
                     "description": f"your model (--model {folder.name}): trained on {d['trained_on']}; {d.get('steps', '?')} step(s); "
                                    f"validation: {d.get('validation_score', 'not recorded')}; start: {d.get('started_from', 'not recorded')}",
                     **{k: d[k] for k in ("model_id", "structures", "trained_on", "validated_on", "validation_score", "started_from", "steps") if k in d}})
    return rows


def model_trained_on(info: dict[str, Any], cases: list[str], images: list[Path] | None = None) -> list[str]:
    """The cases among ``cases`` that a ``medseg train --pairs`` checkpoint's header (``info``:
    ``data.pairs.pairs`` and ``data_sha256``) names as its training volumes, or whose image is
    one of them by sha256: ``evaluate`` scores on them are no validation of the model."""
    from ..adapters import cases_trained_on

    own = (info.get("data") or {}).get("pairs") if isinstance(info.get("data"), dict) else None
    if not isinstance(own, dict):
        return []
    return sorted(set(cases_trained_on(own.get("pairs"), own.get("data_sha256"), cases, images)))
