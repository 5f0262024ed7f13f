"""The wheel (built from the checkout, and from the sdist as ``python -m build`` and ``pip install
medseg-*.tar.gz`` do) holds what medseg loads at run time and nothing else; installed from it
outside a venv's prefix (``pip install --user``, Debian's /usr/local, ``--prefix``, ``--target``),
the shipped model and adapters are found.

The build runs on a copy of the checkout (setuptools writes build/ and *.egg-info beside the
sources; a stale build/lib would also leak removed modules into the wheel), with setuptools'
PEP 517 hooks and no network. Skipped when setuptools cannot build here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # ~25 s: two builds and two pip installs

REPO = Path(__file__).resolve().parents[2]
DATA = "medseg-0.1.0.data/data/share/medseg"
SHIPPED = [f"{DATA}/checkpoints/{n}" for n in ("medseg_default.safetensors", "SHA256SUMS.json", "README.md")] + \
    [f"{DATA}/adapters/cmr-lge/{n}" for n in ("adapter_config.json", "adapter_model.safetensors", "medseg.json", "README.md")] + \
    [f"{DATA}/CITATION.cff"]  # METHODS.md's Cite list (medseg._methods_cite.citation_path)
# folders of the checkout that never belong in a wheel
NOT_COPIED = {".git", ".venv", "build", "dist", "work_data", "runs", "_gpu", "tmp", ".whl", ".pytest_cache", ".ruff_cache", ".mypy_cache"}

BUILD = """
import os, sys, tarfile
from pathlib import Path
from setuptools import build_meta
src, out = Path(sys.argv[1]), Path(sys.argv[2])
os.chdir(src)
sdist = build_meta.build_sdist(str(out))
whl = build_meta.build_wheel(str(out / "direct"))
with tarfile.open(out / sdist) as t:
    t.extractall(out / "unpacked", filter="data")
os.chdir(next((out / "unpacked").iterdir()))
whl2 = build_meta.build_wheel(str(out / "from_sdist"))
print("BUILT", out / "direct" / whl, out / sdist, out / "from_sdist" / whl2)
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pytest.importorskip("setuptools")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=lambda d, names: [n for n in names if (Path(d) == REPO and n in NOT_COPIED) or n.endswith(".egg-info")])
    (src / "medseg" / "__pycache__").mkdir(exist_ok=True)
    (src / "medseg" / "__pycache__" / "stray.cpython-311.pyc").write_bytes(b"")
    (src / "work_data").mkdir()
    (src / "work_data" / "scratch.npz").write_bytes(b"")
    out = subprocess.run([sys.executable, "-c", BUILD, str(src), str(tmp / "out")], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        pytest.skip(f"cannot build the wheel here: {out.stderr.strip().splitlines()[-1:]}")
    direct, sdist, from_sdist = map(Path, out.stdout.splitlines()[-1].split()[1:])  # setuptools logs to stdout first
    return direct, sdist, from_sdist


def _names(whl: Path) -> list[str]:
    with zipfile.ZipFile(whl) as z:
        return z.namelist()


def _loaded_beside_code() -> set[str]:
    """Files the code reads beside itself (``Path(__file__).with_name("X")``) that the checkout has."""
    out = set()
    for py in (REPO / "medseg").rglob("*.py"):
        for name in re.findall(r"Path\(__file__\)\.with_name\([\"']([^\"']+)[\"']\)", py.read_text(encoding="utf-8")):
            if (py.parent / name).is_file():
                out.add(str((py.parent / name).relative_to(REPO)))
    return out


def test_wheel_holds_what_runs_and_nothing_else(built):
    direct, _, from_sdist = built
    names = _names(direct)
    for needed in [*SHIPPED, "medseg_napari/napari.yaml", "medseg/py.typed", "medseg/cli/__init__.py", "medseg_napari/_qt/segment_widget.py", *_loaded_beside_code()]:
        assert names.count(needed) == 1, needed
    assert {"medseg/_confidence_calibration.json", "medseg/_mask_thresholds.json"} <= _loaded_beside_code()
    assert sum(n.endswith("medseg_default.safetensors") for n in names) == 1 and len(set(names)) == len(names)
    assert f"medseg-{__import__('medseg').__version__}.dist-info/licenses/LICENSE" in names  # the licence the metadata names (Apache-2.0), with the code
    for py in list((REPO / "medseg").rglob("*.py")) + list((REPO / "napari_plugin").rglob("*.py")):
        rel = py.relative_to(REPO).as_posix()
        assert rel.replace("napari_plugin/", "medseg_napari/", 1) in names, rel
    bad = [n for n in names if n.endswith((".pyc", ".npz")) or n.split("/")[0] in ("tests", "work_data", "docs", "benchmarks", "examples", "checkpoints", "adapters")]
    assert not bad, bad
    with zipfile.ZipFile(direct) as z:
        entry = z.read("medseg-0.1.0.dist-info/entry_points.txt").decode()
    assert "[napari.manifest]\nmedseg = medseg_napari:napari.yaml" in entry and "medseg = medseg.cli:main" in entry
    assert sorted(names) == sorted(_names(from_sdist))  # the sdist carries everything its wheel needs


def test_sdist_holds_no_tests_or_caches(built):
    _, sdist, _ = built
    with tarfile.open(sdist) as t:
        names = [n.split("/", 1)[1] for n in t.getnames() if "/" in n]
    assert not [n for n in names if n.startswith(("tests/", "work_data", ".venv")) or n.endswith(".pyc")]
    assert "checkpoints/medseg_default.safetensors" in names and "MANIFEST.in" in names


@pytest.mark.parametrize("how", ["prefix", "target"])
def test_installed_outside_the_venv_prefix_finds_the_shipped_model(built, tmp_path, how):
    """``pip install --prefix P`` (the layout of --user and of Debian's /usr/local) and
    ``--target T``: the data files are not under sys.prefix/share."""
    from importlib.metadata import distribution

    where = tmp_path / how
    ours = distribution("medseg").read_text("RECORD")  # this environment's medseg (the editable install)
    # --ignore-installed: without it, `pip install --prefix` of medseg 0.1.0 uninstalls the
    # environment's own (editable) medseg 0.1.0 first
    out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-compile", "--ignore-installed",
                          f"--{how}", str(where), str(built[0])], capture_output=True, text=True, timeout=120)
    assert distribution("medseg").read_text("RECORD") == ours, "pip changed this environment's medseg"
    if out.returncode != 0:
        pytest.skip(f"pip cannot install here: {out.stderr.strip()[-300:]}")
    site = where if how == "target" else next(where.glob("lib/python*/site-packages"))
    code = ("import medseg, sys\n"
            "from medseg.models.registry import shipped_checkpoint, shipped_sha256\n"
            "from medseg.adapters import list_adapters\n"
            "from medseg._methods_cite import citation_path, software_entry\n"
            "print(medseg.__file__); print(shipped_checkpoint()); print(shipped_sha256())\n"
            "print([r['source'] for r in list_adapters()])\n"
            "print(citation_path()); print(software_entry('0.1.0'))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={"PYTHONPATH": str(site), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-1500:]
    file, ckpt, sha, adapters, cff, cite = run.stdout.splitlines()
    assert Path(file).is_relative_to(site)
    assert Path(ckpt) == where / "share" / "medseg" / "checkpoints" / "medseg_default.safetensors"
    assert len(sha) == 64
    assert str(where / "share" / "medseg" / "adapters" / "cmr-lge") in adapters
    assert Path(cff) == where / "share" / "medseg" / "CITATION.cff"  # the Cite list's authors and references, not the bare package name
    assert cite.startswith("medseg developers. ") and "Software, version 0.1.0" in cite
