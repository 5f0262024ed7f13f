"""medseg as a library: read a study, prompt it, propagate, measure, save.

    python examples/quickstart.py [OUT_DIR]

Runs on a generated short-axis phantom (no data needed) with the shipped default model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.io import write_labels
from medseg.measure import measure_phase
from medseg.models import load_model
from medseg.phantoms import cine_sax_phantom
from medseg.session import Session
from medseg.types import Box, Point, SlicePrompt


def main(out: Path) -> dict:
    ph = cine_sax_phantom(n_frames=1, n_slices=8, shape=(128, 128), spacing=(10.0, 1.5, 1.5), seed=11)
    volume = ph.image.with_array(ph.image.array, frame_times_s=None)  # (T, Z, Y, X), affine in RAS mm
    session = Session(volume, load_model("default"), "lv=1,myo=2,rv=3")

    key = 4  # a mid-ventricular slice
    lv_box = Box.from_mask(ph.labels[0, key] == 1)  # (y0, x0, y1, x1): what a user would draw
    session.apply_prompt(SlicePrompt("lv", frame=0, slice=key, box=lv_box))
    session.propagate("lv", 0, key, through="z")  # up and down the stack, stops where the LV ends

    session.apply_prompt(SlicePrompt("myo", 0, key, box=Box.from_mask(ph.labels[0, key] == 2)))
    session.propagate("myo", 0, key)

    ys, xs = (ph.labels[0, key] == 3).nonzero()
    session.apply_prompt(SlicePrompt("rv", 0, key, points=(Point(float(ys.mean()), float(xs.mean())),)))  # one click
    session.propagate("rv", 0, key)

    review = session.review()  # confidence per structure + flags a human should look at
    report = measure_phase(session.labels[0], volume.affine, session.label_map)
    out.mkdir(parents=True, exist_ok=True)
    write_labels(session.labels, volume, out / "labels.nii.gz", session.label_map, provenance=session.provenance())
    print(f"LV {report['volumes_ml']['lv']:.1f} mL, myocardium mass {report['lv_mass_g']:.1f} g, "
          f"confidence {review['confidence']['volume']}, needs review: {review['needs_review']}")
    return report


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", nargs="?", type=Path, metavar="OUT_DIR", default=Path("quickstart_out"), help="output folder (default: %(default)s)")
    main(ap.parse_args().out_dir)
