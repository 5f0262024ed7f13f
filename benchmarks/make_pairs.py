"""Write PAIRS.csv files for the validation splits (docs/training.md) from ../shared/data.

    python benchmarks/make_pairs.py ../shared/data work_data/pairs

acdc_val.csv (ED+ES of patients 017-020, 037-040, 057-060, 077-080, 097-100, with case/phase),
acdc_train.csv (ED+ES of the other 80 ACDC patients: trained on; for checking rules, never scores),
camus_val.csv (the last 50 CAMUS patients, 2CH/4CH ED/ES), mnms2_sa.csv (external, never
trained on), lge_train.csv / lge_val.csv (MS-CMRSeg LGE: adapter training / validation),
camus_adapt_train.csv / camus_adapt_stop.csv (CAMUS patients 1-300 / 301-350: echo adapter
training / early stopping).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"{path}: {len(rows)} pairs")


def acdc(root: Path, split: str = "val") -> list[dict]:
    """ED + ES pairs of the ACDC validation patients (``split="val"``: the last 4 of each
    20-patient disease group) or of the 80 training patients (``"train"``: seen in training, for
    checks of rules and fits, never for scores). The training patients split once more for the
    on-policy decoder fine-tune: ``"record"`` (the first 12 of each group, 60 patients) are the
    ones whose inference decodes it trains on, ``"end-check"`` (the 13th-16th of each group, 20
    patients) are kept out of those recordings so the RV end check is fitted on propagation the
    decoder has not learned."""
    first, last = {"val": (16, 20), "train": (0, 16), "record": (0, 12), "end-check": (12, 16)}[split]
    rows = []
    for pid in range(1, 101):
        if not first <= (pid - 1) % 20 < last:
            continue
        d = root / "acdc" / "training" / f"patient{pid:03d}"
        info = dict(line.split(":", 1) for line in (d / "Info.cfg").read_text().splitlines() if ":" in line)
        for phase, key in (("ED", "ED"), ("ES", "ES")):
            f = d / f"patient{pid:03d}_frame{int(info[key]):02d}.nii.gz"
            rows.append({"image": f, "label": str(f).replace(".nii.gz", "_gt.nii.gz"), "case": d.name, "phase": phase})
    return rows


def camus(root: Path, split: str = "val") -> list[dict]:
    """CAMUS: the last 50 patients validate (never trained on); for the echo adapter the first 300
    train it and patients 301-350 (in the base model's training split) stop it early."""
    pats = sorted((root / "camus-224").glob("patient*"))
    pats = {"val": pats[-50:], "adapt-train": pats[:300], "adapt-stop": pats[300:350]}[split]
    return [{"image": str(g).replace("_gt", ""), "label": g, "case": p.name, "phase": ""} for p in pats for g in sorted(p.glob("*_gt.png"))]


def mnms2(root: Path) -> list[dict]:
    d = root / "mnms2" / "001"
    return [{"image": d / f"001_SA_{ph}.nii.gz", "label": d / f"001_SA_{ph}_gt.nii.gz", "case": "mnms2-001", "phase": ph} for ph in ("ED", "ES")]


def lge(root: Path, split: str) -> list[dict]:
    """LGE: TestSet subjects train the adapter except the last two; val/ subjects + those two validate."""
    test = sorted((root / "mscmr-lge" / "TestSet" / "images").glob("*.nii.gz"), key=lambda p: int(p.name.split("_")[0][7:]))
    val = sorted((root / "mscmr-lge" / "val" / "images").glob("*.nii.gz"))
    chosen = test[:-2] if split == "train" else val + test[-2:]
    return [{"image": f, "label": f.parent.parent / "labels" / f.name.replace("_DE", "_DE_manual"), "case": f.name.split("_")[0], "phase": ""} for f in chosen]


if __name__ == "__main__":
    from _usage import check_args

    check_args(__doc__, 2)
    root, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])  # absolute: medseg reads a relative cell from the CSV's folder
    _write(out / "acdc_val.csv", acdc(root))
    _write(out / "acdc_train.csv", acdc(root, "train"))
    _write(out / "acdc_endcheck.csv", acdc(root, "end-check"))  # rule fits (fit_mask_thresholds.py), never scores
    _write(out / "camus_val.csv", camus(root))
    _write(out / "camus_adapt_train.csv", camus(root, "adapt-train"))
    _write(out / "camus_adapt_stop.csv", camus(root, "adapt-stop"))
    _write(out / "mnms2_sa.csv", mnms2(root))
    _write(out / "lge_train.csv", lge(root, "train"))
    _write(out / "lge_val.csv", lge(root, "val"))
