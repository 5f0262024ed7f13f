"""`medseg train`: train a base model (the shipped default is made by this command)."""

from __future__ import annotations

from pathlib import Path

import typer

from .._files import shown
from ._app import app, console, progress_bar


@app.command("train")
def train_command(
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (checkpoints, history, summary)."),
    data: Path | None = typer.Option(None, "--data", help="The shared data folder (../shared/data); packed into OUT/pack.npz first."),
    pack: Path | None = typer.Option(None, "--pack", help="A pack made earlier (medseg train --data ... --pack-only)."),
    pairs: Path | None = typer.Option(None, "--pairs", help="Your own labelled images, as medseg adapt takes them: a CSV with columns image,label "
                                      "or a folder of images with their labels beside them (C.nii.gz + C_gt.nii.gz); packed into OUT/pack.npz first "
                                      "(not with --data or --pack)."),
    val: Path | None = typer.Option(None, "--val", help="Validation CSV or folder, as --pairs (the checkpoint kept as best.safetensors is chosen on it)."),
    label_map: str | None = typer.Option(None, "--label-map", help="With --pairs: the label values of the label files, e.g. 'lv=3,myo=2,rv=1' "
                                         "(structures: lv, myo, rv, la, ra, aorta, pa), or a file, as medseg adapt takes it; may be left out when every label "
                                         "file names its structures (DICOM SEG, medseg sidecar JSON)."),
    pack_only: bool = typer.Option(False, "--pack-only", help="Only build OUT/pack.npz from --data or --pairs, then stop."),
    phantoms: int = typer.Option(1500, "--phantoms", help="Synthetic phantom slices added to the training set."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N (the GPU of that index); a GPU is used only when named."),
    batch_size: int = typer.Option(0, "--batch-size", help="Images per step; 0: 128 on cuda, 16 on cpu."),
    lr: float = typer.Option(4e-4, "--lr", help="Learning rate (AdamW)."),
    time_budget: float = typer.Option(1800.0, "--time-budget", help="Seconds of training; the LR schedule spans it."),
    max_steps: int = typer.Option(0, "--max-steps", help="Stop after this many steps (0 = no limit)."),
    val_every: float = typer.Option(0.0, "--val-every", help="Seconds (not steps, as in adapt) between validations; 0: the time budget / 6."),
    seed: int = typer.Option(0, "--seed", help="Random seed (data order, prompt simulation)."),
    init_from: Path | None = typer.Option(None, "--init-from", help="Start from this medseg checkpoint (all its weights train; "
                                          "'default': the shipped one; NAME: your model in $MEDSEG_HOME/models; a train folder: its best)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in OUT (state.pt)."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Where state.pt (for --resume) is kept (default: OUT)."),
    probe_batches: str = typer.Option("", "--probe-batches", help="Comma-separated batch sizes to time first (e.g. 128,256,512 on a GPU); "
                                      "trains with the smallest within 10% of the fastest, learning rate scaled by sqrt(size / --batch-size)."),
    mode_probs: str = typer.Option("", "--mode-probs", help="Prompt-mode weights as name=weight pairs, e.g. box=0.3,mask=0.35 "
                                   "(modes: box, roi_points, full_points, auto, mask; unnamed modes keep their default weight)."),
) -> None:
    """Train a whole base model on the shared data or your own labelled images.

    Real slices (--data: the shared data folder; --pairs: your own image / label files, read as
    medseg adapt reads them) are packed into OUT/pack.npz, mixed with --phantoms synthetic
    slices; --init-from default fine-tunes all weights of the shipped model. OUT/README.md
    says what the model was trained on; load it with --model OUT/best.safetensors."""
    from ..errors import MedsegError
    from ..training.loop import TrainConfig
    from ._options import check_device

    check_device(device)  # cuda:N as the other commands take it; no GPU here: said before any work
    try:
        probe = tuple(int(b) for b in probe_batches.split(",") if b.strip())
    except ValueError:
        raise MedsegError(f"--probe-batches: expected comma-separated integers, got {probe_batches!r}") from None
    if any(b < 1 for b in probe):
        raise MedsegError("--probe-batches: batch sizes must be positive")
    for name, value, ok in (("--phantoms", phantoms, phantoms >= 0), ("--batch-size", batch_size, batch_size >= 0),
                            ("--lr", lr, 0 < lr < 1), ("--time-budget", time_budget, time_budget > 0),
                            ("--max-steps", max_steps, max_steps >= 0), ("--val-every", val_every, val_every >= 0)):
        if not ok:
            raise MedsegError(f"{name} {value} is out of range (phantoms, batch size, max steps, val-every >= 0; 0 < lr < 1; time budget > 0 s)")
    probs = _mode_probs(mode_probs)
    from .._files import check_writable_folder

    if pairs is not None and (data is not None or pack is not None):
        raise MedsegError(f"--pairs packs your own images into OUT/pack.npz: give it without {'--data' if data is not None else '--pack'}")
    if pairs is None and (val is not None or label_map is not None):
        raise MedsegError(f"{'--val' if val is not None else '--label-map'} goes with --pairs (your own labelled images)")
    if pack_only and data is None and pairs is None:
        raise MedsegError("--pack-only packs --data or --pairs: give one of them")
    if out.exists() and not out.is_dir():
        raise MedsegError(f"{out} is a file; the training output is a folder: choose another name")
    check_writable_folder(out)
    if state_dir is not None:  # a file there: trained, wrote its checkpoints, then failed saving state.pt
        check_writable_folder(state_dir)
    init_from = _init_checkpoint(init_from)
    if resume and init_from is not None and (Path(state_dir or out) / "state.pt").is_file():
        _same_start(out, init_from)
    if resume and not (Path(state_dir or out) / "state.pt").is_file():
        made = [f for f in ("last.safetensors", "best.safetensors", "history.json") if (out / f).is_file()]
        if made:  # its state lost (a wiped --state-dir, another folder): it trained anew over that run's checkpoints
            raise MedsegError(f"--resume: {shown(out)} holds a run ({', '.join(made)}) but {shown(Path(state_dir or out))} has no state.pt "
                              "to continue it: give the --state-dir it was saved to, start from it with --init-from "
                              f"{shown(out / 'last.safetensors' if 'last.safetensors' in made else out / made[0])} -o ANOTHER_FOLDER, or leave out --resume")
        console.print(f"note: --resume: no state.pt in {shown(Path(state_dir or out))} yet; starting a new run", markup=False, soft_wrap=True)
    if data is not None or pairs is not None:  # nothing is written before the pack is made
        state = Path(state_dir or out) / "state.pt" if resume else None
        pack = _make_pack(data, out / "pack.npz") if data is not None else _pairs_pack(pairs, val, label_map, out / "pack.npz", state)
        if pack_only:
            return
    elif pack is not None:
        if not pack.is_file():
            raise MedsegError(f"pack not found: {pack}")
        from ..training.pack import check_pack

        check_pack(pack)  # not a pack: said before OUT is made and training starts
    out.mkdir(parents=True, exist_ok=True)
    if pack is None and phantoms <= 0:
        raise MedsegError("nothing to train on: give --data or --pack, or --phantoms > 0")
    cfg = TrainConfig(
        pack=str(pack) if pack else None, out=str(out), n_phantoms=phantoms, device=device,
        batch_size=batch_size or (128 if device.startswith("cuda") else 16), lr=lr, time_budget_s=time_budget,
        max_steps=max_steps, val_every_s=val_every or max(time_budget / 6, 30.0), seed=seed,
        init_from=str(init_from) if init_from else None, resume=resume, state_dir=str(state_dir) if state_dir else None,
        probe_batches=probe, mode_probs=probs,
    )
    summary = _run(cfg)
    scored = any(k.startswith("box/") for r in summary["history"] for k in r)
    best = f"best score {summary['best_score']:.4f}" if scored else "no validation slices: best.safetensors is the last step"
    console.print(f"trained {summary['steps']} steps ({summary['samples']} samples, {summary['samples_per_s']:.0f}/s); {best}; "
                  f"checkpoints and model card (README.md) in {shown(out)}", markup=False, soft_wrap=True)


def _mode_probs(text: str) -> tuple[float, ...]:
    """'box=0.3,mask=0.35' -> weights in MODES order (others at their defaults); '' -> ()."""
    from ..errors import MedsegError
    from ..training.prompts import MODE_PROBS, MODES

    if not text.strip():
        return ()
    probs = dict(zip(MODES, MODE_PROBS))
    for item in text.split(","):
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in probs:
            raise MedsegError(f"--mode-probs: unknown mode {name!r}; modes: {', '.join(MODES)}")
        try:
            probs[name] = float(value)
        except ValueError:
            raise MedsegError(f"--mode-probs: {name} needs a number, got {value!r}") from None
        if not 0 <= probs[name] < float("inf"):
            raise MedsegError(f"--mode-probs: {name} must be a finite number >= 0")
    if sum(probs.values()) <= 0:
        raise MedsegError("--mode-probs: the weights sum to 0")
    return tuple(probs[m] for m in MODES)


#: what each reader of the shared data folder reads (medseg.training.pack.READERS)
SHARED_LAYOUT = ("acdc/training", "camus-224", "mnms2/001", "hvsmr2/images", "siue-psax-echo/Val_annotations.json", "sunnybrook/link.csv")


def _make_pack(data: Path, target: Path) -> Path:
    from rich.progress import SpinnerColumn, TextColumn

    from ..errors import MedsegError
    from ..training.pack import build_pack

    if not data.is_dir():
        raise MedsegError(f"data folder not found: {data}")
    missing = [p for p in SHARED_LAYOUT if not (data / p).exists()]
    if missing:  # a lab's own folder: the readers found nothing, then one failed on mnms2/001
        raise MedsegError(f"--data {shown(data)} is not the shared data folder (no {', '.join(missing[:3])}"
                          f"{' ...' if len(missing) > 3 else ''}): for your own labelled images use --pairs FOLDER_OR_CSV --label-map MAP")
    if target.is_file():
        from ..training.pairs_pack import pack_source

        if pack_source(target) is not None:
            raise MedsegError(f"{shown(target)} holds your own pairs (packed by --pairs), not the shared data: give another -o folder")
        console.print(f"using existing pack {shown(target)}", markup=False)
        return target
    with progress_bar(SpinnerColumn(), TextColumn("packing {task.description}: {task.completed} slices")) as bar:
        task = bar.add_task("", total=None)
        build_pack(data, target, progress=lambda name, n: bar.update(task, description=name, completed=n))
    return target


def _init_checkpoint(init_from: Path | None) -> Path | None:
    """--init-from: 'default' is the shipped checkpoint; a file must be there (said before packing)."""
    from ..errors import MedsegError

    if init_from is None:
        return None
    if str(init_from) == "default" and not init_from.exists():
        from ..models.registry import shipped_checkpoint

        return shipped_checkpoint()
    from ..models.own import BEST, find_own_model

    if not init_from.exists():  # a lab's model by name ($MEDSEG_HOME/models/NAME[/STEM]), as --model finds it
        own = find_own_model(str(init_from), "--init-from")
        if own is not None:
            return own
    elif init_from.is_dir() and (init_from / BEST).is_file():  # a medseg train folder: its best, as --model takes it
        return init_from / BEST
    if not init_from.is_file():
        what = f"{init_from} is a folder with no {BEST}" if init_from.is_dir() else f"checkpoint not found: {init_from}"
        raise MedsegError(f"--init-from: {what} ('default' is the shipped one; a name: a folder in "
                          "$MEDSEG_HOME/models, see medseg models; a medseg train folder: its best.safetensors)")
    from ..models.checkpoints import read_checkpoint_header

    read_checkpoint_header(init_from)  # not a checkpoint: said before packing and before OUT is made, not after
    return init_from


def _same_start(out: Path, init_from: Path) -> None:
    """--resume --init-from: the run continued (its state.pt) must have started from that
    checkpoint; another one was recorded as its start on the card while state.pt's weights trained."""
    from .._files import sha256_file
    from ..errors import MedsegError
    from ..training.loop import started_from

    known, started = started_from(out)
    if known and (started or {}).get("sha256") != sha256_file(init_from):
        was = f"from {started.get('path')}" if started else "from scratch"
        raise MedsegError(f"--resume: the run in {shown(out)} started {was}, not from --init-from {init_from}: leave out --init-from "
                          "to continue it (or give the one it started from), or start a new run in another -o folder")


def _pairs_pack(pairs: Path, val: Path | None, label_map: str | None, target: Path, state: Path | None = None) -> Path:
    """Read --pairs / --val as medseg adapt does and pack them into ``target`` (used again when
    it was made from the same files and map). ``state``: --resume's state.pt; a run it continues
    must have been packed from the same (refused before ``target`` is replaced)."""
    from rich.progress import SpinnerColumn, TextColumn

    from ..adapt import check_structures
    from ..training.pairs_pack import pack_pairs, pack_source, signature
    from ._options import train_val_pairs

    train_pairs, val_pairs, lmap = train_val_pairs(pairs, val, label_map)
    check_structures(lmap)
    same = target.is_file() and (pack_source(target) or {}).get("signature") == signature(train_pairs, val_pairs, lmap)
    if state is not None and state.is_file() and not same:
        from ..errors import MedsegError

        made = "other pairs, validation pairs or label map" if target.is_file() else "no OUT/pack.npz of --pairs"
        raise MedsegError(f"--resume continues the run of {shown(state)}, made from {made}: give the --pairs, --val and --label-map "
                          "it was made from, or another -o folder (without --resume) to train on these")
    old_kind = same and not (pack_source(target) or {}).get("labelled_per_case")  # packed before 2026-12-08: every structure labelled
    if old_kind and (state is None or not state.is_file()):  # a new run: packed again, a case without the RV not taught it absent
        same = False
    if same:
        console.print(f"using existing pack {shown(target)} (made from the same pairs and label map)"
                      + ("; packed by an earlier medseg, which counted every structure as labelled in every case: kept for "
                         "--resume" if old_kind else ""), markup=False, soft_wrap=True)
        return target
    with progress_bar(SpinnerColumn(), TextColumn("packing {task.description}: {task.completed} slices")) as bar:
        task = bar.add_task("", total=None)
        notes: list[str] = []
        packer = pack_pairs(train_pairs, val_pairs, lmap, progress=lambda name, n: bar.update(task, description=name, completed=n), notes=notes)
    for text in notes:  # structures not labelled in some cases, label values the map does not name
        console.print(f"note: {text}", markup=False, soft_wrap=True)
    src = packer.source
    packer.save(target)
    console.print(f"packed {src['n_slices']['train']} training slices of {len(train_pairs)} volumes"
                  + (f" and {src['n_slices']['val']} validation slices of {len(val_pairs)}" if val_pairs else " (no --val: the last step is kept)")
                  + f"; modality {src['modality']}; written to {shown(target)}", markup=False, soft_wrap=True)
    return target


def _run(cfg):
    """Train with a bar on a terminal; into a file or a pipe (``2> log``, a job's log) the
    shared :func:`._app.progress_bar`'s plain line now and then instead, with the step lines
    every 500 steps. rich's own bar, drawn there, left a stale ``training  0%  -:--:--`` line."""
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn

    from ..training.loop import train

    with progress_bar(TextColumn("training"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TextColumn("{task.fields[info]}"),
                      TimeRemainingColumn()) as bar:
        task = bar.add_task("train", total=1.0, info="")

        def report(ev: dict) -> None:
            if "probe" in ev:
                rates = ", ".join(f"{b}: {r}/s" for b, r in ev["probe"].items())
                console.print(f"batch probe (samples/s) {rates}; training with batch {ev['batch_size']}, lr {ev['lr']:.2e}", markup=False, soft_wrap=True)
            elif "validation" in ev:
                v = ev["validation"]
                if any(k.startswith("box/") for k in v):
                    console.print(f"step {ev['step']}: validation score {v['score']:.4f} (best {ev['best']:.4f})")
                else:  # no validation slices: a score of 0.0000 read as a model that segments nothing
                    console.print(f"step {ev['step']}: checkpoint saved (no validation slices to score; best.safetensors is this step)")
            else:  # the bar runs to whichever ends training first: --max-steps or --time-budget
                done = max(ev["frac"], ev["step"] / cfg.max_steps if cfg.max_steps else 0.0)
                bar.update(task, completed=min(done, 1.0), info=f"step {ev['step']} loss {ev['loss']:.3f}")
                if not console.is_terminal and ev["step"] % 500 == 0:
                    console.print(f"step {ev['step']} {ev['elapsed_s']:.0f}s loss {ev['loss']:.4f} lr {ev['lr']:.2e}")

        return train(cfg, progress=report)
