"""napari reader: cardiac images through :func:`medseg.io.read_volume`.

DICOM series folders (cine grouped into a time axis), DICOM files, NIfTI 2-4-D, MHA/MHD/NRRD,
AVI/MP4 echo clips and PNG / JPEG / BMP / TIFF frames (every ending :data:`medseg.io.readers.EXTENSIONS` names); a DICOM SEG file becomes a label layer (its segments' names and
colours, on the grid of the images it segments), and so does a 3D Slicer ``.seg.nrrd``. The
image layer holds the (T, Z, Y, X) array with ``scale = (1, dz, dy, dx)`` mm and the source Volume in ``metadata`` (see
:mod:`medseg_napari._layers`). The reader never raises: a path it cannot read gives ``None``
(napari then tries other readers) and a warning that names the reason.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medseg.io.readers import EXTENSIONS, has_dicm_marker

from ._layers import axis_label_kwargs, image_layer_kwargs, widen_contrast_range

#: file endings this reader claims (napari.yaml lists the same patterns)
ENDINGS = tuple(sorted(EXTENSIONS, key=len, reverse=True))  # every ending medseg reads (.jpg, .bmp, .tif too), longest first

LayerData = tuple[Any, dict[str, Any], str]


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData] | None] | None:
    """npe2 reader hook: :func:`read_image` for a path medseg can read, else None."""
    p = _single(path)
    if p is None:
        return None
    if p.is_dir():
        return read_image if _looks_like_dicom_folder(p) else None
    name = p.name.lower()
    if name.endswith(ENDINGS) or has_dicm_marker(p):
        return read_image
    return None


def read_image(path: str | list[str]) -> list[LayerData] | None:
    """Read one image (file or DICOM folder) into one napari image layer; None on failure."""
    p = _single(path)
    if p is None:
        return None
    from medseg.errors import MedsegError, MixedSeriesError
    from medseg.io import is_medseg_labels, read_volume
    from medseg.io.seg_reader import is_dicom_seg
    from medseg.io.slicer_seg import is_slicer_seg

    try:
        if p.is_file() and (is_dicom_seg(p) or is_slicer_seg(p) or is_medseg_labels(p)):
            return _read_seg(p)  # labels, with the structures their SEG or sidecar names
        vol = read_volume(p)
    except MixedSeriesError:
        return _read_each_series(p)
    except MedsegError as e:
        warnings.warn(f"medseg could not read {p}: {e}", stacklevel=2)
        return None
    except (OSError, ValueError) as e:
        warnings.warn(f"medseg could not read {p}: {e}", stacklevel=2)
        return None
    except Exception as e:  # a reader must never raise into napari
        warnings.warn(f"medseg could not read {p}: {type(e).__name__}: {e}", stacklevel=2)
        return None
    if _is_reference_labels(p, vol):
        return _read_seg(p)  # another tool's label file (ACDC's _gt): labels, not an image
    _place_open_segs(vol)
    widen_when_added()
    return [(vol.array, image_layer_kwargs(vol, layer_name(p), str(p)), "image")]


def widen_when_added(viewer: Any = None) -> None:
    """Have ``viewer`` (the current one by default) give each medseg image layer added to it its
    data's contrast-slider span (:func:`medseg_napari._layers.widen_contrast_range`): napari
    takes no such keyword from a reader. Connected once per viewer; no viewer: nothing."""
    try:
        import napari

        viewer = viewer if viewer is not None else napari.current_viewer()
    except Exception:  # no napari or no viewer (a script calling the reader)
        return
    if viewer is not None:
        viewer.layers.events.inserted.connect(_widen_inserted)  # napari ignores a callback connected twice


def _widen_inserted(event: Any) -> None:
    widen_contrast_range(event.value)


#: most distinct values a file named as labels (``C_gt.nii.gz``) may hold to open as labels
MAX_REFERENCE_LABELS = 64


def _is_reference_labels(p: Path, vol: Any) -> bool:
    """A file named as a label file (the suffixes ``batch`` and ``adapt`` pair with their images:
    ``_gt``, ``_seg``, ``_mask``, ...) that holds a few whole non-negative values, as another
    tool's or data set's references do: it opens as a label layer (the measurement panel's label
    map then says which value is which)."""
    import numpy as np

    from medseg.batch.cases import REFERENCE_SUFFIXES

    stem = layer_name(p).lower()
    if not stem.endswith(REFERENCE_SUFFIXES) or vol.array.ndim != 4:
        return False
    arr = vol.array
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            return False
    values = np.unique(arr)
    return bool(values[0] >= 0 and values.size <= MAX_REFERENCE_LABELS)


def _place_open_segs(image: Any) -> None:
    """A cine opened after the SEGs of its phases: move each such SEG label layer onto its frame
    (the reverse of :func:`_seg_on_open_image`)."""
    if getattr(image, "n_frames", 1) < 2 or not image.meta.get("sop_instance_uids"):
        return
    from ._layers import META_VOLUME, layer_geometry

    try:
        import napari

        viewer = napari.current_viewer()
        layers = list(viewer.layers) if viewer is not None else []
    except Exception:  # no napari or no viewer
        return
    for layer in layers:
        seg = getattr(layer, "metadata", {}).get(META_VOLUME)
        if not isinstance(layer, napari.layers.Labels) or seg is None or seg.meta.get("format") != "dicom-seg" or layer.translate[0] != 0:
            continue
        placed, frame = _seg_on(seg, image)
        if placed is not None and placed is not seg:  # a SEG without its empty slices: on the image's whole stack
            layer.data, layer.metadata[META_VOLUME] = placed.array, placed
            layer.translate = layer_geometry(placed)["translate"]
        if frame:
            layer.translate = (float(frame), *layer.translate[1:])
            layer.name = f"{layer.name} (frame {frame})"


def _read_each_series(p: Path) -> list[LayerData] | None:
    """A DICOM folder holding several series that form no one volume (a scanner export): one
    image layer per series that reads ("<folder> #<number> <description>"), the rest warned."""
    from medseg.errors import MedsegError
    from medseg.io import read_volume
    from medseg.io.dicom import list_dicom_series

    layers = []
    for r in list_dicom_series(p):
        tag = (f"#{r['number']:g} " if r["number"] is not None else "") + (r["description"] or "..." + r["uid"][-8:])
        try:
            vol = read_volume(p, series=r["uid"])
        except MedsegError as e:
            warnings.warn(f"medseg could not read series {tag} of {p}: {e}", stacklevel=2)
            continue
        layers.append((vol.array, image_layer_kwargs(vol, f"{layer_name(p)} {tag.strip()}", str(p)), "image"))
    widen_when_added()
    return layers or None


def _read_seg(p: Path) -> list[LayerData]:
    """A DICOM SEG, labels medseg wrote (NIfTI etc. with their sidecar JSON) or another tool's
    label file (:func:`_is_reference_labels`), as a label layer."""
    from medseg.io import read_label_volume
    from medseg.io.writers import own_label_map, sidecar_path, sidecar_problem

    from ._layers import META_LABEL_FILE, META_LABEL_MAP, META_SOURCE, META_VOLUME, label_colour_dict, layer_geometry

    vol = read_label_volume(p)
    frame = None
    if vol.meta.get("format") == "dicom-seg":  # on the grid (and frame) of the images it segments, when open
        vol, frame = _seg_on_open_image(vol)
    own = own_label_map(p, strict=False)  # None: another tool's labels, which do not name their structures
    if own is None and (problem := sidecar_problem(p)) is not None:  # a broken sidecar: no names, said
        warnings.warn(f"{sidecar_path(p)} beside {p.name} {problem}: the labels open without their structures' names", stacklevel=2)
    kwargs: dict[str, Any] = {"name": f"{layer_name(p)} labels", **layer_geometry(vol), **axis_label_kwargs(vol.array.ndim), "opacity": 0.5,
                              "metadata": {META_VOLUME: vol, META_SOURCE: str(p)}}
    if own is not None:
        kwargs["metadata"][META_LABEL_MAP] = own[0].to_dict()
        kwargs["metadata"][META_LABEL_FILE] = str(p)  # saved again: its provenance and the edits made (the writer)
        try:  # napari >= 0.5: the structures' colours
            from napari.utils.colormaps import DirectLabelColormap

            kwargs["colormap"] = DirectLabelColormap(color_dict=label_colour_dict(own[0]))
        except ImportError:  # pragma: no cover - napari absent (pure-Python tests)
            pass
    if frame is not None:  # one phase of an open cine: shown on its own frame, not on frame 0
        kwargs["translate"] = (float(frame), *kwargs["translate"][1:])
        kwargs["name"] = f"{layer_name(p)} labels (frame {frame})"
    return [(vol.array, kwargs, "labels")]


def _seg_on_open_image(seg: Any) -> tuple[Any, int | None]:
    """The SEG on the grid of an image layer open in the current viewer whose DICOM images it
    references (a SEG that leaves out its empty slices, as other tools write them, filled out to
    the image's stack: :func:`medseg.io.seg_reader.onto_image_stack`), and the frame of that
    image it segments when it is a cine (:func:`medseg.io.seg_reader.seg_frame_in`); the SEG
    as read and None when no open image is its own."""
    from ._layers import META_VOLUME

    try:
        import napari

        viewer = napari.current_viewer()
    except Exception:  # no napari or no viewer (a script calling the reader)
        return seg, None
    for layer in list(viewer.layers) if viewer is not None else ():
        vol = getattr(layer, "metadata", {}).get(META_VOLUME)
        if isinstance(layer, napari.layers.Image) and vol is not None and vol.array.ndim == 4:
            placed, frame = _seg_on(seg, vol)
            if placed is not None:
                return placed, frame
    return seg, None


def _seg_on(seg: Any, image: Any) -> tuple[Any, int | None]:
    """(the SEG on ``image``'s grid, the frame of the cine it segments or None) when ``image``
    holds the images it references; (None, None) otherwise."""
    from medseg.io.seg_reader import onto_image_stack, seg_frame_in

    placed = onto_image_stack(image, seg)
    if not placed.same_grid(image):
        return None, None
    if image.n_frames > 1:
        frame = seg_frame_in(placed, image)
        return (placed, frame) if frame is not None else (None, None)
    refs, uids = set(seg.meta.get("source_sop_instance_uids") or ()), image.meta.get("sop_instance_uids") or [[]]
    return (placed, None) if refs & set(uids[0]) else (None, None)


def layer_name(p: Path) -> str:
    name = p.name
    for ext in ENDINGS:
        if name.lower().endswith(ext):
            return name[: -len(ext)] or name
    return name


def _single(path: Any) -> Path | None:
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None  # stacks of files are not a medseg volume; DICOM series come as a folder
        path = path[0]
    if not isinstance(path, (str, os.PathLike)):
        return None
    p = Path(path).expanduser()
    return p if p.exists() else None


def _looks_like_dicom_folder(p: Path, max_checked: int = 20, depth: int = 0) -> bool:
    """True when the folder holds at least one DICOM file (checks a few files), directly or, for
    a study folder with one sub-folder per series, in its sub-folders (as the reader searches)."""
    from medseg.io.dicom import STUDY_DEPTH

    try:
        entries = sorted(os.scandir(p), key=lambda e: e.name)
    except OSError:
        return False
    checked, subs = 0, []
    for e in entries:
        if e.name.startswith("."):
            continue
        if e.is_dir():
            subs.append(Path(e.path))
            continue
        if not e.is_file():
            continue
        q = Path(e.path)
        if q.name.lower().endswith((".dcm", ".dicom", ".ima")) or has_dicm_marker(q):
            return True
        checked += 1
        if checked >= max_checked:
            return False
    return depth < STUDY_DEPTH and any(_looks_like_dicom_folder(d, 3, depth + 1) for d in subs[:4])
