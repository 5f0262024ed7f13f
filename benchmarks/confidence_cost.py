"""What the confidence's extra decodes cost next to the segmentation, before and after batching
them (issue #8: <= 20 % of the study's segmentation time).

    OMP_NUM_THREADS=1 python benchmarks/confidence_cost.py ../shared/data [--patients N]
        [--repeats R] [--threads T] [--batch B] [--paths before,after,one_at_a_time]
        [--no-bench-study] [--profile] [--out FILE.json]

Studies: ED + ES of the ACDC validation patients (017-020, 037-040, 057-060, 077-080, 097-100;
``--patients N``: the first N of them, a quick run), segmented as ``medseg evaluate --prompt
key-slice`` does (key-slice boxes from the reference, propagation), plus the ``medseg bench``
study (the ED + ES phantom of :func:`medseg.bench._study_seconds`). For each study: the
segmentation (``R`` runs, median), then the confidence of the segmented session, the old path
and the new one alternating ``R`` times each (medians; the machine is shared, its speed moves):

* ``before``: :func:`medseg.confidence.score_session` deciding slice by slice, one decoder call
  per slice (:func:`medseg.confidence.slice_signals` in ``Session.parallel_map``), as before
  batching;
* ``after``: ``score_session`` as shipped (``DECODE_BATCH`` slices per decoder call);
* ``one_at_a_time``: ``slice_signals`` slice after slice on the calling thread, as
  ``benchmarks/calibrate_confidence.py`` measured the 24 % (36 s of 153 s) of docs/confidence.md.

Reports per study and summed: segmentation seconds, confidence seconds of each path, their share
of the segmentation, and the largest difference between the old and new per-slice signals
(predicted IoU, agreement). Wall seconds and the process's CPU seconds (``_cpu_s``: with one
torch thread, the work done, less moved by other jobs on the machine). ``--profile``: cProfile of both paths over the studies (once each,
after the timing), the top functions by cumulative time. Torch's threads: ``--threads``, else as
the CLI leaves them (``OMP_NUM_THREADS``, else the cores).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_pairs import acdc  # noqa: E402


def old_signals(session, keys, tick):
    """The signal pass of ``score_session`` before batching: one decoder call per slice."""
    from medseg.confidence import slice_signals

    return session.parallel_map(lambda k: slice_signals(session, *k), keys, done=tick)


def confidence_seconds(session, path: str) -> tuple[float, float, dict]:
    """Seconds (wall, CPU of the process) of one confidence pass of ``path`` and its signals by
    (structure, frame, slice)."""
    from medseg import confidence

    t0, c0 = time.perf_counter(), time.process_time()
    if path == "one_at_a_time":
        keys = [(n, t, z) for n in session.structures for t, z in session.iter_structure_slices(n)]
        sig = {k: confidence.slice_signals(session, *k) for k in keys}
        sig = {k: v for k, v in sig.items() if v is not None}
        return time.perf_counter() - t0, time.process_time() - c0, sig
    shipped = confidence._all_signals
    if path == "before":
        confidence._all_signals = old_signals
    try:
        rep = confidence.score_session(session)
    finally:
        confidence._all_signals = shipped
    return time.perf_counter() - t0, time.process_time() - c0, {(s.structure, s.frame, s.slice): (s.iou_pred, s.agreement, s.area_px) for s in rep.slices}


def studies(root: Path, patients: int | None, bench_study: bool):
    """(name, volume, prompts, label map) of each study."""
    from medseg.io import read_label_volume, read_volume
    from medseg.labels import LabelMap
    from medseg.prompt_file import prompts_from_labels

    rows = acdc(root)
    if patients is not None:
        rows = rows[: 2 * patients]
    lm = LabelMap.parse("rv=1,myo=2,lv=3")
    for row in rows:
        vol, ref = read_volume(row["image"]), np.asarray(read_label_volume(row["label"]).array)
        present = [n for n, v in lm.values.items() if (ref == v).any()]
        # as medseg.evaluation._predict: prompts of the structures present, labels in the full map
        yield f"{row['case']}/{row['phase']}", vol, prompts_from_labels(ref, lm.subset(present), key_slice=True), lm
    if bench_study:
        from medseg.phantoms import cine_sax_phantom

        ph = cine_sax_phantom(n_frames=2, n_slices=10, shape=(216, 256), spacing=(10.0, 1.5, 1.5), seed=1)
        blm = ph.label_map.subset(["lv", "myo", "rv"])
        yield "bench-study (phantom)", ph.image, prompts_from_labels(ph.labels, blm, key_slice=True), blm


def segment(vol, model, prompts, lm):
    """The segmented session and its seconds (wall, CPU), as ``segment_volume`` makes it (no
    confidence)."""
    from medseg.segment import _run_prompts, check_prompts
    from medseg.session import Session

    t0, c0 = time.perf_counter(), time.process_time()
    session = Session(vol, model, check_prompts(vol, prompts, False, lm), undo=False)
    _run_prompts(session, prompts, False, "z", None)
    return session, time.perf_counter() - t0, time.process_time() - c0


def max_diff(a: dict, b: dict) -> float:
    if a.keys() != b.keys():
        return float("inf")
    return max([abs(x - y) for k in a for x, y in zip(a[k][:2], b[k][:2])] or [0.0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--patients", type=int, default=None, help="the first N validation patients only (ED + ES each)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None, help="DECODE_BATCH of the new path (default: the shipped one)")
    ap.add_argument("--paths", default="before,after,one_at_a_time", help="the confidence paths to time (before and after at least)")
    ap.add_argument("--no-bench-study", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if not (args.root / "acdc" / "training").is_dir():
        ap.error(f"{args.root} holds no acdc/training folder (the shared data, ../shared/data)")
    if not {"before", "after"} <= set(args.paths.split(",")):
        ap.error("--paths must name before and after")

    import torch

    from medseg import confidence
    from medseg.models import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.batch:
        confidence.DECODE_BATCH = args.batch
    model = load_model("default")
    paths = tuple(args.paths.split(","))
    rows, sessions = [], []
    for name, vol, prompts, lm in studies(args.root, args.patients, not args.no_bench_study):
        seg, conf, session = [], {p: [] for p in paths}, None
        for _ in range(max(1, args.repeats)):
            session, *s = segment(vol, model, prompts, lm)
            seg.append(s)
        sig = {}
        for r in range(max(1, args.repeats)):
            for p in (paths if r % 2 == 0 else paths[::-1]):
                *secs, sig[p] = confidence_seconds(session, p)
                conf[p].append(secs)
        seg_med, conf_med = np.median(seg, axis=0), {p: np.median(conf[p], axis=0) for p in paths}
        row = {"study": name, "slices_scored": len(sig["after"]), "segment_s": float(seg_med[0]), "segment_cpu_s": float(seg_med[1]),
               **{f"{p}_s": float(conf_med[p][0]) for p in paths}, **{f"{p}_cpu_s": float(conf_med[p][1]) for p in paths},
               **{f"max_abs_diff_{p}_after": max_diff(sig[p], sig["after"]) for p in paths if p != "after"}}
        rows.append(row)
        sessions.append(session)
        print(f"{name:24s} {row['slices_scored']:3d} slices  segment {row['segment_s']:5.2f} s  " +
              "  ".join(f"{p} {row[p + '_s']:5.3f} s ({row[p + '_s'] / row['segment_s']:5.1%}; CPU {row[p + '_cpu_s'] / row['segment_cpu_s']:5.1%})"
                        for p in paths) +
              f"  max diff {row['max_abs_diff_before_after']:.1e}", flush=True)
    acdc_rows = [r for r in rows if not r["study"].startswith("bench")]
    summary = {"threads": torch.get_num_threads(), "decode_batch": confidence.DECODE_BATCH, "repeats": args.repeats, "studies": len(acdc_rows)}
    if acdc_rows:
        total = {c: sum(r[c] for r in acdc_rows) for c in acdc_rows[0] if c.endswith("_s")}
        summary["acdc_summed"] = {**{c: round(v, 2) for c, v in total.items()},
                                  **{f"{p}_share": round(total[f"{p}_s"] / total["segment_s"], 4) for p in paths},
                                  **{f"{p}_cpu_share": round(total[f"{p}_cpu_s"] / total["segment_cpu_s"], 4) for p in paths},
                                  **{c: max(r[c] for r in acdc_rows) for c in acdc_rows[0] if c.startswith("max_abs_diff")}}
    summary["bench_study"] = next((r for r in rows if r["study"].startswith("bench")), None)
    if args.profile:
        summary["profile"] = {}
        for p in ("before", "after"):
            prof = cProfile.Profile()
            prof.enable()
            for s in sessions:
                confidence_seconds(s, p)
            prof.disable()
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
            summary["profile"][p] = buf.getvalue()
            print(f"--- cProfile, {p} ---\n{buf.getvalue()}")
    print(json.dumps({k: v for k, v in summary.items() if k != "profile"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "studies": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
