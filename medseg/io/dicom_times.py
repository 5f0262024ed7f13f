"""Frame times of a cine without trigger times: a real-time (ungated) cine records when each
frame was acquired (an enhanced file in its Frame Content group, FrameReferenceDateTime, else
FrameAcquisitionDateTime; one file per image in AcquisitionDateTime, else AcquisitionDate and
AcquisitionTime), not a delay after the R wave. Used by :mod:`medseg.io.dicom` when the
trigger times give none (absent, or one placeholder per slice). An export that writes one
moment into every frame (the series' start copied into each image's AcquisitionDateTime) keeps
the frame's own elsewhere: the next clock of :data:`IMAGE_CLOCKS` (:data:`DATETIME_ATTRS`) whose
times increase with the frame is taken, and the note names it.
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

#: a classic image's clocks, in the order tried (:func:`image_datetimes_s`)
IMAGE_CLOCKS = ("AcquisitionDateTime (or AcquisitionDate and AcquisitionTime)", "AcquisitionDate and AcquisitionTime",
                "ContentDate and ContentTime")

_EPOCH = _dt.datetime(2000, 1, 1)


def frame_datetime_s(frame_content: Any) -> float | None:
    """Seconds since 2000-01-01 of one frame's Frame Content item (:data:`DATETIME_ATTRS`), None
    when it records none or one that is no date-time (the UTC offset is applied when given)."""
    for attr in DATETIME_ATTRS:
        value = frame_content.get(attr) if frame_content is not None else None
        if value not in (None, ""):
            return _datetime_s(value)
    return None


def frame_datetimes_s(frame_content: Any) -> tuple[float | None, float | None]:
    """One frame's clocks, in the order :func:`realtime_frame_times` tries them: that of
    :func:`frame_datetime_s`, then FrameAcquisitionDateTime."""
    acquired = frame_content.get("FrameAcquisitionDateTime") if frame_content is not None else None
    return frame_datetime_s(frame_content), None if acquired in (None, "") else _datetime_s(acquired)


def image_datetime_s(ds: Any) -> float | None:
    """Seconds since 2000-01-01 at which a classic (single-frame) image was acquired:
    AcquisitionDateTime, else AcquisitionDate with AcquisitionTime (a real-time cine saved one
    file per image records no trigger delay, but these); None when it records neither."""
    value = ds.get("AcquisitionDateTime")
    if value not in (None, ""):
        return _datetime_s(value)
    return _date_time_s(ds.get("AcquisitionDate"), ds.get("AcquisitionTime"))


def image_datetimes_s(ds: Any) -> tuple[float | None, float | None, float | None]:
    """A classic image's clocks (:data:`IMAGE_CLOCKS`), in the order :func:`realtime_frame_times`
    tries them: :func:`image_datetime_s`, AcquisitionDate with AcquisitionTime, ContentDate with
    ContentTime (an export that copies one AcquisitionDateTime into every image of a real-time
    cine keeps each image's moment in these)."""
    return (image_datetime_s(ds), _date_time_s(ds.get("AcquisitionDate"), ds.get("AcquisitionTime")),
            _date_time_s(ds.get("ContentDate"), ds.get("ContentTime")))


def _date_time_s(day: Any, clock: Any) -> float | None:
    """Seconds since 2000-01-01 of a DICOM DA and TM pair, None when either is missing or invalid."""
    from pydicom.valuerep import DA, TM

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
    first slice's frame date-times less its first frame's, of the first clock (:data:`IMAGE_CLOCKS`;
    an enhanced file's :data:`DATETIME_ATTRS`) that dates every frame, increases with the frame
    and has a median interval within :data:`FRAME_INTERVAL_S`; (None, ``time_note``) unchanged when none does."""
    first = [row[0] for row in grid]
    placeholder = bool(time_note) and str(time_note).startswith("the images of each slice share one TriggerTime")
    untimed = all(f.trigger_ms is None and not f.trigger_invalid for row in grid for f in row)
    if len(first) < 2 or not (untimed or placeholder):
        return None, time_note
    clocks = [_clocks(getattr(f, "acquired_s", None)) for f in first]
    names = (" or ".join(DATETIME_ATTRS), DATETIME_ATTRS[1]) if first[0].frame is not None else IMAGE_CLOCKS
    found = [(k, t) for k in range(len(names)) if (t := _increasing([c[k] if k < len(c) else None for c in clocks])) is not None]
    if not found:
        return None, time_note
    k, times = found[0]
    instead = f", their {names[0]} no frame clock" if k else ""
    source = f"frame times from the frames' {names[k]}{instead} ({1000 * float(np.median(np.diff(times))):.1f} ms apart)"
    if placeholder:
        return times, str(time_note).replace("frame times left out", source)
    by = "TemporalPositionIndex" if first[0].frame is not None else "InstanceNumber"
    return times, f"no TriggerTime (an ungated, real-time cine): frames ordered by {by}, {source}"


def _clocks(acquired: Any) -> tuple[float | None, ...]:
    """A frame's ``acquired_s`` (one time or the tuple of its clocks) as a tuple."""
    return tuple(acquired) if isinstance(acquired, tuple) else (acquired,)


def _increasing(acquired: list[float | None]) -> np.ndarray | None:
    """Frame times (s, from the first) of one clock's date-times, None when a frame has none, they
    do not increase with the frame or their median interval lies outside :data:`FRAME_INTERVAL_S`."""
    if any(a is None for a in acquired):
        return None
    times = np.round(np.asarray(acquired, dtype=np.float64) - float(acquired[0]), 6)  # type: ignore[arg-type]  # DT holds microseconds
    steps = np.diff(times)
    lo, hi = FRAME_INTERVAL_S
    return times if np.all(steps > 0) and lo <= float(np.median(steps)) <= hi else None
