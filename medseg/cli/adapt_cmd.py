"""`medseg adapt --pairs TRAIN.csv [--val VAL.csv] [--label-map MAP] -o ADAPTER_DIR`."""

from __future__ import annotations

from pathlib import Path

import typer

from .._files import shown
from . import _options as o
from ._app import app, console, progress_bar


@app.command("adapt")
def adapt_command(
    pairs: Path = typer.Option(..., "--pairs", help="Training CSV with columns image,label (and frame: the frame of a cine image one-frame labels segment, from 0), or a folder of images with their labels beside them (C.nii.gz + C_gt.nii.gz; also _labels, _label, _seg, _segmentation, _mask, _manual)."),
    val: Path | None = typer.Option(None, "--val", help="Validation CSV or folder, as --pairs (early stopping, before/after Dice)."),
    label_map: str | None = typer.Option(None, "--label-map", help="Label values of the label files, e.g. 'lv=3,myo=2,rv=1', or a file (JSON, ITK-SNAP .txt/.label, nnU-Net dataset.json); "
                                         "may be left out when every label file names its structures (DICOM SEG, medseg sidecar JSON)."),
    out: Path = typer.Option(..., "-o", "--out", help="Adapter folder to write (an adapter already there is replaced when training ends)."),
    model: o.Model = "default",
    rank: int = typer.Option(8, "--rank", help="LoRA rank."),
    no_decoder: bool = typer.Option(False, "--no-decoder", help="LoRA on the image encoder only."),
    steps: int = typer.Option(3000, "--steps", help="Maximum training steps."),
    time_budget: float = typer.Option(2400.0, "--time-budget", help="Maximum seconds of training, its validations included "
                                       "(loading the model and data and scoring the base model come before it)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Images per step."),
    lr: float = typer.Option(1e-3, "--lr", help="Learning rate (AdamW)."),
    val_every: int = typer.Option(100, "--val-every", help="Steps (not seconds, as in train) between validations."),
    patience: int = typer.Option(5, "--patience", help="Validations without improvement before stopping."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N (the GPU of that index); a GPU is used only when named."),
    seed: int = typer.Option(0, "--seed", help="Random seed (data order, prompt simulation)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run (OUT.state)."),
    init_from: str | None = typer.Option(None, "--init-from", help="Start from this adapter (name or folder, same --rank) instead of a fresh LoRA, e.g. to carry it to a new base model."),
    modality: str | None = typer.Option(None, "--modality", help="The modality named in the adapter's medseg.json, e.g. LGE-MR "
                                          "(default: the training images' own). Images are read as their files say."),
    view: str | None = typer.Option(None, "--view", help="Recorded in medseg.json (e.g. short-axis)."),
    description: str = typer.Option("", "--description", help="One line for the model card."),
) -> None:
    """Train a LoRA adapter (a few MB) on your own labelled volumes."""
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    from ..adapt import AdaptConfig, check_init_adapter, run_adapt
    from ..adapters import MAX_RANK, check_adapter_out
    from ..errors import MedsegError
    from ._options import check_device, train_val_pairs

    for name, value, ok in (("--steps", steps, steps >= 1), ("--rank", rank, 1 <= rank <= MAX_RANK), ("--batch-size", batch_size, batch_size >= 1),
                            ("--val-every", val_every, val_every >= 1), ("--patience", patience, patience >= 1),
                            ("--lr", lr, 0 < lr < 1), ("--time-budget", time_budget, time_budget > 0)):
        if not ok:
            raise MedsegError(f"{name} {value} is out of range (steps, batch size, val-every, patience >= 1; rank 1..{MAX_RANK}; "
                              "0 < lr < 1; time budget > 0 s)")
    check_device(device)
    check_adapter_out(out, init_from)
    state = Path(str(out) + ".state") / "state.pt"
    if resume and not state.is_file() and (out / "medseg.json").is_file():  # a finished run: training it from the start would replace it
        raise MedsegError(f"--resume: nothing to resume ({shown(state.parent)} is not there) and {shown(out)} is a finished adapter; "
                          f"to train it further, start from it: --init-from {shown(out)} -o ANOTHER_FOLDER (or leave out --resume to train anew in its place)")
    if (out / "medseg.json").is_file():  # replacing is meant (a fresh run in its place), but not without a word
        console.print(f"note: {shown(out)} holds a finished adapter: it is replaced when this run ends (-o ANOTHER_FOLDER keeps it)",
                      markup=False, soft_wrap=True)
    _note_hidden_adapter(out)
    train_pairs, val_pairs, lmap = train_val_pairs(pairs, val, label_map)
    cfg = AdaptConfig(out=str(out), base=model, rank=rank, decoder=not no_decoder, device=device, batch_size=batch_size, lr=lr,
                      time_budget_s=time_budget, max_steps=steps, val_every=val_every, patience=patience, seed=seed, resume=resume,
                      modality=modality, view=view, description=description, init_from=init_from)
    if init_from:
        check_init_adapter(cfg)  # before the progress bar and the data
    # the bar runs to whichever ends training first: --steps or --time-budget (on a laptop CPU
    # the budget mostly does: 3000 steps would take hours)
    with progress_bar(TextColumn("adapting"), BarColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn()) as bar:
        task = bar.add_task("adapt", total=1.0, info=f"of {steps} steps or {time_budget:g} s")

        def report(ev: dict) -> None:
            if "note" in ev:  # a case without a structure of the map, label values it does not name
                console.print(f"note: {shown(ev['note'])}", markup=False, soft_wrap=True)
            elif "resumed" in ev:
                console.print(f"resuming from step {ev['resumed']} ({shown(state.parent)}; the steps after its last validation are done again)", markup=False)
            elif "validation" in ev:
                v = ev["validation"]
                box = ", ".join(f"{k} {x:.3f}" for k, x in v.items() if k not in ("step", "elapsed_s") and not k.startswith("auto_"))
                auto = ", ".join(f"{k[5:]} {x:.3f}" for k, x in v.items() if k.startswith("auto_"))
                if box or auto:  # nothing to say without validation pairs
                    console.print(f"step {ev['step']}: val Dice, box: {box}" + (f"; zero-click: {auto}" if auto else ""))
            else:
                done = max(ev["step"] / steps, ev.get("elapsed_s", 0.0) / time_budget)
                bar.update(task, completed=min(done, 1.0), info=f"step {ev['step']} of {steps} or {time_budget:g} s; loss {ev['loss']:.3f}")

        if state.is_file() and not resume:
            console.print(f"note: {shown(state.parent)} of an interrupted run is started over (--resume continues it)", markup=False)
        elif resume and not state.is_file():
            console.print(f"note: nothing to resume ({shown(state.parent)} is not there): training from the start", markup=False)
        try:
            meta = run_adapt(train_pairs, val_pairs, lmap, cfg, progress=report)
        except KeyboardInterrupt:
            from ..errors import Interrupted

            raise Interrupted(f"interrupted: {shown(state.parent)} holds the last validated step: the same command with --resume goes on from it"
                              if state.is_file() else f"interrupted before the first validation (every --val-every {val_every} steps): "
                              "nothing to resume, no adapter written") from None
        bar.update(task, completed=1.0, info=f"step {meta['training']['steps']}")
    b, a = meta["validation_dice"]["base"], meta["validation_dice"]["adapted"]
    summary = ", ".join(f"{k} {b.get(k, float('nan')):.3f} -> {a[k]:.3f}" for k in a if not k.startswith("auto_"))
    auto = ", ".join(f"{k[5:]} {b.get(k, float('nan')):.3f} -> {a[k]:.3f}" for k in a if k.startswith("auto_"))
    scores = (f"validation Dice base -> adapted, box: {summary}" + (f"; zero-click: {auto}" if auto else "")
              if summary or auto else "no --val pairs: the last step is kept, unscored")
    tr = meta["training"]
    kept = f"step {tr['kept_step']} of {tr['steps']} kept" if tr.get("kept_step", tr["steps"]) != tr["steps"] else f"{tr['steps']} step{'' if tr['steps'] == 1 else 's'}"
    console.print(f"adapter written to {shown(out)} ({kept}, {tr['seconds']:.0f} s); {scores}", markup=False, soft_wrap=True)


def _note_hidden_adapter(out: Path) -> None:
    """Say it when the adapter is written as $MEDSEG_HOME/adapters/NAME and another adapter has
    that NAME (a shipped one): by name, --adapter NAME then loads this one instead."""

    from ..adapters import same_named_adapters
    from ..models.registry import medseg_home

    home = medseg_home("adapters")
    if home is None or out.resolve().parent != home.resolve():
        return
    others = same_named_adapters(out)
    if others:
        console.print(f"note: by the name {shown(out.name)}, --adapter will load this adapter instead of {shown(others[0])} "
                      "(give that folder to use it; `medseg models` lists both)", markup=False, soft_wrap=True)
