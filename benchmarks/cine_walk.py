"""Propagation through the frames of a cine: round the cycle (shipped when the frames cover one
whole cycle, `medseg.propagation.cycle_closes`) against up to the last frame and down to the
first (as before; still the rule for frames that stop part way round).

    python benchmarks/cine_walk.py [--data ../shared/data] [--repeats 3]

1. A cine phantom (20 frames x 10 slices of 216 x 256; exact truth), one box per structure on
   the middle slice of frame 0, then slices and frames ("zt"): seconds and Dice per frame.
2. M&Ms-2 subject 001, 4-chamber cine (25 frames; experts labelled ED = frame 23 and ES = frame
   8), a box per structure (LV, myocardium) from the expert's ED label on frame 23 and on frame 0,
   then frames ("t"): Dice at ED and ES and the single-plane EF against the expert's.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import medseg.propagation as prop
    from medseg.models import load_model
    from medseg.phantoms import cine_sax_phantom
    from medseg.prompt_file import prompts_from_labels
    from medseg.segment import segment_volume

    shipped = prop.frame_orders
    modes = {"to the ends (before)": lambda t0, n, cyclic: shipped(t0, n, False), "round the cycle (now)": shipped}
    loaded = load_model("default", device="cpu")

    ph = cine_sax_phantom(n_frames=20, n_slices=10, shape=(216, 256), spacing=(10.0, 1.5, 1.5), seed=1)
    lm = ph.label_map.subset(["lv", "myo", "rv"])
    prompts = prompts_from_labels(ph.labels[:1], lm, key_slice=True)  # frame 0, marked for propagation
    print("phantom cine, 20 frames x 10 slices, key slice on frame 0, 'zt'")
    for _ in range(args.repeats):
        for name, fn in modes.items():
            prop.frame_orders = fn
            res = segment_volume(ph.image, loaded, prompts, propagate=True, through="zt", label_map=lm, confidence=False)
            per_frame = [statistics.fmean(dice(ph.labels[t] == v, res.labels[t] == v) for v in lm.values.values()) for t in range(20)]
            print(f"  {name:22s} {res.seconds:6.2f} s  mean Dice {statistics.fmean(per_frame):.4f}, worst frame {min(per_frame):.4f}", flush=True)

    root = args.data / "mnms2" / "001"
    if not root.is_dir():
        print(f"no {root}: M&Ms-2 part skipped")
        prop.frame_orders = shipped
        return
    import nibabel as nib

    from medseg.io import read_volume
    from medseg.labels import LabelMap
    from medseg.measure.echo import measure_echo, measure_echo_clip
    from medseg.prompt_file import PromptSet
    from medseg.types import Box, SlicePrompt

    cine = read_volume(root / "001_LA_CINE.nii.gz")
    lab = {ph_: np.asanyarray(nib.load(root / f"001_LA_{ph_}_gt.nii.gz").dataobj)[:, :, 0].T.astype(np.int16) for ph_ in ("ED", "ES")}
    frame = {}
    for ph_ in ("ED", "ES"):
        img = np.asanyarray(nib.load(root / f"001_LA_{ph_}.nii.gz").dataobj)[:, :, 0].T
        frame[ph_] = int(np.argmin([np.abs(cine.array[t, 0].astype(float) - img).sum() for t in range(cine.n_frames)]))
    lmap = LabelMap.parse("lv=1,myo=2,la=3")
    sp = (float(cine.spacing[1]), float(cine.spacing[2]))
    expert_ef = measure_echo(lab["ED"], lab["ES"], label_map=lmap, spacing_a4c_mm=sp)["lv"]["ef_pct"]
    print(f"M&Ms-2 001 4-chamber cine: ED frame {frame['ED']}, ES frame {frame['ES']}, expert single-plane EF {expert_ef:.1f} %")
    two = LabelMap.parse("lv=1,myo=2")
    for key_frame in (frame["ED"], 0):
        ps = PromptSet([SlicePrompt(s, key_frame, 0, box=Box.from_mask(lab["ED"] == two[s])) for s in ("lv", "myo")], {0, 1}, two)
        for name, fn in modes.items():
            prop.frame_orders = fn
            res = segment_volume(cine, loaded, ps, propagate=True, through="t", label_map=two, confidence=False)
            d = {f"{s} {p_}": dice(lab[p_] == two[s], res.labels[frame[p_], 0] == two[s]) for p_ in ("ED", "ES") for s in ("lv", "myo")}
            ef = measure_echo_clip(res.labels[:, 0], label_map=two, spacing_mm=sp)["lv"]["ef_pct"]
            print(f"  key frame {key_frame:2d}, {name:22s} {res.seconds:5.2f} s  " + ", ".join(f"{k} {v:.3f}" for k, v in d.items())
                  + f"; EF {ef:.1f} % (expert {expert_ef:.1f})", flush=True)
    prop.frame_orders = shipped


if __name__ == "__main__":
    main()
