"""Segment an ACDC study in napari with the medseg widgets and save a screenshot.

    xvfb-run -a -s "-screen 0 1920x1600x24" python examples/napari_acdc_screenshot.py \
        --case ../shared/data/acdc/training/patient081 -o docs/screenshots/napari_acdc.png

Opens the ED and ES frames through the medseg reader, starts a segmentation session on each,
places one box per structure (LV, MYO, RV) per slice on the prompt layers, taken from the
study's reference ``_gt`` file (ACDC labels: 1 = RV, 2 = MYO, 3 = LV), exactly as a user
drawing boxes would, then measures ED + ES (height and weight from Info.cfg) and grabs the
window. Prints the Dice of each structure against the reference.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np

ACDC = {"rv": 1, "myo": 2, "lv": 3}


def _wait(app, cond, timeout: float = 120.0) -> None:
    t0 = time.time()
    while not cond():
        app.processEvents()
        time.sleep(0.01)
        if time.time() - t0 > timeout:
            raise TimeoutError("the widget did not finish in time")


def _info(case: Path) -> dict[str, float]:
    text = (case / "Info.cfg").read_text()
    return {k: float(v) for k, v in re.findall(r"^(\w+):\s*([\d.]+)\s*$", text, flags=re.M)}


def segment_phase(viewer, seg, app, image_path: Path, gt_path: Path) -> dict[str, float]:
    """Open one phase, start a session, box every structure on every slice; Dice per structure."""
    from medseg_napari._controller import box_rectangle

    from medseg.io import read_label_volume
    from medseg.types import Box

    (image,) = viewer.open(str(image_path), plugin="medseg")
    gt = read_label_volume(gt_path).array
    seg.ui.image.setCurrentText(image.name)
    seg.start_session()
    _wait(app, lambda: seg.controller is not None and not seg.busy)
    b = seg.binding
    for name in ("lv", "myo", "rv"):
        seg._select_row(list(b.controller.structures).index(name))
        for z in range(gt.shape[1]):
            box = Box.from_mask(gt[0, z] == ACDC[name])
            if box is not None and box.height * box.width >= 16:
                b.shapes.add_rectangles(box_rectangle(box, 0, z, image.ndim))
                _wait(app, lambda: not seg.busy)
    app.processEvents()
    labels = b.labels.data
    out = {}
    for name in ("lv", "myo", "rv"):
        a, r = labels == b.controller.structures[name].value, gt == ACDC[name]
        out[name] = float(2 * (a & r).sum() / max(a.sum() + r.sum(), 1))
    return out


#: the measurement dock's share of the window's height: its form, its table and plots in view
DOCK_SHARE = 0.42


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="../shared/data/acdc/training/patient081")
    ap.add_argument("-o", "--out", default="docs/screenshots/napari_acdc.png")
    ap.add_argument("--size", default="1800x1500", help="window size WxH")
    args = ap.parse_args()
    import napari
    from medseg_napari._qt.measure_widget import MeasureWidget
    from medseg_napari._qt.segment_widget import SegmentWidget
    from qtpy.QtWidgets import QApplication

    case = Path(args.case)
    info = _info(case)
    ed, es = int(info["ED"]), int(info["ES"])
    viewer = napari.Viewer(title=f"medseg: ACDC {case.name}")
    app = QApplication.instance()
    w, h = (int(v) for v in args.size.split("x"))
    viewer.window._qt_window.resize(w, h)
    seg, meas = SegmentWidget(viewer), MeasureWidget(viewer)
    viewer.window.add_dock_widget(seg, name="medseg: segmentation", area="right")
    dock = viewer.window.add_dock_widget(meas, name="medseg: measurement", area="bottom")
    for phase in (es, ed):  # ED last: its session stays selected in the widget
        p = case / f"{case.name}_frame{phase:02d}.nii.gz"
        scores = segment_phase(viewer, seg, app, p, p.with_name(p.name.replace(".nii.gz", "_gt.nii.gz")))
        print(f"frame {phase:02d} Dice vs reference: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    ed_name, es_name = f"{case.name}_frame{ed:02d}", f"{case.name}_frame{es:02d}"
    for ly in viewer.layers:  # show the ED study: its image, labels and boxes
        ly.visible = ly.name.startswith(ed_name) and not ly.name.endswith("clicks")
    meas.labels_combo.setCurrentText(f"{ed_name} labels")
    meas.es_combo.setCurrentText(f"{es_name} labels")
    meas.height_cm.setValue(info.get("Height", 0))
    meas.weight_kg.setValue(info.get("Weight", 0))
    meas.measure()
    _wait(app, lambda: meas.report is not None)
    r = meas.report
    print(f"EDV {r['lv']['edv_ml']:.1f} mL, ESV {r['lv']['esv_ml']:.1f} mL, EF {r['lv']['ef_pct']:.1f} %, "
          f"LV mass {r['lv_mass_g']:.1f} g, RV EF {r['rv']['ef_pct']:.1f} %")
    z = int(np.argmax((viewer.layers[f"{ed_name} labels"].data[0] > 0).sum(axis=(1, 2))))
    viewer.dims.current_step = (0, z, *viewer.dims.current_step[2:])
    viewer.layers.selection.active = viewer.layers[f"{ed_name} boxes"]
    from qtpy.QtCore import Qt

    viewer.window._qt_window.resizeDocks([dock], [int(h * DOCK_SHARE)], Qt.Orientation.Vertical)
    app.processEvents()
    viewer.reset_view()
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera  # napari >= 0.9 / older
    camera.zoom *= 1.6
    lab = viewer.layers[f"{ed_name} labels"].data[0, z] > 0
    cy, cx = np.argwhere(lab).mean(axis=0) * np.asarray(viewer.layers[ed_name].scale[-2:])
    camera.center = (float(cy), float(cx))
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    viewer.window._qt_window.grab().save(args.out)
    print(f"wrote {args.out}")
    viewer.close()


if __name__ == "__main__":
    main()
