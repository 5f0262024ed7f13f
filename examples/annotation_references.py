"""COCO polygons or colour-coded masks as reference labels for ``medseg evaluate``.

    python examples/annotation_references.py coco COCO.json IMAGE_DIR OUT_DIR --categories LE=myo,LV=lv,RE=rv
    python examples/annotation_references.py colours MASK_DIR IMAGE_DIR OUT_DIR [--colours hvsmr|lv=#ff0000,...]
    medseg evaluate --pairs OUT_DIR/pairs.csv --prompt box -o result.json

``coco``: each image of IMAGE_DIR that the COCO file annotates gets ``OUT_DIR/<name>_gt.png``,
its polygons filled in the order of ``--categories`` (category name -> medseg structure; give an
enclosing outline first: ``LE=myo,LV=lv`` makes the myocardium the ring between the epicardium
``LE`` and the LV). ``colours``: each colour mask in MASK_DIR with an image of the same name in
IMAGE_DIR gets ``OUT_DIR/<name>_gt.png``, every colour of ``--colours`` its structure (default
``hvsmr``: HVSMR-2.0's LV red, RV blue, LA yellow, RA cyan, aorta green, PA white; its SVC and
IVC are left out). Label values are medseg's (``lv=1, myo=2, rv=3, la=4, ra=5, aorta=6, pa=7``)
and each label PNG has a sidecar JSON naming them, so ``evaluate`` needs no ``--label-map``;
``OUT_DIR/pairs.csv`` pairs each with its image. ``--only NAME [NAME ...]``: those images only
(the file names, e.g. a validation split).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path


def main(argv: list[str]) -> list[dict[str, str]]:
    """Write the references and ``pairs.csv``; returns the pairs' rows."""
    from medseg._files import atomic_path
    from medseg.errors import MedsegError
    from medseg.io import read_volume, write_labels
    from medseg.io.annotations import coco_labels, colour_labels, parse_assignments, parse_colours, read_coco
    from medseg.labels import DEFAULT_LABEL_MAP

    ap = argparse.ArgumentParser(prog="annotation_references.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=("coco", "colours"))
    ap.add_argument("source", help="the COCO .json, or the folder of colour masks")
    ap.add_argument("images", help="the folder of the images")
    ap.add_argument("out", help="output folder")
    ap.add_argument("--categories", help="coco: CATEGORY=structure,... in painting order")
    ap.add_argument("--colours", default="hvsmr", help="colours: hvsmr, or structure=#rrggbb,...")
    ap.add_argument("--only", nargs="+", help="only these image file names")
    a = ap.parse_args(argv)
    images, out = Path(a.images), Path(a.out)
    if a.kind == "coco":
        if not a.categories:
            raise MedsegError("coco needs --categories, e.g. LE=myo,LV=lv,RE=rv (the file's category names)")
        coco, cats = read_coco(a.source), parse_assignments(a.categories, "category")
        _known(cats.values(), DEFAULT_LABEL_MAP, "--categories")
        lm = DEFAULT_LABEL_MAP.subset([s for s in DEFAULT_LABEL_MAP.names if s in cats.values()])
        names = sorted(im["file_name"] for im in coco["images"] if isinstance(im, dict) and (images / str(im.get("file_name"))).is_file())
    else:
        colours = parse_colours(a.colours)
        if a.colours.strip().lower() != "hvsmr":  # HVSMR's SVC and IVC are left out on purpose; a name typed is not
            _known(colours, DEFAULT_LABEL_MAP, "--colours")
        lm = DEFAULT_LABEL_MAP.subset([s for s in colours if s in DEFAULT_LABEL_MAP])
        names = sorted(p.name for p in Path(a.source).glob("*.png") if (images / p.name).is_file())
    if a.only:
        missing = sorted(set(a.only) - set(names))
        if missing:
            raise MedsegError(f"--only names images not found (or not annotated): {', '.join(missing)}")
        names = [n for n in names if n in set(a.only)]
    if not names:
        raise MedsegError(f"no annotated image found in {images}")
    done = []  # every annotation read and checked before the first file is written: a bad one leaves OUT_DIR as it was
    for name in names:
        image = read_volume(images / name)
        if a.kind == "coco":
            lab = coco_labels(coco, name, cats, lm)
        else:
            lab = colour_labels(_colour_mask(Path(a.source) / name), colours, lm, f"{Path(a.source) / name}")
        if lab.shape != image.array.shape[2:]:
            raise MedsegError(f"{name}: the annotation is {lab.shape[0]}x{lab.shape[1]}, the image {image.array.shape[2]}x{image.array.shape[3]}")
        done.append((name, image, lab))
    rows = []
    for name, image, lab in done:
        target = out / f"{Path(name).stem}_gt.png"
        write_labels(lab, image, target, lm, provenance={"source": f"{a.kind} annotations", "annotations": str(Path(a.source).resolve())})
        rows.append({"image": str((images / name).resolve()), "label": target.name, "case": Path(name).stem})
        print(f"{name} -> {target.name}: " + ", ".join(f"{s} {int((lab == v).sum())} px" for s, v in lm.values.items()))
    with atomic_path(out / "pairs.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "label", "case"])
        w.writeheader()
        w.writerows(rows)
    return rows


def _known(structures, label_map, option: str) -> None:
    """One-line error for a structure name medseg's label map does not have (a typo)."""
    from medseg.errors import LabelMapError

    bad = [s for s in structures if s not in label_map]
    if bad:
        raise LabelMapError(f"{option}: {', '.join(map(repr, bad))} not medseg structure(s); use {', '.join(label_map.names)}")


def _colour_mask(path: Path):
    """A colour-coded mask's (rows, columns, 3) RGB pixels; a grey-scale image is refused (a 0/255
    mask read as colours would be all white: HVSMR's PA)."""
    import numpy as np
    from PIL import Image

    from medseg.errors import LabelMapError

    with Image.open(path) as im:
        if im.mode not in ("RGB", "RGBA", "P", "PA"):
            raise LabelMapError(f"{path}: a grey-scale image (mode {im.mode}), not a colour-coded mask; a label image needs no conversion (medseg evaluate reads it)")
        return np.asarray(im.convert("RGB"))


if __name__ == "__main__":
    from medseg.errors import MedsegError

    try:
        main(sys.argv[1:])
    except (MedsegError, OSError) as e:
        why = f"{e.filename}: {e.strerror}" if isinstance(e, OSError) and e.filename and e.strerror else str(e)  # not "[Errno 20] ..."
        sys.exit(f"error: {why.splitlines()[0]}")
