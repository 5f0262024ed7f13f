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
    return [(volume.array, image_layer_kwargs(volume, name), "image"), (labels, truth_kw, "labels")]


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
