"""medseg: promptable cardiac image segmentation.

The public API is imported lazily, so ``import medseg`` is fast and pulls in no GUI or CLI
toolkit (napari, Qt, magicgui, typer, rich) and no torch until a model is needed.
"""

from __future__ import annotations

import typing as _typing  # underscored: dir() lists the API only

__version__ = "0.1.0"

if _typing.TYPE_CHECKING:  # what mypy / pyright see of the lazy names below (never imported at run time); keep in step with _LAZY
    from medseg.errors import MedsegError as MedsegError
    from medseg.io import read_volume as read_volume
    from medseg.io import write_labels as write_labels
    from medseg.io.volume import Volume as Volume
    from medseg.labels import DEFAULT_LABEL_MAP as DEFAULT_LABEL_MAP
    from medseg.labels import LabelMap as LabelMap
    from medseg.labels import Structure as Structure
    from medseg.models import load_model as load_model
    from medseg.predictor import SlicePredictor as SlicePredictor
    from medseg.segment import segment_volume as segment_volume
    from medseg.session import Session as Session
    from medseg.types import Box as Box
    from medseg.types import Point as Point
    from medseg.types import SlicePrompt as SlicePrompt

_LAZY = {
    "Volume": ("medseg.io.volume", "Volume"),
    "read_volume": ("medseg.io", "read_volume"),
    "write_labels": ("medseg.io", "write_labels"),
    "LabelMap": ("medseg.labels", "LabelMap"),
    "DEFAULT_LABEL_MAP": ("medseg.labels", "DEFAULT_LABEL_MAP"),
    "Structure": ("medseg.labels", "Structure"),
    "Point": ("medseg.types", "Point"),
    "Box": ("medseg.types", "Box"),
    "SlicePrompt": ("medseg.types", "SlicePrompt"),
    "MedsegError": ("medseg.errors", "MedsegError"),
    "load_model": ("medseg.models", "load_model"),
    "SlicePredictor": ("medseg.predictor", "SlicePredictor"),
    "segment_volume": ("medseg.segment", "segment_volume"),
    "Session": ("medseg.session", "Session"),
}

__all__ = ["__version__", *_LAZY]


def __dir__() -> list[str]:  # a notebook's tab completion lists the lazy names too
    return sorted({*globals(), *_LAZY})


def __getattr__(name: str) -> _typing.Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'medseg' has no attribute {name!r}")
