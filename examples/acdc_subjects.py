"""Write a subjects file for `medseg batch --measure --subjects` from ACDC's Info.cfg files.

    python examples/acdc_subjects.py ../shared/data/acdc/training -o subjects.csv
    medseg batch ../shared/data/acdc/training -o out --prompts-from ../shared/data/acdc/training \
        --label-map rv=1,myo=2,lv=3 --key-slice --measure --subjects subjects.csv

ACDC keeps each patient's height (cm) and weight (kg) in ``patientNNN/Info.cfg``; the patient
folder's name is the subjects row's id, so the row serves ``patientNNN_frame01`` and the study
row ``patientNNN`` of the cohort. The diagnostic group goes along as a column of its own
(medseg ignores it; it is there for your statistics).
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path


def info_rows(root: str | Path) -> list[dict[str, str]]:
    """One row per ``Info.cfg`` below ``root``: patient (its folder), height_cm, weight_kg, group."""
    rows = []
    for cfg in sorted(Path(root).rglob("Info.cfg")):
        info = dict(re.findall(r"^\s*(\w+)\s*:\s*(\S+)\s*$", cfg.read_text(), flags=re.M))
        rows.append({"patient": cfg.parent.name, "height_cm": info.get("Height", ""), "weight_kg": info.get("Weight", ""),
                     "group": info.get("Group", "")})
    return rows


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", help="ACDC folder (patientNNN/Info.cfg below it)")
    ap.add_argument("-o", "--out", default="subjects.csv")
    args = ap.parse_args(argv)
    rows = info_rows(args.root)
    if not rows:
        raise SystemExit(f"no Info.cfg below {args.root}")
    out = Path(args.out)
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["patient", "height_cm", "weight_kg", "group"])
        w.writeheader()
        w.writerows(rows)
    print(f"{len(rows)} subjects -> {out}")
    return out


if __name__ == "__main__":
    main()
