"""medseg's napari plugin (npe2; manifest ``napari.yaml``), installed as ``medseg_napari``.

Three faces of the same tools:

* widgets: :class:`SegmentWidget`, :class:`MeasureWidget` and :class:`ReviewWidget` (Plugins > medseg), readers,
  writers and sample data declared in ``napari.yaml``;
* scripting: :func:`open_study` opens a study in a viewer with both widgets docked and a
  session started, :func:`measure_layer` measures a label layer without any GUI;
* console: ``python -m medseg_napari [IMAGE]``.

Importing this package is light: no napari, Qt or torch until a widget or model is used.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "SegmentWidget": ("medseg_napari._qt.segment_widget", "SegmentWidget"),
    "MeasureWidget": ("medseg_napari._qt.measure_widget", "MeasureWidget"),
    "ReviewWidget": ("medseg_napari._qt.review_widget", "ReviewWidget"),
    "SegmentController": ("medseg_napari._controller", "SegmentController"),
    "open_study": ("medseg_napari._scripting", "open_study"),
    "measure_layer": ("medseg_napari._scripting", "measure_layer"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'medseg_napari' has no attribute {name!r}")
