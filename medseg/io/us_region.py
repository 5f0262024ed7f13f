"""The ultrasound image region of an echo DICOM: where the 2-D image lies on the exported screen.

Echo machines export a clip as the whole screen: the 2-D sector sits inside it, with an ECG
trace, text and calipers around it. DICOM's SequenceOfUltrasoundRegions says where the sector
is. medseg takes one region, the first whose PhysicalUnitsX/YDirection are both cm (3) with a
positive PhysicalDeltaX/Y and whose RegionSpatialFormat is 2-D (1; a region without the tag is
taken as 2-D, an M-mode, spectral or waveform region is passed over): its pixel size is the
image's (:func:`region_spacing_mm`) and its box (:func:`region_box`) is recorded in the
Volume's ``meta["us_region"]`` as ``[row0, col0, row1, col1]``, pixel indices, **inclusive**
(DICOM's RegionLocationMinY0, MinX0, MaxY1, MaxX1; the convention of medseg's boxes).

A box that reaches outside the image is clipped to it; one that is reversed (Max < Min), lies
wholly outside the image, or is narrower than :data:`MIN_SIDE` pixels after clipping (the
placeholder 0, 0, 0, 0) is ignored; ``meta["us_region_note"]`` says what was clipped or
ignored. A screen with more than one calibrated 2-D region (a dual view, a 2-D image beside a
zoomed one) gives the first's pixel size and box, and the note names the others and their pixel
sizes (:func:`several_regions_note`): what is labelled in a region of another pixel size is
measured at the first's, and zero-click never looks there. The array and its grid stay the
file's full screen: labels and DICOM SEG reference the file's own frames. Zero-click
(:meth:`medseg.predictor.SlicePredictor.predict_auto`, the session's automatic pass) looks only
inside the box; clicks and boxes a user gives are not restricted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

#: meta key of the ultrasound region's box: [row0, col0, row1, col1], inclusive pixel indices
KEY = "us_region"
NOTE_KEY = "us_region_note"
#: a region narrower than this (pixels, after clipping to the image) is ignored: it cannot hold a
#: heart (a session refuses slices narrower than this, medseg.session.MIN_SLICE_SIDE)
MIN_SIDE = 16
CM = 3  # PhysicalUnitsX/YDirection: cm
TWO_D = 1  # RegionSpatialFormat: 2-D


def calibrated_regions(ds: Any) -> list[Any]:
    """The ultrasound regions of ``ds`` calibrated in cm on both axes, with positive deltas, of
    the 2-D kind (RegionSpatialFormat 1 or absent), in the file's order."""
    found = []
    for region in ds.get("SequenceOfUltrasoundRegions", []) or []:
        fmt = region.get("RegionSpatialFormat")
        if fmt is not None and _int(fmt) != TWO_D:
            continue
        if region.get("PhysicalUnitsXDirection") == CM and region.get("PhysicalUnitsYDirection") == CM:
            dx, dy = _float(region.get("PhysicalDeltaX")), _float(region.get("PhysicalDeltaY"))
            if dx is not None and dy is not None and abs(dx) > 0 and abs(dy) > 0:
                found.append(region)
    return found


def calibrated_region(ds: Any) -> Any | None:
    """The region medseg takes: the first of :func:`calibrated_regions` that lies inside no other
    of its pixel size (a colour-flow box listed before the 2-D image it lies in is part of that
    image, not the image); None when there is none."""
    regions = calibrated_regions(ds)
    for r in regions:
        box = _raw_box(r)
        if not any(o is not r and _same_size(o, r) and _inside(box, _raw_box(o)) and _raw_box(o) != box for o in regions):
            return r
    return regions[0] if regions else None


def region_spacing_mm(ds: Any) -> tuple[float, float] | None:
    """(dy, dx) mm of :func:`calibrated_region`, else None."""
    region = calibrated_region(ds)
    return None if region is None else _mm(region)


def _mm(region: Any) -> tuple[float, float]:
    """(dy, dx) mm of a calibrated region (PhysicalDeltaY/X are cm)."""
    return abs(float(region.PhysicalDeltaY)) * 10.0, abs(float(region.PhysicalDeltaX)) * 10.0


def region_box(ds: Any, shape_yx: tuple[int, int]) -> tuple[list[int] | None, str | None]:
    """([row0, col0, row1, col1] inclusive, note) of :func:`calibrated_region` on an image of
    ``shape_yx`` rows and columns: clipped to the image (note says so), or (None, note) when the
    box is missing, reversed, outside the image or too small; (None, None) without a region."""
    region = calibrated_region(ds)
    if region is None:
        return None, None
    raw = [_int(region.get(k)) for k in ("RegionLocationMinY0", "RegionLocationMinX0", "RegionLocationMaxY1", "RegionLocationMaxX1")]
    if any(v is None for v in raw):
        return None, "the ultrasound region gives no complete RegionLocation: ignored, zero-click looks at the whole image"
    return clip_box(raw, shape_yx)  # type: ignore[arg-type]


def clip_box(box: Sequence[int], shape_yx: tuple[int, int]) -> tuple[list[int] | None, str | None]:
    """An inclusive [row0, col0, row1, col1] box on an image of ``shape_yx``: (the box, None)
    when it fits, (clipped box, note) when it reaches outside, (None, note) when it is reversed,
    outside the image or narrower than :data:`MIN_SIDE` pixels."""
    r0, c0, r1, c1 = (int(v) for v in box)
    h, w = int(shape_yx[0]), int(shape_yx[1])
    said = f"ultrasound region rows {r0}-{r1}, columns {c0}-{c1}"
    if r1 < r0 or c1 < c0:
        return None, f"{said} is reversed (the end before the start): ignored, zero-click looks at the whole image"
    cr0, cc0, cr1, cc1 = max(r0, 0), max(c0, 0), min(r1, h - 1), min(c1, w - 1)
    if cr1 < cr0 or cc1 < cc0:
        return None, f"{said} lies outside the {h}x{w} image: ignored, zero-click looks at the whole image"
    if min(cr1 - cr0, cc1 - cc0) + 1 < MIN_SIDE:
        return None, f"{said} is under {MIN_SIDE} pixels wide in the {h}x{w} image: ignored, zero-click looks at the whole image"
    out = [cr0, cc0, cr1, cc1]
    if out != [r0, c0, r1, c1]:
        return out, f"{said} reaches outside the {h}x{w} image: clipped to rows {cr0}-{cr1}, columns {cc0}-{cc1}"
    return out, None


def add_region(meta: dict[str, Any], ds: Any, shape_yx: tuple[int, int]) -> None:
    """Record ``ds``'s ultrasound region box (and a note when clipped or ignored, or when the
    screen holds other 2-D regions: :func:`several_regions_note`) in ``meta``."""
    box, note = region_box(ds, shape_yx)
    if box is not None:
        meta[KEY] = box
    notes = [n for n in (note, several_regions_note(ds, box is not None)) if n]
    if notes:
        meta[NOTE_KEY] = "; ".join(notes)


def several_regions_note(ds: Any, box_taken: bool = True) -> str | None:
    """The note on a screen with more than one calibrated 2-D region (a dual view, a 2-D image
    beside a zoomed one): medseg takes the first (its pixel size and, when ``box_taken``, its box
    for zero-click); the others' pixels are measured at its scale when theirs differ, and
    zero-click never looks in them. A region lying inside the first with its pixel size (a
    colour-flow box over the 2-D image) is part of that image, not another. None for one region."""
    regions, first = calibrated_regions(ds), calibrated_region(ds)
    if first is None:
        return None
    others = [r for r in regions if r is not first and not (_inside(_raw_box(r), _raw_box(first)) and _same_size(r, first))]
    if not others:
        return None
    zero_click = "zero-click looks only there" if box_taken else "zero-click looks at the whole screen"
    parts = [f"{len(others) + 1} calibrated 2-D ultrasound regions on the screen (a dual or zoomed view): {'the first' if first is regions[0] else 'the 2-D image'}, {_where(first)}, "
             f"taken ({_size_text(first)} pixels; {zero_click})"]
    for r in others:
        if _same_size(r, first):
            parts.append(f"{_where(r)} has the same pixel size" + (", but zero-click does not look there" if box_taken else ""))
        else:
            parts.append(f"{_where(r)} has {_size_text(r)} pixels: what is labelled there is measured at {_size_text(first)}, wrong for it")
    return "; ".join(parts)


def _raw_box(region: Any) -> list[int | None]:
    """[row0, col0, row1, col1] as the region gives it (None for a missing value)."""
    return [_int(region.get(k)) for k in ("RegionLocationMinY0", "RegionLocationMinX0", "RegionLocationMaxY1", "RegionLocationMaxX1")]


def _inside(box: list[int | None], outer: list[int | None]) -> bool:
    """Whether complete box ``box`` lies within complete box ``outer`` (inclusive indices)."""
    if any(v is None for v in (*box, *outer)):
        return False
    return outer[0] <= box[0] and outer[1] <= box[1] and box[2] <= outer[2] and box[3] <= outer[3]  # type: ignore[operator]


def _same_size(a: Any, b: Any) -> bool:
    """Whether two calibrated regions have the same pixel size (within 0.1 %)."""
    return all(math.isclose(u, v, rel_tol=1e-3) for u, v in zip(_mm(a), _mm(b)))


def _where(region: Any) -> str:
    box = _raw_box(region)
    return region_text(box) if all(v is not None for v in box) else "a region without a complete RegionLocation"


def _size_text(region: Any) -> str:
    dy, dx = _mm(region)
    return f"{dy:.4g} x {dx:.4g} mm"


def volume_region(meta: dict[str, Any] | None, shape_yx: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The ultrasound region a Volume's ``meta`` records, checked against its slices' shape
    (clipped, or None when it does not fit: :func:`clip_box`); None without one."""
    raw = (meta or {}).get(KEY)
    if raw is None:
        return None
    try:
        vals = [_int(v) for v in raw]  # whole and finite, else None (inf, 20.5, "top")
    except TypeError:  # not a sequence
        return None
    if len(vals) != 4 or any(v is None for v in vals):
        return None
    box, _ = clip_box(vals, shape_yx)
    return tuple(box) if box is not None else None  # type: ignore[return-value]


def region_text(box: Sequence[int]) -> str:
    """"rows 20-243, columns 60-283" of an inclusive box."""
    return f"rows {box[0]}-{box[2]}, columns {box[1]}-{box[3]}"


def _float(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer too large for a float (10**400)
        return None
    return v if math.isfinite(v) else None


def _int(value: Any) -> int | None:
    v = _float(value)
    return int(v) if v is not None and v == int(v) else None


#: ``screen_note``: content is what is brighter than this share of the brightest pixel; a band of
#: rows apart from the image (a gap of at least 2 rows, 1 % of the height) at most this high
#: (share of the rows) that runs across at least :data:`TRACE_MIN_WIDTH` of the columns is a trace
CONTENT_SHARE, TRACE_MAX_HEIGHT, TRACE_MIN_WIDTH = 0.1, 0.15, 0.5


def screen_note(meta: dict[str, Any], array: Any, modality: str) -> str | None:
    """The note on an echo DICOM that records no ultrasound region and looks like the scanner's
    whole screen: a modality-US DICOM image of one view (frames of one slice) with no region box
    and no region note, where a thin band of content apart from the image (above or below it, a
    gap of empty rows between) runs across half the screen or more, as an ECG trace does. None
    otherwise: a PNG, NIfTI or MHA (CAMUS), a US DICOM of the 2-D image alone (one band of
    rows), or a screen without such a trace (the evidence medseg reads; zero-click then looks at
    the whole image without a word, as before)."""
    import numpy as np

    if modality != "US" or (meta or {}).get("format") != "dicom" or meta.get(KEY) is not None or meta.get(NOTE_KEY):
        return None
    a = np.asarray(array)
    if a.ndim != 4 or a.shape[1] != 1 or min(a.shape[2:]) < 4 * MIN_SIDE:
        return None
    top = a.max(axis=(0, 1))
    hi = float(top.max())
    if not (math.isfinite(hi) and hi > float(top.min())):
        return None
    on = top > top.min() + CONTENT_SHARE * (hi - float(top.min()))
    h, w = on.shape
    bands = _row_bands(on.any(axis=1), max(2, h // 100))
    if len(bands) < 2:
        return None
    image = max(bands, key=lambda b: int(on[b[0]:b[1] + 1].sum()))
    for r0, r1 in bands:
        cols = np.flatnonzero(on[r0:r1 + 1].any(axis=0))
        if (r0, r1) != image and r1 - r0 + 1 <= TRACE_MAX_HEIGHT * h and cols[-1] - cols[0] + 1 >= TRACE_MIN_WIDTH * w:
            return (f"no ultrasound region (SequenceOfUltrasoundRegions) in this echo DICOM, and a line runs across columns {cols[0]}-{cols[-1]} "
                    f"of the {h}x{w} image at rows {r0}-{r1}, apart from the image (an ECG trace?): it looks like the scanner's whole screen, "
                    "and zero-click looks at all of it (it may label chambers outside the sector); crop it to the sector, or give prompts")
    return None


def _row_bands(rows: Any, min_gap: int) -> list[tuple[int, int]]:
    """(first, last) rows of each run of True in ``rows``, runs apart by fewer than ``min_gap`` False rows joined."""
    bands: list[list[int]] = []
    for r in (int(i) for i in rows.nonzero()[0]):
        if bands and r - bands[-1][1] - 1 < min_gap:
            bands[-1][1] = r
        else:
            bands.append([r, r])
    return [(b[0], b[1]) for b in bands]


def add_screen_note(volume: Any) -> str | None:
    """Record :func:`screen_note` of ``volume`` (a :class:`medseg.io.Volume`) in its ``meta`` as
    its ``us_region_note`` (the sidecar's ``image_notes`` and measure's report carry it, as the
    other region notes); returns the note, or None. Once: a note already there is left."""
    note = screen_note(volume.meta, volume.array, volume.modality)
    if note:
        volume.meta[NOTE_KEY] = note
    return note
