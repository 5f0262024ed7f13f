"""Arranging the 2-D images of a DICOM series into a (t, z) grid: the check that they share size,
orientation and pixel spacing, their grouping by position along the slice normal (with the
tolerance for positions scanners scatter), their order by TriggerTime within each slice, the
refusal of duplicates, the magnitude images of a magnitude-and-phase series, and the slice
step between positions (and where a stack with a slice missing leaves a position empty:
:func:`_slice_grid`). Headers only: no pixel is decoded here.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

import numpy as np

from ..errors import GeometryError, ImageReadError, LocalizerError
from .dicom_frames import FrameInfo, _plain
from .geometry import ORIENTATION_ATOL, dicom_directions

POSITION_TOL_MM = 0.05


def _check_uniform(frames: list[FrameInfo]) -> None:
    sizes = Counter(f"{f.cols}x{f.rows}" for f in frames)
    if len(sizes) > 1:  # the odd ones named (a stray image in the folder): the most common size is the series'
        common = sizes.most_common(1)[0][0]
        odd = {k: [_where(f) for f in frames if f"{f.cols}x{f.rows}" == k][:3] for k in sizes if k != common}
        raise ImageReadError("images have different sizes: " + ", ".join(
            f"{k} ({n} image{'s' if n > 1 else ''}{': ' + ', '.join(odd[k]) if k in odd else ''})" for k, n in sizes.most_common()))
    ref = frames[0]
    for f in frames[1:]:
        if f.iop and ref.iop and not np.allclose(f.iop, ref.iop, atol=ORIENTATION_ATOL):
            if len({g.series_uid for g in frames}) == 1 and is_localizer(frames):
                planes = len({tuple(np.round(g.iop, 2)) for g in frames if g.iop})
                raise LocalizerError(f"a localizer (scout) series ({ref.series_description!r}: {len(frames)} images in {planes} "
                                     "planes), no stack or cine to segment")
            raise GeometryError(f"images have different orientations ({_where(ref)} {_plain(ref.iop)} vs {_where(f)} "
                                f"{_plain(f.iop)}); cannot stack them")
        if f.pixel_spacing and ref.pixel_spacing and not np.allclose(f.pixel_spacing, ref.pixel_spacing, rtol=1e-4, equal_nan=True):
            raise GeometryError(
                f"images have different PixelSpacing ({list(ref.pixel_spacing)} vs {list(f.pixel_spacing)} mm in {_where(f)})"
            )


#: series descriptions of localizers (scouts): Siemens "localizer", "AAHead_Scout", GE "3-Plane Loc",
#: Philips "Survey", "tri-pilot", "PILOT"
LOCALIZER_WORDS = re.compile(r"locali[sz]er|scout|survey|pilot|3[- _]?pl(ane)?[- _]?loc|\bloc\b", re.IGNORECASE)


def is_localizer(frames: list[FrameInfo]) -> bool:
    """Whether ``frames`` are a localizer: an image's ImageType (or enhanced FrameType) names
    LOCALIZER, or the series description does (:data:`LOCALIZER_WORDS`)."""
    return (any("LOCALIZER" in f.image_type.upper().split("\\") for f in frames)
            or any(LOCALIZER_WORDS.search(f.series_description or "") for f in frames[:1]))


#: the positions along the normal that one slice's images may scatter over (scanners write them
#: rounded, or recompute them per frame: +-0.03 mm), when the slice step is at least
#: :data:`JITTER_MIN_STEP_MM`; thinner stacks keep :data:`POSITION_TOL_MM`
JITTER_TOL_MM = 0.1
JITTER_MIN_STEP_MM = 1.0


def _cluster_tolerance(pos: np.ndarray) -> float:
    """How far apart (mm along the normal) two images of one slice may lie, for images at
    ``pos``: :data:`JITTER_TOL_MM` when some of them lie :data:`JITTER_MIN_STEP_MM` or more
    apart with none between (slices at least that far apart), or when they all lie within
    :data:`JITTER_TOL_MM` (one slice); else (a stack thinner than 1 mm) :data:`POSITION_TOL_MM`."""
    p = np.sort(np.asarray(pos, dtype=np.float64))
    if len(p) < 2 or p[-1] - p[0] <= JITTER_TOL_MM or np.diff(p).max() >= JITTER_MIN_STEP_MM:
        return JITTER_TOL_MM
    return POSITION_TOL_MM


def _position_clusters(frames: list[FrameInfo]) -> list[list[int]]:
    """Indices of ``frames`` grouped by position along the normal, in increasing position.

    Images whose positions follow each other within :data:`JITTER_TOL_MM` form one slice when
    the slices lie at least :data:`JITTER_MIN_STEP_MM` apart (a thinner stack: images within
    :data:`POSITION_TOL_MM` of the slice's first image).

    Raises:
        GeometryError: the images of one slice spread over more than :data:`JITTER_TOL_MM`
            (their positions drift between frames).
    """
    normal = dicom_directions(frames[0].iop)[2]  # type: ignore[arg-type]
    pos = np.array([np.dot(f.ipp, normal) for f in frames])  # type: ignore[arg-type]
    order = np.argsort(pos, kind="stable")
    clusters: list[list[int]] = []
    if _cluster_tolerance(pos) < JITTER_TOL_MM:  # slices under 1 mm apart: within 0.05 mm of a slice's first image
        for i in order:
            if clusters and pos[i] - pos[clusters[-1][0]] < POSITION_TOL_MM:
                clusters[-1].append(int(i))
            else:
                clusters.append([int(i)])
        return clusters
    tol = JITTER_TOL_MM
    for i in order:  # chains: each image within JITTER_TOL_MM of the one before it
        if clusters and pos[i] - pos[clusters[-1][-1]] <= tol:
            clusters[-1].append(int(i))
        else:
            clusters.append([int(i)])
    for c in clusters:
        spread = pos[c[-1]] - pos[c[0]]
        if spread > tol:
            a, b = frames[c[0]], frames[c[-1]]
            raise GeometryError(
                f"the positions of one slice drift by {spread:.2f} mm between frames ({_where(a)} at {pos[c[0]]:.2f} mm, "
                f"{_where(b)} at {pos[c[-1]]:.2f} mm along the normal; images within {tol:g} mm are one slice): "
                "the series is not one stack"
            )
    return clusters


def _where(f: FrameInfo) -> str:
    return f.path.name + (f" frame {f.frame + 1}" if f.frame is not None else "")


def _arrange(frames: list[FrameInfo]) -> tuple[list[list[FrameInfo]], str | None]:
    """Frames as a [t][z] grid: z by position along the normal, t by TriggerTime rank; and a
    note when the frames were ordered without their TriggerTimes (there are then no frame
    times).

    Images without TriggerTime are ordered by InstanceNumber (an enhanced file's frames by
    TemporalPositionIndex). When only some images have one, every slice is ordered so (never a
    mix of the two orders), once that order is seen to agree with the TriggerTimes there are;
    a series whose images share one TriggerTime per slice (a placeholder, e.g. 0 on every
    image of an ungated cine) is ordered so too."""
    clusters = _position_clusters(frames)
    _check_duplicates(frames, clusters)
    counts = Counter(len(c) for c in clusters)
    if len(counts) > 1:
        summary = ", ".join(f"{n} phase(s) at {k} position(s)" for n, k in sorted(counts.items()))
        raise ImageReadError(
            f"slice positions have different numbers of phases ({summary}{_odd_position(frames, clusters, counts)}); "
            "the series is incomplete or mixes acquisitions"
        )
    by = "InstanceNumber" if all(f.frame is None for f in frames) else "InstanceNumber / TemporalPositionIndex"
    timed = sum(f.trigger_ms is not None for f in frames)
    note = None
    if 0 < timed < len(frames) and len(clusters[0]) > 1:  # (one image per slice: no order to choose)
        columns = [sorted((frames[i] for i in c), key=lambda f: f.order) for c in clusters]
        untimed = next(f for f in frames if f.trigger_ms is None)
        for col in columns:
            times = [f for f in col if f.trigger_ms is not None]
            bad = next(((a, b) for a, b in zip(times, times[1:]) if b.trigger_ms <= a.trigger_ms), None)  # type: ignore[operator]
            if bad:
                raise ImageReadError(
                    f"{len(frames) - timed} of {len(frames)} images have no TriggerTime (e.g. {_where(untimed)}), and the {by} order "
                    f"disagrees with the TriggerTimes of the others ({_where(bad[0])} at {bad[0].trigger_ms:g} ms comes before "
                    f"{_where(bad[1])} at {bad[1].trigger_ms:g} ms): the phase of those images is unknown; export the series with its trigger times"
                )
        note = f"{len(frames) - timed} of {len(frames)} images have no TriggerTime: frames ordered by {by}, frame times left out"
    elif timed and len(clusters[0]) > 1 and all(len({frames[i].trigger_ms for i in c}) == 1 for c in clusters):
        columns = [sorted((frames[i] for i in c), key=lambda f: f.order) for c in clusters]
        one = sorted({frames[c[0]].trigger_ms for c in clusters})  # type: ignore[type-var]
        note = (f"the images of each slice share one TriggerTime ({', '.join(f'{t:g}' for t in one[:3])}{', ...' if len(one) > 3 else ''} ms): "
                f"frames ordered by {by}, frame times left out")
    else:
        inf = float("inf")
        columns = [sorted((frames[i] for i in c), key=lambda f: (f.trigger_ms if f.trigger_ms is not None else inf, f.order)) for c in clusters]
    invalid = [f for f in frames if f.trigger_invalid]
    if invalid and len(clusters[0]) > 1:  # TriggerTime nan or inf: read as missing (dicom_frames._trigger), and said so
        why = (f"{len(invalid)} of {len(frames)} images have a TriggerTime that is no time ({invalid[0].trigger_invalid}, "
               f"e.g. {_where(invalid[0])}): taken as missing")
        note = f"{why}; {note}" if note else f"{why}: frames ordered by {by}, frame times left out"
    return [[col[t] for col in columns] for t in range(len(columns[0]))], note


def _odd_position(frames: list[FrameInfo], clusters: list[list[int]], counts: Counter) -> str:
    """Where a slice position holds a number of images the others do not: its first image, its
    position along the normal and the distance to the nearest other position (a slice whose two
    phases lie 0.3 mm apart reads as two positions of one phase each)."""
    normal = dicom_directions(frames[0].iop)[2]  # type: ignore[arg-type]
    centre = [float(np.mean([np.dot(frames[i].ipp, normal) for i in c])) for c in clusters]  # type: ignore[arg-type]
    usual = counts.most_common(1)[0][0]
    z = next(k for k, c in enumerate(clusters) if len(c) != usual)
    near = min(abs(centre[z] - centre[k]) for k in range(len(clusters)) if k != z) if len(clusters) > 1 else None
    return (f"; e.g. {len(clusters[z])} image(s) at {centre[z]:.2f} mm along the normal ({_where(frames[clusters[z][0]])})"
            + (f", {near:.2f} mm from the nearest other position" if near is not None else ""))


def _check_duplicates(frames: list[FrameInfo], clusters: list[list[int]]) -> None:
    """Refuse images that share a slice position and a TriggerTime: two image types of one
    acquisition (other than magnitude and phase, which :func:`_magnitude_images` separates), or
    an acquisition repeated within one series, would read as a cine of twice the phases,
    interleaved. Images without TriggerTime are not compared (they are ordered by
    InstanceNumber), nor is a series of one image type whose images share one TriggerTime per
    slice (a placeholder: :func:`_arrange`); but image files without TriggerTime that share a
    position and an InstanceNumber are refused too (:func:`_check_untimed_duplicates`)."""
    _check_untimed_duplicates(frames, clusters)
    groups: dict[tuple[int, float], list[FrameInfo]] = defaultdict(list)
    for z, c in enumerate(clusters):
        for i in c:
            if frames[i].trigger_ms is not None:
                groups[(z, frames[i].trigger_ms)].append(frames[i])  # type: ignore[index]
    dups = [g for g in groups.values() if len(g) > 1]
    if not dups:
        return
    types = sorted({f.image_type for g in dups for f in g})
    placeholder = all(len({frames[i].trigger_ms for i in c}) == 1 and frames[c[0]].trigger_ms is not None for c in clusters)
    if placeholder and len(types) == 1:
        return
    n = sum(len(g) for g in dups)
    if len(types) > 1:
        sizes = {len(g) for g in dups}
        where = (f"{sizes.pop()} images at each position and trigger time" if len(dups) == len(groups) and len(sizes) == 1
                 else f"{n} images share a position and trigger time")
        raise ImageReadError(f"{where}, ImageType {' and '.join(t or '(not set)' for t in types[:4])}{' and more' if len(types) > 4 else ''}: "
                             "the series mixes image types; export one")
    a, b = dups[0][:2]
    raise ImageReadError(f"{n} images share a position and trigger time (e.g. {_where(a)} and {_where(b)}, {a.trigger_ms:g} ms): "
                         "the series repeats images or mixes acquisitions; export one")


def _check_untimed_duplicates(frames: list[FrameInfo], clusters: list[list[int]]) -> None:
    """Refuse image files without TriggerTime at one slice position that share their
    InstanceNumber, the key :func:`_arrange` orders them by: a series exported twice into one
    folder under new SOPInstanceUIDs read as a cine of twice the frames, each a copy, in an order
    their file names decided (images without InstanceNumber, and an enhanced file's frames, are
    not compared)."""
    groups: dict[tuple[int, Any], list[FrameInfo]] = defaultdict(list)
    for z, c in enumerate(clusters):
        for i in c:
            f = frames[i]
            if f.trigger_ms is None and f.frame is None and f.order and f.order[0] is not None:
                groups[(z, f.order[0])].append(f)
    dups = [g for g in groups.values() if len(g) > 1]
    if not dups:
        return
    a, b = dups[0][:2]
    raise ImageReadError(f"{sum(len(g) for g in dups)} images without TriggerTime share a position and InstanceNumber (e.g. {_where(a)} and "
                         f"{_where(b)}, InstanceNumber {a.order[0]}): the series repeats images (exported twice into one folder?) or mixes "
                         "acquisitions; export one")


def _slice_step(grid: list[list[FrameInfo]]) -> np.ndarray:
    """LPS vector between consecutive slice centres of an evenly spaced stack (:func:`_slice_grid`)."""
    return _slice_grid(grid)[0]


#: a stack whose gaps leave out more slice positions than this fraction of the slices it holds
#: is refused, not filled (two stacks in one series, not images lost in an export)
MAX_MISSING_FRACTION = 0.5


def _slice_grid(grid: list[list[FrameInfo]]) -> tuple[np.ndarray, np.ndarray]:
    """The LPS vector between consecutive slice positions, and each slice's index on the regular
    grid of that step (0, 1, 2, ... for an evenly spaced stack). A stack with a slice missing
    (gaps along the normal of 8, 8, 16, 8 mm: an image lost in an export) is placed on the grid
    of its common step when every gap is a whole multiple of it and every slice lies on the
    stack's line, within the tolerance an even stack gets: indices 0, 1, 2, 4, 5, and the
    reader fills position 3 with a blank slice (:mod:`medseg.io.dicom_gaps`).

    Raises:
        GeometryError: gaps that are not whole multiples of one step ("a slice may be missing"),
            a slice shifted within its plane, or more positions missing than the stack holds."""
    first = grid[0]
    _, _, normal = dicom_directions(first[0].iop)  # type: ignore[arg-type]
    n = len(first)
    if n == 1:
        thick = first[0].thickness
        return normal * (thick if thick and thick > 0 else 1.0), np.zeros(1, dtype=int)
    # each slice at the mean of its frames' positions: scanners that round or recompute them per
    # frame scatter one slice by up to JITTER_TOL_MM (_position_clusters), more than 2 % of a 1 mm step
    ipps = np.array([[f.ipp for f in row] for row in grid], dtype=np.float64).mean(axis=0)
    along = np.array([np.dot(f.ipp, normal) for row in grid for f in row])  # type: ignore[arg-type]
    jitter = _cluster_tolerance(along)  # the scatter the slice grouping accepted (_position_clusters)
    along_pos = ipps @ normal
    k = _grid_indices(along_pos, jitter)
    step = (ipps[-1] - ipps[0]) / k[-1]
    dev = np.linalg.norm(ipps - (ipps[0] + k[:, None] * step), axis=1).max()
    tol = max(POSITION_TOL_MM, 0.02 * np.linalg.norm(step), jitter)
    gaps = np.round(np.diff(along_pos), 3)
    shown = ", ".join(f"{g:g}" for g in gaps)
    if dev > tol:
        off_along = np.abs(along_pos - (along_pos[0] + k * (along_pos[-1] - along_pos[0]) / k[-1])).max()
        if off_along <= tol:  # on the grid along the normal: a slice moved within its plane (another field of view)
            inplane = ipps - along_pos[:, None] * normal  # each slice's position within its plane
            drift = np.median(np.diff(inplane, axis=0) / np.diff(k)[:, None], axis=0)  # a leaning stack's in-plane step (0 for most)
            kk = k[:, None]
            off = np.linalg.norm(inplane - np.median(inplane - kk * drift, axis=0) - kk * drift, axis=1)
            z = int(np.argmax(off))
            even = "even" if k[-1] == n - 1 else "whole multiples of one step"
            raise GeometryError(
                f"slice {z} ({_where(grid[0][z])}) is shifted {off[z]:.2f} mm within its plane from the line "
                f"through the other slices' positions (gaps along the normal {shown} mm, {even}): the images "
                "do not lie on one grid (a slice planned with another field of view?); export the stack on one grid")
        raise GeometryError(f"slices are not evenly spaced along the normal (gaps {shown} mm); a slice may be missing")
    missing = int(k[-1]) + 1 - n
    if missing > MAX_MISSING_FRACTION * n:
        raise GeometryError(f"slices are not evenly spaced along the normal (gaps {shown} mm): on a grid of their "
                            f"{np.linalg.norm(step):.3g} mm step {missing} positions would be missing, more than the {n} "
                            "slices the series holds (two stacks in one series?); export one stack")
    return step, k


def _grid_indices(along: np.ndarray, jitter: float) -> np.ndarray:
    """Each slice's index on the regular grid of the stack's common step, for slice positions
    ``along`` the normal (increasing): ``arange(n)`` unless the smallest gap is the common one
    (no fewer gaps of one step than wider gaps) and divides every gap a whole number of times,
    each position then within the reader's tolerance (:func:`_slice_grid`) of its grid position
    (8, 8, 16, 8 mm: 0, 1, 2, 4, 5); ``arange(n)`` when not (the caller refuses the uneven gaps:
    8, 12, 4 mm lie on a 4 mm grid, but no 4 mm stack is that)."""
    n = len(along)
    plain = np.arange(n)
    gaps = np.diff(along)
    if n < 3 or gaps.min() <= 0:
        return plain
    mult = np.rint(gaps / gaps.min()).astype(int)
    if np.all(mult == 1) or np.sum(mult == 1) < np.sum(mult > 1):
        return plain
    k = np.concatenate([[0], np.cumsum(mult)])
    unit = (along[-1] - along[0]) / k[-1]
    tol = max(POSITION_TOL_MM, 0.02 * unit, jitter)
    return k if np.abs(along - (along[0] + k * unit)).max() <= tol else plain


def _magnitude_images(frames: list[FrameInfo]) -> tuple[list[FrameInfo], str | None]:
    """The images of ``frames`` to read, and a note when some are left out: of an MR series of
    magnitude and phase images (every image one or the other, :func:`mr_component`: a flow
    series, or a cine reconstructed both ways) the magnitude images, whether or not they have
    TriggerTimes (without, InstanceNumber interleaved both kinds into a cine of twice the
    frames; with, two images shared each position and trigger time). Other mixes of image
    types are left to :func:`_check_duplicates`.

    Raises:
        ImageReadError: every image is a phase image (velocity maps: no anatomy to segment).
    """
    kinds = Counter(f.component for f in frames)
    if kinds["P"] == len(frames):
        raise ImageReadError(f"the series holds phase images only ({len(frames)} image(s), ImageType {frames[0].image_type}, e.g. "
                             f"{_where(frames[0])}): phase images are velocity maps, not anatomy; read the acquisition's magnitude images")
    if not (kinds["M"] and kinds["P"]) or kinds["M"] + kinds["P"] != len(frames):
        return frames, None
    kept = [f for f in frames if f.component == "M"]
    types = sorted({f.image_type for f in frames if f.component == "P"})
    return kept, (f"the series holds magnitude and phase images: the {kinds['M']} magnitude images read, the {kinds['P']} phase images "
                  f"(ImageType {' and '.join(types[:2])}{' and more' if len(types) > 2 else ''}: velocity maps, not anatomy) left out")
