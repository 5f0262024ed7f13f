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
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageReadError
from .geometry import affine_lps_to_ras
from .volume import Volume

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
#: segment labels other tools write -> medseg structure names (matched in lower case, with
#: ``_`` and ``-`` read as spaces: TotalSegmentator's ``heart_ventricle_left`` too)
SEGMENT_NAMES = {
    "left ventricle": "lv", "lv blood pool": "lv", "left ventricular blood pool": "lv", "left ventricle cavity": "lv",
    "left ventricular cavity": "lv", "lv cavity": "lv", "heart ventricle left": "lv",
    "myocardium": "myo", "lv myocardium": "myo", "left ventricular myocardium": "myo", "myocardium of left ventricle": "myo",
    "left ventricle myocardium": "myo", "lv myo": "myo", "heart myocardium": "myo",
    "right ventricle": "rv", "rv blood pool": "rv", "right ventricle cavity": "rv", "right ventricular cavity": "rv",
    "right ventricular blood pool": "rv", "rv cavity": "rv", "heart ventricle right": "rv",
    "left atrium": "la", "heart atrium left": "la", "right atrium": "ra", "heart atrium right": "ra",
    "pulmonary artery": "pa", "main pulmonary artery": "pa",
    # the atria's and vessels' names in medseg's .seg.nrrd files (slicer_seg.DISPLAY_NAMES), and their long forms
    "la blood pool": "la", "left atrial blood pool": "la", "ra blood pool": "ra", "right atrial blood pool": "ra",
    "aortic lumen": "aorta", "pulmonary artery lumen": "pa", "pulmonary trunk": "pa",
    # other tools' label names (--label-map ITK-SNAP label file / nnU-Net dataset.json: medseg.label_files); nnU-Net's ACDC
    "lvc": "lv", "mlv": "myo", "rvc": "rv", "left ventricle blood pool": "lv", "right ventricle blood pool": "rv",
    "la cavity": "la", "ra cavity": "ra",
}
#: SNOMED CT codes of a segment's property type -> medseg structure names, for segments whose
#: label says nothing medseg knows ("Segment 1"): those medseg writes (seg_writer.STRUCTURE_CODES)
#: and myocardium (74281007)
SEGMENT_CODES = {"87878005": "lv", "49848007": "myo", "74281007": "myo", "53085002": "rv", "82471001": "la", "73829009": "ra",
                 "15825003": "aorta", "81040000": "pa"}


def is_dicom_seg(path: str | Path) -> bool:
    """Whether ``path`` is a DICOM Segmentation object (header only)."""
    from .dicom_frames import dcmread  # a deflated file is inflated within the memory available

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(str(path), stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # not DICOM, truncated, a deflate bomb: the image readers give the error
        return False
    return str(ds.get("SOPClassUID", "")) == SEG_SOP_CLASS


def read_dicom_seg(path: str | Path) -> Volume:
    """Read a DICOM SEG into a label :class:`Volume` (module doc)."""
    import highdicom as hd

    from .dicom_frames import dcmread

    p = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # a deflated SEG is inflated within the memory available (dicom_frames.read_deflated)
            ds = dcmread(p)  # its frames stay bit-packed (or compressed) until highdicom builds the volume
        except ImageReadError:
            raise
        except Exception as e:  # pydicom raises many types for broken objects
            raise ImageReadError(f"{p}: cannot read DICOM SEG: {_first_line(e)}") from None
        _check_seg_memory(p, ds)
        try:
            seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
        except ImageReadError:
            raise
        except Exception as e:  # pydicom/highdicom raise many types for broken objects
            raise ImageReadError(f"{p}: cannot read DICOM SEG: {_first_line(e)}") from None
        vol = _seg_volume(seg, p)
    if vol is None:
        raise ImageReadError(f"{p}: the DICOM SEG holds no frames")
    arr, aff = vol  # aff: (slice, row, column) index -> LPS mm
    if arr.ndim != 3:
        raise ImageReadError(f"{p}: the DICOM SEG gives a {arr.ndim}-D array; expected slices x rows x columns")
    normal = np.cross(aff[:3, 2], aff[:3, 1])  # DICOM row direction x column direction
    if np.dot(aff[:3, 0], normal) < 0:  # medseg orders slices along the normal
        arr = arr[::-1]
        aff[:3, 3] = aff[:3, 3] + aff[:3, 0] * (arr.shape[0] - 1)
        aff[:3, 0] = -aff[:3, 0]
    to_medseg = np.zeros((4, 4))
    to_medseg[0, 2] = to_medseg[1, 1] = to_medseg[2, 0] = to_medseg[3, 3] = 1.0  # (x=col, y=row, z=slice) -> (slice, row, col)
    names = _segment_names(seg.SegmentSequence)
    with warnings.catch_warnings():  # pydicom warns of UIDs real scanners write (non-conformant, as in Sunnybrook)
        warnings.simplefilter("ignore")
        try:  # (study, series, SOP instance) UIDs of the images segmented: which frame of a cine it is
            sources = sorted({str(u[2]) for u in seg.get_source_image_uids()})
        except Exception:  # no or malformed references: the SEG still reads, placed on no frame
            sources = []
        source_frames = _source_frames(seg)
    labels = arr.astype(np.uint8 if max(names.values(), default=0) < 256 else np.uint16)
    return Volume(
        array=np.ascontiguousarray(labels)[None],
        affine=affine_lps_to_ras(aff @ to_medseg),
        modality="OT",
        meta={"format": "dicom-seg", "path": str(p), "label_map": names, "source_sop_instance_uids": sources,
              "source_frames": source_frames},
    )


def _check_seg_memory(path: Path, ds: Any) -> None:
    """Refuse, before any frame is unpacked, a SEG whose label volume would not fit in memory: its
    frames (NumberOfFrames x Rows x Columns; a compressed or bit-packed SEG is small on disk
    whatever it declares) unpacked one byte a pixel per segment, as highdicom builds the volume."""
    from .limits import check_decoded_size

    def count(value: Any) -> int:
        try:
            return max(int(value or 0), 0)
        except (TypeError, ValueError):
            return 0

    n_segments = max(len(ds.get("SegmentSequence", None) or []), 1)
    shape = (max(count(ds.get("NumberOfFrames", 1)), 1), count(ds.get("Rows")), count(ds.get("Columns")), n_segments)
    check_decoded_size(path, shape, 1, what="segmentation")


def _source_frames(seg) -> list[list]:
    """``[uid, frame number]`` (1-based) of the multi-frame source frames a SEG's frames derive
    from (an enhanced cine: every frame shares the file's UID); [] when it references none."""
    from pydicom.multival import MultiValue

    out = set()
    try:
        for fg in seg.get("PerFrameFunctionalGroupsSequence", []):
            for der in fg.get("DerivationImageSequence", []):
                for src in der.get("SourceImageSequence", []):
                    if "ReferencedFrameNumber" in src:
                        numbers = src.ReferencedFrameNumber
                        for n in numbers if isinstance(numbers, MultiValue) else [numbers]:
                            out.add((str(src.ReferencedSOPInstanceUID), int(n)))
    except Exception:  # malformed references: placed on no frame
        return []
    return [list(x) for x in sorted(out)]


#: label volume formats that name their segments (``meta["label_map"]``): read by name
NAMED_SEGMENTS = ("dicom-seg", "slicer-seg")


def in_label_map(labels: Volume, label_map) -> Volume:
    """``labels`` in ``label_map``'s values. A DICOM SEG numbers its segments 1..n whatever the
    values were before (a SEG of ACDC labels has lv = 1, not 3), so a SEG whose segment names
    include structures of ``label_map`` is re-encoded by name; so is a 3D Slicer segmentation
    (``.seg.nrrd``), which names its segments too. Other label files, and those whose segments
    carry none of the map's names, are returned as they are (values are the map's)."""
    from ..labels import LabelMap

    own = labels.meta.get("label_map") if labels.meta.get("format") in NAMED_SEGMENTS else None
    if not own:
        return labels
    arr = LabelMap.parse(own).by_name(labels.array, label_map)
    return labels if arr is labels.array else labels.with_array(arr)


def onto_image_stack(image: Volume, labels: Volume) -> Volume:
    """A DICOM SEG that leaves out its empty slices (highdicom's, dcmqi's and 3D Slicer's default:
    frames only where a segment is) on ``image``'s whole stack: each of its slices placed on the
    image slice at the same position, the others empty. Other labels, and a SEG whose slices are
    not slices of ``image`` (another in-plane grid, positions between slices), are returned as
    they are, for the grid check to judge."""
    if labels.meta.get("format") != "dicom-seg" or labels.n_frames != 1:
        return labels
    nz, ny, nx = labels.grid_shape
    if labels.grid_shape == image.grid_shape or (ny, nx) != image.grid_shape[1:]:
        return labels
    corners = [(z, y, x) for z in range(nz) for y, x in ((0, 0), (ny - 1, nx - 1))]
    at = image.world_to_index(labels.index_to_world(corners))  # the SEG's slices in the image's voxels
    want = np.array(corners, dtype=np.float64)
    k = np.round(at[:, 0])
    if not (np.allclose(at[:, 1:], want[:, 1:], atol=0.01) and np.allclose(at[:, 0], k, atol=0.01)):
        return labels
    k = k[::2].astype(int)
    if np.any(k[1:] <= k[:-1]) or k[0] < 0 or k[-1] >= image.grid_shape[0]:
        return labels
    arr = np.zeros((1, *image.grid_shape), labels.array.dtype)
    arr[0, k] = labels.array[0]
    return labels.with_array(arr, affine=image.affine.copy())


def on_one_stack(a: Volume, b: Volume) -> tuple[Volume, Volume]:
    """Two DICOM SEGs of one stack that leave out different empty slices (the ED and ES of a
    reader's contours: the base descends in systole) on the stack both cover, as
    :func:`onto_image_stack` places one on its image; other pairs are returned as they are."""
    if a.meta.get("format") != "dicom-seg" or b.meta.get("format") != "dicom-seg" or a.same_grid(b):
        return a, b
    if a.grid_shape[1:] != b.grid_shape[1:] or a.n_frames != 1 or b.n_frames != 1:
        return a, b
    ends = a.world_to_index(b.index_to_world([(0, 0, 0), (b.grid_shape[0] - 1, 0, 0)]))[:, 0]
    lo, hi = int(np.floor(min(0.0, ends.min()) + 0.5)), int(np.floor(max(a.grid_shape[0] - 1.0, ends.max()) + 0.5))
    affine = a.affine.copy()
    affine[:3, 3] = a.index_to_world([(lo, 0, 0)])[0]
    stack = Volume(array=np.broadcast_to(np.zeros((), np.uint8), (1, hi - lo + 1, *a.grid_shape[1:])), affine=affine)  # its geometry
    return onto_image_stack(stack, a), onto_image_stack(stack, b)


def seg_phase(image: Volume, labels: Volume) -> int | None:
    """The frame of the cine ``image`` that the DICOM SEG ``labels`` segments (one phase, found by
    its source images), so that the two pair up on that frame; None when ``labels`` is not a SEG,
    the image has one frame, or the SEG references none of its frames (the grid check then says so)."""
    if labels.meta.get("format") != "dicom-seg" or image.n_frames < 2:
        return None
    return seg_frame_in(labels, image)


def seg_frame_in(seg: Volume, image: Volume) -> int | None:
    """The frame of ``image`` (a DICOM volume) whose images the SEG ``seg`` references, or None.

    A DICOM SEG holds one phase; over a cine it belongs on the frame of its source images (medseg
    writes ``seg_frameNN.dcm`` per labelled frame, other tools one SEG per phase). Matched on the
    same slice grid by SOP instance UID, or, for a multi-frame source (one UID for all its frames),
    by (UID, referenced frame number); None when the SEG references none of the image's frames or
    several of them."""
    refs = set(seg.meta.get("source_sop_instance_uids") or ())
    uids = image.meta.get("sop_instance_uids")
    if not refs or not uids or seg.array.shape[1:] != image.array.shape[1:]:
        return None
    numbers = image.meta.get("frame_numbers")
    if numbers and any(n is not None for row in numbers for n in row):
        # frames of a multi-frame file share its UID: match (UID, 1-based frame number) instead
        frames = {(u, int(n)) for u, n in seg.meta.get("source_frames") or ()}
        hits = [t for t in range(len(uids)) if frames & {(u, n + 1) for u, n in zip(uids[t], numbers[t]) if n is not None}]
    else:
        hits = [t for t, row in enumerate(uids) if refs & set(row)]
    return hits[0] if len(hits) == 1 else None


def seg_label_map(path: str | Path) -> dict[str, int] | None:
    """Structure name -> segment number of a DICOM SEG (header only), or None when ``path`` is
    not one. Segment labels are matched to medseg's names (``lv``, ``myo``, ..., and common
    spellings: :data:`SEGMENT_NAMES`), else the segment's SNOMED CT property type
    (:data:`SEGMENT_CODES`); others are kept in lower case."""
    from .dicom_frames import dcmread

    if not is_dicom_seg(path):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = dcmread(str(path), stop_before_pixels=True)
            return _segment_names(ds.SegmentSequence)
        except Exception as e:
            raise ImageReadError(f"{path}: cannot read the DICOM SEG's segments: {_first_line(e)}") from None


def _seg_volume(seg: Any, p: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """highdicom's label volume of ``seg``, with the slice-spacing tolerance medseg's DICOM
    reader allows (:func:`medseg.io.dicom_stack._slice_step`: a slice up to 0.1 mm, or 2 % of
    the step, off the regular grid, as scanners that round positions write). highdicom's
    default refused the SEG medseg wrote for a stack whose one slice sat 0.15 mm off an 8 mm
    grid: a SEG may leave out empty slices, so it takes the smallest gap for the step and the
    multiples of it drift (1.35 mm over 9 slices). The retries read every slice as present,
    each gap against the mean one; a gap varies by up to twice the offset of one slice, hence
    the doubled tolerances. A SEG that leaves slices out and is jittered stays refused."""
    from .dicom_stack import JITTER_TOL_MM, POSITION_TOL_MM

    every_slice = {"allow_missing_positions": False}
    tolerances: list[dict[str, Any]] = [{}, {**every_slice, "atol": 2 * max(POSITION_TOL_MM, JITTER_TOL_MM)},
                                        {**every_slice, "rtol": 2 * 0.02}]
    for i, tol in enumerate(tolerances):
        try:
            vol = seg.get_volume(combine_segments=True, **tol)
            return (None if vol is None else (np.asarray(vol.array), np.array(vol.affine, dtype=np.float64)))
        except Exception as e:
            if i + 1 < len(tolerances) and "regularly-spaced" in str(e):
                continue
            sheared = _sheared_volume(seg) if "regularly-spaced" in str(e) else None
            if sheared is not None:
                return sheared
            raise ImageReadError(f"{p}: the DICOM SEG's frames do not form one label volume ({_first_line(e)})") from None


def _sheared_volume(seg: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """The label volume of a SEG whose slices step along a line that leans from their normal (a
    gantry-tilted CT: the table moves along z, the image plane is tilted), which highdicom's
    volume refuses: its frames taken along the normal, then the slice step and origin fitted to
    the frames' own positions, so the affine keeps the shear the DICOM reader gives the images.
    None unless every frame lies within 0.1 mm of that line (positions that scatter in-plane)."""
    from .dicom_stack import JITTER_TOL_MM

    try:
        vol = seg.get_volume(combine_segments=True, perpendicular_tol=1e6)
        ipp = np.array([[float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient]
                        for f in seg.PerFrameFunctionalGroupsSequence], dtype=np.float64)
    except Exception:
        return None
    aff = np.array(vol.affine, dtype=np.float64)
    along = aff[:3, 0]  # highdicom's slice step: along the normal, |step| = the spacing between planes
    k = (ipp - aff[:3, 3]) @ along / float(along @ along)
    idx = np.round(k)
    if np.unique(idx).size < 2 or np.abs(k - idx).max() > 0.05:
        return None
    fit, *_ = np.linalg.lstsq(np.c_[np.ones_like(idx), idx], ipp, rcond=None)  # origin, step (LPS mm)
    if np.linalg.norm(np.c_[np.ones_like(idx), idx] @ fit - ipp, axis=1).max() > JITTER_TOL_MM:
        return None
    aff[:3, 3], aff[:3, 0] = fit[0], fit[1]
    return np.asarray(vol.array), aff


def _segment_names(descriptions) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in descriptions:
        label = str(getattr(d, "SegmentLabel", "") or f"segment {d.SegmentNumber}")
        codes = [str(getattr(c, "CodeValue", "")) for c in getattr(d, "SegmentedPropertyTypeCodeSequence", None) or []]
        # medseg writes its name as the TrackingID (the label readable: "LV blood pool"; earlier versions wrote "lv")
        out.setdefault(structure_name([label, str(getattr(d, "TrackingID", "") or "")], codes), int(d.SegmentNumber))
    return out


def structure_name(labels: Sequence[str], codes: Iterable[str] = ()) -> str:
    """The medseg structure a segment stands for (a DICOM SEG's, a 3D Slicer segmentation's): the
    first of its ``labels`` (its name, then others such as Slicer's segment ID) that is one of
    medseg's names or a spelling :data:`SEGMENT_NAMES` knows (lower case, ``_`` and ``-`` read as
    spaces), else the first of its SNOMED CT ``codes`` in :data:`SEGMENT_CODES`, else its first
    non-empty label in lower case."""
    from ..labels import STRUCTURE_NAMES

    texts = [t for t in (str(x).strip().lower() for x in labels) if t]
    for text in texts:
        name = SEGMENT_NAMES.get(" ".join(text.replace("_", " ").replace("-", " ").split()), text)
        if name in STRUCTURE_NAMES:
            return name
    # a label medseg does not know: the segment's coded type may say
    return next((SEGMENT_CODES[c] for c in map(str, codes) if c in SEGMENT_CODES), texts[0] if texts else "")


def _first_line(e: Exception) -> str:
    text = str(e).splitlines()[0][:160] if str(e) else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
