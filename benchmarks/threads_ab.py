"""Predictions in threads on or off, alternating in one process (BENCHMARKS.md, "Predictions in
threads").

    python benchmarks/threads_ab.py [--pairs 6] [--mode key-slice|auto] [--frames 2]

Segments `medseg bench`'s study (ED + ES phantom, 10 slices of 216 x 256, LV / MYO / RV) with
the session's predictions one after another (``Session.spare_threads`` forced to 1) and in
threads (as shipped), alternately, so both see the same moments of a VM whose speed moves;
checks that every run writes the same labels, log and confidence as the first, and prints the
seconds of each run (segmentation; its confidence pass) and the medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=6, help="alternating (one after another, in threads) pairs of runs")
    ap.add_argument("--mode", choices=("key-slice", "auto"), default="key-slice")
    ap.add_argument("--frames", type=int, choices=(1, 2), default=2, help="2: ED + ES; 1: the first frame only")
    args = ap.parse_args()

    from medseg.models import load_model
    from medseg.phantoms import cine_sax_phantom
    from medseg.prompt_file import prompts_from_labels
    from medseg.segment import segment_volume
    from medseg.session import Session

    loaded = load_model("default", device="cpu")
    ph = cine_sax_phantom(n_frames=2, n_slices=10, shape=(216, 256), spacing=(10.0, 1.5, 1.5), seed=1)
    image = ph.image if args.frames == 2 else ph.image.with_array(ph.image.array[:1], frame_times_s=None)
    lm = ph.label_map.subset(["lv", "myo", "rv"])
    auto = args.mode == "auto"
    prompts = None if auto else prompts_from_labels(ph.labels[: args.frames], lm, key_slice=True)
    shipped = Session.spare_threads
    times: dict[str, list[tuple[float, float]]] = {"one after another": [], "in threads": []}
    first = None
    for i in range(2 * args.pairs):
        how = "in threads" if i % 2 else "one after another"
        Session.spare_threads = shipped if i % 2 else (lambda self: 1)
        res = segment_volume(image, loaded, prompts, auto=auto, label_map=lm)
        first = first or res
        same = bool(np.array_equal(res.labels, first.labels)) and res.provenance["actions"] == first.provenance["actions"]
        same = same and res.confidence["volume"] == first.confidence["volume"]
        times[how].append((res.seconds, res.confidence_seconds))
        print(f"{how:18s} {res.seconds:6.2f} s  confidence {res.confidence_seconds:5.2f} s  same as the first run: {same}", flush=True)
        if not same:
            raise SystemExit("the runs differ")
        time.sleep(0.2)
    Session.spare_threads = shipped
    for how, ts in times.items():
        seg, conf = zip(*ts)
        print(f"{how}: segmentation {min(seg):.2f}-{max(seg):.2f} s (median {statistics.median(seg):.2f}), "
              f"confidence {min(conf):.2f}-{max(conf):.2f} s")


if __name__ == "__main__":
    main()
