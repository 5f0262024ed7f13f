"""The scripts in benchmarks/ and the commands the docs quote keep up with medseg.

Most benchmarks run for minutes on real data, so CI does not run them; what rots is cheaper to
catch: a ``--help`` that crashes, an import of a function that moved, an attribute a script
patches or reads that was renamed, an option of ``medseg`` or of a script that a GPU script or a
doc line uses and that no longer exists. Each script runs in its own process (with ``--help``
only; nothing is written), so the tests are parallel-safe.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))
SHELL = sorted(BENCH.glob("*.sh"))
DOCS = [REPO / "BENCHMARKS.md", REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
OWN = ("medseg", "napari_plugin")
OPTION = re.compile(r"(?<![\w-])(--?[a-zA-Z][a-z0-9-]*)")


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": path}


@cache
def _helps() -> dict[str, subprocess.CompletedProcess]:
    """``--help`` of every script, all started at once (most of the time is importing torch)."""
    procs = {p.name: subprocess.Popen([sys.executable, str(p), "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=_env(), cwd=REPO) for p in SCRIPTS}
    done = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += "\n(timed out)"
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


def _help(script: str) -> subprocess.CompletedProcess:
    return _helps()[script]


@pytest.mark.parametrize("script", [p.name for p in SCRIPTS])
def test_script_help_works(script):
    res = _help(script)
    assert res.returncode == 0 and "Traceback" not in res.stderr, f"{script} --help: exit {res.returncode}\n{res.stderr[-2000:]}"
    assert res.stdout.strip(), f"{script} --help printed nothing"


@pytest.mark.parametrize("script", ["make_pairs.py", "stamp_checkpoint.py", "calibrate_confidence.py"])
def test_script_without_arguments_says_its_usage_not_a_traceback(script, tmp_path):
    res = subprocess.run([sys.executable, str(BENCH / script)], capture_output=True, text=True, timeout=120, env=_env(), cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr and "python benchmarks/" in res.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("script", [p.name for p in SHELL])
def test_shell_script_parses(script):
    res = subprocess.run(["bash", "-n", str(BENCH / script)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _sibling_names(stem: str) -> set[str]:
    """Top-level names of benchmarks/<stem>.py, read without running it."""
    tree = ast.parse((BENCH / f"{stem}.py").read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _problems(path: Path) -> list[str]:
    """Imports from medseg (and from sibling scripts) that do not resolve, attributes of medseg
    modules (read or patched) that do not exist, and calls of imported medseg functions whose
    arguments no longer fit the signature."""
    tree = ast.parse(path.read_text())
    bad, modules, funcs = [], {}, {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = node.module.split(".")[0]
            if (BENCH / f"{top}.py").is_file():
                missing = {a.name for a in node.names} - _sibling_names(top)
                bad += [f"line {node.lineno}: benchmarks/{top}.py has no {n}" for n in sorted(missing)]
                continue
            if top not in OWN:
                continue
            mod = _module(node.module)
            if mod is None:
                bad.append(f"line {node.lineno}: no module {node.module}")
                continue
            for a in node.names:
                obj = getattr(mod, a.name) if hasattr(mod, a.name) else _module(f"{node.module}.{a.name}")
                if obj is None and not hasattr(mod, a.name):
                    bad.append(f"line {node.lineno}: {node.module} has no {a.name}")
                elif inspect.ismodule(obj):
                    modules[a.asname or a.name] = obj
                elif callable(obj):
                    funcs[a.asname or a.name] = obj
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in OWN:
                    mod = _module(a.name)
                    if mod is None:
                        bad.append(f"line {node.lineno}: no module {a.name}")
                    else:
                        modules[a.asname or a.name.split(".")[0]] = mod if a.asname else _module(a.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain, base = [], node
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            if not (isinstance(base, ast.Name) and base.id in modules):
                continue
            obj, where = modules[base.id], modules[base.id].__name__
            for attr in reversed(chain):
                if not inspect.ismodule(obj):
                    break
                nxt = getattr(obj, attr) if hasattr(obj, attr) else _module(f"{where}.{attr}")
                if nxt is None and not hasattr(obj, attr):
                    bad.append(f"line {node.lineno}: {where} has no {attr}")
                    break
                obj, where = nxt, f"{where}.{attr}"
        elif isinstance(node, ast.Call):
            fn = None
            if isinstance(node.func, ast.Name):
                fn = funcs.get(node.func.id)
            elif isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name) and node.func.value.id in modules:
                fn = getattr(modules[node.func.value.id], node.func.attr, None)
            if fn is None or not callable(fn) or inspect.isclass(fn):
                continue
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                continue
            try:
                inspect.signature(fn).bind(*node.args, **{k.arg: None for k in node.keywords})
            except TypeError as e:
                bad.append(f"line {node.lineno}: {getattr(fn, '__name__', fn)}(): {e}")
            except ValueError:
                pass
    return bad


def test_benchmarks_use_only_what_medseg_has(monkeypatch):
    for extra in (BENCH, REPO / "tests" / "batch"):
        monkeypatch.syspath_prepend(str(extra))
    bad = [f"{p.name} {b}" for p in (*SCRIPTS, BENCH / "_usage.py") for b in _problems(p)]
    assert not bad, "\n".join(bad)


@cache
def _cli_options() -> dict[str, set[str]]:
    import typer

    from medseg.cli import app

    group = typer.main.get_command(app)
    return {name: {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"} for name, cmd in group.commands.items()}


def _script_options(script: str) -> set[str]:
    """What a script takes: the options of its --help, and those it reads from sys.argv itself."""
    text = (BENCH / script).read_text()
    found = set(re.findall(r"[\"'](--?[a-z][a-z0-9-]*)", text)) | {"--help", "-h"}
    if script.endswith(".py"):
        found |= set(OPTION.findall(_help(script).stdout))
    return found


def _unknown(command: str) -> list[str]:
    """Options of ``medseg SUB`` and ``python benchmarks/X.py`` in one command line that do not exist."""
    bad = []
    for m in re.finditer(r"(?:^|[\s;&(`])(?:python3?|\$PY|\.venv/bin/python)\s+(?:-\S+\s+)*benchmarks/([\w.]+\.py)(.*?)(?=$|&&|;|\||>)", command):
        script = m.group(1)
        if not (BENCH / script).is_file():
            bad.append(f"no benchmarks/{script}")
            continue
        opts = _script_options(script)
        bad += [f"benchmarks/{script} has no {o}" for o in OPTION.findall(m.group(2)) if o not in opts and not re.match(r"-\d", o)]
    for m in re.finditer(r"(?:^|[\s;&(`])(?:-m\s+)?medseg\s+([a-z]+)(.*?)(?=$|&&|;|\||>)", command):
        opts = _cli_options().get(m.group(1))
        if opts is not None:
            bad += [f"medseg {m.group(1)} has no {o}" for o in OPTION.findall(m.group(2)) if o not in opts and not re.match(r"-\d", o)]
    return bad


def _doc_commands(path: Path) -> list[tuple[int, str]]:
    """Command lines a doc quotes: lines of fenced blocks (continuations joined) and inline code spans."""
    text, out = path.read_text(), []
    parts = re.split(r"(^[ \t]*```.*?^[ \t]*```)", text, flags=re.S | re.M)
    offset = 0
    for i, part in enumerate(parts):
        line0 = text.count("\n", 0, offset) + 1
        if i % 2:
            for j, line in enumerate(part.replace("\\\n", " ").splitlines()):
                out.append((line0 + j, line))
        else:
            out += [(line0 + part.count("\n", 0, m.start()), " ".join(m.group(1).split())) for m in re.finditer(r"`([^`]+)`", part)]
        offset += len(part)
    return out


def test_gpu_scripts_call_existing_options():
    bad = []
    for sh in SHELL:
        for n, line in enumerate(sh.read_text().replace("\\\n", " ").splitlines(), 1):
            if not line.lstrip().startswith("#"):
                bad += [f"{sh.name}:{n}: {b}" for b in _unknown(line)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("doc", [p.relative_to(REPO).as_posix() for p in DOCS])
def test_quoted_commands_use_existing_options(doc):
    bad = [f"{doc}:{n}: {b}: {c[:160]}" for n, c in _doc_commands(REPO / doc) for b in _unknown(c)]
    assert not bad, "\n".join(bad)


def test_make_pairs_writes_paths_medseg_can_read(tmp_path):
    """PAIRS.csv cells relative to the working directory were read from the CSV's folder (medseg
    reads a relative cell so), and no longer named the data once the CSV was not beside it."""
    root = tmp_path / "data"
    for pid in range(1, 101):
        d = root / "acdc" / "training" / f"patient{pid:03d}"
        d.mkdir(parents=True)
        (d / "Info.cfg").write_text("ED: 1\nES: 9\n")
    for pid in range(1, 351):  # 1-300 adapter training, 301-350 its early stopping (and the validation patients)
        (root / "camus-224" / f"patient{pid:04d}").mkdir(parents=True)
        (root / "camus-224" / f"patient{pid:04d}" / f"patient{pid:04d}_2CH_ED_gt.png").touch()
    for sub, name in (("TestSet", "patient1_DE.nii.gz"), ("TestSet", "patient2_DE.nii.gz"), ("TestSet", "patient3_DE.nii.gz"), ("val", "patient9_DE.nii.gz")):
        (root / "mscmr-lge" / sub / "images").mkdir(parents=True, exist_ok=True)
        (root / "mscmr-lge" / sub / "images" / name).touch()
    res = subprocess.run([sys.executable, str(BENCH / "make_pairs.py"), "data", "out/pairs"], capture_output=True, text=True,
                         timeout=60, env=_env(), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    import csv

    rows = list(csv.DictReader((tmp_path / "out" / "pairs" / "acdc_val.csv").open()))
    assert len(rows) == 40 and all(Path(r["image"]).is_absolute() and Path(r["label"]).is_absolute() for r in rows)
    assert Path(rows[0]["image"]).parent == root / "acdc" / "training" / "patient017"


def test_batch_scale_rewrites_a_summary_that_records_more_than_the_options(tmp_path, monkeypatch):
    """summary.json's settings also record what a run found (``model_sha256``, ...): the
    benchmark makes its BatchOptions of the fields it has, not of every key."""
    import dataclasses
    import json

    monkeypatch.syspath_prepend(str(BENCH))
    import batch_scale

    from medseg.batch import BatchOptions

    out = tmp_path / "out"
    out.mkdir()
    settings = {**dataclasses.asdict(BatchOptions(out_dir=str(out), measure=True)), "subjects": 0, "model_sha256": "ab", "adapter_sha256": None}
    row = {"case": "c0", "status": "ok", "needs_review": False, "confidence": 0.9, "review_flags": "", "review_structures": "",
           "handed_over": "", "reason": "", "seconds": 0.1, "output": str(out / "c0.nii.gz"), "input": str(tmp_path / "c0.nii.gz"),
           "lv_mass_g": 10.0, "volumes_ml.lv": 12.0}
    (out / "summary.json").write_text(json.dumps({"settings": settings, "cases": [row]}))
    assert batch_scale.summary_rewrite_ms(out, 3) >= 0
    assert (tmp_path / "summary_3" / "summary.json").is_file()
