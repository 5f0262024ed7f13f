"""Expert contour polygons in the Sunnybrook Cardiac Data layout, as reference labels.

A contour folder holds ``i-contours/`` (LV endocardium) and ``o-contours/`` (LV epicardium),
one text file per contoured image: ``IM-0001-0048-icontour-manual.txt`` lists the polygon's
vertices, one ``x y`` pair per line, in pixel coordinates of image number 48 (x = column,
y = row), the image file ``48.dcm`` (or ``IM-0001-0048.dcm``, as the original release names it)
of the patient's DICOM series. :func:`contour_labels` rasterises them (scikit-image's
``polygon``, as :mod:`medseg.training.pack` does for training) onto that image's (t, z) slice of
the series' Volume, so the labels lie on the image's grid and ``medseg evaluate`` can score a
segmentation against them; ``examples/sunnybrook_references.py`` writes them for a whole export.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import ImageReadError, LabelMapError
from ..labels import LabelMap
from .volume import Volume

#: contour sub-folder -> the structure its polygons outline (the filled area labelled)
CONTOUR_FOLDERS = {"o-contours": "myo", "i-contours": "lv"}
_NAME = re.compile(r"^[^-]+-[^-]+-(\d+)-([io])contour", re.IGNORECASE)
#: the least share of an endocardial polygon's area inside its epicardial one (less: misplaced contours)
ENCLOSED_MIN = 0.9


class ContourWarning(UserWarning):
    """Expert contours that do not fit together (an epicardium that does not enclose its endocardium)."""


def is_contour_folder(path: str | Path) -> bool:
    """True for a folder holding ``i-contours`` or ``o-contours`` with contour files."""
    p = Path(path)
    return p.is_dir() and any((p / sub).is_dir() and any((p / sub).glob("*.txt")) for sub in CONTOUR_FOLDERS)


def read_contour_folder(folder: str | Path) -> dict[int, dict[str, np.ndarray]]:
    """``{image number: {"i" | "o": (N, 2) float vertices (x, y) in pixels}}`` of a contour folder.

    Raises:
        ImageReadError: no contour files, a file name without an image number, or a file that is
            not N >= 3 finite ``x y`` pairs (the message names the file).
    """
    folder = Path(folder)
    if not is_contour_folder(folder):
        raise ImageReadError(f"{folder}: no contour files (i-contours/*.txt or o-contours/*.txt, Sunnybrook's layout)")
    out: dict[int, dict[str, np.ndarray]] = {}
    for sub in CONTOUR_FOLDERS:
        for f in sorted((folder / sub).glob("*.txt")) if (folder / sub).is_dir() else []:
            m = _NAME.match(f.name)
            if m is None:
                raise ImageReadError(f"{f}: a contour file is named IM-0001-<image number>-icontour-manual.txt (or ocontour)")
            kind = sub[0]
            if m.group(2).lower() != kind:
                raise ImageReadError(f"{f}: an {m.group(2).lower()}-contour file in {sub}")
            out.setdefault(int(m.group(1)), {})[kind] = _vertices(f)
    return out


def _vertices(f: Path) -> np.ndarray:
    try:
        xy = np.loadtxt(f, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise ImageReadError(f"{f}: not a contour of 'x y' pixel pairs ({str(e).splitlines()[0][:80]})") from None
    if xy.shape[1] != 2 or xy.shape[0] < 3 or not np.isfinite(xy).all():
        raise ImageReadError(f"{f}: a contour needs at least 3 finite 'x y' pixel pairs, one per line (got shape {xy.shape})")
    return xy


def polygon_mask(xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(Y, X) boolean mask of the polygon with (N, 2) vertices ``xy`` = (x = column, y = row)
    in pixels (``skimage.draw.polygon``; the area inside, clipped to ``shape``)."""
    from skimage.draw import polygon

    mask = np.zeros(shape, bool)
    rr, cc = polygon(xy[:, 1], xy[:, 0], shape)
    mask[rr, cc] = True
    return mask


def _image_number(path: str) -> int | None:
    """The last number in a DICOM file's name (``48.dcm``, ``IM-0001-0048.dcm``: 48)."""
    p = Path(path)
    digits = re.findall(r"\d+", p.stem if p.suffix.lower() in (".dcm", ".ima") else p.name)
    return int(digits[-1]) if digits else None


def contour_labels(image: Volume, folder: str | Path, label_map: LabelMap | str = "lv=1,myo=2") -> Volume:
    """The contours of ``folder`` as a label Volume (T, Z, Y, X) uint8 on ``image``'s grid.

    Each contour file's image number picks the DICOM file of ``image`` (a series folder read
    with :func:`medseg.io.read_volume`) whose name ends in that number; its polygon fills that
    file's (t, z) slice: o-contours (epicardium) as ``myo``, i-contours (endocardium) as ``lv``
    over it, so ``myo`` is the ring between the two. Slices without a contour stay 0 (evaluate
    scores a structure in the frames whose reference holds it). ``meta["label_map"]`` names the
    values.

    Raises:
        ImageReadError: ``image`` was not read from single-frame DICOM files, two of its files
            share a number, or a contour names an image number the series does not hold.
        LabelMapError: ``label_map`` lacks ``lv`` or ``myo`` for a contour kind present.
    """
    lmap = LabelMap.parse(label_map)
    files = image.meta.get("files") if image.meta.get("format") == "dicom" else None
    if not files or any(n is not None for row in image.meta.get("frame_numbers") or [] for n in row):
        raise ImageReadError(f"contours name single-frame DICOM images; {image.meta.get('path', 'this image')} was not read from "
                             "a folder of them")
    where: dict[int, tuple[int, int]] = {}
    for t, row in enumerate(files):
        for z, f in enumerate(row):
            if f is None:  # a slice missing from the series (read as a blank one): no image, no contour
                continue
            n = _image_number(f)
            if n is not None and n in where:
                raise ImageReadError(f"{image.meta.get('path')}: images {Path(files[where[n][0]][where[n][1]]).name} and {Path(f).name} "
                                     "carry one number; a contour file cannot tell which it outlines")
            if n is not None:
                where[n] = (t, z)
    contours = read_contour_folder(folder)
    missing = sorted(set(contours) - set(where))
    if missing:
        raise ImageReadError(f"{folder}: contours of image number(s) {', '.join(map(str, missing[:5]))} that "
                             f"{image.meta.get('path')} does not hold (its images are "
                             f"{f'numbered {min(where)}..{max(where)}' if where else 'not numbered in their file names'})")
    kinds = {k for polys in contours.values() for k in polys}
    for sub, name in CONTOUR_FOLDERS.items():
        if sub[0] in kinds and name not in lmap:
            raise LabelMapError(f"the label map ({', '.join(f'{k}={v}' for k, v in lmap.values.items())}) has no {name}, "
                                f"which the {sub} outline")
    labels = np.zeros((image.n_frames, *image.grid_shape), np.uint8 if max(lmap.values.values()) <= 255 else np.uint16)
    for n, polys in contours.items():
        t, z = where[n]
        for sub, name in CONTOUR_FOLDERS.items():  # myo first, lv inside it
            if sub[0] in polys:
                labels[t, z][polygon_mask(polys[sub[0]], image.grid_shape[1:])] = lmap[name]
    _warn_unenclosed(contours, image.grid_shape[1:], folder)
    meta = {"format": "contours", "path": str(folder), "label_map": dict(lmap.values)}
    return image.with_array(labels, meta=meta)


def unenclosed(contours: dict[int, dict[str, np.ndarray]], shape: tuple[int, int]) -> dict[int, float]:
    """``{image number: share of the endocardial area inside the epicardial polygon}`` of the
    images whose share is under :data:`ENCLOSED_MIN` (the epicardium does not enclose the
    endocardium: contours of another image or patient, or shifted)."""
    out = {}
    for n, polys in sorted(contours.items()):
        if "i" in polys and "o" in polys:
            inner = polygon_mask(polys["i"], shape)
            if inner.any() and (share := float((inner & polygon_mask(polys["o"], shape)).sum() / inner.sum())) < ENCLOSED_MIN:
                out[n] = share
    return out


def _warn_unenclosed(contours: dict[int, dict[str, np.ndarray]], shape: tuple[int, int], folder: str | Path) -> None:
    """One :class:`ContourWarning` per folder naming the images whose epicardium misses the endocardium."""
    bad = unenclosed(contours, shape)
    if bad:
        both = sum("i" in p and "o" in p for p in contours.values())
        said = ", ".join(f"{n} ({100 * v:.0f} %)" for n, v in list(bad.items())[:5]) + (" ..." if len(bad) > 5 else "")
        warnings.warn(f"{folder}: in {len(bad)} of {both} image(s) with both contours the epicardial contour does not enclose the "
                      f"endocardial one (share of the endocardium inside it: {said}; expected >= {100 * ENCLOSED_MIN:.0f} %): "
                      "the myo reference is misplaced (check the o-contours belong to this patient)", ContourWarning, stacklevel=3)
