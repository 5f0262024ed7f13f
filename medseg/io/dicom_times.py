"""Frame times of a cine without trigger times: a real-time (ungated) cine records when each
frame was acquired (an enhanced file in its Frame Content group, FrameReferenceDateTime, else
FrameAcquisitionDateTime; one file per image in AcquisitionDateTime, else AcquisitionDate and
AcquisitionTime), not a delay after the R wave. Used by :mod:`medseg.io.dicom` when the
trigger times give none (absent, or one placeholder per slice).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np

#: the Frame Content attributes read, in this order: the moment a frame refers to, else the
#: start of its acquisition (DICOM DT, YYYYMMDDHHMMSS.FFFFFF with an optional &ZZXX offset)
DATETIME_ATTRS = ("FrameReferenceDateTime", "FrameAcquisitionDateTime")

#: the median interval between frames taken as a cine's (s): a real-time cine's 20-80 ms, a
#: slow one's seconds; outside it the date-times are no frame clock (all equal, a placeholder)
FRAME_INTERVAL_S = (0.005, 2.5)

_EPOCH = _dt.datetime(2000, 1, 1)


def frame_datetime_s(frame_content: Any) -> float | None:
    """Seconds since 2000-01-01 of one frame's Frame Content item (:data:`DATETIME_ATTRS`), None
    when it records none or one that is no date-time (the UTC offset is applied when given)."""
    for attr in DATETIME_ATTRS:
        value = frame_content.get(attr) if frame_content is not None else None
        if value not in (None, ""):
            return _datetime_s(value)
    return None


def image_datetime_s(ds: Any) -> float | None:
    """Seconds since 2000-01-01 at which a classic (single-frame) image was acquired:
    AcquisitionDateTime, else AcquisitionDate with AcquisitionTime (a real-time cine saved one
    file per image records no trigger delay, but these); None when it records neither."""
    from pydicom.valuerep import DA, TM

    value = ds.get("AcquisitionDateTime")
    if value not in (None, ""):
        return _datetime_s(value)
    day, clock = ds.get("AcquisitionDate"), ds.get("AcquisitionTime")
    if day in (None, "") or clock in (None, ""):
        return None
    try:
        d = day if isinstance(day, _dt.date) else DA(str(day).strip())
        t = clock if isinstance(clock, _dt.time) else TM(str(clock).strip())
        return (_dt.datetime.combine(d, t) - _EPOCH).total_seconds()
    except (ValueError, TypeError, OverflowError, AttributeError):
        return None


def _datetime_s(value: Any) -> float | None:
    """Seconds since 2000-01-01 of a DICOM DT value (YYYYMMDDHHMMSS.FFFFFF with an optional &ZZXX
    offset, applied), None for one that is no date-time."""
    from pydicom.valuerep import DT

    try:
        when = value if isinstance(value, _dt.datetime) else DT(str(value).strip())
        if when.tzinfo is not None:
            when = (when - when.utcoffset()).replace(tzinfo=None)  # type: ignore[operator]
        return (when - _EPOCH).total_seconds()
    except (ValueError, TypeError, OverflowError, AttributeError):
        return None


def realtime_frame_times(grid: list[list[Any]], time_note: str | None) -> tuple[np.ndarray | None, str | None]:
    """(frame times s, note) of a (t, z) grid of :class:`medseg.io.dicom_frames.FrameInfo` whose
    trigger times give none: every image without TriggerTime, or one placeholder per slice
    (``time_note`` of :func:`medseg.io.dicom_stack._arrange` then says so). The times are the
    first slice's frame date-times less its first frame's; (None, ``time_note``) unchanged when
    a frame has none, they do not increase with the frame, or their median interval lies outside
    :data:`FRAME_INTERVAL_S`."""
    first = [row[0] for row in grid]
    placeholder = bool(time_note) and str(time_note).startswith("the images of each slice share one TriggerTime")
    untimed = all(f.trigger_ms is None and not f.trigger_invalid for row in grid for f in row)
    acquired = [getattr(f, "acquired_s", None) for f in first]
    if len(first) < 2 or not (untimed or placeholder) or any(a is None for a in acquired):
        return None, time_note
    times = np.round(np.asarray(acquired, dtype=np.float64) - float(acquired[0]), 6)  # type: ignore[arg-type]  # DT holds microseconds
    steps = np.diff(times)
    lo, hi = FRAME_INTERVAL_S
    if not np.all(steps > 0) or not lo <= float(np.median(steps)) <= hi:
        return None, time_note
    attrs = " or ".join(DATETIME_ATTRS) if first[0].frame is not None else "AcquisitionDateTime (or AcquisitionDate and AcquisitionTime)"
    source = f"frame times from the frames' {attrs} ({1000 * float(np.median(steps)):.1f} ms apart)"
    if placeholder:
        return times, str(time_note).replace("frame times left out", source)
    by = "TemporalPositionIndex" if first[0].frame is not None else "InstanceNumber"
    return times, f"no TriggerTime (an ungated, real-time cine): frames ordered by {by}, {source}"
