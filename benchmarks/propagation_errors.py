"""Where do key-slice / zero-click errors come from? (BENCHMARKS.md, "Where the key-slice errors come from")

    python benchmarks/propagation_errors.py ../shared/data [key-slice|auto] [-o errors.json]

Segments the ACDC validation volumes (one expert box per structure on its middle slice, then
propagation; or zero-click) and splits each structure's wrong voxels into: slices written where
the expert drew nothing ("extra"), expert slices left empty ("missed"), and wrong voxels on
slices both have ("in-slice"). Also the Dice with the extra slices removed (an oracle stop rule)
and where the extra slices lie (apex or base, from the expert LV area along the stack).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_pairs import acdc  # noqa: E402

from medseg.evaluation import dice  # noqa: E402

LABELS = {"rv": 1, "myo": 2, "lv": 3}



def decompose(pred: np.ndarray, ref: np.ndarray, value: int) -> dict:
    """pred/ref: (Z, Y, X) label maps of one frame."""
    p, r = pred == value, ref == value
    pz, rz = p.any(axis=(1, 2)), r.any(axis=(1, 2))
    lv_area = (ref == LABELS["lv"]).sum(axis=(1, 2))
    zs = np.flatnonzero(lv_area)
    apex_high = bool(len(zs)) and lv_area[zs[-1]] < lv_area[zs[0]]
    centre = zs.mean() if len(zs) else (len(pz) - 1) / 2

    def side(z: int) -> str:
        return "apex" if (z > centre) == apex_high else "base"

    both = pz & rz
    trimmed = p.copy()
    trimmed[~rz] = False
    return {
        "dice": dice(p, r),
        "dice_without_extra_slices": dice(trimmed, r),
        "extra_voxels": int(p[pz & ~rz].sum()),
        "missed_voxels": int(r[rz & ~pz].sum()),
        "in_slice_voxels": int((p[both] ^ r[both]).sum()),
        "extra_slices": [side(int(z)) for z in np.flatnonzero(pz & ~rz)],
        "missed_slices": [side(int(z)) for z in np.flatnonzero(rz & ~pz)],
        "extra_slices_with_lv_or_myo": int(sum(((pred[z] == LABELS["lv"]) | (pred[z] == LABELS["myo"])).any() for z in np.flatnonzero(pz & ~rz))),
    }


def main(root: Path, mode: str, out: Path | None) -> None:
    from medseg.io import read_label_volume, read_volume
    from medseg.labels import LabelMap
    from medseg.models import load_model
    from medseg.prompt_file import prompts_from_labels
    from medseg.segment import segment_volume

    model, lm = load_model("default"), LabelMap(dict(LABELS))
    per: dict[str, list[dict]] = {n: [] for n in LABELS}
    for row in acdc(root):
        vol, ref = read_volume(row["image"]), np.asarray(read_label_volume(row["label"]).array)
        if mode == "auto":
            labels = segment_volume(vol, model, None, auto=True, label_map=lm, auto_structures=tuple(LABELS), confidence=False).labels
        else:
            labels = segment_volume(vol, model, prompts_from_labels(ref, lm, key_slice=True), label_map=lm, confidence=False).labels
        for name, v in LABELS.items():
            per[name].append(decompose(np.asarray(labels)[0], ref[0], v))
        print(f"{row['case']} {row['phase']}", flush=True)
    summary = {}
    for name, rows in per.items():
        wrong = sum(r["extra_voxels"] + r["missed_voxels"] + r["in_slice_voxels"] for r in rows) or 1
        extra = [s for r in rows for s in r["extra_slices"]]
        summary[name] = {
            "dice": float(np.mean([r["dice"] for r in rows])),
            "dice_without_extra_slices": float(np.mean([r["dice_without_extra_slices"] for r in rows])),
            "share_extra": sum(r["extra_voxels"] for r in rows) / wrong,
            "share_missed": sum(r["missed_voxels"] for r in rows) / wrong,
            "share_in_slice": sum(r["in_slice_voxels"] for r in rows) / wrong,
            "extra_slices_apex": extra.count("apex"), "extra_slices_base": extra.count("base"),
            "extra_slices_with_lv_or_myo": sum(r["extra_slices_with_lv_or_myo"] for r in rows),
            "missed_slices": sum(len(r["missed_slices"]) for r in rows),
        }
    text = json.dumps({"mode": mode, "volumes": len(per["lv"]), "summary": summary}, indent=1)
    print(text)
    if out is not None:
        out.write_text(text + "\n")


if __name__ == "__main__":
    from _usage import check_args

    args = check_args(__doc__, 1)
    out = Path(args[args.index("-o") + 1]) if "-o" in args else None
    pos = [a for i, a in enumerate(args) if a != "-o" and (i == 0 or args[i - 1] != "-o")]
    main(Path(pos[0]), pos[1] if len(pos) > 1 else "key-slice", out)
