"""The model card (README.md) ``medseg adapt`` writes beside an adapter."""

from __future__ import annotations

from typing import Any

from .labels import LabelMap


def _init_line(tr: dict[str, Any]) -> str:
    i = tr.get("init_from")
    if not i:
        return ""
    return (f"\n- Started from adapter `{i['adapter']}` (sha256 `{str(i['adapter_sha256'])[:16]}...`, trained for base "
            f"`{str(i['base_model_sha256'])[:16]}...`) instead of a fresh LoRA"
            + ("; that adapter as it was (step 0) was a candidate." if tr.get("val_pairs") else "."))


def _kept_words(tr: dict[str, Any]) -> str:
    """", the adapter of step 900 kept" when the best validation was not the last step."""
    k = tr.get("kept_step")
    return f", the adapter of step {k} kept (best validation score)" if k is not None and k != tr["steps"] else ""


def adapter_card(meta: dict[str, Any]) -> str:
    """The adapter's README.md model card."""
    b, a = meta["validation_dice"]["base"], meta["validation_dice"]["adapted"]
    rows = "\n".join(_card_row(k, b.get(k, float("nan")), a[k]) for k in a) or "| (no validation pairs) | | | |"
    tr = meta["training"]
    return f"""# medseg LoRA adapter

{meta.get('description') or 'A LoRA adapter for the medseg promptable cardiac model.'}

- Base model: `{meta['base_model_id']}` (sha256 `{meta['base_model_sha256']}`); loading onto another base is refused.
- Modality / view: {meta['modality']} / {meta['view']}
- Label map: `{LabelMap(meta['label_map']).to_string()}`
- Trained on {len(tr['pairs'])} volumes ({tr['n_slices']} slices): {', '.join(tr['pairs'])}; validated on: {', '.join(tr['val_pairs']) or 'none'}
- Training: {tr['steps']} step{'' if tr['steps'] == 1 else 's'} in {tr['seconds']:.0f} s on {tr['device']}{_kept_words(tr)}; LoRA rank {tr['config']['rank']}, decoder {'on' if tr['config']['decoder'] else 'off'}.{_init_line(tr)}

## Validation Dice (pooled over validation slices: tight box + structure prompt; `auto_`: structure token alone, zero-click)

The adapter kept is the validation step with the best mean box Dice + 0.5 x mean zero-click Dice.

| structure | base | adapted | change |
|---|---|---|---|
{rows}

Use: `medseg segment IMAGE -o OUT --adapter <this folder> ...` (also `batch`, `evaluate`; by its name once the folder is in
`$MEDSEG_HOME/adapters/`, where `medseg models` lists it)
"""



def _card_row(name: str, base: float, adapted: float) -> str:
    """A row of the card's Dice table; the change is that of the rounded numbers shown ("0.919 |
    0.920 | +0.000" read as a rounding slip)."""
    b, a = round(float(base), 3), round(float(adapted), 3)
    return f"| {name} | {b:.3f} | {a:.3f} | {a - b:+.3f} |"
