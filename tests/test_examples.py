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
