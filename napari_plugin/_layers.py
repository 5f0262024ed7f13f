"""Layer <-> Volume geometry, shared by the reader, writer, controller and measurement panel.

Qt-free and napari-free: these functions take and return plain arrays, dicts and
:class:`medseg.io.Volume` objects, so they are tested without a viewer.

Convention (written once, here):

* An image layer made by this plugin holds the Volume's (T, Z, Y, X) array unchanged (a
  single frame keeps its T = 1 axis; napari hides sliders of length-1 axes).
* ``scale`` = (1, dz, dy, dx): mm for the three spatial axes, 1 (frame index) for time.
* ``translate`` = (0, oz, oy, ox): the world position (RAS mm) of voxel (0, 0, 0) projected
  on each image axis direction. napari shows the image in its own axis frame (no rotation,
  so prompts stay on the pixel grid); images that share an orientation (the ED and ES frames
  of one study) line up in mm.
* ``metadata["medseg_volume"]`` keeps the source :class:`Volume` (affine, NIfTI header or
  DICOM file list) so labels are written back in exactly the source geometry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from medseg.io.volume import Volume, affine_from_spacing
from medseg.labels import DEFAULT_LABEL_MAP, STRUCTURE_COLOURS, LabelMap
from medseg.preprocess import CT_WINDOW_HU

META_VOLUME = "medseg_volume"  # the source Volume (geometry for the writer)
META_SOURCE = "medseg_source"  # the path it was read from
META_LABEL_MAP = "medseg_label_map"  # {structure: value} of a label layer
META_PROVENANCE = "medseg_provenance"  # session provenance of a label layer
#: the segment panel's untouched default rows (lv ... ra): the map they make, set and cleared by the panel (a
#: row added, a session loaded); a save cuts the layer's map to what was segmented while it is the layer's map
META_DEFAULT_ROWS = "medseg_default_rows"
META_LABEL_FILE = "medseg_label_file"  # the medseg label file a label layer was opened from (the reader)
META_RANGE = "medseg_data_range"  # an image layer's data min..max: its contrast slider's span
META_WRITES = "medseg_writes"  # a label layer: how many times the segmentation session wrote it (the measurement's stale watch)

#: colours of structures medseg does not name (Paul Tol's), >= 20 CIEDE2000 from every STRUCTURE_COLOURS
#: colour (the yellow, gold, dodger blue and tomato here before matched MYO, RV and LV); a custom
#: structure added after the 5 defaults gets #228833 (green), then #aa3377 (purple)
CUSTOM_COLOURS = ("#009988", "#ee3377", "#bbbbbb", "#999933", "#882255", "#228833", "#aa3377")
#: a box prompt of a structure with no colour (and a new box before its structure is known): a violet
#: >= 16.2 CIEDE2000 from every STRUCTURE_COLOURS colour under every colour vision and >= 17.6 over
#: any grey (napari's "yellow" here before was 6.2 from MYO's #f0e442; benchmarks/palette_cvd.py)
BOX_FALLBACK_COLOUR = "#7722ff"


def layer_geometry(volume: Volume) -> dict[str, tuple[float, ...]]:
    """``{"scale": (1, dz, dy, dx), "translate": (0, oz, oy, ox)}`` for a (T, Z, Y, X) layer."""
    dz, dy, dx = volume.spacing
    cols = volume.affine[:3, :3]
    unit = cols / np.linalg.norm(cols, axis=0)  # columns: x, y, z directions
    origin = volume.affine[:3, 3]
    ox, oy, oz = (float(origin @ unit[:, k]) for k in range(3))
    return {"scale": (1.0, float(dz), float(dy), float(dx)), "translate": (0.0, oz, oy, ox)}


def contrast_limits(array: np.ndarray) -> tuple[float, float]:
    """Robust display window (0.5 and 99.5 percentiles of a subsample)."""
    flat = np.asarray(array).reshape(-1)
    step = max(1, flat.size // 500_000)
    vals = flat[::step].astype(np.float64)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(vals, [0.5, 99.5])
    return (float(lo), float(hi) if hi > lo else float(lo) + 1.0)


def data_range(array: np.ndarray) -> tuple[float, float]:
    """The finite min..max of ``array`` (the contrast slider's span; (0, 1) when it has no
    finite value, max > min always)."""
    a = np.asarray(array)
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        a = a[np.isfinite(a)]
    if a.size == 0:
        return (0.0, 1.0)
    lo, hi = float(a.min()), float(a.max())
    return (lo, hi if hi > lo else lo + 1.0)


#: napari's slider names for a (T, Z, Y, X) layer's axes, as docs/napari.md calls them
AXIS_LABELS = ("frame", "slice", "y", "x")


def axis_label_kwargs(ndim: int) -> dict[str, Any]:
    """``{"axis_labels": (...)}`` for a 2-D to 4-D layer (the last ``ndim`` of :data:`AXIS_LABELS`)
    where the installed napari takes layer axis labels (0.6 and later), else ``{}`` (the
    segmentation widget then names the sliders when a session starts)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = (int(x) for x in version("napari").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return {}
    return {"axis_labels": AXIS_LABELS[4 - ndim:]} if (major, minor) >= (0, 6) and 1 <= ndim <= 4 else {}


def image_layer_kwargs(volume: Volume, name: str, source: str | None = None) -> dict[str, Any]:
    """napari ``add_image`` keyword arguments for a Volume (geometry, window, axis names, metadata).

    ``metadata[META_RANGE]`` is the data's min..max: napari pins the contrast slider to the
    initial window, so :func:`widen_contrast_range` gives it that span once the layer is added
    (a CT opens at -250..750 HU and can still be dragged to a lung or bone window)."""
    return {
        "name": name,
        **layer_geometry(volume),
        **axis_label_kwargs(volume.array.ndim),
        # CT: the cardiac window the model sees (-250..750 HU); percentiles would span air to bone
        "contrast_limits": CT_WINDOW_HU if volume.modality == "CT" else contrast_limits(volume.array),
        "colormap": "gray",
        "metadata": {META_VOLUME: volume, META_SOURCE: source or volume.meta.get("path"), META_RANGE: data_range(volume.array)},
    }


def widen_contrast_range(layer: Any) -> None:
    """Give an image layer made by :func:`image_layer_kwargs` the contrast-slider span kept in
    its metadata (the window set when it opened stays); other layers are left as they are."""
    span = getattr(layer, "metadata", {}).get(META_RANGE)
    if span is None or not hasattr(layer, "contrast_limits_range") or getattr(layer, "rgb", False):
        return
    lo, hi = layer.contrast_limits
    layer.contrast_limits_range = (min(float(span[0]), lo), max(float(span[1]), hi))


def as_4d(data: np.ndarray) -> np.ndarray:
    """A (T, Z, Y, X) *view* of a 2-D, 3-D or 4-D layer array (memory shared)."""
    a = np.asarray(data)
    if a.ndim == 4:
        return a
    if a.ndim == 3:
        return a[None]
    if a.ndim == 2:
        return a[None, None]
    raise ValueError(f"medseg works on 2-D to 4-D (T, Z, Y, X) layers, got a {a.ndim}-D layer of shape {a.shape}")


def volume_for_layer(data: Any, scale: Any = None, translate: Any = None, metadata: Mapping[str, Any] | None = None,
                     modality: str = "OT") -> Volume:
    """The Volume behind a layer: the one kept in ``metadata`` when its grid matches ``data``,
    otherwise one built from the layer's ``scale``/``translate`` (diagonal RAS affine)."""
    arr = as_4d(np.asarray(data))
    kept = (metadata or {}).get(META_VOLUME)
    if isinstance(kept, Volume) and kept.shape == arr.shape:
        return kept if kept.array is arr else kept.with_array(arr)
    nd = np.asarray(data).ndim
    sc = list(np.ones(nd) if scale is None else np.asarray(scale, dtype=float))
    tr = list(np.zeros(nd) if translate is None else np.asarray(translate, dtype=float))
    sc4 = [1.0] * (4 - nd) + sc
    tr4 = [0.0] * (4 - nd) + tr
    spacing = (abs(sc4[1]) or 1.0, abs(sc4[2]) or 1.0, abs(sc4[3]) or 1.0)
    aff = affine_from_spacing(spacing, (tr4[3], tr4[2], tr4[1]))
    return Volume(arr, aff, modality=modality, meta={"format": "napari-layer"})


#: the segmentation widget's Modality choices: the image's own, or one of medseg's modalities
MODALITY_FROM_IMAGE = "the image's"
MODALITY_CHOICES = (MODALITY_FROM_IMAGE, "MR", "CT", "US", "OT")


def layer_modality(metadata: Mapping[str, Any] | None) -> str:
    """The modality of the Volume kept in a layer's ``metadata`` ("OT" when none is kept: a
    PNG, an array from the console)."""
    kept = (metadata or {}).get(META_VOLUME)
    return kept.modality if isinstance(kept, Volume) and kept.modality else "OT"


def with_modality(volume: Volume, choice: str) -> Volume:
    """``volume`` as the modality chosen in the widget (``MODALITY_FROM_IMAGE``: as it is), as
    ``--modality`` does on the command line: an echo saved as PNG records none ("OT"), and its
    zero-click pass segmented the RV, not the LA; a CT saved without Hounsfield units got MR
    intensity normalisation."""
    if choice == MODALITY_FROM_IMAGE or choice == volume.modality:
        return volume
    if choice not in MODALITY_CHOICES:
        raise ValueError(f"modality must be one of {', '.join(MODALITY_CHOICES)}, got {choice!r}")
    return volume.with_array(volume.array, modality=choice, meta={**volume.meta, "modality_from": "chosen in napari"})


def label_map_for_layer(metadata: Mapping[str, Any] | None, data: np.ndarray | None = None) -> LabelMap:
    """The label map kept in a label layer's metadata, else medseg's default map extended with
    ``label<N>`` for values it does not name (so any label layer can be written and measured)."""
    kept = (metadata or {}).get(META_LABEL_MAP)
    lmap = LabelMap.parse(dict(kept)) if kept else DEFAULT_LABEL_MAP
    if data is None:
        return lmap
    present = {int(v) for v in np.unique(np.asarray(data)) if v != 0}
    extra = {f"label{v}": v for v in sorted(present) if lmap.name_of(v) is None}
    return LabelMap({**lmap.values, **extra}) if extra else lmap


def mark_default_rows(metadata: dict[str, Any], label_map: LabelMap | None) -> None:
    """Mark a label layer's map as the segment panel's untouched default rows (``label_map``: the
    map they make), or clear the mark (None: rows added, a session loaded, the user's own map)."""
    if label_map is None:
        metadata.pop(META_DEFAULT_ROWS, None)
    else:
        metadata[META_DEFAULT_ROWS] = label_map.to_dict()


def has_default_rows(metadata: Mapping[str, Any] | None) -> bool:
    """Whether a label layer's map is the segment panel's untouched default rows: marked by the
    panel, and the map the mark names is still the layer's (values alone cannot tell them from a
    map of the user's own with the same values: lv=1,myo=2,rv=3,la=4)."""
    mark = (metadata or {}).get(META_DEFAULT_ROWS)
    kept = (metadata or {}).get(META_LABEL_MAP)
    return isinstance(mark, Mapping) and isinstance(kept, Mapping) and bool(mark) and dict(mark) == dict(kept)


def in_layer_map(data: np.ndarray, metadata: Mapping[str, Any] | None, label_map: LabelMap) -> np.ndarray:
    """``data`` of a label layer in ``label_map``'s values: a layer that keeps its own map with other
    values for the same structures (an ES file segmented with ACDC's values, ED with medseg's)
    is re-encoded by structure name; other layers are returned as they are."""
    kept = (metadata or {}).get(META_LABEL_MAP)
    return LabelMap.parse(dict(kept)).by_name(data, label_map) if kept else data


def colour_for(name: str, index: int = 0) -> str:
    return STRUCTURE_COLOURS.get(name, CUSTOM_COLOURS[index % len(CUSTOM_COLOURS)])


def label_colour_dict(label_map: LabelMap, colours: Mapping[str, str] | None = None) -> dict[Any, Any]:
    """``{None: transparent, 0: transparent, value: colour}`` for napari's DirectLabelColormap."""
    out: dict[Any, Any] = {None: "transparent", 0: "transparent"}
    for i, (name, v) in enumerate(label_map.values.items()):
        out[v] = (colours or {}).get(name) or colour_for(name, i)
    return out


def label_features(label_map: LabelMap) -> dict[str, list[Any]]:
    """A label layer's ``features`` naming its structures (``index`` = label value), so napari's
    status bar names the structure under the cursor ("structure: lv")."""
    items = sorted(label_map.values.items(), key=lambda kv: kv[1])
    return {"index": [0] + [v for _, v in items], "structure": ["background"] + [k for k, _ in items]}
