"""The napari layers of one segmentation: labels (the session's buffer), clicks, boxes.

Main-thread only. The clicks (Points) and boxes (Shapes) layers share the image's ``scale``
and ``translate``, so their data coordinates are the image's voxel indices; each point has
features ``structure`` and ``positive``, each box ``structure``. They are input devices and a
view of the session's prompts: :func:`sync_prompt_layers` redraws them from the session
(after undo/redo/replay), :func:`layer_prompts` reads what the user placed on one slice.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._controller import PromptRecord, SegmentController, box_rectangle, point_index, rectangle_box
from .._layers import BOX_FALLBACK_COLOUR, META_LABEL_MAP, META_PROVENANCE, META_SOURCE, META_VOLUME, label_colour_dict

#: click prompts: told apart by shape without colour vision (a disc adds, an x takes away) and by
#: colour, lime and magenta: >= 61 CIEDE2000 apart under every colour vision (lime and red were 19
#: for deutans), each >= 24 over every grey (benchmarks/palette_cvd.py), with a white border
POSITIVE_COLOUR, NEGATIVE_COLOUR = "#00ff00", "#ff00ff"
POSITIVE_SYMBOL, NEGATIVE_SYMBOL = "disc", "x"
MIN_BOX_PX = 2  #: a box prompt's shortest side, pixels: a smaller one gives no mask


@dataclass
class Binding:
    """The layers and controller of one image being segmented."""

    image: Any
    labels: Any
    points: Any
    shapes: Any
    controller: SegmentController

    @property
    def ndim(self) -> int:
        return int(self.image.ndim)

    def current_index(self, viewer: Any) -> tuple[int, int]:
        """(t, z) of the slice the viewer shows for this image."""
        pos = self.image.world_to_data(tuple(viewer.dims.point)[-self.ndim:])
        t, z, _, _ = point_index(pos)
        vol = self.controller.volume
        return min(max(t, 0), vol.n_frames - 1), min(max(z, 0), vol.n_slices - 1)


def add_label_layer(viewer: Any, image: Any, volume: Any, buffer4d: np.ndarray, controller_colours: dict[str, str],
                    label_map: Any) -> Any:
    """Add the label layer whose data is (a view of) the session's (T, Z, Y, X) buffer."""
    data = buffer4d.reshape(image.data.shape)  # a view: the layer and the session share memory
    layer = viewer.add_labels(
        data, name=f"{image.name} labels", scale=image.scale, translate=image.translate, opacity=0.55,
        metadata={META_VOLUME: volume.with_array(buffer4d), META_SOURCE: image.metadata.get(META_SOURCE),
                  META_LABEL_MAP: label_map.to_dict(), META_PROVENANCE: {}},
    )
    set_label_colours(layer, label_map, controller_colours)
    return layer


def set_label_colours(layer: Any, label_map: Any, colours: dict[str, str]) -> None:
    from napari.utils.colormaps import DirectLabelColormap

    layer.colormap = DirectLabelColormap(color_dict=label_colour_dict(label_map, colours))
    layer.metadata[META_LABEL_MAP] = label_map.to_dict()


def add_prompt_layers(viewer: Any, image: Any) -> tuple[Any, Any]:
    """Add the clicks (Points) and boxes (Shapes) layers in the image's geometry."""
    import pandas as pd

    keep_canvas_current_on_removal(viewer)  # their GL objects really deleted when they go

    nd = image.ndim
    yx = np.asarray(image.data.shape[-2:], dtype=float) * np.abs(np.asarray(image.scale[-2:], dtype=float))
    size = float(max(2.0, 0.025 * max(image.data.shape[-2:])))
    points = viewer.add_points(
        np.empty((0, nd)), ndim=nd, name=f"{image.name} clicks", scale=image.scale, translate=image.translate,
        features=pd.DataFrame({"structure": pd.Series([], dtype=object), "positive": pd.Series([], dtype=bool)}),
        face_color="positive", face_color_cycle={True: POSITIVE_COLOUR, False: NEGATIVE_COLOUR},
        border_color="white", border_width=0.15, size=size, out_of_slice_display=False,
    )
    points.events.data.connect(lambda _event, layer=points: set_point_symbols(layer))
    shapes = viewer.add_shapes(
        ndim=nd, name=f"{image.name} boxes", scale=image.scale, translate=image.translate, face_color="transparent",
        edge_color=BOX_FALLBACK_COLOUR, edge_width=max(0.5, 0.004 * float(yx.max()) / float(np.abs(image.scale[-1]))),
        features=pd.DataFrame({"structure": pd.Series([], dtype=object)}),
    )
    return points, shapes


def set_point_symbols(points: Any) -> None:
    """Each click's symbol from its ``positive`` feature (napari gives a new point the layer's
    current symbol); nothing while the features are not yet the points' (mid-redraw)."""
    positive = points.features["positive"] if "positive" in points.features else None
    if positive is None or len(positive) != len(points.data):
        return
    want = np.array([POSITIVE_SYMBOL if p else NEGATIVE_SYMBOL for p in positive], dtype=object)
    if len(want) and [s.value for s in points.symbol] != list(want):
        points.symbol = want


def set_prompt_defaults(b: Binding, structure: str, positive: bool, colour: str) -> None:
    """Features (and box colour) that the next click / box gets."""
    b.points.feature_defaults = {"structure": structure, "positive": bool(positive)}
    b.shapes.feature_defaults = {"structure": structure}
    if b.shapes.selected_data:
        b.shapes.selected_data = set()  # current_edge_color would recolour selected boxes
    b.shapes.current_edge_color = colour


def keys_of_points(b: Binding, indices: Any) -> set[tuple[str, int, int]]:
    """(structure, t, z) of the given point indices (negative indices count from the end)."""
    out = set()
    n = len(b.points.data)
    for i in indices:
        i = int(i) % n if n else 0
        if i < n:
            t, z, _, _ = point_index(b.points.data[i])
            out.add((str(b.points.features["structure"].iloc[i]), t, z))
    return out


def keys_of_moved_points(b: Binding, indices: Any) -> set[tuple[str, int, int]]:
    """:func:`keys_of_points`, and the (structure, t, z) whose click prompts in the session the
    layer no longer holds as many clicks of: a click dragged in a view that shows the slice axis
    (a slice x x view) moves to another slice, and the slice it left is prompted again without it."""
    out = keys_of_points(b, indices)
    have: dict[tuple[str, int, int], int] = {}
    for i, c in enumerate(b.points.data):
        t, z, _, _ = point_index(c)
        key = (str(b.points.features["structure"].iloc[i]), t, z)
        have[key] = have.get(key, 0) + 1
    for r in b.controller.prompt_records():
        key = (r.structure, r.frame, r.slice)
        if have.get(key, 0) != len(r.points):
            out.add(key)
    return out


def remove_items(layer: Any, items: list[np.ndarray]) -> None:
    """Remove the points (or shapes) equal to ``items`` (copies of their data) from ``layer``."""
    drop = {i for i, d in enumerate(layer.data) if any(np.array_equal(np.asarray(d), it) for it in items)}
    if drop:
        layer.selected_data = drop
        layer.remove_selected()


def keys_of_shapes(b: Binding, indices: Any) -> set[tuple[str, int, int]]:
    out = set()
    n = len(b.shapes.data)
    for i in indices:
        i = int(i) % n if n else 0
        if i < n:
            t, z, _, _ = point_index(b.shapes.data[i][0])
            out.add((str(b.shapes.features["structure"].iloc[i]), t, z))
    return out


def layer_prompts(b: Binding, structure: str, t: int, z: int) -> tuple[Any, list[Any]]:
    """The box (the newest one) and clicks the layers hold for ``structure`` on (t, z); a click
    outside the slice is refused (not moved to its edge)."""
    from medseg.errors import PromptError
    from medseg.types import Point

    shape_yx = tuple(b.controller.volume.shape[2:])
    pts = []
    feats = b.points.features
    for i, c in enumerate(b.points.data):
        pt, pz, y, x = point_index(c)
        if (pt, pz) == (t, z) and str(feats["structure"].iloc[i]) == structure:
            if not (-0.5 <= y <= shape_yx[0] - 0.5 and -0.5 <= x <= shape_yx[1] - 0.5):  # beyond the edge pixels' outer half
                raise PromptError(f"click ({y:.0f}, {x:.0f}) lies outside the {shape_yx[0]}x{shape_yx[1]} slice")
            y = float(np.clip(y, 0, shape_yx[0] - 1))
            x = float(np.clip(x, 0, shape_yx[1] - 1))
            pts.append(Point(round(y, 2), round(x, 2), bool(feats["positive"].iloc[i])))
    box = None
    sfeats = b.shapes.features
    for i, (verts, kind) in enumerate(zip(b.shapes.data, b.shapes.shape_type, strict=True)):
        if kind != "rectangle" or str(sfeats["structure"].iloc[i]) != structure:
            continue
        bt, bz, bx = rectangle_box(verts, shape_yx)
        if (bt, bz) == (t, z):
            box = bx
    if box is not None:
        h, w = int(box.y1 - box.y0) + 1, int(box.x1 - box.x0) + 1
        if min(h, w) < MIN_BOX_PX:
            raise PromptError(f"a {h}x{w}-pixel box is too small to segment from: drag a box of at least "
                              f"{MIN_BOX_PX}x{MIN_BOX_PX} pixels around the {structure.upper()} on the slice")
    return box, pts


def drop_non_rectangles(shapes: Any) -> list[str]:
    """Remove the shapes that are not rectangles (ellipses, polygons, lines... drawn with the
    boxes layer's other tools: no box prompt) from the boxes layer; their kinds, one per shape."""
    kinds = [str(k) for k in shapes.shape_type]
    drop = {i for i, k in enumerate(kinds) if k != "rectangle"}
    if drop:
        shapes.selected_data = drop
        shapes.remove_selected()
    return [kinds[i] for i in sorted(drop)]


def added_non_rectangles(shapes: Any, indices: Any) -> bool:
    """Whether any of the given shape indices (negative: from the end) is not a rectangle."""
    kinds = list(shapes.shape_type)
    n = len(kinds)
    return any(n and str(kinds[int(i) % n]) != "rectangle" for i in indices)


def sync_prompt_layers(b: Binding, records: list[PromptRecord], colours: dict[str, str],
                       keep: set[tuple[str, int, int]] | frozenset = frozenset()) -> None:
    """Redraw the clicks and boxes layers from the session's prompt records; on the (structure,
    t, z) in ``keep`` (prompts placed while an operation runs, not yet applied) the layers'
    own clicks and newest box stay instead: the records do not hold them yet."""
    import pandas as pd

    nd = b.ndim
    lead = lambda t, z: [float(t), float(z)][-(nd - 2):] if nd > 2 else []  # noqa: E731
    coords, structs, pos, rects, rstructs, rcolours = _kept_prompts(b, keep, colours) if keep else ([], [], [], [], [], [])
    for r in records:
        if (r.structure, r.frame, r.slice) in keep:
            continue
        for p in r.points:
            coords.append(lead(r.frame, r.slice) + [p.y, p.x])
            structs.append(r.structure)
            pos.append(p.positive)
        if r.box is not None:
            rects.append(box_rectangle(r.box, r.frame, r.slice, nd))
            rstructs.append(r.structure)
            rcolours.append(colours.get(r.structure, BOX_FALLBACK_COLOUR))
    defaults_p = b.points.feature_defaults.copy()
    defaults_s = b.shapes.feature_defaults.copy()
    b.points.selected_data = set()
    b.points.data = np.asarray(coords, dtype=float).reshape(-1, nd)
    b.points.features = pd.DataFrame({"structure": pd.Series(structs, dtype=object), "positive": pd.Series(pos, dtype=bool)})
    b.points.refresh_colors()
    set_point_symbols(b.points)
    b.points.feature_defaults = defaults_p
    b.shapes.selected_data = set()
    b.shapes.data = []
    if rects:
        b.shapes.add_rectangles(rects, edge_color=rcolours)
    b.shapes.features = pd.DataFrame({"structure": pd.Series(rstructs, dtype=object)})
    b.shapes.feature_defaults = defaults_s


def _kept_prompts(b: Binding, keep: Any, colours: dict[str, str]) -> tuple[list, ...]:
    """The clicks and the newest box per (structure, t, z) that the layers hold on the keys in
    ``keep``: (coords, structures, positive, rectangles, their structures, their colours)."""
    coords, structs, pos = [], [], []
    feats = b.points.features
    for i, c in enumerate(b.points.data):
        t, z, _, _ = point_index(c)
        name = str(feats["structure"].iloc[i])
        if (name, t, z) in keep:
            coords.append([float(v) for v in c])
            structs.append(name)
            pos.append(bool(feats["positive"].iloc[i]))
    newest: dict[tuple[str, int, int], np.ndarray] = {}  # (as keys_of_shapes and layer_prompts read them)
    sfeats = b.shapes.features
    for i, (verts, kind) in enumerate(zip(b.shapes.data, b.shapes.shape_type, strict=True)):
        key = (str(sfeats["structure"].iloc[i]), *point_index(verts[0])[:2])
        if kind == "rectangle" and key in keep:
            newest[key] = np.array(verts, dtype=float, copy=True)
    rstructs = [k[0] for k in newest]
    return coords, structs, pos, list(newest.values()), rstructs, [colours.get(n, BOX_FALLBACK_COLOUR) for n in rstructs]


def _canvas_current(viewer: Any) -> Any:
    """Make the viewer's canvas's GL context current; its vispy canvas, or None where it was
    never shown (or napari / vispy are laid out otherwise)."""
    try:
        canvas = viewer.window._qt_viewer.canvas._scene_canvas  # napari has no public handle on it
        native = canvas.native
        if not (native.isVisible() and native.isValid()):
            return None
        native.makeCurrent()
        return canvas
    except (AttributeError, RuntimeError):
        return None


def keep_canvas_current_on_removal(viewer: Any) -> None:
    """Before each layer removal, make the canvas's context current (once per viewer).

    napari runs vispy's queued GL deletes when a layer goes (``context.finish()``) without
    making the canvas's context current. With no context current the deletes were no-ops: every
    closed session left its programs, buffers and textures in the driver (Mesa: +6.5 MB RSS a
    phantom study in a shown viewer); run from Qt's compositing context (llvmpipe) they crashed
    the next frame in ``glDrawArrays``."""
    try:
        native = viewer.window._qt_viewer.canvas._scene_canvas.native
        if getattr(native, "_medseg_current_on_removal", False):
            return
        native._medseg_current_on_removal = True
    except (AttributeError, RuntimeError):
        return
    ref = weakref.ref(viewer)

    def on_removing(_event: Any = None) -> None:
        v = ref()
        if v is not None:
            _canvas_current(v)

    viewer.layers.events.removing.connect(on_removing)


def flush_canvas(viewer: Any) -> None:
    """Run the GL commands vispy queued when layers were removed (their buffers, textures and
    programs deleted) now, outside a frame, in the canvas's context, which stays current (as
    after a frame: see :func:`keep_canvas_current_on_removal`).

    Left queued they run at the start of the next frame, before its first draw; with Mesa's
    OpenGL (llvmpipe under Xvfb or in VMs) the frame after that crashed the process in
    ``glDrawArrays`` once a Shapes layer had gone and only images were left (the boxes layer
    of a closed session). Nothing happens for a viewer whose canvas was never shown.
    """
    canvas = _canvas_current(viewer)
    if canvas is None:
        return
    try:
        canvas.context.flush_commands()
    except (AttributeError, RuntimeError):  # another napari / vispy: leave it to the next frame
        return
