"""Prompt-to-mask latency in the napari viewer (medseg segmentation widget).

    xvfb-run -a python benchmarks/napari_latency.py [--n 30] [--threads N] [--json OUT.json]

Opens the synthetic cine phantom (napari sample data), starts a session with the default
model, and for each slice waits for the background embedding, then places prompts on the
prompt layers exactly as napari's mouse handlers do (``Points.add`` / ``Shapes.add``), which
fires the widget's data-event handler. Timed per prompt:

* ``to_layer_ms``: from the prompt event to the label layer's update (its ``set_data``
  event, emitted by ``refresh`` on the main thread);
* ``to_screen_ms``: the same plus the Qt event loop pass that repaints the canvas.

Series: ``click`` = refinement clicks on a slice that already has a mask (cached embedding of
the structure's ROI), ``box`` = a new box (a new ROI: one encoder pass on the ROI + decode).
Prints median and p90 per series. Target: click median <= 50 ms on a laptop CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def _pump(app, cond=None, timeout: float = 120.0) -> None:
    t0 = time.perf_counter()
    while True:
        app.processEvents()
        if cond is None or cond():
            return
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("timed out waiting for the widget")
        time.sleep(0.005)


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=float)
    return {"n": int(a.size), "median_ms": round(float(np.median(a)), 2), "p90_ms": round(float(np.percentile(a, 90)), 2),
            "min_ms": round(float(a.min()), 2), "max_ms": round(float(a.max()), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30, help="prompts per series")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the widget's default)")
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args()

    import napari
    from medseg_napari._controller import ModelProvider, box_rectangle, default_threads
    from medseg_napari._qt.segment_widget import SegmentWidget
    from medseg_napari._sample_data import make_cine_sample
    from medseg_napari._scripting import add_layer_data
    from qtpy.QtWidgets import QApplication

    from medseg.types import Box

    threads = args.threads or default_threads()
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    image, truth = add_layer_data(viewer, make_cine_sample())
    seg = SegmentWidget(viewer, models=ModelProvider(threads=threads))
    viewer.window.add_dock_widget(seg, name="medseg: segmentation")
    seg.ui.image.setCurrentText(image.name)
    seg.start_session()
    _pump(app, lambda: seg.controller is not None and not seg.busy)
    b = seg.binding
    stamp: dict[str, float] = {}
    b.labels.events.set_data.connect(lambda *_: stamp.setdefault("layer", time.perf_counter()))
    rng = np.random.default_rng(0)
    results: dict[str, dict[str, list[float]]] = {"click": {"to_layer_ms": [], "to_screen_ms": []},
                                                   "box": {"to_layer_ms": [], "to_screen_ms": []}}

    def timed(series: str, action) -> None:
        stamp.clear()
        t0 = time.perf_counter()
        action()
        _pump(app)
        t2 = time.perf_counter()
        results[series]["to_layer_ms"].append((stamp.get("layer", t2) - t0) * 1000)
        results[series]["to_screen_ms"].append((t2 - t0) * 1000)

    t, slices = 0, [z for z in range(truth.data.shape[1]) if (truth.data[0, z] == 1).sum() > 40]
    k = 0
    while len(results["click"]["to_layer_ms"]) < args.n or len(results["box"]["to_layer_ms"]) < args.n:
        z = slices[k % len(slices)]
        k += 1
        viewer.dims.current_step = (t, z, *viewer.dims.current_step[2:])
        _pump(app, lambda z=z: not seg.busy and not seg.controller.needs_embedding(t, z))
        lv = truth.data[t, z] == 1
        box = Box.from_mask(lv)
        jitter = rng.integers(-2, 3, size=4)
        jbox = Box(box.y0 + jitter[0], box.x0 + jitter[1], box.y1 + jitter[2], box.x1 + jitter[3])
        if len(results["box"]["to_layer_ms"]) < args.n:
            rect = box_rectangle(jbox, t, z, 4)
            timed("box", lambda rect=rect: b.shapes.add_rectangles(rect))
        ys, xs = np.nonzero(lv)
        for _ in range(5):
            if len(results["click"]["to_layer_ms"]) >= args.n:
                break
            i = int(rng.integers(ys.size))
            timed("click", lambda at=[t, z, float(ys[i]), float(xs[i])]: b.points.add(at))
    out = {series: {k2: _stats(v) for k2, v in r.items()} for series, r in results.items()}
    out["setup"] = {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "torch_threads": threads,
                    "image": list(image.data.shape), "model": seg.controller.model.model_id,
                    "qt_platform": app.platformName(), "napari": napari.__version__}
    for series in ("click", "box"):
        for key in ("to_layer_ms", "to_screen_ms"):
            s = out[series][key]
            print(f"{series:5s} {key:13s} median {s['median_ms']:7.1f} ms   p90 {s['p90_ms']:7.1f} ms   (n={s['n']})")
    print(json.dumps(out["setup"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    viewer.close()


if __name__ == "__main__":
    main()
