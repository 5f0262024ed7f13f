"""The software and the run settings behind a result, recorded in every output's provenance
(segment / batch sidecars, napari's saved labels, evaluate's RESULT.json, measure's report, an
adapter's ``medseg.json``) and printed by ``medseg --version``: what a methods section needs to
say, and what a reader needs to regenerate the numbers."""

from __future__ import annotations

import platform
import sys
import time
from typing import Any


def _package_version(name: str) -> str | None:
    module = sys.modules.get(name)
    if module is not None and isinstance(getattr(module, "__version__", None), str):
        return str(module.__version__)  # the one imported (torch's holds its build, e.g. 2.14.1+cpu)
    import importlib.util
    import re
    from importlib.metadata import PackageNotFoundError, version
    from pathlib import Path

    spec = importlib.util.find_spec(name)  # a top-level package: found, not imported
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        f = Path(folder) / "version.py"  # torch's build (+cpu, +cu130) is there, not in the metadata
        found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", f.read_text(), re.M) if f.is_file() else None
        if found:
            return found.group(1)
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def utc_timestamp() -> str:
    """Now, in UTC, as ISO 8601 with its zone (``2026-12-07T02:16:53Z``): the ``created`` and
    ``time`` of every provenance record, the same instant whatever the machine's time zone."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def software_versions() -> dict[str, Any]:
    """``{"medseg_version", "python_version", "torch_version", "numpy_version"}`` (a package
    that is not installed: None). Imports nothing heavy."""
    from . import __version__

    return {"medseg_version": __version__, "python_version": platform.python_version(),
            "torch_version": _package_version("torch"), "numpy_version": _package_version("numpy")}


def run_environment(device: str | None = None) -> dict[str, Any]:
    """:func:`software_versions` plus what the model ran with: ``device`` (cpu, cuda) and
    ``torch_threads`` (torch's CPU threads in this process now). Labels were the same with 1, 2
    and 4 threads; trained weights (``adapt``) differ in the last float digits
    (docs/training.md, *Reproducibility*)."""
    import torch

    return {**software_versions(), "device": device, "torch_threads": int(torch.get_num_threads())}
