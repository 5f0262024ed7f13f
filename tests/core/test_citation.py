"""CITATION.cff says what medseg is and which version: it must stay in step with the package."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import medseg

yaml = pytest.importorskip("yaml")
ROOT = Path(__file__).resolve().parents[2]


def test_citation_matches_the_package():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert cff["cff-version"] == "1.2.0"
    assert str(cff["version"]) == medseg.__version__ == meta["version"]
    assert cff["license"] == meta["license"]
    for ref in cff["references"]:  # CFF requires type, title and authors of every reference
        assert ref["type"] and ref["title"] and ref["authors"] and int(ref["year"]) > 2000
    assert "include CITATION.cff" in (ROOT / "MANIFEST.in").read_text(encoding="utf-8").splitlines()


def test_every_training_set_of_the_model_card_has_a_reference():
    """METHODS.md's Cite list named the SIUE echo frames among the training data of the default
    model but gave no reference for them: each data set of the card's training table gets one."""
    from medseg._methods_cite import dataset_references

    card = (ROOT / "checkpoints" / "README.md").read_text(encoding="utf-8")
    table = card[card.index("## Training data"):].split("\n\n")[1].splitlines()[2:]  # below the header row
    rows = [r for r in table if r.startswith("| ") and "synthetic" not in r]
    assert len(rows) >= 6
    for row in rows:
        assert dataset_references(row), row
