"""Expert contours of a Sunnybrook-style DICOM export as reference labels for ``medseg evaluate``.

    python examples/sunnybrook_references.py SUNNYBROOK_DIR OUT_DIR
    medseg evaluate --pairs OUT_DIR/pairs.csv --prompt key-slice -o result.json
    medseg evaluate --pairs OUT_DIR/pairs.csv --predicted BATCH_OUT_DIR -o result.json

SUNNYBROOK_DIR holds ``link.csv`` (``patient_id,original_id``), ``dicoms/<patient_id>/`` (one
cine series each) and ``contourfiles/<original_id>/{i,o}-contours/`` (the layout of the
Sunnybrook Cardiac Data). For each patient, each contoured frame of the cine becomes one DICOM
SEG on that frame's images (``<patient_id>_frameNN.dcm``, lv = endocardial contour, myo = the
ring to the epicardial one; :func:`medseg.io.contours.contour_labels`), and ``pairs.csv`` pairs
it with the DICOM folder; a patient with two contoured frames gets ``phase`` ED (the frame of
the larger contoured LV) and ES, so evaluate also reports EF, EDV and mass errors. Evaluate
scores a structure in the frames whose reference holds it: Sunnybrook outlines the epicardium
at ED only, so myo is scored at ED. A study whose epicardial contours do not enclose the
endocardial ones (misplaced: another patient's o-contours) gets a ``warning:`` line; its
reference is still written.
"""

from __future__ import annotations

import csv
import sys
import warnings
from pathlib import Path


def main(root: str | Path, out: str | Path) -> list[dict[str, str]]:
    """Write the references and ``pairs.csv`` under ``out``; returns the pairs' rows."""
    import numpy as np

    from medseg._files import atomic_path
    from medseg.io import read_volume, write_labels
    from medseg.io.contours import ContourWarning, contour_labels
    from medseg.io.writers import seg_frame_path

    root, out = Path(root), Path(out)
    links = [line.split(",") for line in (root / "link.csv").read_text().split()[1:]]
    rows: list[dict[str, str]] = []
    for pid, original in links:
        image = read_volume(root / "dicoms" / pid)
        with warnings.catch_warnings(record=True) as caught:  # an epicardium that misses the endocardium: said, not refused
            warnings.simplefilter("always", ContourWarning)
            labels = contour_labels(image, root / "contourfiles" / original)
        for w in caught:
            if issubclass(w.category, ContourWarning):
                print(f"warning: {pid}: {w.message}", file=sys.stderr)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        write_labels(labels.array, image, out / f"{pid}.dcm", labels.meta["label_map"],
                     provenance={"source": "expert contours", "contours": str(root / "contourfiles" / original)})
        frames = [t for t in range(image.n_frames) if labels.array[t].any()]
        lv = {t: int((labels.array[t] == labels.meta["label_map"]["lv"]).sum()) for t in frames}
        phases = dict(zip(sorted(frames, key=lambda t: -lv[t]), ("ED", "ES"))) if len(frames) == 2 else {}
        segs = [seg_frame_path(out / f"{pid}.dcm", t) if image.n_frames > 1 else out / f"{pid}.dcm" for t in frames]
        for t, seg in zip(frames, segs):
            rows.append({"image": str((root / "dicoms" / pid).resolve()), "label": seg.name, "case": pid, "phase": phases.get(t, "")})
        print(f"{pid}: contoured frame(s) {frames} -> {', '.join(p.name for p in segs)}"
              f"{' (' + ', '.join(f'{v} frame {k}' for k, v in phases.items()) + ')' if phases else ''}; "
              f"LV voxels {sum(lv.values())}, slices with myo {int(np.any(labels.array == labels.meta['label_map']['myo'], axis=(2, 3)).sum())}")
    with atomic_path(out / "pairs.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "label", "case", "phase"])
        w.writeheader()
        w.writerows(rows)
    return rows


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    from medseg.errors import MedsegError

    try:
        main(sys.argv[1], sys.argv[2])
    except (MedsegError, OSError) as e:
        sys.exit(f"error: {str(e).splitlines()[0]}")
