"""CT-like phantoms for `medseg evaluate` (no real labelled cardiac CT is available here).

    python benchmarks/ct_phantoms.py OUT_DIR [--seeds 101,102,103]
    medseg evaluate --pairs OUT_DIR/pairs.csv --label-map lv=1,myo=2,rv=3,la=4,ra=5,aorta=6,pa=7 \
        --prompt box|auto -o RESULT.json

Writes ``ct<seed>.nii.gz`` (Hounsfield units, int16, modality CT in the header's description)
and ``ct<seed>_gt.nii.gz`` (all seven structures) per seed, and ``pairs.csv``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seeds", default="101,102,103")
    args = ap.parse_args()

    import nibabel as nib
    import numpy as np

    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import ct_phantom

    args.out.mkdir(parents=True, exist_ok=True)
    rows = ["image,label,case,phase"]
    for seed in (int(s) for s in args.seeds.split(",")):
        ph = ct_phantom(seed=seed)
        img = nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.int16), 3), ph.image.affine)
        img.header["descrip"] = b"CT"
        nib.save(img, str(args.out / f"ct{seed}.nii.gz"))
        nib.save(nib.Nifti1Image(medseg_to_nifti(ph.labels.astype(np.uint8), 3), ph.image.affine), str(args.out / f"ct{seed}_gt.nii.gz"))
        rows.append(f"ct{seed}.nii.gz,ct{seed}_gt.nii.gz,ct{seed},")
    (args.out / "pairs.csv").write_text("\n".join(rows) + "\n")
    print(f"{len(rows) - 1} phantoms -> {args.out / 'pairs.csv'} (label map {ph.label_map.to_string()})")


if __name__ == "__main__":
    main()
