"""How well the structure colours (``medseg.labels.STRUCTURE_COLOURS``) separate under colour-vision deficiency.

    python benchmarks/palette_cvd.py [--json docs/bench/palette_cvd.json] [--search]

Simulates protanopia, deuteranopia and tritanopia with the matrices of Machado, Oliveira and
Fernandes 2009 (severity 1.0, applied to linear sRGB, as ``colorspacious``'s ``sRGB1+CVD`` does)
and measures CIEDE2000 distances (scikit-image, D65) for

* every pair of structures that touch in the images medseg segments (:data:`ADJACENT`), and all
  pairs (legends, bar charts and scatter plots show all structures side by side);
* each colour against the greyscale image under it: a contour line (opaque, the report and
  review-sheet PNGs) and a napari label fill (opacity 0.5 in the reader and sample data, 0.55
  in the segmentation widget: 0.5 taken), blended in sRGB as napari's canvas does, the worst
  grey level of 0..1 reported; the fills of two touching structures over the same grey;
* each colour against white (figure backgrounds);
* the marks drawn beside them: the review sheet's flagged-slice frame (against every structure
  colour and white) and napari's box colour for a structure with no colour (against every
  structure colour and as a line over grey).

``--search`` re-runs the choice of the palette: 7 colours out of published colour-blind-safe
sets (Okabe-Ito, Paul Tol's bright / vibrant / muted / light / high-contrast, IBM Design),
readable over greyscale (line >= 15, fill >= 10 under every vision), LV-MYO-RV at least 30 and
touching structures at least 28 apart under all four visions, ranked by the smallest distance of
all pairs (seconds); it lists the best, and medseg's was picked from them. They tie in mirrored
pairs; picked: LV red and MYO yellow (not the reverse), RV the blue that reads better over
greyscale, RA the light orange (LV and RA, both in a 4-chamber view, then stay further apart). With ``colorspacious`` installed the simulation is checked against it (not needed).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

#: Machado et al. 2009, severity 1.0: linear-sRGB -> linear-sRGB
MACHADO: dict[str, np.ndarray] = {
    "normal": np.eye(3),
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]]),
}

#: structures that touch in the images (pair -> where)
ADJACENT: dict[tuple[str, str], str] = {
    ("lv", "myo"): "every short- and long-axis view", ("myo", "rv"): "septum, SAX (ACDC)",
    ("lv", "rv"): "septum without a myocardium label (HVSMR)", ("lv", "la"): "mitral valve (CAMUS, 4CH)",
    ("myo", "la"): "atrioventricular groove (CAMUS)", ("rv", "ra"): "tricuspid valve (4CH, HVSMR)",
    ("la", "ra"): "atrial septum", ("lv", "aorta"): "LVOT", ("myo", "aorta"): "aortic root",
    ("rv", "pa"): "RVOT", ("aorta", "pa"): "great arteries", ("aorta", "la"): "behind the aortic root",
    ("aorta", "ra"): "beside the aortic root", ("la", "pa"): "left atrial appendage", ("rv", "aorta"): "RVOT over the root",
}
MAIN = ("lv", "myo", "rv")
FILL_ALPHA = 0.5
GREYS = np.linspace(0.0, 1.0, 51)

#: ColorBrewer Set1, medseg's palette until 2026-12
SET1 = {"lv": "#e41a1c", "myo": "#4daf4a", "rv": "#377eb8", "la": "#ff7f00", "ra": "#984ea3", "aorta": "#a65628", "pa": "#f781bf"}

#: the published colour-blind-safe colours --search chooses from
POOL = {
    "okabe-ito orange": "#E69F00", "okabe-ito sky blue": "#56B4E9", "okabe-ito bluish green": "#009E73",
    "okabe-ito yellow": "#F0E442", "okabe-ito blue": "#0072B2", "okabe-ito vermillion": "#D55E00", "okabe-ito reddish purple": "#CC79A7",
    "tol bright blue": "#4477AA", "tol bright cyan": "#66CCEE", "tol bright green": "#228833", "tol bright yellow": "#CCBB44",
    "tol bright red": "#EE6677", "tol bright purple": "#AA3377", "tol vibrant orange": "#EE7733", "tol vibrant blue": "#0077BB",
    "tol vibrant cyan": "#33BBEE", "tol vibrant magenta": "#EE3377", "tol vibrant red": "#CC3311", "tol vibrant teal": "#009988",
    "tol muted rose": "#CC6677", "tol muted indigo": "#332288", "tol muted sand": "#DDCC77", "tol muted green": "#117733",
    "tol muted cyan": "#88CCEE", "tol muted wine": "#882255", "tol muted teal": "#44AA99", "tol muted olive": "#999933",
    "tol muted purple": "#AA4499", "tol light blue": "#77AADD", "tol light orange": "#EE8866", "tol light yellow": "#EEDD88",
    "tol light pink": "#FFAABB", "tol light cyan": "#99DDFF", "tol light mint": "#44BB99", "tol light pear": "#BBCC33",
    "tol light olive": "#AAAA00", "ibm blue": "#648FFF", "ibm purple": "#785EF0", "ibm magenta": "#DC267F",
    "ibm orange": "#FE6100", "ibm yellow": "#FFB000", "tol high-contrast blue": "#004488",
    "tol high-contrast yellow": "#DDAA33", "tol high-contrast red": "#BB5566",
}


def rgb(hexa: str) -> np.ndarray:
    """``#rrggbb`` -> sRGB in 0..1, shape (3,)."""
    return np.array([int(hexa[i:i + 2], 16) / 255 for i in (1, 3, 5)])


def simulate(srgb: np.ndarray, vision: str) -> np.ndarray:
    """sRGB (..., 3) in 0..1 as seen with ``vision`` (a key of :data:`MACHADO`), sRGB 0..1."""
    c = np.asarray(srgb, float)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    out = np.clip(lin @ MACHADO[vision].T, 0.0, 1.0)
    return np.where(out <= 0.0031308, 12.92 * out, 1.055 * out ** (1 / 2.4) - 0.055)


def delta_e(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIEDE2000 between sRGB colours (..., 3) in 0..1."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    a, b = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float))
    return deltaE_ciede2000(rgb2lab(a.reshape(-1, 1, 3)), rgb2lab(b.reshape(-1, 1, 3))).reshape(a.shape[:-1])


def pair_distance(c1: str, c2: str, vision: str) -> float:
    return float(delta_e(simulate(rgb(c1), vision), simulate(rgb(c2), vision)))


def over_grey(colour: str, vision: str, alpha: float) -> float:
    """The smallest CIEDE2000 between ``colour`` drawn at ``alpha`` over a grey and that grey, over greys 0..1."""
    g = np.repeat(GREYS[:, None], 3, axis=1)
    return float(delta_e(simulate(alpha * rgb(colour) + (1 - alpha) * g, vision), simulate(g, vision)).min())


def fills_apart(c1: str, c2: str, vision: str, alpha: float = FILL_ALPHA) -> float:
    """The smallest CIEDE2000 between two fills at ``alpha`` over the same grey, over greys 0..1."""
    g = np.repeat(GREYS[:, None], 3, axis=1)
    return float(delta_e(simulate(alpha * rgb(c1) + (1 - alpha) * g, vision), simulate(alpha * rgb(c2) + (1 - alpha) * g, vision)).min())


def measure(palette: dict[str, str]) -> dict[str, dict]:
    """Per vision: the distances above, rounded to 0.1, and their minima."""
    out: dict[str, dict] = {}
    for vision in MACHADO:
        adj = {f"{a}-{b}": pair_distance(palette[a], palette[b], vision) for a, b in ADJACENT}
        every = {f"{a}-{b}": pair_distance(palette[a], palette[b], vision) for a, b in itertools.combinations(palette, 2)}
        main = [every.get(f"{a}-{b}", every.get(f"{b}-{a}")) for a, b in itertools.combinations(MAIN, 2)]
        line = {n: over_grey(c, vision, 1.0) for n, c in palette.items()}
        fill = {n: over_grey(c, vision, FILL_ALPHA) for n, c in palette.items()}
        fills = {f"{a}-{b}": fills_apart(palette[a], palette[b], vision) for a, b in ADJACENT}
        white = {n: float(delta_e(simulate(rgb(c), vision), np.ones(3))) for n, c in palette.items()}
        r = lambda d: {k: round(v, 1) for k, v in d.items()}  # noqa: E731
        worst = min(adj, key=adj.get)
        out[vision] = {"min_adjacent": round(adj[worst], 1), "worst_adjacent": worst, "min_lv_myo_rv": round(min(main), 1),
                       "min_all_pairs": round(min(every.values()), 1), "min_line_over_grey": round(min(line.values()), 1),
                       "min_fill_over_grey": round(min(fill.values()), 1), "min_adjacent_fills": round(min(fills.values()), 1),
                       "min_vs_white": round(min(white.values()), 1), "adjacent": r(adj), "all_pairs": r(every),
                       "line_over_grey": r(line), "fill_over_grey": r(fill), "adjacent_fills": r(fills), "vs_white": r(white)}
    return out


def marks(palette: dict[str, str], marks_: dict[str, str]) -> dict[str, dict]:
    """Per mark colour (the review sheet's flagged-slice frame, napari's fallback box colour), per
    vision: the smallest CIEDE2000 to any structure colour (and which), against white and as a
    line over the grey that matches it worst."""
    out: dict[str, dict] = {}
    for mark, colour in marks_.items():
        out[mark] = {"colour": colour}
        for vision in MACHADO:
            near = {n: pair_distance(colour, c, vision) for n, c in palette.items()}
            worst = min(near, key=near.get)
            out[mark][vision] = {"min_vs_structures": round(near[worst], 1), "nearest": worst,
                                 "vs_white": round(float(delta_e(simulate(rgb(colour), vision), np.ones(3))), 1),
                                 "line_over_grey": round(over_grey(colour, vision, 1.0), 1)}
    return out


def search(min_main: float = 30.0, min_adjacent: float = 28.0, min_line: float = 15.0, min_fill: float = 10.0,
           top: int = 8) -> list[dict]:
    """The best ``top`` assignments of :data:`POOL` colours to the 7 structures: colours readable over
    greyscale under every vision, LV-MYO-RV >= ``min_main`` and adjacent pairs >= ``min_adjacent``
    apart; ranked by the smallest all-pairs, then adjacent-pair distance (worst vision)."""
    names = [n for n, c in POOL.items()
             if all(over_grey(c, v, 1.0) >= min_line and over_grey(c, v, FILL_ALPHA) >= min_fill for v in MACHADO)]
    cols = np.array([[simulate(rgb(POOL[n]), v) for n in names] for v in MACHADO])  # (vision, colour, 3)
    dist = delta_e(cols[:, :, None, :], cols[:, None, :, :]).min(axis=0)  # worst vision per pair
    order = ["lv", "myo", "rv", "la", "ra", "aorta", "pa"]
    adj = [(order.index(a), order.index(b)) for a, b in ADJACENT]
    found = []
    for a, b, c in itertools.permutations(range(len(names)), 3):
        main = min(dist[a, b], dist[b, c], dist[a, c])
        if main < min_main:
            continue
        rest = np.array(list(itertools.permutations([i for i in range(len(names)) if i not in (a, b, c)], 4)))
        full = np.concatenate([np.tile([a, b, c], (len(rest), 1)), rest], axis=1)
        worst = np.min([dist[full[:, x], full[:, y]] for x, y in adj], axis=0)
        every = np.where(worst >= min_adjacent, np.min([dist[full[:, x], full[:, y]] for x, y in itertools.combinations(range(7), 2)], axis=0), -1)
        i = int(np.lexsort((worst, every))[-1])
        if every[i] >= 0:
            found.append((round(float(every[i]), 1), round(float(worst[i]), 1), round(float(main), 1), full[i]))
    found.sort(key=lambda f: f[:3], reverse=True)
    return [{"min_all_pairs": e, "min_adjacent": w, "min_lv_myo_rv": m, "colours": {s: f"{names[i]} {POOL[names[i]]}" for s, i in zip(order, idx)}}
            for e, w, m, idx in found[:top]]


def _check_colorspacious() -> float | None:
    """Largest difference between :func:`simulate` and colorspacious over the palettes; None without it."""
    try:
        from colorspacious import cspace_convert
    except ImportError:
        return None
    kinds = {"protanopia": "protanomaly", "deuteranopia": "deuteranomaly", "tritanopia": "tritanomaly"}
    cols = np.array([rgb(c) for c in [*SET1.values(), *POOL.values()]])
    return max(float(np.abs(simulate(cols, v) - np.clip(cspace_convert(cols, {"name": "sRGB1+CVD", "cvd_type": k, "severity": 100}, "sRGB1"), 0, 1)).max())
               for v, k in kinds.items())


def main() -> None:
    from medseg_napari._layers import BOX_FALLBACK_COLOUR

    from medseg.labels import STRUCTURE_COLOURS
    from medseg.measure.sheets import FLAG_COLOUR

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--search", action="store_true", help="re-run the choice of the palette")
    args = ap.parse_args()
    result: dict = {"method": "Machado et al. 2009 (severity 1.0, linear sRGB) + CIEDE2000 (scikit-image)",
                    "fill_alpha": FILL_ALPHA, "greys": f"{GREYS[0]:g}..{GREYS[-1]:g} in {len(GREYS)} steps",
                    "adjacent": {f"{a}-{b}": why for (a, b), why in ADJACENT.items()},
                    "colorspacious_max_abs_diff": _check_colorspacious(),
                    "palettes": {"set1_before": SET1, "medseg": dict(STRUCTURE_COLOURS)}}
    if args.search:
        result["search_top"] = search()
        for cand in result["search_top"]:
            print({k: v for k, v in cand.items() if k != "colours"}, ", ".join(f"{s}={c}" for s, c in cand["colours"].items()))
    result["results"] = {name: measure(p) for name, p in result["palettes"].items()}
    for name, res in result["results"].items():
        print(name, " ".join(f"{c}={v}" for c, v in result["palettes"][name].items()))
        for vision, r in res.items():
            print(f"  {vision:13s} adjacent >= {r['min_adjacent']:5.1f} ({r['worst_adjacent']}), LV/MYO/RV >= {r['min_lv_myo_rv']:5.1f}, "
                  f"all pairs >= {r['min_all_pairs']:5.1f}, over grey: line >= {r['min_line_over_grey']:4.1f}, fill >= {r['min_fill_over_grey']:4.1f}, "
                  f"adjacent fills >= {r['min_adjacent_fills']:4.1f}, vs white >= {r['min_vs_white']:4.1f}")
    result["marks"] = marks(dict(STRUCTURE_COLOURS), {"review_sheet_flag": FLAG_COLOUR, "napari_box_fallback": BOX_FALLBACK_COLOUR})
    for mark, res in result["marks"].items():
        print(mark, res["colour"], ", ".join(f"{v} >= {r['min_vs_structures']} ({r['nearest']}), white {r['vs_white']}, over grey {r['line_over_grey']}"
                                             for v, r in res.items() if v != "colour"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
