"""The training loop behind ``medseg train``: time-budgeted, resumable, seeded.

The learning rate warms up, then follows a cosine over the *time budget* (so a 5-minute GPU
run and a 2-hour CPU run both finish their schedule). Every ``val_every_s`` seconds the model
is scored on the validation slices (pooled Dice per dataset and structure, box prompts and
zero-click); the best-scoring weights are kept as ``best.safetensors``, the latest as
``last.safetensors`` with ``state.pt`` (optimizer, step, elapsed time) for ``--resume``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .._files import write_text_atomic
from ..models.network import DEFAULT_CONFIG, ModelConfig, build_network
from .data import STRUCTURES, SliceBank, bank_from_pack
from .losses import PromptLoss
from .prompts import MODES, correction_clicks, sample_batch


@dataclass
class TrainConfig:
    pack: str | None = None
    out: str = "runs/train"
    n_phantoms: int = 1500
    device: str = "cpu"
    batch_size: int = 16
    lr: float = 4e-4
    weight_decay: float = 0.05
    warmup_steps: int = 200
    time_budget_s: float = 1800.0
    max_steps: int = 0  # 0 = until the time budget is spent
    val_every_s: float = 300.0
    correction_prob: float = 0.5
    seed: int = 0
    init_from: str | None = None
    resume: bool = False
    bf16: bool = True
    val_max_per_group: int = 0  # 0 = 400 on cuda, 48 on cpu
    state_dir: str | None = None  # where state.pt (optimizer, for --resume) goes; default: out
    probe_batches: tuple[int, ...] = ()  # time these batch sizes first, train with the one probe_batch_size picks
    model: dict[str, Any] = field(default_factory=dict)
    mode_probs: tuple[float, ...] = ()  # per-sample prompt-mode weights in MODES order; () = prompts.MODE_PROBS


def lr_at(cfg: TrainConfig, step: int, elapsed: float) -> float:
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    frac = min(1.0, elapsed / max(cfg.time_budget_s, 1e-6))
    return cfg.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))


def _autocast(cfg: TrainConfig):
    dev = torch.device(cfg.device)
    if dev.type == "cuda" and cfg.bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def train_step(model, loss_fn, bank: SliceBank, cfg: TrainConfig, opt, gen) -> dict[str, torch.Tensor]:
    idx = torch.multinomial(bank.train_weights, cfg.batch_size, replacement=True, generator=gen)
    cfg_m = model.config
    batch = sample_batch(bank, idx, cfg_m.img_size, cfg_m.embed_size, g=gen, mode_probs=cfg.mode_probs or None)
    with _autocast(cfg):
        emb = model.encode(batch.images)
        sparse, dense = model.embed_prompts(len(idx), **batch.prompts())
        low, iou = model.decode(emb, sparse, dense)
        loss, logs = loss_fn(low, iou, batch.target, batch.multimask)
        if torch.rand(1).item() < cfg.correction_prob:  # host RNG (seeded in train): no device sync
            chosen = logs["chosen"]
            prev = low.gather(1, chosen.view(-1, 1, 1, 1).expand(-1, 1, *low.shape[-2:]))
            b2 = correction_clicks(batch, prev, g=gen)
            sparse2, dense2 = model.embed_prompts(len(idx), **b2.prompts())
            low2, iou2 = model.decode(emb, sparse2, dense2)
            loss2, _ = loss_fn(low2, iou2, b2.target, b2.multimask)
            loss = (loss + loss2) / 2
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return {"loss": loss.detach()}


def probe_batch_size(model, loss_fn, bank: SliceBank, cfg: TrainConfig, sizes: tuple[int, ...], gen, steps: int = 12) -> tuple[int, dict[int, float]]:
    """Samples per second of ``train_step`` for each batch size (learning rate 0: the weights
    do not move; the probe's optimizer is thrown away). Returns the smallest size within 10 %
    of the fastest rate (smaller batches take more optimizer steps per sample) and the rates.

    On an H100 this model is launch-bound at batch 128 (7.7 steps/s at 128, 7.6 at 256, 5.0 at
    512), so a larger batch buys samples per second nearly for free; on a CPU it does not.
    A size that runs out of device memory ends the probe."""
    dev = torch.device(cfg.device)
    rates: dict[int, float] = {}
    for b in sizes:
        opt = torch.optim.AdamW(model.parameters(), lr=0.0)
        c = replace(cfg, batch_size=b)
        try:
            for i in range(steps + 3):
                if i == 3:
                    _sync(dev)
                    t0 = time.perf_counter()
                train_step(model, loss_fn, bank, c, opt, gen)
            _sync(dev)
        except torch.OutOfMemoryError:
            del opt
            model.zero_grad(set_to_none=True)
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            break
        rates[b] = steps * b / (time.perf_counter() - t0)
        del opt
    return choose_batch_size(rates, cfg.batch_size), rates


def choose_batch_size(rates: dict[int, float], fallback: int) -> int:
    """The smallest batch size whose samples/s is within 10 % of the fastest (``fallback``
    when nothing was measured)."""
    if not rates:
        return fallback
    top = max(rates.values())
    return min(b for b, r in rates.items() if r >= 0.9 * top)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


@torch.no_grad()
def validate(model, bank: SliceBank, cfg: TrainConfig, max_per_group: int = 400, modes: tuple[str, ...] = ("box", "auto")) -> dict[str, float]:
    """Pooled Dice per dataset/structure on validation slices: tight box + structure token
    ("box/<ds>/<s>") and zero-click ("auto/<ds>/<s>"); plus their means ("score"). It leaves
    torch's random state as it found it: training draws the same batches whenever it validates
    (a resumed run validated once more where the first session stopped)."""
    dev = torch.device(cfg.device)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        out = _validate(model, bank, cfg, dev, max_per_group, modes)
    box = [v for k, v in out.items() if k.startswith("box/")]
    auto = [v for k, v in out.items() if k.startswith("auto/")]
    out["score"] = (sum(box) / max(len(box), 1)) + 0.5 * (sum(auto) / max(len(auto), 1))
    return out


def _validate(model, bank: SliceBank, cfg: TrainConfig, dev: torch.device, max_per_group: int, modes: tuple[str, ...]) -> dict[str, float]:
    model.eval()
    val = torch.nonzero(bank.split == 1).squeeze(1)
    names = [bank.dataset[i] for i in val.tolist()]
    out: dict[str, float] = {}
    for mode_name in modes:
        for ds in sorted(set(names)):
            sel = val[torch.tensor([n == ds for n in names], device=dev)]
            for k, s in enumerate(STRUCTURES):
                rows = sel[bank.present[sel, k]] if mode_name == "box" else sel[bank.labelled[sel, k]]
                rows = rows[:max_per_group]
                if len(rows) == 0:
                    continue
                out[f"{mode_name}/{ds}/{s}"] = _pooled_dice(model, bank, rows, k, mode_name, cfg)
    model.train()
    return out


def _pooled_dice(model, bank, rows, k, mode_name, cfg) -> float:
    inter = tot = 0.0
    m = model.config
    for i in range(0, len(rows), 128):
        r = rows[i : i + 128]
        mode = torch.full((len(r),), MODES.index(mode_name), device=r.device)
        ks = torch.full((len(r),), k, device=r.device)
        batch = sample_batch(bank, r, m.img_size, m.embed_size, augment=False, mode=mode, generic_prob=0.0, structure=ks)
        with _autocast(cfg):
            low, _ = model(batch.images, **batch.prompts())
        up = torch.nn.functional.interpolate(low[:, :1].float(), size=batch.target.shape[-2:], mode="bilinear", align_corners=False) > 0
        t = batch.target > 0.5
        inter += float((up & t).sum())
        tot += float(up.sum() + t.sum())
    return 2 * inter / tot if tot > 0 else 1.0


def started_from(out: str | Path) -> tuple[bool, dict[str, Any] | None]:
    """(known, init_from) of the run in ``out``, from its last.safetensors header: the
    ``{path, sha256}`` it started from, None when from scratch; known False when unreadable."""
    from ..errors import MedsegError
    from ..models.checkpoints import read_checkpoint_header

    last = Path(out) / "last.safetensors"
    try:
        data = read_checkpoint_header(last)[1].get("data") if last.is_file() else None
    except MedsegError:
        data = None
    if not isinstance(data, dict):
        return False, None
    init = data.get("init_from")
    return True, init if isinstance(init, dict) else None


def train(cfg: TrainConfig, progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train (or resume) a model; returns the summary also written to ``summary.json``."""
    from ..models.checkpoints import check_finite, load_checkpoint
    from .resume_state import load_state, restore_rng

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    dev = torch.device(cfg.device)
    gen = torch.Generator(device=dev)
    gen.manual_seed(cfg.seed)
    t_load = time.perf_counter()
    bank = bank_from_pack(cfg.pack, cfg.n_phantoms, cfg.seed, dev)
    bank.train_weights = bank.weights(0)
    load_s = time.perf_counter() - t_load
    data = {"pack": Path(cfg.pack).name if cfg.pack else None, "phantoms": cfg.n_phantoms}
    if bank.source:  # a lab's own pairs (medseg train --pairs): what they were
        data["pairs"] = {k: v for k, v in bank.source.items() if k != "signature"}
    if cfg.init_from:
        model, init_sha, _ = load_checkpoint(cfg.init_from)
        data["init_from"] = {"path": str(cfg.init_from), "sha256": init_sha}
    else:
        model = build_network(ModelConfig.from_dict({**DEFAULT_CONFIG.to_dict(), **cfg.model}))
    model.to(dev).train()
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    loss_fn = PromptLoss().to(dev)
    probe: dict[int, float] = {}
    if cfg.probe_batches and not cfg.resume:
        ref = cfg.batch_size
        best_b, probe = probe_batch_size(model, loss_fn, bank, cfg, cfg.probe_batches, gen)
        # keep the noise scale: learning rate x sqrt(batch ratio)
        cfg = replace(cfg, batch_size=best_b, lr=cfg.lr * math.sqrt(best_b / ref))
        if progress:
            progress({"probe": {str(b): round(r) for b, r in probe.items()}, "batch_size": best_b, "lr": cfg.lr})
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, elapsed, best, history = 0, 0.0, -1.0, []
    state_path = Path(cfg.state_dir or out) / "state.pt"
    if cfg.resume and state_path.is_file():
        st = load_state(state_path, dev)  # empty or cut short: one line (not "aborted", not an OSError of the disk)
        check_finite({k: st.get(k) for k in ("model", "opt")}, f"resume state {state_path}", "run without --resume to start over")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        restore_rng(st.get("rng"), gen)  # the draws go on, not again from --seed (an older state has none)
        step, elapsed, best = int(st["step"]), float(st["elapsed"]), float(st["best"])
        known, started = started_from(out)  # the run's own start, not this call's --init-from (the card said 'from scratch')
        if known:
            data.pop("init_from", None)
            data.update({"init_from": started} if started else {})
        history = resumed_history(out)
    start = time.perf_counter() - elapsed
    last_val = time.perf_counter()
    samples0 = step * cfg.batch_size
    run_start = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= cfg.time_budget_s or (cfg.max_steps and step >= cfg.max_steps):
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step, elapsed)
        logs = train_step(model, loss_fn, bank, cfg, opt, gen)
        step += 1
        if step % 25 == 0 and progress:
            progress({"step": step, "elapsed_s": elapsed, "frac": elapsed / cfg.time_budget_s, "loss": float(logs["loss"]), "lr": opt.param_groups[0]["lr"]})
        if time.perf_counter() - last_val >= cfg.val_every_s:
            best = _checkpoint(model, opt, bank, cfg, out, step, time.perf_counter() - start, best, history, progress, data, gen)
            last_val = time.perf_counter()
    elapsed = time.perf_counter() - start
    best = _checkpoint(model, opt, bank, cfg, out, step, elapsed, best, history, progress, data, gen)
    rate = (step * cfg.batch_size - samples0) / max(time.perf_counter() - run_start, 1e-6)
    summary = {"steps": step, "samples": step * cfg.batch_size, "elapsed_s": elapsed, "samples_per_s": rate, "data_load_s": load_s,
               "n_slices": int(bank.images.shape[0]), "best_score": best, "config": asdict(cfg), "batch_probe": {str(b): r for b, r in probe.items()},
               "history": history[-1:] if history else [], "data": data}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    from .card import write_card

    write_card(out, summary, history)
    return summary


def resumed_history(out: Path) -> list[dict[str, Any]]:
    """The validation records of ``out/history.json`` a resumed run goes on from ([] without the
    file); MedsegError in one line naming the file when it is damaged (empty, truncated, not a
    list of records)."""
    from .._files import shown
    from .._json_files import json_file_problem
    from ..errors import MedsegError

    path = out / "history.json"
    if not path.exists():
        return []
    history, problem = json_file_problem(path, expect=list, allow_nan=True)  # a NaN score is read, as json.dumps wrote it
    if problem is None and not all(isinstance(r, dict) for r in history):
        problem = "holds a list whose entries are not all validation records (objects)"
    if problem is not None:
        raise MedsegError(f"--resume: {shown(path)} {problem}; move it aside to resume without the earlier validation history "
                          "(state.pt and the checkpoints are kept)")
    return history


def _checkpoint(model, opt, bank: SliceBank, cfg: TrainConfig, out: Path, step: int, elapsed: float, best: float, history: list, progress,
                data: dict | None = None, gen: torch.Generator | None = None) -> float:
    from ..models.checkpoints import save_checkpoint
    from .resume_state import rng_state

    val = validate(model, bank, cfg, max_per_group=cfg.val_max_per_group or (400 if cfg.device.startswith('cuda') else 48))
    record = {"step": step, "elapsed_s": round(elapsed, 1), "samples": step * cfg.batch_size, **{k: round(v, 4) for k, v in val.items()}}
    history.append(record)
    info = {"training": {"steps": step, "samples": step * cfg.batch_size, "elapsed_s": round(elapsed, 1), "device": cfg.device, "seed": cfg.seed},
            "validation": record, "data": data or {}}
    save_checkpoint(model, out / "last.safetensors", info, half=True)
    if val.get("score", 0.0) > best or not bool((bank.split == 1).any()):  # nothing to validate on: best is the latest
        best = val["score"]
        save_checkpoint(model, out / "best.safetensors", info, half=True)
    state_dir = Path(cfg.state_dir or out)
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / "state.pt.tmp"
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed, "best": best}
    torch.save({**state, "rng": rng_state(gen)} if gen is not None else state, tmp)  # --resume goes on with the next draws
    tmp.replace(state_dir / "state.pt")
    write_text_atomic(out / "history.json", json.dumps(history, indent=1))  # a run stopped while writing it keeps the last whole one
    if progress:
        progress({"step": step, "elapsed_s": elapsed, "validation": record, "best": best})
    return best

