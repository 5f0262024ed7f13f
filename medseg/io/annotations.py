"""Reference labels from annotations that are no label images: COCO polygons and colour-coded masks.

medseg reads labels as integer values (one per structure). Two common ways experts deliver
outlines are neither: a **COCO** annotation JSON (``images``, ``annotations``, ``categories``;
each annotation a polygon ``[x0, y0, x1, y1, ...]`` in pixels of one image, as the SIUE
parasternal short-axis echo set ships) and a **colour-coded mask** (one RGB colour per
structure, as HVSMR-2.0 ships). :func:`coco_labels` and :func:`colour_labels` turn them into
label arrays on the image's pixel grid; ``examples/annotation_references.py`` writes them for a
whole folder, with a ``pairs.csv`` for ``medseg evaluate`` (docs/io.md, *Annotations that are
no label images*). Polygons are filled with scikit-image's ``polygon`` (as
:func:`medseg.io.contours.polygon_mask` and the training pack do).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LabelMapError
from ..labels import LabelMap
from .contours import polygon_mask

#: HVSMR-2.0's mask colours (its README): structure -> (r, g, b)
HVSMR_COLOURS: dict[str, tuple[int, int, int]] = {"lv": (255, 0, 0), "rv": (0, 0, 255), "la": (255, 255, 0), "ra": (0, 255, 255),
                                                  "aorta": (0, 255, 0), "pa": (255, 255, 255), "svc": (255, 0, 255), "ivc": (128, 128, 128)}
COCO_KEYS = ("images", "annotations", "categories")


def is_coco(obj: Any) -> bool:
    """True for a parsed JSON object with COCO's ``images``, ``annotations`` and ``categories`` lists."""
    return isinstance(obj, dict) and all(isinstance(obj.get(k), list) for k in COCO_KEYS)


def read_coco(path: str | Path) -> dict[str, Any]:
    """A COCO annotation file, checked to be one (one-line :class:`LabelMapError` otherwise)."""
    p = Path(path)
    try:
        obj = json.loads(p.read_bytes())
    except OSError as e:
        raise LabelMapError(f"{p}: cannot read: {e.strerror or e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise LabelMapError(f"{p}: not a JSON file ({str(e).splitlines()[0]})") from None
    if not is_coco(obj):
        raise LabelMapError(f"{p}: not a COCO annotation file (a JSON object with 'images', 'annotations' and 'categories' lists)")
    return obj


def parse_assignments(text: str, what: str) -> dict[str, str]:
    """``"LE=myo,LV=lv"`` -> ``{"LE": "myo", "LV": "lv"}`` in the order given."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        key, sep, value = part.rpartition("=")
        if not sep or not key.strip() or not value.strip():
            raise LabelMapError(f"bad {what} entry {part!r}; expected NAME=structure, e.g. 'LE=myo,LV=lv,RE=rv'")
        out[key.strip()] = value.strip()
    if not out:
        raise LabelMapError(f"no {what} given; expected NAME=structure, e.g. 'LE=myo,LV=lv,RE=rv'")
    return out


def coco_labels(coco: Mapping[str, Any], file_name: str, categories: Mapping[str, str], label_map: LabelMap | str) -> np.ndarray:
    """The (height, width) labels of image ``file_name`` of a COCO file: each annotation of a
    category named in ``categories`` (category name -> structure of ``label_map``) filled with its
    structure's value, **in the order of** ``categories`` (later over earlier: give an enclosing
    outline first, ``LE=myo,LV=lv`` makes the myocardium the ring between epicardium and LV).
    Categories not named are left out. One-line :class:`LabelMapError` for an image the file does
    not list, a category or structure name it does not know, RLE masks, or a bad polygon."""
    lm = LabelMap.parse(label_map)
    cats: dict[Any, list[Any]] = {}  # a name listed twice (two exports merged) keeps all its ids
    for c in coco["categories"]:
        if isinstance(c, dict):
            cats.setdefault(c.get("name"), []).append(c.get("id"))
    bad = [n for n in categories if n not in cats]
    if bad:
        raise LabelMapError(f"COCO categories {', '.join(map(repr, bad))} are not in the file; it has {', '.join(map(repr, cats))}")
    bad = [s for s in categories.values() if s not in lm]
    if bad:
        raise LabelMapError(f"structures {', '.join(map(repr, bad))} are not in the label map {lm.to_string()}")
    ims = [im for im in coco["images"] if isinstance(im, dict) and im.get("file_name") == file_name]
    if len(ims) != 1:
        raise LabelMapError(f"COCO file lists {'no' if not ims else len(ims)} image(s) named {file_name!r}")
    im = ims[0]
    try:
        shape = (int(im["height"]), int(im["width"]))
    except (KeyError, TypeError, ValueError, OverflowError):
        raise LabelMapError(f"COCO image {file_name!r} has no integer height and width") from None
    if not all(0 < n <= 65535 for n in shape):
        raise LabelMapError(f"COCO image {file_name!r}: height and width {shape[0]}x{shape[1]} are no image's size (1 to 65535 pixels)")
    out = np.zeros(shape, np.uint16 if max(lm.values.values(), default=0) > 255 else np.uint8)
    anns = [a for a in coco["annotations"] if isinstance(a, dict) and a.get("image_id") == im.get("id")]
    for name, structure in categories.items():
        for a in (a for a in anns if a.get("category_id") in cats[name]):
            for xy in _polygons(a, file_name, name):
                out[polygon_mask(xy, shape)] = lm[structure]
    return out


def _polygons(ann: Mapping[str, Any], file_name: str, category: str) -> list[np.ndarray]:
    seg = ann.get("segmentation")
    if isinstance(seg, str):  # some exporters (the SIUE set) store the polygon list as a JSON string
        try:
            seg = json.loads(seg)
        except ValueError:
            seg = None
    where = f"COCO annotation {ann.get('id')!r} ({category!r} on {file_name!r})"
    if isinstance(seg, dict):
        raise LabelMapError(f"{where} is a run-length (RLE) mask, not polygons: decode it with pycocotools.mask.decode")
    if not isinstance(seg, list) or not seg:
        raise LabelMapError(f"{where}: 'segmentation' is not a list of polygons [x0, y0, x1, y1, ...]")
    polys = seg if all(isinstance(p, list) for p in seg) else [seg]
    out = []
    for p in polys:
        try:
            xy = np.asarray(p, np.float64)
        except (TypeError, ValueError):
            xy = np.empty(0)
        if xy.ndim != 1 or xy.size < 6 or xy.size % 2 or not np.isfinite(xy).all():
            raise LabelMapError(f"{where}: a polygon must be 3 or more finite x, y pairs [x0, y0, x1, y1, ...]")
        out.append(xy.reshape(-1, 2))
    return out


def parse_colours(text: str) -> dict[str, tuple[int, int, int]]:
    """``"lv=#ff0000,rv=#0000ff"`` (or ``r/g/b``: ``lv=255/0/0``), or ``hvsmr`` for
    :data:`HVSMR_COLOURS`, -> structure -> (r, g, b)."""
    if str(text).strip().lower() == "hvsmr":
        return dict(HVSMR_COLOURS)
    out = {}
    for name, col in parse_assignments(text, "colour").items():
        c = col.lstrip("#")
        try:
            rgb = tuple(int(c[i:i + 2], 16) for i in (0, 2, 4)) if len(c) == 6 and "/" not in c else tuple(int(v) for v in c.split("/"))
        except ValueError:
            rgb = ()
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise LabelMapError(f"bad colour {col!r} for {name!r}; expected #rrggbb or r/g/b, e.g. lv=#ff0000 or lv=255/0/0")
        if rgb in out.values():
            raise LabelMapError(f"colour {col!r} given twice ({', '.join(k for k, v in out.items() if v == rgb)} and {name}); each structure needs a colour of its own")
        out[name] = rgb
    return out


def colour_labels(rgb: np.ndarray, colours: Mapping[str, tuple[int, int, int]], label_map: LabelMap | str, where: str = "mask") -> np.ndarray:
    """(Y, X) labels of a (Y, X, 3) colour-coded mask: each colour of ``colours`` (structure ->
    (r, g, b)) becomes its structure's value in ``label_map``, black the background. Structures
    the label map does not name are left out (HVSMR's SVC and IVC for medseg's map). A colour
    neither black nor listed (an anti-aliased edge, another convention) is a one-line
    :class:`LabelMapError` naming it and how many pixels have it."""
    lm = LabelMap.parse(label_map)
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[-1] not in (3, 4):
        raise LabelMapError(f"{where}: not a colour image (shape {a.shape}); expected (rows, columns, 3)")
    key = a[..., 0].astype(np.uint32) << 16 | a[..., 1].astype(np.uint32) << 8 | a[..., 2].astype(np.uint32)
    known = {r << 16 | g << 8 | b: s for s, (r, g, b) in colours.items()}
    found, counts = np.unique(key, return_counts=True)
    other = [(int(c), int(n)) for c, n in zip(found, counts) if c != 0 and c not in known]
    if other:
        listed = ", ".join(f"{(c >> 16, c >> 8 & 255, c & 255)} ({n} px)" for c, n in other[:6]) + (", ..." if len(other) > 6 else "")
        raise LabelMapError(f"{where}: colour(s) {listed} are neither black (background) nor a structure's colour given")
    out = np.zeros(a.shape[:2], np.uint16 if max(lm.values.values(), default=0) > 255 else np.uint8)
    for c, s in known.items():
        if s in lm:
            out[key == c] = lm[s]
    return out
