"""The examples run (on generated phantoms) and do what they say."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quickstart(tmp_path):
    report = _load("quickstart").main(tmp_path)
    assert 60 < report["volumes_ml"]["lv"] < 200 and (tmp_path / "labels.nii.gz").is_file()


def test_prompts_example_is_valid():
    from medseg.prompt_file import load_prompts_file

    ps = load_prompts_file(EXAMPLES / "prompts_example.json")
    assert [p.structure for p in ps.prompts] == ["lv", "myo", "rv"] and ps.propagate == {0, 1, 2}


@pytest.mark.slow
def test_adapt_example_end_to_end(tmp_path):
    assert _load("adapt_phantoms").main(tmp_path, steps=4) == 0
    meta = json.loads((tmp_path / "adapter" / "medseg.json").read_text())
    assert meta["training"]["steps"] == 4 and set(meta["validation_dice"]["adapted"]) >= {"lv", "myo", "rv"}


def test_acdc_subjects_example_writes_a_subjects_file_medseg_reads(tmp_path):
    from medseg.subjects import Subject, read_subjects

    for pid, text in (("patient001", "ED: 1\nES: 12\nGroup: DCM\nHeight: 184.0\nNbFrame: 30\nWeight: 95.0\n"),
                      ("patient002", "ED: 1\nES: 12\nGroup: NOR\nHeight: 160.0\nNbFrame: 30\nWeight: 52.5\n")):
        (tmp_path / "acdc" / pid).mkdir(parents=True)
        (tmp_path / "acdc" / pid / "Info.cfg").write_text(text)
    out = _load("acdc_subjects").main([str(tmp_path / "acdc"), "-o", str(tmp_path / "subjects.csv")])
    assert read_subjects(out) == (Subject("patient001", 184.0, 95.0), Subject("patient002", 160.0, 52.5))


@pytest.mark.slow
def test_own_pool_example_segments_in_spawned_workers_with_their_share_of_threads(tmp_path, monkeypatch):
    import importlib
    import os

    from medseg.io import read_sidecar
    from medseg.workers import worker_threads

    monkeypatch.syspath_prepend(str(EXAMPLES))  # a spawned worker imports the function it runs by its module's name
    ex = importlib.import_module("own_pool")
    rows = ex.main(tmp_path, ex.phantom_images(tmp_path / "images", n=2), workers=2)
    assert os.getpid() not in {r["pid"] for r in rows}  # segmented in the worker processes
    assert {r["torch_threads"] for r in rows} == {worker_threads(2)}
    for r in rows:
        assert 40 < r["lv_ml"] < 250 and read_sidecar(r["labels"])["label_map"] == {"lv": 1, "myo": 2, "rv": 3}
