"""``medseg adapt``: train a LoRA adapter on a lab's own labelled volumes.

The same prompt simulation as base training (boxes, clicks, correction clicks, mask prompts,
zero-click), so the adapted model stays promptable. Only the adapter trains (a few hundred
thousand parameters); validation Dice (box prompts, pooled per structure) is measured for the
base and during training, with early stopping on it; the best adapter is kept. Runs on the
CPU; a GPU is used when asked for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .adapt_card import adapter_card
from .errors import LabelMapError, MedsegError
from .labels import DEFAULT_LABEL_MAP, LabelMap
from .pairs import Pair


@dataclass
class AdaptConfig:
    out: str
    base: str = "default"
    rank: int = 8
    decoder: bool = True
    structures: bool = True
    device: str = "cpu"
    batch_size: int = 8
    lr: float = 1e-3
    time_budget_s: float = 2400.0
    max_steps: int = 3000
    val_every: int = 100
    patience: int = 5
    seed: int = 0
    resume: bool = False
    modality: str | None = None
    view: str | None = None
    description: str = ""
    init_from: str | None = None  # an adapter (name or folder) to start from instead of a fresh LoRA


def check_structures(label_map: LabelMap) -> None:
    """Refuse a label map naming a structure the model does not learn (``adapt`` and ``train``)."""
    from .training.data import STRUCTURES

    unknown = [n for n in label_map.names if n not in STRUCTURES]
    if unknown:
        raise LabelMapError(f"medseg's models learn its structures ({', '.join(STRUCTURES)}); unknown in the label map: {', '.join(unknown)}")


def read_labelled_pair(pair: Pair, label_map: LabelMap, notes: list[str] | None = None) -> tuple[Any, np.ndarray, np.ndarray, set[str]]:
    """One training pair read and checked as ``adapt`` and ``train --pairs`` take them: (its
    volume, the image normalised per study (T, Z, Y, X) float32 in [0, 1], its labels in medseg's
    default map (T, Z, Y, X) uint8, the structures of ``label_map`` it holds). A note for label
    values the map does not name (taught as background) goes to ``notes``.

    Raises:
        MedsegError: labels of another grid, a map that does not fit them, no voxel of the map,
            a CT image the Hounsfield window would clip."""
    from .io import check_same_grid, read_label_volume, read_volume
    from .io.seg_reader import in_label_map, onto_image_stack, seg_phase
    from .measure.report import check_reference_lv
    from .pairs import reference_frame
    from .preprocess import hounsfield_problem, normalize_intensity

    vol = read_volume(pair.image, series=pair.series, modality=pair.modality)
    ref = onto_image_stack(vol, in_label_map(read_label_volume(pair.label), label_map))
    # the frame the labels segment: the pairs' frame column or a SEG of one phase of a cine (one-frame
    # labels of a cine naming neither are refused: copied to every frame, ED's labels were taught on ES)
    t, ref = reference_frame(pair, vol, ref, seg_phase(vol, ref))
    vol = vol.phase(t) if t is not None else vol
    check_same_grid(vol, ref, f"labels of {pair.case}")
    missing, unknown = label_map.fit(ref.array)
    if missing and unknown:  # the map does not fit (a typo, another data set's values): those voxels would be taught as background
        raise LabelMapError(f"{pair.label}: holds no {', '.join(f'{n}={v}' for n, v in missing.items())} but value(s) "
                            f"{', '.join(map(str, unknown[:8]))} that the label map ({label_map.to_string()}) does not name: is the map right?")
    check_reference_lv(ref.array, label_map, vol.affine, f"labels of {pair.case}")  # another data set's map would teach the RV as the LV
    if unknown and notes is not None:  # a reader's extra class (scar, papillary muscles): its voxels are taught as background
        said = ", ".join(f"value {v} ({int(np.count_nonzero(np.asarray(ref.array) == v))} voxels)" for v in unknown[:8])
        notes.append(f"{said} in {pair.case} {'is' if len(unknown) == 1 else 'are'} not in the label map: taught as background")
    lab = label_map.remap(np.asarray(ref.array if ref.n_frames == vol.n_frames else np.broadcast_to(ref.array, vol.shape)), DEFAULT_LABEL_MAP)
    if not lab.any():
        raise LabelMapError(f"{pair.label}: no voxel carries a value of the label map ({label_map.to_string()})")
    problem = hounsfield_problem(vol.array) if vol.modality == "CT" else None
    if problem is not None:  # the HU window would clip it: the model would learn from flat grey slices
        raise MedsegError(f"{pair.image}: read as CT but {problem}")
    return vol, normalize_intensity(vol.array, vol.modality), lab, set(label_map.values) - set(missing)


def check_all_seen(label_map: LabelMap, seen: set[str]) -> None:
    """Refuse a map naming a structure that no reference holds."""
    never = [f"{n}={v}" for n, v in label_map.values.items() if n not in seen]
    if never:
        raise LabelMapError(f"the label map names {', '.join(never)}, but no reference holds that value: leave it out, or check the map")


def bank_from_pairs(train: list[Pair], val: list[Pair], label_map: LabelMap, device: str, canvas: int = 256,
                    note: Callable[[str], None] | None = None):
    """Read labelled volumes into a SliceBank (train split 0, val split 1). A structure of the
    map counts as labelled on the slices of the volumes that hold it (a case without the RV is
    not taught that the RV is absent); ``note`` hears of those cases and of label values the
    map does not name."""
    from .training.data import STRUCTURES, SliceBank, presence_and_boxes
    from .training.pack import to_canvas

    check_structures(label_map)
    imgs, labs, prev, nxt, split, vols, modalities, seen = [], [], [], [], [], [], set(), set()
    rows: list[list[bool]] = []  # per slice: the structures its volume holds
    notes: list[str] = []
    lacking: list[str] = []
    for s, pairs in ((0, train), (1, val)):
        for pair in pairs:
            vol, norm, lab, held = read_labelled_pair(pair, label_map, notes)
            seen |= held
            if set(label_map.names) - held:
                lacking.append(f"{pair.case} ({', '.join(n for n in label_map.names if n not in held)})")
            modalities.add(_recorded_modality(vol))
            for t in range(vol.n_frames):
                base = len(imgs)
                for z in range(vol.n_slices):
                    im, lb, _ = to_canvas(norm[t, z], lab[t, z], canvas)
                    imgs.append(np.round(im * 255).astype(np.uint8))
                    labs.append(lb)
                    prev.append(base + z - 1 if z > 0 else -1)
                    nxt.append(base + z + 1 if z < vol.n_slices - 1 else -1)
                    split.append(s)
                    vols.append(f"{pair.case}/t{t}")
                    rows.append([n in held for n in STRUCTURES])
    check_all_seen(label_map, seen)
    if lacking:
        notes.append(f"{'; '.join(lacking[:5])}{f' and {len(lacking) - 5} more' if len(lacking) > 5 else ''}: "
                     "a structure of the label map not labelled, left out there (not taught or scored as absent)")
    for text in notes if note else ():
        note(text)
    dev = torch.device(device)
    labels = torch.from_numpy(np.stack(labs)).to(dev)
    present, boxes = presence_and_boxes(labels)
    labelled = torch.tensor(rows, dtype=torch.bool, device=dev)  # zero-click trains an empty target only where the volume holds the structure
    bank = SliceBank(torch.from_numpy(np.stack(imgs)).to(dev), labels, torch.tensor(prev, device=dev), torch.tensor(nxt, device=dev),
                     labelled, present, boxes, ["adapt"] * len(imgs), torch.tensor(split, device=dev), vols)
    sel = (bank.split == 0).float()
    bank.train_weights = sel / sel.sum().clamp(min=1)
    return bank, sorted(modalities)


def _val_dice(model, bank, cfg_train, modes: tuple[str, ...] = ("box", "auto")) -> dict[str, float]:
    from .training.loop import validate

    v = validate(model, bank, cfg_train, max_per_group=10_000, modes=modes)
    return {k.split("/")[-1]: round(val, 4) for k, val in v.items() if k.startswith("box/")} | {"auto_" + k.split("/")[-1]: round(val, 4) for k, val in v.items() if k.startswith("auto/")}


def run_adapt(train: list[Pair], val: list[Pair], label_map: LabelMap, cfg: AdaptConfig, progress: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Train, select by validation Dice, save the adapter folder; returns the summary."""
    from .adapters import apply_lora, base_network, lora_config, save_adapter
    from .models import load_model
    from .training.loop import TrainConfig, train_step
    from .training.losses import PromptLoss

    if not train:
        raise MedsegError("no training pairs")
    init_folder = check_init_adapter(cfg) if cfg.init_from else None
    torch.manual_seed(cfg.seed)
    t_start = time.perf_counter()
    loaded = load_model(cfg.base, device=cfg.device)
    bank, modalities = bank_from_pairs(train, val, label_map, cfg.device, loaded.config.img_size,
                                       note=(lambda text: progress({"note": text})) if progress else None)
    has_val = bool((bank.split == 1).any())
    tcfg = TrainConfig(device=cfg.device, batch_size=cfg.batch_size, lr=cfg.lr, correction_prob=0.5, bf16=True)
    before = _val_dice(loaded.model, bank, tcfg) if has_val else {}
    model = apply_lora(loaded.model, lora_config(cfg.rank, decoder=cfg.decoder, structures=cfg.structures))
    init = _init_from(init_folder, model) if init_folder else None
    net = base_network(model)
    net.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    gen = torch.Generator(device=torch.device(cfg.device))
    gen.manual_seed(cfg.seed)
    loss_fn = PromptLoss().to(cfg.device)
    state_dir = Path(cfg.out).with_name(Path(cfg.out).name + ".state")
    signature = _signature(cfg, train, val, label_map)
    step, best, best_state, bad, history, earlier_s = _resume(cfg, state_dir, model, opt, signature, gen)
    start = time.perf_counter()
    clock = start - earlier_s  # the history's elapsed_s goes on from the session it resumes
    last_scored = step
    if progress and step:
        progress({"resumed": step, "best": best})
    if init is not None and step == 0 and has_val:
        # the adapter it starts from is a candidate too: training never hands back a worse one
        best, rec = _score(net, bank, tcfg, has_val, 0, clock)
        best_state = _adapter_state(model)
        history.append(rec)
        if progress:
            progress({"step": 0, "validation": rec, "best": best})
    while step < cfg.max_steps and time.perf_counter() - start < cfg.time_budget_s:
        for g in opt.param_groups:
            g["lr"] = cfg.lr * min(1.0, (step + 1) / 50)
        logs = train_step(net, loss_fn, bank, tcfg, opt, gen)
        step += 1
        if progress and (step % 10 == 0 or step >= cfg.max_steps):
            progress({"step": step, "max_steps": cfg.max_steps, "elapsed_s": time.perf_counter() - start, "loss": float(logs["loss"])})
        if step % cfg.val_every == 0 or step >= cfg.max_steps:
            best, best_state, bad = _validate_step(net, model, bank, tcfg, has_val, step, clock, history, best, best_state, bad, progress)
            last_scored = step
            _save_state(state_dir, model, opt, step, best, best_state, bad, history, signature, earlier_s + time.perf_counter() - start, gen)
            if has_val and bad >= cfg.patience:
                break
    if has_val and step > last_scored:  # the time budget ended between validations: the last step is a candidate too
        best, best_state, bad = _validate_step(net, model, bank, tcfg, has_val, step, clock, history, best, best_state, bad, progress)
    if best_state is None or not has_val:
        best_state = _adapter_state(model)
    _load_adapter_state(model, best_state)
    kept = kept_record(history) if has_val else None
    # the kept step's own validation (it is deterministic: the tight box, no augmentation), not one more pass
    after = {k: v for k, v in kept.items() if k not in ("step", "elapsed_s")} if kept else _val_dice(net, bank, tcfg) if has_val else {}
    seconds = earlier_s + time.perf_counter() - t_start  # a resumed run counts the sessions before it
    meta = _meta(loaded, cfg, label_map, train, val, bank, modalities, before, after, step, seconds, history)
    if init is not None:
        meta["training"]["init_from"] = init
    save_adapter(model, cfg.out, meta, adapter_card(meta))
    if state_dir.exists():
        import shutil

        shutil.rmtree(state_dir, ignore_errors=True)
    return meta


def _score(net, bank, tcfg, has_val, step, start) -> tuple[float, dict]:
    """Validation score that picks the adapter: as in base training, the mean box Dice plus half
    the mean zero-click Dice (the structure token alone), so a run that keeps boxes and loses
    zero-click is not chosen."""
    rec = {"step": step, "elapsed_s": round(time.perf_counter() - start, 1)}
    if not has_val:
        return -float(step), rec
    d = _val_dice(net, bank, tcfg)
    net.train()
    rec.update(d)
    return _record_score(rec), rec


def _record_score(rec: dict) -> float:
    """The selection score of one validation record of the history (:func:`_score`)."""
    box = [v for k, v in rec.items() if k not in ("step", "elapsed_s") and not k.startswith("auto_")]
    auto = [v for k, v in rec.items() if k.startswith("auto_")]
    return (float(np.mean(box)) if box else 0.0) + 0.5 * (float(np.mean(auto)) if auto else 0.0)


def kept_record(history: list[dict]) -> dict | None:
    """The validation record of the adapter kept: the first with the best score (a later equal
    one does not replace it, as in :func:`_validate_step`, where a NaN score is never the best);
    None when nothing was scored."""
    scored = [r for r in history if any(k not in ("step", "elapsed_s") for k in r) and np.isfinite(_record_score(r))]
    return max(scored, key=_record_score) if scored else None


def kept_step(history: list[dict], steps: int) -> int:
    """The step whose adapter is kept, or the last step when nothing was validated."""
    rec = kept_record(history)
    return int(rec["step"]) if rec else steps


def _adapter_state(model) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone().cpu() for k, v in get_peft_model_state_dict(model).items()}


def _load_adapter_state(model, state: dict[str, torch.Tensor]) -> None:
    from peft import set_peft_model_state_dict

    set_peft_model_state_dict(model, state)


def check_init_adapter(cfg: AdaptConfig) -> Path:
    """The adapter ``--init-from`` names, checked before any work: a medseg adapter folder whose
    LoRA has this run's rank and targets."""
    from .adapters import DECODER_TARGETS, check_adapter_file, find_adapter, lora_config, read_adapter_meta

    folder = find_adapter(str(cfg.init_from))
    read_adapter_meta(folder)
    check_adapter_file(folder)
    # check_adapter_file read the config and refused a LoRA scaling other than medseg's (lora_alpha 2 x r, no patterns)
    have = json.loads((folder / "adapter_config.json").read_text())
    want = lora_config(cfg.rank, decoder=cfg.decoder, structures=cfg.structures)

    def describe(r, targets) -> str:
        return f"rank {r}, decoder {'on' if set(targets or ()) & set(DECODER_TARGETS) else 'off'}"

    if have.get("r") != want.r or set(have.get("target_modules") or ()) != set(want.target_modules) or \
            set(have.get("modules_to_save") or ()) != set(want.modules_to_save or ()):
        raise MedsegError(f"--init-from {folder.name}: its LoRA ({describe(have.get('r'), have.get('target_modules'))}) does not match this run's "
                          f"({describe(want.r, want.target_modules)}); use the same --rank and --no-decoder")
    return folder


def _init_from(folder: Path, model) -> dict[str, Any]:
    """Load an existing adapter's LoRA weights (a folder :func:`check_init_adapter` passed) into
    the fresh one, for example to carry a lab's adapter over to a new base model; returns what
    the card records."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    from ._files import sha256_file
    from .adapters import read_adapter_meta

    state = load_file(str(folder / "adapter_model.safetensors"))
    want = {k: tuple(v.shape) for k, v in get_peft_model_state_dict(model).items()}
    if want != {k: tuple(v.shape) for k, v in state.items()}:
        raise MedsegError(f"--init-from {folder.name}: its weights do not fit this model's LoRA (another architecture?)")
    _load_adapter_state(model, state)
    return {"adapter": folder.name, "adapter_sha256": sha256_file(folder / "adapter_model.safetensors"),
            "base_model_sha256": read_adapter_meta(folder).get("base_model_sha256")}


def _validate_step(net, model, bank, tcfg, has_val, step, start, history, best, best_state, bad, progress):
    """Score the adapter at ``step``; (best score, its state, validations without improvement)."""
    score, rec = _score(net, bank, tcfg, has_val, step, start)
    history.append(rec)
    if score > best:
        best, best_state, bad = score, _adapter_state(model), 0
    else:
        bad += 1
    if progress:
        progress({"step": step, "validation": rec, "best": best})
    return best, best_state, bad


#: the settings a resumed run must share with the run it continues (the time budget and the
#: number of steps may change: a run is resumed to give it more)
RESUME_KEYS = ("base", "rank", "decoder", "structures", "batch_size", "lr", "seed", "init_from", "val_every", "patience")


def _signature(cfg: AdaptConfig, train, val, label_map) -> str:
    return json.dumps({"config": {k: getattr(cfg, k) for k in RESUME_KEYS}, "label_map": label_map.to_dict(),
                       "pairs": [[str(p.image), str(p.label)] for p in train], "val": [[str(p.image), str(p.label)] for p in val]},
                      sort_keys=True, default=str)


def _save_state(state_dir: Path, model, opt, step, best, best_state, bad, history, signature: str, seconds: float, gen=None) -> None:
    from .training.resume_state import rng_state

    state_dir.mkdir(parents=True, exist_ok=True)
    payload = {"adapter": _adapter_state(model), "best_state": best_state or {}, "opt": opt.state_dict(),
               "step": step, "best": best, "bad": bad, "history": json.dumps(history), "signature": signature, "seconds": seconds}
    if gen is not None:  # a resumed run goes on with the draws this one would make next (it repeated the first session's)
        payload["rng"] = rng_state(gen)
    torch.save(payload, state_dir / "state.pt.tmp")
    (state_dir / "state.pt.tmp").replace(state_dir / "state.pt")


def _resume(cfg: AdaptConfig, state_dir: Path, model, opt, signature: str, gen=None):
    from .training.resume_state import load_state, restore_rng

    f = state_dir / "state.pt"
    if not (cfg.resume and f.is_file()):
        return 0, -float("inf"), None, 0, [], 0.0
    st = load_state(f, cfg.device)  # empty or cut short: one line, not "aborted" (click took its EOFError for Ctrl-D)
    if st.get("signature") != signature:  # another rank failed deep in torch; other pairs or lr resumed silently
        was, now = json.loads(st.get("signature") or "{}"), json.loads(signature)
        differ = sorted(k for k in ("label_map", "pairs", "val") if was.get(k) != now.get(k))
        differ += sorted(k for k in RESUME_KEYS if (was.get("config") or {}).get(k) != now["config"].get(k))
        raise MedsegError(f"{f} was saved by a run with other settings ({', '.join(differ) or 'an older medseg'}): resume with the "
                          "same pairs and settings, or run without --resume to start over")
    from .models.checkpoints import check_finite

    check_finite({k: st.get(k) for k in ("adapter", "best_state", "opt")}, f"resume state {f}", "run without --resume to start over")
    _load_adapter_state(model, st["adapter"])
    opt.load_state_dict(st["opt"])
    if gen is not None:
        restore_rng(st.get("rng"), gen)  # a state of an older medseg has none: its draws start again from --seed
    return (int(st["step"]), float(st["best"]), (st["best_state"] or None), int(st["bad"]), json.loads(st["history"]),
            float(st.get("seconds", 0.0)))


def _meta(loaded, cfg, label_map, train, val, bank, modalities, before, after, step, seconds, history) -> dict[str, Any]:
    n_train = int((bank.split == 0).sum())
    return {
        "base_model_id": loaded.model_id, "base_model_sha256": loaded.sha256,
        "modality": cfg.modality or ", ".join(modalities),
        "view": cfg.view or "not given (--view)", "label_map": label_map.to_dict(), "description": cfg.description,
        "training": {"pairs": [_pair_name(p) for p in train], "n_slices": n_train, "val_pairs": [_pair_name(p) for p in val], "steps": step,
                     "kept_step": kept_step(history, step), "seconds": round(seconds, 1), "device": cfg.device, "config": {k: v for k, v in asdict(cfg).items() if k not in ("out", "resume")},
                     **_environment(cfg.device), "data_sha256": {"train": _pair_hashes(train), "val": _pair_hashes(val)}},
        "validation_dice": {"base": before, "adapted": after, "metric": "pooled 2-D Dice over validation slices, tight box + structure prompt (auto_: structure token alone)", "selected_by": "mean box Dice + 0.5 x mean zero-click Dice"},
        "history": history,
    }


def _environment(device: str) -> dict[str, Any]:
    """The versions and torch threads the adapter was trained with (its weights differ in the
    last float digits with another thread count or device: docs/training.md, *Reproducibility*)."""
    from ._runinfo import run_environment

    return {k: v for k, v in run_environment(device).items() if k not in ("medseg_version", "device")}


def _pair_hashes(pairs: list[Pair]) -> list[dict[str, str]]:
    """sha256 of each pair's image and label file (a DICOM folder: of its files), so the data an
    adapter was trained on can be named exactly."""
    from ._files import sha256_path

    return [{"case": p.case, "image_sha256": sha256_path(p.image), "label_sha256": sha256_path(p.label)} for p in pairs]


#: the card's modality for files that do not record one (NIfTI, MHA/NRRD, PNG read as "OT")
NOT_RECORDED = "not recorded in the files (--modality)"


def _pair_name(p: Pair) -> str:
    """A training pair's name in medseg.json: its case and phase (CAMUS's ``patient0361_2CH``
    at ED and at ES were listed as two ``patient0361_2CH``)."""
    return f"{p.case}_{p.phase}" if p.phase else p.case


def _recorded_modality(vol) -> str:
    """The modality a training image says it is: DICOM's tag, a NIfTI ``descrip``, the
    Hounsfield-unit detection or ``--modality`` on the pairs; "OT" read from a file that records
    no modality is no statement (an MR NIfTI would be carded "OT")."""
    if vol.modality == "OT" and vol.meta.get("format") != "dicom" and not vol.meta.get("modality_from"):
        return NOT_RECORDED
    return vol.modality
