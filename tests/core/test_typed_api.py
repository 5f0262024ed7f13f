"""medseg is typed for its users (PEP 561): ``medseg/py.typed`` ships in the package and the
wheel, so mypy / pyright read medseg's annotations in a user's script instead of "module is
installed, but missing library stubs or py.typed marker"; the lazily imported names of
``medseg`` and ``medseg.measure`` are visible to a type checker (an ``if TYPE_CHECKING`` import
for each, else ``medseg.Session`` and ``measure_phase`` are ``Any``); the documented entry points
are annotated with types that resolve. With mypy importable here, a user's script of README's
library calls is checked with ``--strict``."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_py_typed_ships_in_the_package_and_the_wheel():
    import medseg

    assert (Path(medseg.__file__).parent / "py.typed").is_file()
    assert (REPO / "medseg" / "py.typed").is_file()
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["medseg"]


def _type_checking_imports(init: Path) -> dict[str, str]:
    """name -> absolute module of the ``if TYPE_CHECKING:`` imports of a package's __init__."""
    package = ".".join(init.relative_to(REPO).parent.parts)
    out: dict[str, str] = {}
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom), ast.unparse(imp)
                module = (package + "." + (imp.module or "")).rstrip(".") if imp.level else imp.module
                for alias in imp.names:
                    assert alias.asname == alias.name, f"{ast.unparse(imp)}: 'import X as X' re-exports X to a --strict checker"
                    out[alias.name] = module
    return out


@pytest.mark.parametrize("package", ["medseg", "medseg.measure"])
def test_a_type_checker_sees_every_lazy_name(package):
    import importlib

    mod = importlib.import_module(package)
    seen = _type_checking_imports(Path(mod.__file__))
    lazy = {name: (where[0] if isinstance(where, tuple) else f"{package}.{where}") for name, where in mod._LAZY.items()}
    assert seen.keys() == lazy.keys()
    for name, module in seen.items():  # the same object a user gets at run time
        assert getattr(importlib.import_module(module), name) is getattr(mod, name), name
    assert "TYPE_CHECKING" not in dir(mod) and "Any" not in dir(mod)  # tab completion lists the API only


def _entry_points() -> list:
    import medseg
    from medseg.io import read_volume, write_labels
    from medseg.io.volume import Volume, affine_from_spacing
    from medseg.measure import measure_cine, measure_echo, measure_echo_clip, measure_ed_es, measure_phase
    from medseg.models import LoadedModel, load_model
    from medseg.segment import segment_volume
    from medseg.session import Session
    from medseg.types import Box
    from medseg.workers import init_worker

    session = [getattr(Session, n) for n in ("__init__", "apply_prompt", "add_click", "propagate", "auto", "confidence", "review", "provenance",
                                             "undo", "redo", "clear")]
    return [read_volume, write_labels, Volume.with_array, affine_from_spacing, measure_phase, measure_ed_es, measure_cine, measure_echo,
            measure_echo_clip, load_model, LoadedModel.config.fget, segment_volume, *session, Box.from_mask, init_worker, medseg.__getattr__]


def test_the_documented_entry_points_are_annotated_and_their_types_resolve():
    from medseg.confidence import ConfidenceReport
    from medseg.embeddings import EmbeddingCache
    from medseg.models.network import ModelConfig
    from medseg.models.registry import LoadedModel

    # names imported under TYPE_CHECKING only (torch-free imports), as a type checker resolves them
    names = {"LoadedModel": LoadedModel, "ConfidenceReport": ConfidenceReport, "ModelConfig": ModelConfig, "EmbeddingCache": EmbeddingCache}
    for fn in _entry_points():
        where = f"{fn.__module__}.{fn.__qualname__}"
        params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
        assert all(p.annotation is not inspect.Parameter.empty for p in params), (where, [p.name for p in params if p.annotation is inspect.Parameter.empty])
        hints = typing.get_type_hints(fn, localns=names)
        assert "return" in hints, where
    from medseg.segment import segment_volume
    from medseg.session import Session

    assert typing.get_type_hints(Session.confidence, localns=names)["return"] is ConfidenceReport
    assert typing.get_type_hints(LoadedModel.config.fget, localns=names)["return"] is ModelConfig
    for fn in (segment_volume, Session.__init__):  # README passes "lv=1,myo=2,rv=3"
        assert str in typing.get_args(typing.get_type_hints(fn, localns=names)["label_map"]), fn


USER_SCRIPT = '''
from __future__ import annotations

import numpy as np

import medseg
from medseg.io import read_volume, write_labels
from medseg.io.volume import Volume, affine_from_spacing
from medseg.measure import measure_cine, measure_ed_es, measure_phase
from medseg.models import LoadedModel, load_model
from medseg.segment import SegmentResult, segment_volume
from medseg.session import Session
from medseg.types import Box, SlicePrompt


def ed_es(ed_path: str, es_path: str) -> float:
    model: LoadedModel = load_model("default")
    ed, es = read_volume(ed_path), read_volume(es_path)
    res: dict[str, SegmentResult] = {k: segment_volume(v, model, auto=True, label_map="lv=1,myo=2,rv=3") for k, v in (("ed", ed), ("es", es))}
    report = measure_ed_es(res["ed"].labels[0], res["es"].labels[0], ed.affine, res["ed"].label_map)
    write_labels(res["ed"].labels, ed, "ed.nii.gz", res["ed"].label_map, provenance=res["ed"].provenance)
    ef: float = report["lv"]["ef_pct"]
    return ef


def notebook(stack: np.ndarray) -> Session:
    vol = Volume(stack[None], affine_from_spacing((8.0, 1.37, 1.37)), modality="MR")
    session = Session(vol, load_model("default"), "lv=1,myo=2,rv=3")
    session.apply_prompt(SlicePrompt("lv", frame=0, slice=5, box=Box(100, 90, 150, 140)))
    session.propagate("lv", 0, 5)
    measure_phase(session.labels[0], vol.affine, session.label_map)
    return session


def cine(path: str) -> dict[str, object]:
    vol = medseg.read_volume(path)
    res = medseg.segment_volume(vol, medseg.load_model(), auto=True)
    return measure_cine(res.labels, vol.affine, res.label_map, frame_times_s=vol.frame_times_s)


reveal_type(medseg.Session)
reveal_type(measure_phase)
reveal_type(Session.confidence)
reveal_type(LoadedModel.config)
'''


@pytest.mark.slow  # ~15 s: mypy reads numpy's and torch's stubs
def test_mypy_strict_on_a_user_script(tmp_path):
    pytest.importorskip("mypy")
    # medseg as pip installs it (a package folder in a search path; this environment's editable
    # install is an import hook that type checkers cannot follow): no py.typed, no types
    site = tmp_path / "site"
    site.mkdir()
    (site / "medseg").symlink_to(REPO / "medseg", target_is_directory=True)
    (tmp_path / "user.py").write_text(USER_SCRIPT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-color-output", "--cache-dir", str(tmp_path / "cache"),
                          "--python-executable", sys.executable, "user.py"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    lines = out.stdout.splitlines()
    errors = [ln for ln in lines if ": error:" in ln]
    assert not errors, out.stdout[-3000:]
    revealed = [ln.split("Revealed type is ", 1)[1] for ln in lines if "Revealed type is" in ln]
    assert len(revealed) == 4, out.stdout[-3000:]
    assert "medseg.session.Session" in revealed[0] and "-> dict[str, Any]" in revealed[1], revealed
    assert "medseg.confidence.ConfidenceReport" in revealed[2] and "medseg.models.network.ModelConfig" in revealed[3], revealed
