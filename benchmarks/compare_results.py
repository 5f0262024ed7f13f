"""Paired comparison of two `medseg evaluate` results on the same cases, with bootstrap intervals.

    python benchmarks/compare_results.py BEFORE.json AFTER.json [--boot 5000] [--seed 0]

The two RESULT.json files must score the same cases (matched by image path). For each structure,
the mean over structures and each clinical error that both files have (|LVEF error|, |LV mass
error|, ...), prints the mean of BEFORE and AFTER, their paired difference and a 95 % bootstrap
interval of that difference, resampling *patients* (the ED and ES volumes of one patient stay
together: they are not independent). A difference whose interval contains 0 is not one the
validation set can tell from chance. On the 40 ACDC validation volumes a mean-Dice difference
needs to be about 0.002-0.003 to be resolved (BENCHMARKS.md).
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
    patient_of = {i: before[i].get("case") or i for i in common}
    patients = sorted(set(patient_of.values()))
    # (label, before, after, patient index of each value)
    rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    pid = np.array([patients.index(patient_of[i]) for i in common])
    for s in before[common[0]]["dice"]:
        rows.append((f"Dice {s}", np.array([before[i]["dice"][s] for i in common]), np.array([after[i]["dice"][s] for i in common]), pid))
    rows.append(("Dice, mean over structures", np.mean([r[1] for r in rows], axis=0), np.mean([r[2] for r in rows], axis=0), pid))
    for key, label in CLINICAL:
        # clinical numbers are per patient (ED + ES), written on each of its cases: take one per patient
        firsts: dict[str, str] = {}
        for i in common:
            if _clinical(before[i], key) is not None and _clinical(after[i], key) is not None:
                firsts.setdefault(patient_of[i], i)
        if firsts:
            rows.append((label, np.array([_clinical(before[i], key) for i in firsts.values()]),
                         np.array([_clinical(after[i], key) for i in firsts.values()]), np.array([patients.index(p) for p in firsts])))
    rng = np.random.default_rng(seed)
    out = []
    for label, b, a, groups in rows:
        members = [np.nonzero(groups == g)[0] for g in range(len(patients))]
        diffs = []
        for _ in range(boot):
            idx = np.concatenate([members[g] for g in rng.integers(0, len(patients), len(patients))])
            diffs.append(float(np.mean(a[idx] - b[idx])) if len(idx) else 0.0)
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
