"""Promptable models: architectures (segment-anything modules), registry, safe loading."""

from __future__ import annotations

from .registry import REGISTRY, LoadedModel, load_model  # noqa: F401

__all__ = ["REGISTRY", "LoadedModel", "load_model"]
