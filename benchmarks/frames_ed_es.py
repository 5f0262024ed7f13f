"""`segment --auto --frames ed,es` vs `--auto` on every frame: time, the ED / ES frames the quick
zero-click LV pass picks, and the LVEF from the two segmented frames (BENCHMARKS.md, *ED and ES
only*).

    OMP_NUM_THREADS=2 python benchmarks/frames_ed_es.py [--seeds 8] [--timed 2] [--threads 2] [-o docs/bench/frames_ed_es.json]

* ACDC-sized phantom cines (30 frames x 10 slices of 216 x 256 at 1.5 mm, 10 mm slices; analytic
  ED, ES and EF): the pick on ``--seeds`` seeds; on ``--timed`` of them both runs, alternated so
  they share the machine's load.
* ACDC validation patients (../shared/data, when present): only the ED and ES frames ship here
  (no 4d.nii.gz), so each is a 2-frame cine; the pick must say which is ED (Info.cfg's).
* M&Ms-2 subject 001's long-axis cine (25 frames, one slice; its ED and ES frames found by
  matching the shipped ED / ES images; the model trained on its long-axis ED / ES slices).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
ACDC_VALIDATION = [*range(17, 21), *range(37, 41), *range(57, 61), *range(77, 81), *range(97, 101)]


def _ef(labels, vol, lmap) -> float:
    from medseg.measure.report import measure_cine

    return float(measure_cine(labels, vol.affine, lmap)["lv"]["ef_pct"])


def _session(vol, model):
    from medseg.labels import DEFAULT_LABEL_MAP
    from medseg.session import Session

    return Session(vol, model, DEFAULT_LABEL_MAP.subset(["lv", "myo", "rv"]), undo=False)


def phantoms(model, seeds: int, timed: int) -> dict:
    from medseg.frame_pick import pick_ed_es
    from medseg.phantoms import cine_sax_phantom
    from medseg.segment import segment_volume

    rows = []
    for seed in range(seeds):
        ph = cine_sax_phantom(n_frames=30, n_slices=10, shape=(216, 256), spacing=(10.0, 1.5, 1.5), seed=seed)
        t0 = time.perf_counter()
        pick = pick_ed_es(_session(ph.image, model))
        row = {"seed": seed, "truth": [ph.info["ed_frame"], ph.info["es_frame"]], "picked": [pick["ed"], pick["es"]],
               "pick_s": round(time.perf_counter() - t0, 2), "truth_ef_pct": round(ph.info["ef_pct"], 1),
               "true_lv_ml_at_picked": [round(ph.info["lv_volume_ml"][pick["ed"]], 1), round(ph.info["lv_volume_ml"][pick["es"]], 1)],
               "true_lv_ml_at_truth": [round(ph.info["lv_volume_ml"][ph.info["ed_frame"]], 1), round(ph.info["lv_volume_ml"][ph.info["es_frame"]], 1)]}
        if seed < timed:
            for kind in ("ed_es", "all"):  # alternated: the same load for both
                t0 = time.perf_counter()
                res = segment_volume(ph.image, model, auto=True, frames="ed,es" if kind == "ed_es" else None)
                row[f"{kind}_s"] = round(time.perf_counter() - t0, 2)
                row[f"{kind}_confidence_s"] = round(res.confidence_seconds, 2)
                row[f"{kind}_ef_pct"] = round(_ef(res.labels, ph.image, res.label_map), 1)
                if kind == "all":
                    from medseg.measure.report import measure_cine

                    rep = measure_cine(res.labels, ph.image.affine, res.label_map)
                    row["all_ed_es"] = [rep["ed_frame"], rep["es_frame"]]
        print(json.dumps(row), flush=True)
        rows.append(row)
    return {"rows": rows, "exact": sum(r["picked"] == r["truth"] for r in rows),
            "within_one": sum(all(min(abs(a - b), 30 - abs(a - b)) <= 1 for a, b in zip(r["picked"], r["truth"], strict=True)) for r in rows)}


def acdc(model, with_ef: bool = False) -> dict:
    from medseg.frame_pick import pick_ed_es
    from medseg.io import read_label_volume, read_volume
    from medseg.io.volume import Volume
    from medseg.segment import segment_volume

    root = DATA / "acdc" / "training"
    rows = []
    for n in ACDC_VALIDATION:
        d = root / f"patient{n:03d}"
        info = dict(line.split(": ") for line in (d / "Info.cfg").read_text().splitlines() if ": " in line)
        ed_n, es_n = int(info["ED"]), int(info["ES"])
        ed, es = (read_volume(d / f"patient{n:03d}_frame{k:02d}.nii.gz") for k in (ed_n, es_n))
        order = [0, 1] if n % 2 else [1, 0]  # ES first on every other patient: the pick may not lean on the order
        arr = np.concatenate([(ed, es)[i].array for i in order])
        vol = Volume(arr, ed.affine, modality="MR", meta={"format": "nifti"})
        t0 = time.perf_counter()
        pick = pick_ed_es(_session(vol, model))
        truth_ed = order.index(0)
        row = {"patient": n, "ed_first": order == [0, 1], "picked_ed_is_ed": pick["ed"] == truth_ed and pick["es"] == 1 - truth_ed,
               "pick_s": round(time.perf_counter() - t0, 2), "slices": pick["slices"], "lv_area_px": pick["lv_area_px"]}
        if with_ef:  # LVEF of `--frames ed,es` (both frames here) vs the expert labels'
            gt = [read_label_volume(d / f"patient{n:03d}_frame{k:02d}_gt.nii.gz").array for k in (ed_n, es_n)]
            res = segment_volume(vol, model, auto=True, frames="ed,es")
            row["ef_pct"] = round(_ef(res.labels, vol, res.label_map), 1)
            row["expert_ef_pct"] = round(_ef(np.concatenate([gt[i] for i in order]), vol, "lv=3,myo=2,rv=1"), 1)
        rows.append(row)
        print(json.dumps(rows[-1]), flush=True)
    errs = [abs(r["ef_pct"] - r["expert_ef_pct"]) for r in rows if "ef_pct" in r]
    return {"rows": rows, "correct": sum(r["picked_ed_is_ed"] for r in rows), **({"lvef_mae_pct": round(float(np.mean(errs)), 2)} if errs else {})}


def mnms_lax(model) -> dict:
    import nibabel as nib

    from medseg.frame_pick import pick_ed_es
    from medseg.io import read_volume
    from medseg.segment import segment_volume

    d = DATA / "mnms2" / "001"
    cine = np.asarray(nib.load(d / "001_LA_CINE.nii.gz").dataobj)
    truth = []
    for ph in ("ED", "ES"):
        img = np.asarray(nib.load(d / f"001_LA_{ph}.nii.gz").dataobj).squeeze()
        truth.append(next(t for t in range(cine.shape[-1]) if np.array_equal(cine[..., t].squeeze(), img)))
    vol = read_volume(d / "001_LA_CINE.nii.gz")
    t0 = time.perf_counter()
    pick = pick_ed_es(_session(vol, model))
    out = {"shape": list(vol.shape), "truth": truth, "picked": [pick["ed"], pick["es"]], "pick_s": round(time.perf_counter() - t0, 2), "lv_area_px": pick["lv_area_px"]}
    for kind in ("ed_es", "all"):
        t0 = time.perf_counter()
        segment_volume(vol, model, auto=True, frames="ed,es" if kind == "ed_es" else None)
        out[f"{kind}_s"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(out), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--timed", type=int, default=2)
    ap.add_argument("--acdc-ef", action="store_true", help="also segment the ACDC 2-frame cines (--frames ed,es) for LVEF vs the experts'")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: phantoms, acdc, mnms")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (1 on a machine others load: 2 threads contend)")
    ap.add_argument("-o", "--out", type=Path, default=None)
    args = ap.parse_args(argv)
    import torch

    from medseg.models import load_model

    torch.set_num_threads(args.threads)
    model = load_model("default")
    skip = set(args.skip.split(","))
    res = {"torch_threads": torch.get_num_threads()}
    if "phantoms" not in skip:
        res["phantoms"] = phantoms(model, args.seeds, args.timed)
    if DATA.is_dir() and "acdc" not in skip:
        res["acdc_two_frame"] = acdc(model, with_ef=args.acdc_ef)
    if DATA.is_dir() and "mnms" not in skip:
        res["mnms2_lax_cine"] = mnms_lax(model)
    text = json.dumps(res, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
