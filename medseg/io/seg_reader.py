"""DICOM SEG as labels (highdicom): what medseg writes (``medseg segment -o seg.dcm``) and what
other tools export can be measured.

A SEG becomes a one-frame ``(1, Z, Y, X)`` label :class:`Volume` on the grid of the images it
segments: pixel value = segment number (segments that overlap are refused), slices ordered as
medseg's DICOM reader orders them (increasing position along ``row x column``), affine in RAS.
``meta["label_map"]`` maps each segment's label (lower case, e.g. ``lv``) to its number, so
``medseg measure`` needs no ``--label-map`` for a SEG medseg wrote.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import ImageReadError
from .geometry import affine_lps_to_ras
from .volume import Volume

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
#: segment labels other tools write -> medseg structure names
SEGMENT_NAMES = {
    "left ventricle": "lv", "lv blood pool": "lv", "left ventricular blood pool": "lv", "left ventricle cavity": "lv",
    "myocardium": "myo", "lv myocardium": "myo", "left ventricular myocardium": "myo", "myocardium of left ventricle": "myo",
    "right ventricle": "rv", "rv blood pool": "rv", "right ventricle cavity": "rv", "left atrium": "la", "right atrium": "ra",
    "pulmonary artery": "pa", "main pulmonary artery": "pa",
}


def is_dicom_seg(path: str | Path) -> bool:
    """Whether ``path`` is a DICOM Segmentation object (header only)."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # not DICOM, truncated: the image readers give the error
        return False
    return str(ds.get("SOPClassUID", "")) == SEG_SOP_CLASS


def read_dicom_seg(path: str | Path) -> Volume:
    """Read a DICOM SEG into a label :class:`Volume` (module doc)."""
    import highdicom as hd

    p = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            seg = hd.seg.segread(str(p))
        except Exception as e:  # pydicom/highdicom raise many types for broken objects
            raise ImageReadError(f"{p}: cannot read DICOM SEG: {_first_line(e)}") from None
        try:
            vol = seg.get_volume(combine_segments=True)
        except Exception as e:
            raise ImageReadError(f"{p}: the DICOM SEG's frames do not form one label volume ({_first_line(e)})") from None
    if vol is None:
        raise ImageReadError(f"{p}: the DICOM SEG holds no frames")
    arr = np.asarray(vol.array)
    if arr.ndim != 3:
        raise ImageReadError(f"{p}: the DICOM SEG gives a {arr.ndim}-D array; expected slices x rows x columns")
    aff = np.array(vol.affine, dtype=np.float64)  # (slice, row, column) index -> LPS mm
    normal = np.cross(aff[:3, 2], aff[:3, 1])  # DICOM row direction x column direction
    if np.dot(aff[:3, 0], normal) < 0:  # medseg orders slices along the normal
        arr = arr[::-1]
        aff[:3, 3] = aff[:3, 3] + aff[:3, 0] * (arr.shape[0] - 1)
        aff[:3, 0] = -aff[:3, 0]
    to_medseg = np.zeros((4, 4))
    to_medseg[0, 2] = to_medseg[1, 1] = to_medseg[2, 0] = to_medseg[3, 3] = 1.0  # (x=col, y=row, z=slice) -> (slice, row, col)
    names = _segment_names(seg.SegmentSequence)
    labels = arr.astype(np.uint8 if max(names.values(), default=0) < 256 else np.uint16)
    return Volume(
        array=np.ascontiguousarray(labels)[None],
        affine=affine_lps_to_ras(aff @ to_medseg),
        modality="OT",
        meta={"format": "dicom-seg", "path": str(p), "label_map": names},
    )


def seg_label_map(path: str | Path) -> dict[str, int] | None:
    """Structure name -> segment number of a DICOM SEG (header only), or None when ``path`` is
    not one. Segment labels are matched to medseg's names (``lv``, ``myo``, ..., and common
    spellings: :data:`SEGMENT_NAMES`); others are kept in lower case."""
    import pydicom

    if not is_dicom_seg(path):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
            return _segment_names(ds.SegmentSequence)
        except Exception as e:
            raise ImageReadError(f"{path}: cannot read the DICOM SEG's segments: {_first_line(e)}") from None


def _segment_names(descriptions) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in descriptions:
        label = str(getattr(d, "SegmentLabel", "") or f"segment {d.SegmentNumber}").strip().lower()
        out.setdefault(SEGMENT_NAMES.get(label, label), int(d.SegmentNumber))
    return out


def _first_line(e: Exception) -> str:
    text = str(e).splitlines()[0][:160] if str(e) else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
