"""``medseg compare --plots``: ``lvef_change.png``, LVEF at baseline and follow-up of each pair.

A few pairs: a line per pair, named. A cohort (more than :data:`FEW` pairs): 2,500 opaque
lines and markers were one blue and orange block, neither the pairs nor the change readable;
the lines are faint, the quartiles of each visit and the mean drawn over them, and a second
panel shows how the changes are distributed (pairs with cautions stacked apart).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: pairs drawn as a line each with markers (and named up to :data:`NAMED`); more: the cohort view
FEW, NAMED = 40, 20


def slope_png(result: dict[str, Any], path: Path, key: str = "lv.ef_pct") -> Path | None:
    """A paired slope plot of ``key`` (LVEF): one line per pair from baseline to follow-up, pairs
    with cautions dashed (orange); None (nothing written) when no pair has it."""
    import numpy as np

    from .._files import shown
    from .compare import MEASURES
    from .plots import _figure, _save

    pairs = [p for p in result["pairs"] if key in p["measures"]]
    if not pairs:
        return None
    kept = [p for p in pairs if p.get("in_summary", True)]  # an echo vs short-axis pair: drawn (dashed), in no mean
    many = len(pairs) > FEW
    fig = _figure(8.4 if many else 4.2, 4.8)
    ax = fig.add_subplot(1, 2 if many else 1, 1)
    alpha = min(0.5, max(0.03, 25 / len(pairs))) if many else 1.0
    for p in pairs:
        m = p["measures"][key]
        style = {"linestyle": "--", "color": "tab:orange"} if p["cautions"] else {"color": "tab:blue"}
        if many:
            ax.plot([0, 1], [m["baseline"], m["followup"]], linewidth=0.6, alpha=alpha, color=style["color"])
            continue
        ax.plot([0, 1], [m["baseline"], m["followup"]], marker="o", linewidth=1.2, **style)
        if len(pairs) <= NAMED:
            ax.annotate(shown(p["baseline"]["patient_id"] or p["baseline"]["case"]), (1, m["followup"]), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize=7)
    base, follow = (np.array([p["measures"][key][k] for p in kept], float) for k in ("baseline", "followup"))
    if many and kept:  # what the faint lines hold: each visit's quartiles, and the mean pair
        ax.boxplot([base, follow], positions=[0, 1], widths=0.12, showfliers=False, zorder=3, medianprops={"color": "k"},
                   boxprops={"linewidth": 1.2}, whiskerprops={"linewidth": 1.2})
        ax.plot([0, 1], [base.mean(), follow.mean()], color="k", linewidth=2.5, marker="o", zorder=4, label="mean")
        ax.legend(loc="best", fontsize=7, frameon=False)
    values = np.array([p["measures"][key][k] for p in pairs for k in ("baseline", "followup")], float)
    mid, half = (values.min() + values.max()) / 2, max((values.max() - values.min()) / 2 * 1.1, 5.0)
    ax.set_ylim(mid - half, mid + half)  # at least 10 points shown: a change of 0.1 is not drawn as a fall
    ax.set_xticks([0, 1], ["baseline", "follow-up"])
    ax.set_xlim(-0.2, 1.2 if many else 1.45)
    ax.set_ylabel(MEASURES[key])
    name = MEASURES[key].split(" (")[0]
    s = result["summary"]["measures"].get(key)
    sd = f", SD {s['sd_change']:.1f}" if s and s["sd_change"] is not None else ""
    mean = f"{name} change: mean {s['mean_change']:+.1f}{sd} (n={s['n']})" if s else f"{name}: no pair in the mean"
    left = f"; {len(pairs) - len(kept)} echo vs short-axis left out of the mean" if len(kept) < len(pairs) else ""
    ax.set_title(f"{mean}\n{'orange' if many else 'dashed'}: pairs with cautions{left}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    if many and kept:
        _change_histogram(fig.add_subplot(1, 2, 2), kept, key, name)
    return _save(fig, path)


def _change_histogram(ax: Any, pairs: list[dict[str, Any]], key: str, name: str) -> None:
    """The changes (follow-up minus baseline) of ``pairs``, those with cautions stacked in orange."""
    import numpy as np

    change = np.array([p["measures"][key]["change"] for p in pairs], float)
    flagged = np.array([bool(p["cautions"]) for p in pairs])
    bins = np.histogram_bin_edges(change, bins=min(60, max(10, len(change) // 40)))
    ax.hist([change[~flagged], change[flagged]], bins=bins, stacked=True, color=["tab:blue", "tab:orange"],
            label=[f"no caution ({int((~flagged).sum())})", f"with cautions ({int(flagged.sum())})"])
    ax.axvline(0, color="0.4", linewidth=1)
    ax.axvline(float(change.mean()), color="k", linewidth=2, label=f"mean {change.mean():+.1f}")
    ax.set_xlabel(f"{name} change (follow-up minus baseline)")
    ax.set_ylabel("pairs")
    ax.set_title(f"{name} change per pair\nmedian {np.median(change):+.1f}, IQR {np.subtract(*np.percentile(change, [75, 25])):.1f}",
                 fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    ax.grid(axis="y", alpha=0.3)
