"""medseg in a process pool of your own: several studies segmented zero-click at once, one per
worker process, each worker with its share of the CPUs as torch threads, results returned to
the parent (Volumes, SegmentResults and reports pickle).

    python examples/own_pool.py OUT_DIR [IMAGE ...] [--workers N]

With no IMAGE it writes four generated short-axis phantoms to OUT_DIR/images and segments
those (no data needed). Labels (+ sidecar JSON) go to OUT_DIR/<name>_labels.nii.gz.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from medseg.workers import init_worker

LABEL_MAP = "lv=1,myo=2,rv=3"
_MODEL = {}  # one model per worker process, loaded by its first case


def segment_one(image: str, out_dir: str) -> dict:
    """One study, in a worker: read, segment zero-click, write labels, measure. Returns a small
    dict (what crosses back to the parent should be small; a SegmentResult would pickle too)."""
    import os

    import torch

    from medseg.io import read_volume, write_labels
    from medseg.measure import measure_phase
    from medseg.models import load_model
    from medseg.segment import segment_volume

    if "m" not in _MODEL:
        _MODEL["m"] = load_model("default")
    vol = read_volume(image)
    res = segment_volume(vol, _MODEL["m"], auto=True, label_map=LABEL_MAP)
    name = Path(image).name.split(".")[0]
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    out = Path(out_dir) / f"{name}_labels.nii.gz"
    write_labels(res.labels, vol, out, res.label_map, provenance=res.provenance)  # atomic: never half-written
    report = measure_phase(res.labels[0], vol.affine, res.label_map)
    return {"image": image, "labels": str(out), "lv_ml": report["volumes_ml"]["lv"], "needs_review": res.confidence["needs_review"],
            "pid": os.getpid(), "torch_threads": torch.get_num_threads()}


def phantom_images(folder: Path, n: int = 4) -> list[str]:
    """``n`` generated single-frame short-axis stacks written as NIfTI (small: 4 slices, 80 px)."""
    from medseg.demo import _write_image
    from medseg.phantoms import cine_sax_phantom

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(n):
        ph = cine_sax_phantom(n_frames=1, n_slices=4, shape=(80, 80), spacing=(10.0, 2.2, 2.2), seed=seed)
        path = folder / f"phantom{seed}.nii.gz"
        _write_image(ph.image, path)
        paths.append(str(path))
    return paths


def main(out_dir: Path, images: list[str] | None = None, workers: int = 2) -> list[dict]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = list(images or phantom_images(out_dir / "images"))
    # 'spawn': a clean process per worker (the default 'fork' on Linux before Python 3.14 also
    # works, but a worker forked after the parent loaded a model runs torch on one thread)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=init_worker, initargs=(workers,)) as pool:
        rows = list(pool.map(segment_one, images, [str(out_dir)] * len(images)))
    for r in rows:
        print(f"{r['labels']}: LV {r['lv_ml']:.1f} mL{' (needs review)' if r['needs_review'] else ''} "
              f"[process {r['pid']}, {r['torch_threads']} torch threads]")
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("images", nargs="*")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    main(a.out_dir, a.images, a.workers)
