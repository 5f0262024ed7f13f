"""Biplane method of disks from two apical clips: the 4-chamber and the 2-chamber view, each
over the cardiac cycle (measurement.md, "Echo").

Each clip's ED and ES are found in that clip by the rule of :func:`medseg.measure.echo.measure_echo_clip`
(:func:`medseg.measure.echo.clip_ed_es`: the single-plane disk volume of every frame with an LV,
ED = the largest, ES = the smallest, an isolated outlier frame left out); the two views' ED and
ES frames are then combined by :func:`medseg.measure.echo.measure_echo` (biplane disks, the code
of four single-frame views), so two-frame clips give exactly the four-frame EF. The two clips
are separate acquisitions: their frames are not paired (counts and frame times may differ), and
no biplane volume curve is made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import MedsegError
from ..labels import LabelMap
from .echo import ECHO_LABEL_MAP, _echo_array, _no_end_systole, clip_ed_es, measure_echo
from .geometry import MeasurementError
from .qc import phase_at_clip_end, volume_outlier_flags
from .report_phase import check_values

#: the report's ``clips`` keys -> the view's name in messages
VIEW_NAMES = {"a4c": "4-chamber", "a2c": "2-chamber"}


def measure_echo_biplane_clips(
    a4c_tyx: np.ndarray, a2c_tyx: np.ndarray, *, label_map: Any = ECHO_LABEL_MAP,
    spacing_a4c_mm: tuple[float, float] | None = None, spacing_a2c_mm: tuple[float, float] | None = None,
    frame_times_a4c_s: Sequence[float] | np.ndarray | None = None, frame_times_a2c_s: Sequence[float] | np.ndarray | None = None,
    height_cm: float | None = None, weight_kg: float | None = None, bsa_method: str = "mosteller", sex: str | None = None,
) -> dict[str, Any]:
    """LV volumes and EF by biplane disks from an apical 4-chamber and a 2-chamber clip.

    Args:
        a4c_tyx, a2c_tyx: (T, Y, X) label images of each view over the cycle (T may differ).
        spacing_a4c_mm, spacing_a2c_mm: (dy, dx) mm per pixel of each view; None = unknown
            (EF only; both or neither).
        frame_times_a4c_s, frame_times_a2c_s: each clip's frame times, when known.

    Returns:
        :func:`measure_echo`'s biplane report (``method`` "biplane_disks") of the ED and ES frames
        found in each clip, plus ``clips``: {"a4c", "a2c"} -> {``n_frames``, ``ed_frame``,
        ``es_frame`` (null when the view's LV volume never changes: EF undefined),
        ``volume_curve_rel`` (that view's single-plane disk volume / its own at ED per frame,
        null without LV) and ``frame_times_s`` when given}. Flags of one view (``phase_at_clip_end``,
        ``volume_outlier_frame`` in % of that view's ED) carry ``view``.
    """
    lmap = LabelMap.parse(label_map)
    spacing = {"a4c": spacing_a4c_mm, "a2c": spacing_a2c_mm}
    times = {"a4c": frame_times_a4c_s, "a2c": frame_times_a2c_s}
    found = {k: _one_clip(arr, lmap, spacing[k], times[k], VIEW_NAMES[k]) for k, arr in (("a4c", a4c_tyx), ("a2c", a2c_tyx))}
    (a4, _, _, ed4, es4), (a2, _, _, ed2, es2) = found["a4c"], found["a2c"]
    report = measure_echo(a4[ed4], a4[es4], a2[ed2], a2[es2], label_map=lmap, spacing_a4c_mm=spacing_a4c_mm, spacing_a2c_mm=spacing_a2c_mm,
                          height_cm=height_cm, weight_kg=weight_kg, bsa_method=bsa_method, sex=sex)
    clips: dict[str, dict[str, Any]] = {}
    static = []
    for key, (arr, disks, outliers, ed, es_found) in found.items():
        name = VIEW_NAMES[key]
        labelled = [t for t, v in enumerate(disks) if v is not None]
        es: int | None = es_found
        if es == ed:  # the same volume on every labelled frame of this view: no ES in it
            static.append(f"the {name} clip's LV volume does not change over its {len(labelled)} labelled frames")
            es = None
        else:
            report["flags"] += [_in_view(f, name) for f in phase_at_clip_end(disks, {"ed": ed, "es": es}, "lv")]
        edv = disks[ed] or math.nan  # never None nor 0: ED is the largest positive volume
        if outliers:  # in % of this view's own (single-plane) ED volume: the biplane EDV is no scale for one view
            report["flags"] += [_in_view(f, name) for f in volume_outlier_flags(disks, "lv", outliers, {"ed": ed, "es": es}, edv)]
        clips[key] = {"n_frames": int(arr.shape[0]), "ed_frame": ed, "es_frame": es,
                      "volume_curve_rel": [None if v is None else round(v / edv, 4) for v in disks]}
        if (t_s := times[key]) is not None:
            clips[key]["frame_times_s"] = [float(x) for x in t_s]
    if static:
        _no_end_systole(report, f"LV EF is undefined: {' and '.join(static)}: no ED and ES to tell apart")
    report["clips"] = clips
    said = "; ".join(f"{VIEW_NAMES[k]} ED frame {c['ed_frame']}, ES frame {'n/a' if c['es_frame'] is None else c['es_frame']} "
                     f"of {c['n_frames']}" for k, c in clips.items())
    report["notes"].append(f"ED and ES found in each clip (its single-plane disk volume per frame: largest = ED, smallest = ES): {said}")
    return report


def measure_clip_volumes(vol4: Any, vol2: Any, names: tuple[str, str], *, label_map: Any,
                         **body: Any) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, int]]:
    """``medseg measure A4C --a2c A2C`` and batch's clip study row: :func:`measure_echo_biplane_clips`
    of two label Volumes, each one view over the cycle ((T, 1, Y, X)), with their own pixel spacing
    and frame times. Returns (report with ``spacing_mm`` of the 4-chamber clip, "A4C ED"/"A4C ES" ->
    that frame's (1, Y, X) labels, the same keys -> frame index): the panels (overlay.png, the PDF)
    draw the 4-chamber clip's frames. ``names``: the two files' names, for the one-line refusal of
    one clip given twice (which would read as a plausible EF of one view)."""
    if vol4.array.shape == vol2.array.shape and np.array_equal(vol4.array, vol2.array):
        raise MedsegError(f"{names[0]} and {names[1]} hold the same labels (one clip given twice?): biplane disks need a "
                          "4-chamber and a 2-chamber clip")

    def yx(vol: Any) -> tuple[float, float] | None:
        return (float(vol.spacing[1]), float(vol.spacing[2])) if vol.spacing_known else None

    report = measure_echo_biplane_clips(vol4.array[:, 0], vol2.array[:, 0], label_map=label_map, spacing_a4c_mm=yx(vol4),
                                        spacing_a2c_mm=yx(vol2), frame_times_a4c_s=vol4.frame_times_s,
                                        frame_times_a2c_s=vol2.frame_times_s, **body)
    # (z, y, x); None when the file records no pixel spacing (a PNG reads 1 mm as if measured)
    report["spacing_mm"] = [float(x) for x in vol4.spacing] if vol4.spacing_known else None
    frames = {f"A4C {k.upper()}": f for k in ("ed", "es") if (f := report["clips"]["a4c"][f"{k}_frame"]) is not None}
    return report, {k: vol4.array[f] for k, f in frames.items()}, frames


def _one_clip(labels: Any, lmap: LabelMap, spacing_mm: tuple[float, float] | None, times: Any,
              name: str) -> tuple[np.ndarray, list[float | None], dict, int, int]:
    """(labels, single-plane disk volume per frame, outlier frames, ED, ES) of one view's clip;
    errors say which view."""
    try:
        arr = _echo_array(labels, "(T, Y, X)", "[:, 0]")
        check_values(arr, lmap)
        if times is not None and len(times) != arr.shape[0]:
            raise MeasurementError(f"{len(times)} frame time(s) for {arr.shape[0]} frames")
        return (arr, *clip_ed_es(arr, lmap, spacing_mm))
    except MedsegError as e:  # MeasurementError, LabelMapError
        raise type(e)(f"the {name} clip: {e}") from None


def _in_view(flag: dict[str, Any], name: str) -> dict[str, Any]:
    """A flag of one clip, said of that view (``view``, the message prefixed)."""
    return {**{k: v for k, v in flag.items() if k != "message"}, "view": name, "message": f"{name} clip: {flag['message']}"}
