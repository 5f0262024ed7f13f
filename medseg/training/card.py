"""The README.md model card ``medseg train`` writes beside its checkpoints: what the model was
trained on (a lab's own pairs, the shared-data pack, phantoms, the checkpoint it started from)
and its validation Dice."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _trained_on(data: dict[str, Any]) -> str:
    parts = []
    own = data.get("pairs")
    if own:
        names = own.get("pairs") or []
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        parts.append(f"{len(names)} of your own volumes ({own['n_slices']['train']} slices; modality {own.get('modality') or 'not recorded'}; "
                     f"label map `{', '.join(f'{k}={v}' for k, v in own['label_map'].items())}`): {shown}")
    elif data.get("pack"):
        parts.append(f"the pack `{data['pack']}`")
    if data.get("phantoms"):
        parts.append(f"{data['phantoms']} synthetic phantom slices")
    return " + ".join(parts) or "nothing recorded"


def _validated_on(data: dict[str, Any]) -> str:
    own = data.get("pairs")
    if own:
        names = own.get("val_pairs") or []
        return f"{len(names)} volumes ({own['n_slices']['val']} slices): {', '.join(names[:20])}" if names else "none (no --val)"
    return f"the validation split of `{data['pack']}`" if data.get("pack") else "none"


def card_text(summary: dict[str, Any], history: list[dict]) -> str:
    data = summary.get("data") or {}
    init = data.get("init_from")
    start = f"`{init['path']}` (sha256 `{init['sha256']}`), all weights trained" if init else "from scratch"
    scored = [r for r in history if any(k.startswith(("box/", "auto/")) for k in r)]
    best = max(scored, key=lambda r: r.get("score", 0.0)) if scored else None
    if best is None:
        kept = "no validation slices: `best.safetensors` is the last step, unscored"
        rows = "| (no validation) | | |"
    else:
        kept = f"`best.safetensors`: step {best['step']}, validation score {best['score']:.4f} (mean box Dice + 0.5 x mean zero-click Dice)"
        names = sorted({k.split("/", 1)[1] for k in best if k.startswith(("box/", "auto/"))})
        rows = "\n".join(f"| {n} | {best.get('box/' + n, float('nan')):.3f} | {best.get('auto/' + n, float('nan')):.3f} |" for n in names)
    return f"""# medseg model (`medseg train`)

- Trained on: {_trained_on(data)}
- Validated on: {_validated_on(data)}
- Started from: {start}
- Training: {summary['steps']} steps ({summary['samples']} samples) in {summary['elapsed_s']:.0f} s on {summary['config']['device']}, seed {summary['config']['seed']}
- Kept: {kept}; `last.safetensors`: the last step

## Validation Dice (pooled 2-D over validation slices; box: tight box + structure prompt, zero-click: structure token alone)

| data set / structure | box | zero-click |
|---|---|---|
{rows}

Use: `medseg segment IMAGE -o OUT --model {Path(summary['config']['out']).name}/best.safetensors ...` (also `batch`, `evaluate`);
moved or linked to `$MEDSEG_HOME/models/NAME`, `--model NAME` (`medseg models` lists it). Labels made with it record
`model_id` as its folder and stem (`{Path(summary['config']['out']).name}/best`; `NAME/best` once moved) and the file's sha256.
Each checkpoint's header records the same (`info.data`); `summary.json` and `history.json` are beside it.
"""


def write_card(out: str | Path, summary: dict[str, Any], history: list[dict]) -> Path:
    from .._files import atomic_path

    target = Path(out) / "README.md"
    with atomic_path(target) as tmp:
        Path(tmp).write_text(card_text(summary, history), encoding="utf-8")
    return target
