"""Box prompts drawn loosely: 2-D Dice pooled over every labelled slice of the pairs, exact tight boxes
against jittered (5 / 10 % of the side per coordinate), grown (+10 %) and shrunk (-5 %) ones.

    python benchmarks/box_jitter.py MODEL PAIRS.csv LABEL_MAP [EVERY_NTH_PAIR]
"""
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _usage import check_args  # noqa: E402

from medseg.io import read_label_volume, read_volume  # noqa: E402
from medseg.models.registry import load_model  # noqa: E402
from medseg.predictor import SlicePredictor  # noqa: E402
from medseg.preprocess import normalize_intensity  # noqa: E402
from medseg.types import Box  # noqa: E402

check_args(__doc__, 3)  # before the model loads: --help, or a usage error without a traceback
m = load_model(sys.argv[1])
pairs = list(csv.DictReader(open(sys.argv[2])))
lm = dict(kv.split("=") for kv in sys.argv[3].split(","))
rng = np.random.default_rng(0)
conds = {"exact": (0, 0), "jit5": (0.05, 0), "jit10": (0.10, 0), "loose10": (0, 0.10), "tight5": (0, -0.05)}
acc = {c: {s: [0, 0] for s in lm} for c in conds}
for p in pairs[:: int(sys.argv[4]) if len(sys.argv) > 4 else 1]:
    vol = read_volume(p["image"])
    ref = np.asarray(read_label_volume(p["label"]).array)
    norm = normalize_intensity(vol.array, vol.modality)
    pr = SlicePredictor(m)
    for z in range(ref.shape[1]):
        pr.set_image(norm[0, z])
        h, w = ref.shape[2:]
        for s, v in lm.items():
            g = ref[0, z] == int(v)
            if g.sum() < 10:
                continue
            b = Box.from_mask(g)
            for c, (sd, grow) in conds.items():
                hh, ww = b.height, b.width
                n = rng.normal(0, sd, 4) * np.array([hh, ww, hh, ww]) if sd else np.zeros(4)
                y0, x0, y1, x1 = b.y0 - grow * hh + n[0], b.x0 - grow * ww + n[1], b.y1 + grow * hh + n[2], b.x1 + grow * ww + n[3]
                bb = Box(float(np.clip(min(y0, y1), 0, h - 1)), float(np.clip(min(x0, x1), 0, w - 1)), float(np.clip(max(y0, y1), 0, h - 1)), float(np.clip(max(x0, x1), 0, w - 1)))
                pm = pr.predict(box=bb, structure=s).mask
                acc[c][s][0] += 2 * int((pm & g).sum())
                acc[c][s][1] += int(pm.sum() + g.sum())
for c in conds:
    print(sys.argv[1].split("/")[-1], c, {s: round(a / max(t, 1), 4) for s, (a, t) in acc[c].items()})
