"""3D Slicer segmentation files (``.seg.nrrd``): labels that name their segments.

A Slicer segmentation is a NRRD label volume whose header describes each segment ``i`` (0-based)
in ``key:=value`` lines: ``Segment{i}_ID``, ``_Name``, ``_Color`` ("r g b", 0-1), ``_LabelValue``,
``_Layer``, ``_Extent`` (its voxel bounding box, "x0 x1 y0 y1 z0 z1") and ``_Tags`` (its
terminology: ``TerminologyEntry:<context>~<category>~<type>~...|``, codes as
``scheme^value^meaning``), plus segmentation-wide ``Segmentation_*`` keys.

* :func:`write_slicer_seg` writes one layer (3-D, the label map's values, LPS geometry as the
  ``.nrrd`` writer's) with a segment per structure of the label map, in label-value order, named
  and coloured as medseg shows them and coded with the SNOMED CT types of medseg's DICOM SEGs.
* :func:`read_slicer_seg` reads medseg's files and Slicer's: one layer (newer Slicer), several
  layers (newer Slicer when segments overlap) or one 4-D layer per segment of value 1 (older
  Slicer, no ``_LabelValue``/``_Layer`` keys), flattened into one label array: each segment keeps
  its label value when the values are distinct across layers, else segments are numbered 1..N in
  header order. A voxel in two segments is refused (a label array holds one structure per voxel).
* :func:`slicer_label_map` gives structure -> value from the header alone: a segment's name (or
  ID) matched to medseg's structure names as a DICOM SEG's labels are
  (:func:`medseg.io.seg_reader.structure_name`), else the SNOMED CT code of its terminology type.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_path
from ..errors import ImageReadError, ImageWriteError, LabelMapError
from ..labels import STRUCTURE_COLOURS, LabelMap
from .volume import Volume

#: the output ending that writes a Slicer segmentation (a plain ``.nrrd`` stays a plain label volume)
SEG_NRRD = ".seg.nrrd"
#: segment names medseg writes (``Segment{i}_Name``); the reader maps them back (seg_reader.SEGMENT_NAMES)
DISPLAY_NAMES = {"lv": "LV blood pool", "myo": "LV myocardium", "rv": "RV blood pool", "la": "LA blood pool",
                 "ra": "RA blood pool", "aorta": "Aorta", "pa": "Pulmonary artery"}
TERMINOLOGY_CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
#: category of medseg's structures in Slicer's General Anatomy list, and the category and type
#: of a structure medseg has no code for (Slicer's default for a new segment)
CATEGORY_ANATOMY = "SCT^123037004^Anatomical Structure"
TISSUE = "SCT^85756007^Tissue"
#: an empty segment's extent (VTK's empty extent, as Slicer writes it)
EMPTY_EXTENT = "0 -1 0 -1 0 -1"
#: most header bytes read (a Slicer header is some 700 bytes per segment)
MAX_HEADER_BYTES = 8 << 20


@dataclass(frozen=True)
class Segment:
    """One segment of a Slicer segmentation header."""

    index: int
    id: str
    name: str
    label_value: int | None  # None: no ``_LabelValue`` key (older Slicer: value 1 in its own layer)
    layer: int | None  # None: no ``_Layer`` key
    codes: tuple[str, ...]  # SNOMED CT (or other) code values of its terminology type and region

    @property
    def title(self) -> str:
        return self.name or self.id or f"segment {self.index}"


def is_slicer_seg_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` ends in ``.seg.nrrd`` (the ending that writes a Slicer segmentation)."""
    return Path(path).name.lower().endswith(SEG_NRRD)


def read_nrrd_header(path: str | os.PathLike) -> dict[str, str] | None:
    """The ``key:=value`` pairs of a NRRD header (fields such as ``sizes`` under ``"nrrd:<field>"``),
    or None when ``path`` is not a readable NRRD (``.nrrd``/``.nhdr``) file."""
    p = Path(path)
    if not p.name.lower().endswith((".nrrd", ".nhdr")):
        return None
    try:
        if not p.is_file():
            return None
        with open(p, "rb") as f:
            head = f.read(MAX_HEADER_BYTES)
    except OSError:
        return None
    if not head.startswith(b"NRRD000"):
        return None
    end = re.search(rb"\r?\n\r?\n", head)
    text = head[: end.start() if end else len(head)].decode("latin-1")
    out: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":=")
        if sep:
            out[key] = re.sub(r"\\(n|\\)", lambda m: "\n" if m.group(1) == "n" else "\\", value)
        else:
            field, sep, value = line.partition(":")
            if sep:
                out[f"nrrd:{field.strip().lower()}"] = value.strip()
    return out


def is_slicer_seg(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a 3D Slicer segmentation: a NRRD whose header holds Slicer's segment
    or segmentation keys (whatever its name: ``.seg.nrrd`` or a plain ``.nrrd``)."""
    header = read_nrrd_header(path)
    return header is not None and _is_segmentation(header)


def _is_segmentation(header: Mapping[str, str]) -> bool:
    return any(k.startswith("Segmentation_") or re.fullmatch(r"Segment\d+_(ID|Name|LabelValue)", k) for k in header)


def segments_of(header: Mapping[str, str]) -> list[Segment]:
    """The segments a Slicer header describes, in the order of their indices."""
    indices = sorted({int(m.group(1)) for k in header if (m := re.fullmatch(r"Segment(\d+)_\w+", k))})
    out = []
    for i in indices:
        get = lambda key, i=i: header.get(f"Segment{i}_{key}", "").strip()  # noqa: E731
        out.append(Segment(index=i, id=get("ID"), name=get("Name"), label_value=_int_or_none(get("LabelValue")),
                           layer=_int_or_none(get("Layer")), codes=_terminology_codes(get("Tags"))))
    return out


def _int_or_none(text: str) -> int | None:
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


def _terminology_codes(tags: str) -> tuple[str, ...]:
    """Code values of the terminology entry's type and anatomic region (``Segment{i}_Tags``:
    ``...|TerminologyEntry:context~category~type~type modifier~anatomic context~region~region
    modifier|...``, each code ``scheme^value^meaning``)."""
    for tag in tags.split("|"):
        key, _, value = tag.partition(":")
        if key.strip() == "TerminologyEntry":
            fields = value.split("~")
            return tuple(code.split("^")[1] for code in (fields[2:3] + fields[5:6]) if len(code.split("^")) > 1 and code.split("^")[1])
    return ()


def segment_values(segments: list[Segment]) -> list[int]:
    """The label value each segment gets in medseg's one label array: its own ``_LabelValue``
    (1 without one, as older Slicer's layers of value 1) when these are distinct and fit a label
    map, else 1..N in header order."""
    given = [s.label_value if s.label_value is not None else 1 for s in segments]
    if len(set(given)) == len(given) and all(0 < v <= 65535 for v in given):
        return given
    return list(range(1, len(segments) + 1))


def label_map_of(segments: list[Segment]) -> dict[str, int]:
    """Structure name -> value of the segments (:func:`segment_values`): medseg's names where a
    segment's name, ID or terminology code says one; others by their name in lower case, with
    characters a label map does not take as ``_``. A second segment of one structure is left out."""
    from .seg_reader import structure_name

    out: dict[str, int] = {}
    for s, v in zip(segments, segment_values(segments)):
        name = structure_name([s.name, s.id], s.codes)
        if not re.fullmatch(r"[a-z0-9_-]+", name):
            name = re.sub(r"[^a-z0-9_-]+", "_", name).strip("_") or f"segment_{s.index}"
        out.setdefault(name, v)
    return out


def slicer_label_map(path: str | os.PathLike) -> dict[str, int] | None:
    """Structure -> label value of a Slicer segmentation (header only), or None when ``path`` is
    not one or names no segment."""
    header = read_nrrd_header(path)
    if header is None or not _is_segmentation(header):
        return None
    segments = segments_of(header)
    return label_map_of(segments) if segments else None


def read_slicer_seg(path: str | os.PathLike) -> Volume:
    """Read a Slicer segmentation into a one-frame label :class:`Volume` (module doc);
    ``meta["label_map"]`` names its segments' values, ``meta["segment_names"]`` gives each
    structure's segment name in the file.

    Raises:
        LabelMapError: two segments share voxels, or a segment's layer is not in the file.
        ImageReadError / GeometryError: the file does not read (as for any NRRD).
    """
    p = Path(path)
    header = read_nrrd_header(p)
    if header is None or not _is_segmentation(header):
        raise ImageReadError(f"{p}: not a 3D Slicer segmentation (a NRRD with Segment keys)")
    segments = segments_of(header)
    layers, affine, base_meta = _read_layers(p)  # (L, Z, Y, X), its geometry
    values = segment_values(segments)
    if layers.shape[0] == 1 and all(s.label_value is not None for s in segments) and values == [s.label_value for s in segments]:
        labels = layers[0]  # one layer holding the segments' own values: as it is, bit for bit
    else:
        labels = _flatten(p, layers, segments, values)
    names = label_map_of(segments)
    by_value = {v: s.title for s, v in zip(segments, values)}
    meta = {**base_meta, "format": "slicer-seg", "path": str(p), "label_map": names,
            "segment_names": {n: by_value[v] for n, v in names.items()}, "layers": int(layers.shape[0])}
    return Volume(array=np.ascontiguousarray(labels)[None], affine=affine, modality="OT", spacing_known=True, meta=meta)


def _read_layers(p: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The file's layers as (L, Z, Y, X), its RAS affine and the ITK reader's meta. One layer: medseg's ITK
    reader; several (a 4-D NRRD whose first axis is a list: SimpleITK reads it as a vector
    image, whose components the ITK reader would blend into luminance): read here, its geometry
    built as the ITK reader builds it."""
    import SimpleITK as sitk

    from .geometry import affine_from_sitk
    from .itk import _check_data_file, _native_stderr, _unreadable, execute_checked, read_itk

    _check_data_file(p)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    try:
        with _native_stderr() as said:
            reader.ReadImageInformation()  # the header only
    except Exception as e:  # SimpleITK raises RuntimeError with a multi-line ITK trace
        raise _unreadable(p, e, said()) from None
    n_layers = reader.GetNumberOfComponents()
    if n_layers <= 1:
        vol = read_itk(p)
        if vol.n_frames > 1:
            raise ImageReadError(f"{p}: a 4-D NRRD whose 4th axis is not a list of layers; a Slicer segmentation is 3-D")
        return vol.array, vol.affine, dict(vol.meta)
    if reader.GetDimension() != 3:
        raise ImageReadError(f"{p}: a {reader.GetDimension()}-D image of {n_layers} layers; a Slicer segmentation is 3-D")
    img = execute_checked(reader, p, (*reversed(reader.GetSize()), n_layers))  # the memory guard first
    array = sitk.GetArrayFromImage(img)  # (Z, Y, X, L)
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise LabelMapError(f"{p}: the segmentation's layers hold non-integer values; labels must be integers")
    return np.moveaxis(array, -1, 0), affine_from_sitk(img), {"path": str(p), "source_ndim": 4}


def _flatten(p: Path, layers: np.ndarray, segments: list[Segment], values: list[int]) -> np.ndarray:
    """One label array of the segments in ``layers`` (each segment's voxels: its ``_LabelValue``
    in its layer, or any non-zero voxel of its own layer without one) with ``values``."""
    old_style = all(s.layer is None for s in segments) and layers.shape[0] > 1
    out = np.zeros(layers.shape[1:], np.uint8 if max(values, default=0) < 256 else np.uint16)
    owner: dict[int, Segment] = {}
    for s, v in zip(segments, values):
        layer = (s.index if old_style else s.layer) or 0
        if not 0 <= layer < layers.shape[0]:
            raise LabelMapError(f"{p}: segment {s.title!r} is on layer {layer}, the file has {layers.shape[0]} layer(s)")
        mask = layers[layer] == s.label_value if s.label_value is not None and not old_style else layers[layer] != 0
        hit = out[mask]
        if hit.any():
            other = owner[int(hit[hit != 0][0])]
            raise LabelMapError(f"{p}: segments {other.title!r} and {s.title!r} overlap ({int(np.count_nonzero(hit))} voxels); "
                                "medseg's labels hold one structure per voxel: remove the overlap in 3D Slicer and save again")
        out[mask] = v
        owner[v] = s
    return out


def slicer_metadata(labels: np.ndarray, label_map: LabelMap) -> dict[str, str]:
    """The header keys of a one-layer Slicer segmentation of ``labels`` ((Z, Y, X), values of
    ``label_map``): a segment per structure, in label-value order."""
    from pydicom.sr.codedict import codes

    from .seg_writer import STRUCTURE_CODES

    meta: dict[str, str] = {}
    for i, (name, value) in enumerate(sorted(label_map.values.items(), key=lambda kv: kv[1])):
        key = f"Segment{i}_"
        hexa = STRUCTURE_COLOURS.get(name, "#808080")
        if name in STRUCTURE_CODES:
            code = getattr(codes.SCT, STRUCTURE_CODES[name])
            category, kind = CATEGORY_ANATOMY, f"SCT^{code.value}^{code.meaning}"
        else:
            category, kind = TISSUE, TISSUE
        meta.update({
            key + "Color": " ".join(f"{int(hexa[j:j + 2], 16) / 255:.6g}" for j in (1, 3, 5)),
            key + "ColorAutoGenerated": "0",
            key + "Extent": _extent(labels == value),
            key + "ID": name,
            key + "LabelValue": str(int(value)),
            key + "Layer": "0",
            key + "Name": DISPLAY_NAMES.get(name, name),
            key + "NameAutoGenerated": "0",
            key + "Tags": f"TerminologyEntry:{TERMINOLOGY_CONTEXT}~{category}~{kind}~^^~{ANATOMIC_CONTEXT}~^^~^^|",
        })
    meta.update({"Segmentation_ContainedRepresentationNames": "Binary labelmap|",
                 "Segmentation_MasterRepresentation": "Binary labelmap",
                 "Segmentation_ReferenceImageExtentOffset": "0 0 0"})
    return meta


def _extent(mask: np.ndarray) -> str:
    """"x0 x1 y0 y1 z0 z1" voxel bounds (NRRD axis order: x fastest) of a (Z, Y, X) mask."""
    if not mask.any():
        return EMPTY_EXTENT
    bounds = []
    for axis in (2, 1, 0):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        bounds += [int(hit[0]), int(hit[-1])]
    return " ".join(map(str, bounds))


def write_slicer_seg(labels: np.ndarray, like: Volume, path: str | os.PathLike, label_map: LabelMap) -> Path:
    """Write validated ``labels`` ((Z, Y, X), or (1, Z, Y, X)) of ``like``'s grid as a one-layer
    Slicer segmentation, geometry as :func:`medseg.io.itk.write_itk_labels` writes it (LPS),
    compressed, atomically."""
    import SimpleITK as sitk

    from .geometry import sitk_geometry_from_affine

    a = labels if labels.ndim == 3 else labels[0] if labels.shape[0] == 1 else None
    if a is None:
        raise ImageWriteError(f"{Path(path).name}: a Slicer segmentation (.seg.nrrd) is 3-D; these labels have {labels.shape[0]} frames: "
                              "write one frame's labels, or .nii.gz (4-D)")
    img = sitk.GetImageFromArray(np.ascontiguousarray(a), isVector=False)
    origin, spacing, direction = sitk_geometry_from_affine(like.affine, ndim=3)
    img.SetOrigin(origin)
    img.SetSpacing(spacing)
    img.SetDirection(direction)
    for key, value in slicer_metadata(a, label_map).items():
        img.SetMetaData(key, value)
    with atomic_path(path) as tmp:
        sitk.WriteImage(img, str(tmp), useCompression=True)
    return Path(path)
