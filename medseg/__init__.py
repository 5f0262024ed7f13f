"""medseg: promptable cardiac image segmentation.

The public API is imported lazily, so ``import medseg`` is fast and pulls in no GUI or CLI
toolkit (napari, Qt, magicgui, typer, rich) and no torch until a model is needed.
"""

from __future__ import annotations

__version__ = "0.1.0"

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


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'medseg' has no attribute {name!r}")
