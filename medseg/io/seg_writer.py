"""DICOM SEG writing (highdicom) for volumes read from DICOM.

One segment per structure of the label map (segment numbers 1..N in label-value order),
binary segmentation, frames referencing the source images the volume was read from
(``Volume.meta["files"]`` per (t, z), and ``meta["frame_numbers"]`` for multi-frame sources).
highdicom and pydicom are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_path
from ..errors import ImageWriteError
from ..labels import LabelMap
from .geometry import ORIENTATION_ATOL, slice_normal
from .volume import Volume, require_volume

#: structure name -> SNOMED CT code name in pydicom's code dictionary (``codes.SCT.<name>``)
STRUCTURE_CODES: dict[str, str] = {
    "lv": "LeftVentricle",
    "myo": "LeftVentricleMyocardium",
    "rv": "RightVentricle",
    "la": "LeftAtrium",
    "ra": "RightAtrium",
    "aorta": "Aorta",
    "pa": "PulmonaryArtery",
}


def write_dicom_seg(
    labels: np.ndarray,
    like: Volume,
    path: str | os.PathLike,
    label_map: LabelMap | str | Mapping[str, int],
    frame: int = 0,
    series_description: str = "medseg segmentation",
    series_number: int = 900,
    algorithm_name: str = "medseg",
    algorithm_version: str | None = None,
    automatic: bool = False,
    series_instance_uid: str | None = None,
    instance_number: int = 1,
    algorithm_parameters: Mapping[str, str] | None = None,
) -> Path:
    """Write ``labels`` as a DICOM Segmentation object referencing ``like``'s source images.

    Args:
        labels: (Z, Y, X) or (1, Z, Y, X) integer array on ``like``'s grid, values from
            ``label_map`` (0 = background): one cardiac phase per SEG file, because highdicom
            refuses repeated slice positions.
        like: a Volume read from DICOM (``like.meta["format"] == "dicom"``).
        path: output ``.dcm`` file (written atomically).
        label_map: structure -> label value (LabelMap, "lv=1,myo=2" or a mapping); each
            structure becomes one segment.
        frame: the image frame (phase) ``labels`` belongs to; its source images are referenced,
            and the SEG's content description names it (and its trigger time).
        automatic: segments made with no prompt (zero-click): algorithm type AUTOMATIC, else
            SEMIAUTOMATIC.
        series_instance_uid, instance_number: the phases of one cine written as instances of one
            series (a new series UID by default).
        algorithm_parameters: the model and adapter that made the labels (ids and sha256, as the
            sidecar records them), in every segment's AlgorithmParameters: the SEG alone names them.

    Raises:
        MedsegError: the input was not read from DICOM, or highdicom refused the data.
    """
    check_dicom_source(like)
    from .writers import validate_labels

    label_map = LabelMap.parse(label_map)
    arr = validate_labels(labels, like, label_map)
    arr = arr[None] if arr.ndim == 3 else arr
    if arr.shape[0] > 1:
        raise ImageWriteError(
            f"DICOM SEG holds one cardiac phase (highdicom refuses repeated slice positions); labels have "
            f"{arr.shape[0]} frames: write each frame with frame=t, or write .nii.gz"
        )
    if not 0 <= frame < like.n_frames:
        raise ImageWriteError(f"frame {frame} is outside 0..{like.n_frames - 1}")
    out = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom validation warnings about source headers
        sources, pixel_array, positions, refs = _sources_and_pixels(arr[0], like, frame, label_map)
        when = f"frame {frame}" + (f" ({1000 * like.frame_times_s[frame]:.0f} ms)" if like.frame_times_s is not None else "")
        seg = _build(sources, pixel_array, positions, label_map, series_description, series_number,
                     algorithm_name, algorithm_version, automatic=automatic, series_uid=series_instance_uid,
                     instance_number=instance_number, content=f"{series_description}, {when}", parameters=algorithm_parameters)
        if positions is not None:  # multi-frame sources: reference the frames of phase `frame`
            _reference_source_frames(seg, positions, refs)
        with atomic_path(out) as tmp:
            seg.save_as(tmp)
    return out


def check_dicom_source(like: Volume) -> None:
    """Raise a one-line :class:`ImageWriteError` unless ``like`` can be a DICOM SEG's source:
    read from DICOM, every image with patient position and orientation, one series (highdicom
    builds a SEG over one series' images; cheap: no file is read)."""
    like = require_volume(like, "like (the DICOM image the labels were made on)")
    if like.meta.get("format") != "dicom" or not like.meta.get("files"):
        raise ImageWriteError(
            f"DICOM SEG needs an image read from DICOM; this one was read as {like.meta.get('format') or 'unknown'}"
            + (f" ({like.meta['path']})" if like.meta.get("path") else "") + ": write .nii.gz instead"  # no path: no "(?)"
        )
    if not like.meta.get("positioned"):
        lacks = "no PixelSpacing" if like.meta.get("placed_without_spacing") else "none (e.g. an ultrasound clip)"
        raise ImageWriteError(
            f"DICOM SEG needs images with patient position, orientation and pixel spacing; {like.meta.get('path', '?')} has "
            f"{lacks}: write .nii.gz instead"
        )
    series = like.meta.get("series_instance_uids") or []
    if len(series) > 1:
        raise ImageWriteError(
            f"DICOM SEG references the images of one series; {like.meta.get('path', '?')} is a stack of {len(series)} series "
            "(e.g. a cine saved one series per slice): write .nii.gz instead"
        )
    _check_source_uids(like)


def _check_source_uids(like: Volume) -> None:
    """The UIDs a SEG must copy or reference (type 1 in both): an image without one was found
    by highdicom only after the whole segmentation ("no attribute 'SOPInstanceUID'")."""
    pairs = [(f, u) for frow, urow in zip(like.meta.get("files") or [], like.meta.get("sop_instance_uids") or []) for f, u in zip(frow, urow)
             if f is not None]  # a slice missing from the series (medseg.io.dicom_gaps) has no image to reference
    files, sops = [f for f, _ in pairs], [u for _, u in pairs]
    missing = [(name, n) for name, n in (("SOPInstanceUID", sum(not u for u in sops)),
                                         ("SeriesInstanceUID", int(not like.meta.get("series_instance_uid"))),
                                         ("StudyInstanceUID", int(not like.meta.get("study_instance_uid"))),
                                         ("FrameOfReferenceUID", int(not like.meta.get("frame_of_reference_uid")))) if n]
    if missing:
        name, n = missing[0]
        first = next((Path(str(f)).name for f, u in zip(files, sops) if not u), None) if name == "SOPInstanceUID" else None
        where = f"{n} of its {len(sops)} images" + (f" (e.g. {first})" if first else "") if name == "SOPInstanceUID" else "its images"
        raise ImageWriteError(
            f"DICOM SEG needs the source images' {name} (a SEG copies or references it); {where} in "
            f"{like.meta.get('path', '?')} have none: write .nii.gz instead"
        )


def _segment_numbers(arr: np.ndarray, label_map: LabelMap) -> np.ndarray:
    """Label values -> segment numbers 1..N (label-map structures sorted by value)."""
    lut = np.zeros(int(arr.max(initial=0)) + 1, dtype=np.uint8)
    for number, (_, value) in enumerate(sorted(label_map.values.items(), key=lambda kv: kv[1]), start=1):
        if value < lut.size:
            lut[value] = number
    return lut[arr]


def _sources_and_pixels(
    arr: np.ndarray, like: Volume, frame: int, label_map: LabelMap
) -> tuple[list[Any], np.ndarray, list[Any] | None, list[tuple[str, str, int]]]:
    """Source datasets (headers), the (n_planes, Y, X) segment-number array in their order, and
    for multi-frame sources the explicit plane positions and each plane's source frame
    (SOP class, SOP instance, 1-based frame number); None and [] for single-frame sources.
    highdicom takes one multi-frame source alone: of several (an enhanced file per slice, as
    some scanners export a cine) it gets the first, and :func:`_reference_source_frames` points
    each SEG frame at its own file's frame."""
    from .dicom_frames import read_dicom  # pydicom: a file with or without its Part-10 preamble

    seg_numbers = _segment_numbers(arr, label_map)
    files, numbers = like.meta["files"], like.meta.get("frame_numbers")
    _check_missing_slices(seg_numbers, like, frame)
    planes = [(files[frame][z], numbers[frame][z] if numbers else None, seg_numbers[z]) for z in range(like.n_slices)
              if files[frame][z] is not None]  # a slice missing from the series: no source image, no SEG frame
    paths = list(dict.fromkeys(p for p, _, _ in planes))
    from .archive import local_files  # an image read from a zip: its files are "study.zip!member" references

    with warnings.catch_warnings(), local_files(paths) as local:
        warnings.simplefilter("ignore")
        datasets = {p: _source_header(read_dicom(local[p], stop_before_pixels=True)) for p in paths}
    if all(fr is None for _, fr, _ in planes):  # single-frame sources: one SEG frame each
        sources = [datasets[p] for p, _, _ in planes]
        _unify_grid_headers(sources)
        _fill_slice_thickness(sources, like)
        return sources, np.stack([pl for _, _, pl in planes]), None, []
    import highdicom as hd

    for p, fr, _ in planes:
        if fr is None or "PerFrameFunctionalGroupsSequence" not in datasets[p]:
            raise ImageWriteError(f"DICOM SEG needs per-frame positions; {p} is {'a single-frame file among multi-frame ones' if fr is None else 'a multi-frame file without them'}")
    positions = [hd.PlanePositionSequence(hd.CoordinateSystemNames.PATIENT, _frame_ipp(datasets[p], fr)) for p, fr, _ in planes]
    refs = [(str(datasets[p].SOPClassUID), str(datasets[p].SOPInstanceUID), int(fr) + 1) for p, fr, _ in planes]  # type: ignore[arg-type]
    return [datasets[paths[0]]], np.stack([pl for _, _, pl in planes]), positions, refs


def _check_missing_slices(seg_numbers: np.ndarray, like: Volume, frame: int) -> None:
    """Refuse labels on a slice the series lacks (a blank slice the reader put at a gap,
    :mod:`medseg.io.dicom_gaps`): a SEG frame references a source image, and there is none. The
    SEG is written over the images there are and leaves the position out, as a SEG leaves out an
    empty slice; reading it back (highdicom) puts an empty slice there again."""
    holes = [z for z, f in enumerate(like.meta["files"][frame]) if f is None]
    drawn = [z for z in holes if seg_numbers[z].any()]
    if drawn:
        raise ImageWriteError(
            f"labels on slice{'s' if len(drawn) > 1 else ''} {', '.join(map(str, drawn))}, which the series lacks (a blank slice "
            "put where an image is missing): a DICOM SEG frame references a source image, and there is none: clear "
            f"{'them' if len(drawn) > 1 else 'it'}, or write .nii.gz instead")


def _reference_source_frames(seg: Any, positions: list[Any], refs: list[tuple[str, str, int]]) -> None:
    """Point each SEG frame's source reference at the source frame of its slice in the phase
    written (``refs``: SOP class, SOP instance, 1-based frame number per position), one
    reference per SEG frame, and list the instances referenced in the SEG's
    ReferencedSeriesSequence. highdicom matches SEG frames to a multi-frame source by position
    alone: in a cine it referenced each phase's frame at that position (all set to one frame
    number), and the frames of an enhanced file per slice not at all."""
    import highdicom as hd
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    by_position = {tuple(round(float(v), 3) for v in pos[0].ImagePositionPatient): ref for pos, ref in zip(positions, refs)}
    for fg in seg.PerFrameFunctionalGroupsSequence:
        ref = by_position.get(tuple(round(float(v), 3) for v in fg.PlanePositionSequence[0].ImagePositionPatient))
        if ref is None:
            continue
        src = Dataset()
        src.ReferencedSOPClassUID, src.ReferencedSOPInstanceUID, src.ReferencedFrameNumber = ref
        src.SpatialLocationsPreserved = "YES"
        src.PurposeOfReferenceCodeSequence = Sequence([hd.sr.CodedConcept("121322", "DCM", "Source image for image processing operation")])
        der = Dataset()
        der.SourceImageSequence = Sequence([src])
        der.DerivationCodeSequence = Sequence([hd.sr.CodedConcept("113076", "DCM", "Segmentation")])
        fg.DerivationImageSequence = Sequence([der])
    instances = []
    for sop_class, sop_uid in dict.fromkeys((c, u) for c, u, _ in refs):
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_uid
        instances.append(item)
    seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence = Sequence(instances)


def _unify_grid_headers(sources: list[Any]) -> None:
    """Give the (in-memory) source headers the first one's FrameOfReferenceUID and orientation.

    medseg already stacked these images into one grid by their positions, orientations equal
    within the reader's tolerance. Some anonymised series (e.g. Sunnybrook) carry a different
    FrameOfReferenceUID per file, or orientations that differ in the sixth decimal from image to
    image (Sunnybrook SCD0000301, SCD0000401), and highdicom refuses both (it compares
    orientations exactly). The SEG then states the first image's frame of reference and
    orientation.
    """
    first = sources[0]
    uid = first.get("FrameOfReferenceUID")
    iop = first.get("ImageOrientationPatient")
    for ds in sources[1:]:
        if uid is not None:
            ds.FrameOfReferenceUID = uid
        other = ds.get("ImageOrientationPatient")
        if iop is not None and other is not None and other != iop:
            if not np.allclose([float(v) for v in other], [float(v) for v in iop], atol=ORIENTATION_ATOL):
                raise ImageWriteError(
                    f"DICOM SEG needs one orientation; {Path(getattr(ds, 'filename', None) or 'an image').name} "
                    f"differs from the first image's by more than {ORIENTATION_ATOL}: write .nii.gz instead"
                )
            ds.ImageOrientationPatient = iop


def _fill_slice_thickness(sources: list[Any], like: Volume) -> None:
    """Give the (in-memory) source headers without a SliceThickness value (type 2: present but
    empty, or deleted by an exporter) the distance between ``like``'s slice planes along their
    normal (one slice: the reader's slice spacing). highdicom copies the first source's value into
    the SEG's Pixel Measures: without the attribute it failed after the whole segmentation ("no
    attribute 'SliceThickness'"); with it empty it wrote a SEG that highdicom, and so medseg,
    could not read back ("Sequence does not have the required attributes for a Pixel Measures
    Sequence")."""
    a = np.asarray(like.affine, dtype=np.float64)
    distance = abs(float(a[:3, 2] @ slice_normal(a)))
    for ds in sources:
        value = ds.get("SliceThickness")
        if value is None or str(value).strip() == "":
            ds.SliceThickness = f"{distance:.6g}"


def _blank_invalid_dates(ds: Any) -> Any:
    """Empty top-level DA values that are not real dates (anonymised data such as Sunnybrook's
    '20120000' or '00000000'), which highdicom would refuse to copy into the SEG."""
    import datetime

    for elem in ds:
        if elem.VR == "DA" and elem.value not in (None, ""):
            try:
                datetime.datetime.strptime(str(elem.value).strip()[:8], "%Y%m%d")
            except ValueError:
                elem.value = ""
    return ds


#: patient and study attributes of type 2 (present, may be empty) that highdicom copies from the
#: source into the SEG; anonymisers often delete them, and highdicom then failed on the first
TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
                "AccessionNumber", "ReferringPhysicianName")


def _empty_type2(ds: Any) -> Any:
    """``ds`` with the :data:`TYPE2_COPIED` attributes it lacks added, empty (as the standard
    allows for type 2): a SEG of an anonymised export that removed PatientBirthDate or
    AccessionNumber was refused after the whole segmentation ("no attribute 'PatientBirthDate'")."""
    for keyword in TYPE2_COPIED:
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def _source_header(ds: Any) -> Any:
    """A source image's header as the SEG copies it (in memory): its text read in its own character
    set (:mod:`medseg.io.dicom_charset`), invalid dates emptied, missing type 2 attributes added,
    and the site (InstitutionName, StationName, ...) left out: highdicom copied it into the SEG's
    Contributing Equipment ("Acquisition equipment of the source image(s)")."""
    from .dicom_charset import decode_text
    from .sr_writer import SITE_KEYWORDS

    ds = _empty_type2(_blank_invalid_dates(decode_text(ds)))
    for keyword in SITE_KEYWORDS:
        if keyword in ds:
            delattr(ds, keyword)
    return ds


def _frame_ipp(ds: Any, frame: int | None) -> list[float]:
    fg = ds.PerFrameFunctionalGroupsSequence[frame or 0]
    return [float(v) for v in fg.PlanePositionSequence[0].ImagePositionPatient]


def tracking_uid(study_uid: str, structure: str) -> str:
    """The TrackingUID of ``structure`` (medseg's name: ``lv``) in the study ``study_uid``: the
    same in every SEG of the study (each phase's) and in the SR's measurements of that structure
    (:func:`medseg.io.sr_writer.build_measurement_sr`), so viewers and PACS link the SR's LV values
    to the SEG's LV segment and follow them from report to report."""
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[str(study_uid), "medseg", str(structure)]))


def segment_numbers(label_map: LabelMap) -> dict[str, int]:
    """Structure -> its segment number in a SEG written with ``label_map`` (1..N in value order)."""
    return {name: number for number, (name, _) in enumerate(sorted(label_map.values.items(), key=lambda kv: kv[1]), start=1)}


#: What each structure's segment holds (SegmentDescription, 0062,0006).
STRUCTURE_DESCRIPTIONS = {"lv": "left ventricular blood pool (papillary muscles and trabeculae included)",
                          "myo": "left ventricular myocardium", "rv": "right ventricular blood pool",
                          "la": "left atrial blood pool", "ra": "right atrial blood pool", "aorta": "aortic lumen",
                          "pa": "pulmonary artery lumen"}


def _build(sources: list[Any], pixel_array: np.ndarray, positions: list[Any] | None, label_map: LabelMap, description: str,
           series_number: int, algorithm_name: str, algorithm_version: str | None, automatic: bool = False,
           series_uid: str | None = None, instance_number: int = 1, content: str | None = None,
           parameters: Mapping[str, str] | None = None) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from .. import __version__
    from ..labels import STRUCTURE_COLOURS
    from .dicom_charset import BUILD_CHARACTER_SET, fit_character_set
    from .slicer_seg import DISPLAY_NAMES

    study = str(getattr(sources[0], "StudyInstanceUID", "") or "")
    algo = hd.AlgorithmIdentificationSequence(
        name=algorithm_name, version=algorithm_version or __version__, family=codes.cid7162.ArtificialIntelligence,
        parameters={str(k): str(v) for k, v in parameters.items()} if parameters else None,
    )
    kind = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC if automatic else hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
    descriptions = []
    for name, number in segment_numbers(label_map).items():
        code = getattr(codes.SCT, STRUCTURE_CODES.get(name, "AnatomicalStructure"))
        hexa = STRUCTURE_COLOURS.get(name)
        colour = hd.color.CIELabColor.from_rgb(*(int(hexa[i:i + 2], 16) for i in (1, 3, 5))) if hexa else None
        # the label other viewers show (3D Slicer, OHIF: "LV blood pool", as medseg's .seg.nrrd names it); medseg's
        # name as the TrackingID (read back as a label too), one TrackingUID per structure of the study (every frame's SEG)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=DISPLAY_NAMES.get(name, name)[:64], segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=code, algorithm_type=kind, algorithm_identification=algo, display_color=colour,
            tracking_id=name[:64], tracking_uid=tracking_uid(study, name),
        ))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seg = hd.seg.Segmentation(
                source_images=sources, pixel_array=pixel_array,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
                series_instance_uid=series_uid or hd.UID(), series_number=series_number, sop_instance_uid=hd.UID(),
                instance_number=instance_number, manufacturer="medseg", manufacturer_model_name="medseg",
                software_versions=__version__, device_serial_number="0", series_description=description,
                omit_empty_frames=False, plane_positions=positions, content_description=(content or description)[:64],
                content_label="MEDSEG", content_creator_name="medseg^", specific_character_set=BUILD_CHARACTER_SET,
            )
            for item in seg.SegmentSequence:
                if item.TrackingID in STRUCTURE_DESCRIPTIONS:
                    item.SegmentDescription = STRUCTURE_DESCRIPTIONS[item.TrackingID]
            fit_character_set(seg, sources[0])  # the source's, unless its text (or medseg's) needs another
            return seg
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise ImageWriteError(f"highdicom could not build the DICOM SEG: {str(e).splitlines()[0][:200]}") from None
