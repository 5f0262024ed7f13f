"""Where studies lie in napari's world, and bringing one into view (no napari or Qt import:
it works on the viewer and layers it is given).

Every medseg image layer is placed by its affine (scale + translate, mm), so two studies of one
viewer (a Sunnybrook DICOM series beside an ACDC NIfTI) can lie far apart: the second is then
drawn nowhere near the camera, or at a slice the sliders do not reach. Nothing here moves data:
:func:`outside_note` says so when a study is added, :func:`show_layer` moves the sliders and the
camera to a study (napari's ``fit_to_view(layers=...)``) when the user picks it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def unwrapped(viewer: Any) -> Any:
    """The viewer itself, not the ``PublicOnlyProxy`` napari hands a widget opened from the
    Plugins menu: through the proxy each ``viewer.layers[name]`` is a new wrapper object, so a
    session kept by its image layer was never found again (after Start session every button
    stayed grey). Any other object is returned as it is."""
    inner = getattr(viewer, "__wrapped__", None)
    return inner if inner is not None and type(viewer).__name__.endswith("PublicOnlyProxy") else viewer


def world_box(layer: Any) -> np.ndarray:
    """(2, ndim) min / max world coordinates of ``layer``'s pixels, their outer halves included."""
    ext = np.sort(np.asarray(layer.extent.world, dtype=float), axis=0)
    half = 0.5 * np.abs(np.asarray(layer.scale, dtype=float))
    return np.stack([ext[0] - half, ext[1] + half])


def overlaps(a: Any, b: Any) -> bool:
    """Whether two layers share world space on every axis they both have (trailing axes)."""
    ba, bb = world_box(a), world_box(b)
    n = min(ba.shape[1], bb.shape[1])
    ba, bb = ba[:, ba.shape[1] - n:], bb[:, bb.shape[1] - n:]
    return bool(np.all(ba[0] <= bb[1]) and np.all(bb[0] <= ba[1]))


def outside_note(layer: Any, others: Iterable[Any]) -> str | None:
    """One status line when ``layer`` overlaps none of ``others`` (other image layers), else None."""
    others = [o for o in others if o is not layer]
    if not others or any(overlaps(layer, o) for o in others):
        return None
    names = ", ".join(f"'{o.name}'" for o in others[:2]) + (" ..." if len(others) > 2 else "")
    return f"'{layer.name}' lies outside the view of {names} (other world coordinates): choose it under Image to go to it."


#: napari blendings with which a layer at full opacity hides the layers under it
COVERING_BLENDINGS = ("translucent", "translucent_no_depth", "opaque")


def covered_note(layer: Any, above: Iterable[Any]) -> str | None:
    """One status line when visible, opaque images of ``above`` (the image layers drawn over
    ``layer``) overlap it and so hide it from view, else None."""
    hiding = [o for o in above if o is not layer and o.visible and float(o.opacity) >= 0.95
              and str(getattr(o.blending, "value", o.blending)) in COVERING_BLENDINGS and overlaps(layer, o)]
    if not hiding:
        return None
    names = ", ".join(f"'{o.name}'" for o in hiding[:2]) + (" ..." if len(hiding) > 2 else "")
    return (f"'{layer.name}' is drawn under {names}, which hide{'s' if len(hiding) == 1 else ''} it: "
            "hide that layer (its eye in the layer list) to see the image you prompt on.")


def _camera(viewer: Any) -> Any:
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def _canvas_size(viewer: Any) -> np.ndarray | None:
    canvas = getattr(viewer, "canvas", None)
    size = getattr(canvas, "size", None) if canvas is not None else getattr(viewer, "_canvas_size", None)
    return None if size is None else np.asarray(size, dtype=float)


def in_view(viewer: Any, layer: Any) -> bool:
    """Whether the viewer draws some of ``layer`` (2-D display): the sliders stand inside its
    extent and the canvas's world rectangle meets its displayed extent."""
    box = world_box(layer)
    lead = viewer.dims.ndim - layer.ndim
    point = np.asarray(viewer.dims.point, dtype=float)
    displayed = [d - lead for d in viewer.dims.displayed if d >= lead]
    for ax in range(layer.ndim):
        if ax not in displayed and not box[0, ax] <= point[lead + ax] <= box[1, ax]:
            return False
    if viewer.dims.ndisplay != 2 or len(displayed) != 2:
        return True
    cam = _camera(viewer)
    centre = np.asarray(cam.center, dtype=float)[-2:]
    size = _canvas_size(viewer)
    half = 0.5 * size / max(float(cam.zoom), 1e-9) if size is not None and size.size == 2 else np.zeros(2)
    lo, hi = box[0, displayed], box[1, displayed]
    return bool(np.all(centre + half >= lo) and np.all(centre - half <= hi))


def _set_point_inside(viewer: Any, axis: int, value: float, bounds: np.ndarray) -> None:
    """Move slider ``axis`` to ``value``, or to another point inside ``bounds`` where napari
    snaps it outside them (to its slider grid, counted from the lowest layer's start): a
    one-slice study (an echo PNG) beside a series at other coordinates was "shown" one step
    beside its only slice, a black canvas."""
    for candidate in (value, *np.linspace(bounds[0], bounds[1], 9)[1:-1]):
        viewer.dims.set_point(axis, float(candidate))
        if bounds[0] <= float(viewer.dims.point[axis]) <= bounds[1]:
            return


def show_layer(viewer: Any, layer: Any) -> None:
    """Move the sliders to the middle of ``layer`` where they stand outside it, and fit the
    camera to it (the layers' data is not touched)."""
    box = world_box(layer)
    lead = viewer.dims.ndim - layer.ndim
    point = np.asarray(viewer.dims.point, dtype=float)
    for ax in range(layer.ndim):
        d = lead + ax
        if d not in viewer.dims.displayed and not box[0, d - lead] <= point[d] <= box[1, d - lead]:
            mid = layer.data_to_world([s // 2 for s in layer.data.shape])[ax]  # a pixel centre
            _set_point_inside(viewer, d, float(mid), box[:, d - lead])
    try:
        viewer.fit_to_view(layers=[layer])
    except (AttributeError, TypeError):  # napari before 0.6: centre the camera on it
        centre = 0.5 * (box[0] + box[1])
        cam = _camera(viewer)
        cam.center = tuple(centre[[d - lead for d in viewer.dims.displayed if d >= lead]])
