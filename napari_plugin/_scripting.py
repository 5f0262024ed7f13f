"""Scripting face: the widgets' tools from Python (a notebook, napari's console, a script).

    viewer, seg, meas = open_study("patient081_frame01.nii.gz")   # reader + widgets + session
    seg.controller.prompt("lv", 0, 5, box=Box(80, 90, 120, 130))   # the Session underneath
    report = measure_layer(viewer.layers["patient081_frame01 labels"])
"""

from __future__ import annotations

import os
from typing import Any

from ._controller import ModelProvider


def add_layer_data(viewer: Any, layer_data: list[tuple[Any, dict[str, Any], str]]) -> list[Any]:
    """Add reader / sample-data tuples ``(data, kwargs, layer_type)`` to a viewer."""
    from napari.layers import Layer

    from ._layers import widen_contrast_range

    layers = [viewer.add_layer(Layer.create(data, kwargs, kind)) for data, kwargs, kind in layer_data]
    for layer in layers:  # the contrast slider spans the data, not just the window it opens at
        widen_contrast_range(layer)
    return layers


def open_study(image: str | os.PathLike | None = None, viewer: Any = None, model: str = "default", device: str = "cpu",
               start: bool = True, models: ModelProvider | None = None) -> tuple[Any, Any, Any]:
    """Open ``image`` (a path medseg can read; None = the synthetic cine phantom) in ``viewer``
    (a new one by default), dock the segmentation and measurement widgets, and start a
    session (the model loads in a worker); the review list is docked too (as
    ``SegmentWidget.review_widget``). Returns (viewer, SegmentWidget, MeasureWidget)."""
    import napari

    from ._qt.measure_widget import MeasureWidget
    from ._qt.review_widget import ReviewWidget
    from ._qt.segment_widget import SegmentWidget
    from ._reader import read_image
    from ._sample_data import make_cine_sample

    if image is None:
        data = make_cine_sample()
    else:
        data = _read_or_say_why(image, read_image)
    viewer = viewer if viewer is not None else napari.Viewer()
    layers = add_layer_data(viewer, data)
    seg = SegmentWidget(viewer, models=models)
    meas = MeasureWidget(viewer)
    # tabbed, not stacked: three docks stacked left the review table ~1 row at 1920x1080 (none at
    # 1400x900) and squeezed the measurement table and plots
    seg_dock = viewer.window.add_dock_widget(seg, name="medseg: segmentation", area="right")
    viewer.window.add_dock_widget(meas, name="medseg: measurement", area="right", tabify=True)
    seg.review_widget = ReviewWidget(viewer, seg)
    viewer.window.add_dock_widget(seg.review_widget, name="medseg: review", area="right", tabify=True)
    from qtpy.QtCore import QTimer

    # the segmentation tab in front, once Qt has built the tab bar (raised at once, the review tab
    # added last stayed in front: "Start a segmentation session, then Check" over a started session)
    QTimer.singleShot(0, seg_dock.raise_)
    seg.ui.image.setCurrentText(layers[0].name)
    seg.ui.model.setCurrentText(model)
    if seg.ui.device.findText(device) < 0:  # cuda:1: not among the choices, which left the session on the cpu without a word
        seg.ui.device.addItem(device)
    seg.ui.device.setCurrentText(device)
    if start:
        seg.start_session()
    return viewer, seg, meas


def _read_or_say_why(image: str | os.PathLike, read_image: Any) -> Any:
    """The reader's layer data for ``image``, or an :class:`ImageReadError` saying why, as the
    CLI does ("no such file or folder: X", "cannot read NIfTI file X: not a NIfTI file ..."):
    ``python -m medseg_napari`` printed the reader's warning with a line of its source code,
    then "error: medseg cannot read X" without the reason."""
    import warnings
    from pathlib import Path

    from medseg.errors import ImageReadError

    if not Path(image).expanduser().exists():
        raise ImageReadError(f"no such file or folder: {image}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = read_image(str(image))
    if data is None:
        said = f"medseg could not read {Path(image).expanduser()}: "  # the reader's warning, its reason after the path
        why = [str(w.message)[len(said):] for w in caught if str(w.message).startswith(said)]
        raise ImageReadError(why[0] if why else f"medseg cannot read {image}")
    return data


def measure_layer(labels_layer: Any, es_layer: Any = None, **options: Any) -> dict[str, Any]:
    """Measure a napari label layer (and optionally an ES label layer) without any widget;
    ``options``: height_cm, weight_kg, heart_rate, sex, basal_rule (False: as ``--no-basal-rule``). See :func:`medseg_napari._measure.measure_labels`."""
    import numpy as np

    from ._layers import in_layer_map, label_map_for_layer, volume_for_layer
    from ._measure import in_use, measure_labels

    like = volume_for_layer(labels_layer.data, labels_layer.scale, labels_layer.translate, labels_layer.metadata)
    es = None if es_layer is None else in_layer_map(np.asarray(es_layer.data), es_layer.metadata, label_map_for_layer(labels_layer.metadata))
    values = np.unique(np.asarray(labels_layer.data)) if es is None else np.union1d(np.unique(labels_layer.data), np.unique(es))
    lmap = in_use(label_map_for_layer(labels_layer.metadata, values), values, labels_layer.metadata)  # as `medseg measure`: no absent aorta
    return measure_labels(np.asarray(labels_layer.data), like, lmap, es, **options)
