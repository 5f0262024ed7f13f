"""Paired comparison of two `medseg evaluate` results on the same cases, with bootstrap intervals.

    python benchmarks/compare_results.py BEFORE.json AFTER.json [--boot 5000] [--seed 0]

The two RESULT.json files must score the same cases (matched by image path). For each structure,
the mean over structures and each clinical error that both files have (|LVEF error|, |LV mass
error|, ...), prints the mean of BEFORE and AFTER, their paired difference and a 95 % bootstrap
interval of that difference, resampling *patients* (the ED and ES volumes of one patient stay
together: they are not independent). A difference whose interval contains 0 is not one the
validation set can tell from chance. 40 ACDC validation volumes resolve mean-Dice differences
of about +-0.002 to +-0.004 (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

CLINICAL = (("lvef", "LVEF error (pts)"), ("lv_mass", "LV mass error (g)"), ("edv", "LV EDV error (mL)"),
            ("rvef", "RVEF error (pts)"), ("rv_edv", "RV EDV error (mL)"))


def _load(path: str) -> dict[str, dict]:
    try:
        d = json.loads(Path(path).read_text())
        return {c["image"]: c for c in d["cases"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"{path}: not a medseg evaluate RESULT.json ({type(e).__name__})") from None


def _clinical(case: dict, key: str) -> float | None:
    c = case.get("clinical") or {}
    suffix = "_g" if key == "lv_mass" else ("_ml" if key.endswith("edv") else "")
    p, r = c.get(f"{key}_pred{suffix}"), c.get(f"{key}_ref{suffix}")
    if p is None or r is None:
        return None
    return abs(float(p) - float(r))


def compare(before: dict[str, dict], after: dict[str, dict], boot: int = 5000, seed: int = 0) -> list[dict]:
    common = sorted(set(before) & set(after))
    if not common or len(common) != len(before) or len(common) != len(after):
        raise SystemExit(f"the two results do not score the same cases ({len(before)} / {len(after)}, {len(common)} in common)")
    patients = sorted({before[i].get("case") or i for i in common})
    pid = np.array([patients.index(before[i].get("case") or i) for i in common])
    structures = list(before[common[0]]["dice"])
    rows: list[tuple[str, np.ndarray, np.ndarray]] = []
    for s in structures:
        rows.append((f"Dice {s}", np.array([before[i]["dice"][s] for i in common]), np.array([after[i]["dice"][s] for i in common])))
    rows.append(("Dice, mean over structures", np.mean([r[1] for r in rows], axis=0), np.mean([r[2] for r in rows], axis=0)))
    for key, label in CLINICAL:
        # clinical numbers are per patient (ED + ES), written on each of its cases: take one per patient
        firsts = {}
        for i in common:
            if _clinical(before[i], key) is not None and _clinical(after[i], key) is not None:
                firsts.setdefault(before[i].get("case") or i, i)
        b = [_clinical(before[i], key) for i in firsts.values()]
        a = [_clinical(after[i], key) for i in firsts.values()]
        if b:
            rows.append((label, np.array(b), np.array(a)))
    rng = np.random.default_rng(seed)
    out = []
    for label, b, a in rows:
        per_patient = len(b) == len(patients) and not label.startswith("Dice")
        groups = np.arange(len(b)) if per_patient else pid
        n_groups = len(patients)
        diffs = []
        for _ in range(boot):
            pick = rng.integers(0, n_groups, n_groups)
            idx = np.concatenate([np.nonzero(groups == g)[0] for g in pick])
            diffs.append(float(np.mean(a[idx] - b[idx])))
        lo, hi = np.percentile(diffs, [2.5, 97.5])
        out.append({"measure": label, "before": float(b.mean()), "after": float(a.mean()), "difference": float((a - b).mean()),
                    "ci95": [float(lo), float(hi)], "n": int(len(b))})
    return out


def main(argv: list[str]) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Paired comparison of two medseg evaluate results (bootstrap over patients).")
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--boot", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    rows = compare(_load(a.before), _load(a.after), a.boot, a.seed)
    print(f"{'measure':28s} {'before':>8s} {'after':>8s} {'diff':>8s}   95 % interval (patients resampled)")
    for r in rows:
        flag = "" if r["ci95"][0] <= 0 <= r["ci95"][1] else "  *"
        print(f"{r['measure']:28s} {r['before']:8.4f} {r['after']:8.4f} {r['difference']:+8.4f}   [{r['ci95'][0]:+.4f}, {r['ci95'][1]:+.4f}]{flag}")


if __name__ == "__main__":
    main(sys.argv[1:])
