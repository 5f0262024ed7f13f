"""napari sample data: the project's synthetic phantoms (no downloads).

Each sample gives the image layer (with geometry and the source Volume in metadata, like the
reader) and its exact ground-truth labels as a hidden label layer ``<name> truth``.
"""

from __future__ import annotations

from typing import Any

from ._layers import META_LABEL_MAP, META_VOLUME, axis_label_kwargs, image_layer_kwargs, label_colour_dict, layer_geometry


def _layers(volume: Any, labels: Any, name: str) -> list[tuple[Any, dict[str, Any], str]]:
    from medseg.labels import DEFAULT_LABEL_MAP

    truth_kw = {"name": f"{name} truth", **layer_geometry(volume), **axis_label_kwargs(labels.ndim), "visible": False, "opacity": 0.5,
                "metadata": {META_VOLUME: volume.with_array(labels), META_LABEL_MAP: DEFAULT_LABEL_MAP.to_dict()}}
    try:  # napari >= 0.5: fixed structure colours
        from napari.utils.colormaps import DirectLabelColormap

        truth_kw["colormap"] = DirectLabelColormap(color_dict=label_colour_dict(DEFAULT_LABEL_MAP))
    except ImportError:  # pragma: no cover - napari absent (pure-Python tests)
        pass
    from ._reader import widen_when_added

    widen_when_added()
    truth_kw["metadata"][META_NEW_TRUTH] = True
    _select_image_over_truth()
    return [(volume.array, image_layer_kwargs(volume, name), "image"), (labels, truth_kw, "labels")]


#: metadata of a sample's truth layer until it is added (its image is selected instead)
META_NEW_TRUTH = "medseg_new_truth"
_HOOKED: Any = None  # the viewers whose layer selection :func:`_select_image_over_truth` watches


def _select_image_over_truth(viewer: Any = None) -> None:
    """Have ``viewer`` (the current one by default) select a sample's image, not its hidden truth
    layer, when the sample is added: napari activates the last layer added, and its layer
    controls then offered painting into a layer the student cannot see. Once per viewer."""
    global _HOOKED
    import weakref

    try:
        import napari

        viewer = viewer if viewer is not None else napari.current_viewer()
    except Exception:  # no napari or no viewer (a script calling the sample)
        return
    if viewer is None:
        return
    _HOOKED = _HOOKED if _HOOKED is not None else weakref.WeakSet()
    if viewer in _HOOKED:
        return
    _HOOKED.add(viewer)
    ref = weakref.ref(viewer)
    from qtpy.QtCore import QTimer

    def on_active(event: Any) -> None:
        v, layer = ref(), event.value
        if v is None or layer is None or not layer.metadata.pop(META_NEW_TRUTH, None) or layer not in v.layers:
            return
        below = v.layers.index(layer) - 1  # the sample's image, added just before (a second sample's "[1]" too)
        if not layer.visible and below >= 0 and v.layers[below].visible:
            image = v.layers[below]

            def select() -> None:  # unless the student chose another layer meanwhile
                if v.layers.selection.active is layer and image in v.layers:
                    v.layers.selection.active = image

            # once napari's selection of the truth has reached the layer list's view: selected
            # from inside this event, the view highlighted both rows
            QTimer.singleShot(0, select)

    viewer.layers.selection.events.active.connect(on_active)


def make_cine_sample() -> list[tuple[Any, dict[str, Any], str]]:
    """Synthetic short-axis cine MR: 20 frames x 10 slices of 128 x 128 (1.5 mm, 10 mm slices)."""
    from medseg.phantoms import sample_data_cine

    vol, labels = sample_data_cine()
    return _layers(vol, labels, "cine phantom")


def make_echo_sample() -> list[tuple[Any, dict[str, Any], str]]:
    """Synthetic apical four-chamber echo clip: 16 frames of 224 x 224 (0.3 mm pixels)."""
    from medseg.phantoms import sample_data_echo

    vol, labels = sample_data_echo()
    return _layers(vol, labels, "echo phantom")
