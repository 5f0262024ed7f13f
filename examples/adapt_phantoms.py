"""Adapt the model to a "new scanner" end to end, on generated data (runs in CI).

    python examples/adapt_phantoms.py [WORK_DIR] [STEPS]

A lab's new sequence is imitated by phantoms with inverted contrast (dark blood, bright
myocardium, as in some black-blood or late-enhancement images). The script writes train/val
studies + a PAIRS.csv, trains a LoRA adapter with ``medseg adapt`` (the same prompt simulation as
base training), and prints validation Dice before/after. The real counterpart is the shipped
LGE adapter: see adapters/cmr-lge/README.md for its command.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.cli._app import run_cli
from medseg.io import write_labels
from medseg.io.geometry import medseg_to_nifti
from medseg.phantoms import cine_sax_phantom


def make_studies(work: Path, n_train: int = 3, n_val: int = 2) -> tuple[Path, Path]:
    rows = {"train": [], "val": []}
    for i in range(n_train + n_val):
        ph = cine_sax_phantom(n_frames=1, n_slices=6, shape=(112, 112), spacing=(8.0, 1.5, 1.5), seed=100 + i)
        vol = ph.image.with_array(ph.image.array.max() - ph.image.array, frame_times_s=None)  # inverted contrast
        img, lab = work / f"study{i}.nii.gz", work / f"study{i}_gt.nii.gz"
        nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(img))
        write_labels(ph.labels, vol, lab, ph.label_map.subset(["lv", "myo", "rv"]))
        rows["train" if i < n_train else "val"].append({"image": img.name, "label": lab.name})
    paths = []
    for split, r in rows.items():
        p = work / f"{split}.csv"
        with open(p, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["image", "label"])
            w.writeheader()
            w.writerows(r)
        paths.append(p)
    return paths[0], paths[1]


def main(work: Path, steps: int = 60) -> int:
    work.mkdir(parents=True, exist_ok=True)
    train, val = make_studies(work)
    return run_cli(["adapt", "--pairs", str(train), "--val", str(val), "--label-map", "lv=1,myo=2,rv=3", "-o", str(work / "adapter"),
                    "--steps", str(steps), "--val-every", str(max(steps // 3, 1)), "--batch-size", "4", "--modality", "MR (inverted)",
                    "--description", "Example: phantoms with inverted contrast."])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("work_dir", nargs="?", type=Path, metavar="WORK_DIR", default=Path("adapt_example"), help="working folder (default: %(default)s)")
    ap.add_argument("steps", nargs="?", type=int, metavar="STEPS", default=60, help="adapter training steps (default: %(default)s)")
    a = ap.parse_args()
    sys.exit(main(a.work_dir, a.steps))
