"""`medseg compare` names on the console the pairs it left out of the mean change and SD.

An echo report paired with a short-axis one is left out of the summary's mean and SD
(``summary.left_out``); the console said only how many were left out ("listed under
summary.left_out"), so which patients' changes were not in the mean took opening the JSON. It
now lists them as the CSV names them (baseline case -> follow-up case), one a line, the first
10 and a count of the rest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_compare import _report
from test_compare_echo import _folder

from medseg.cli import run_cli

ECHO_MAP = "lv=1,myo=2,rv=3,la=4,ra=5"


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """An echo report (the 4-chamber clip alone) and two short-axis MR cine reports."""
    from medseg.io import write_labels
    from medseg.phantoms import echo_apical_phantom

    tmp = tmp_path_factory.mktemp("left_out")
    ph = echo_apical_phantom("a4c", n_frames=10, seed=1, spacing=0.7)
    a4c = write_labels(ph.labels.astype(np.uint8), ph.image, tmp / "p1_A4C.nii.gz", ECHO_MAP)[0]
    out = {"echo": tmp / "echo.json"}
    assert run_cli(["measure", str(a4c), "-o", str(out["echo"])]) == 0
    out["sa"], out["sa2"] = _report(tmp, "sa", seed=1, ef=0.6, sha=None), _report(tmp, "sa2", seed=1, ef=0.45, sha=None)
    return out


def _said(tmp_path: Path, base: Path, follow: Path, capsys) -> tuple[list[str], dict]:
    capsys.readouterr()
    assert run_cli(["compare", str(base), str(follow), "-o", str(tmp_path / "c.json")]) == 0
    return capsys.readouterr().out.splitlines(), json.loads((tmp_path / "c.json").read_text())


def test_the_left_out_pair_of_two_reports_is_named(reports, tmp_path, capsys):
    """Two reports, echo then short-axis: the console names the pair as the JSON and CSV do."""
    lines, got = _said(tmp_path, reports["echo"], reports["sa"], capsys)
    assert got["summary"]["left_out"]["pairs"] == ["echo -> sa"]
    at = next(i for i, s in enumerate(lines) if "left out of the mean change: 1 pair(s)" in s)
    assert lines[at + 1].strip() == "echo -> sa" and "more" not in lines[at + 2]


def test_many_left_out_pairs_are_named_up_to_ten_then_counted(reports, tmp_path, capsys):
    """Twelve patients measured by echo then MR, one by MR both times: the ten first left-out
    pairs one a line, then "... and 2 more"; the pair in the mean is not listed."""
    cases = [f"p{i:02d}" for i in range(1, 13)]
    base = _folder(tmp_path / "base", {**{c: reports["echo"] for c in cases}, "mr": reports["sa"]})
    follow = _folder(tmp_path / "follow", {**{c: reports["sa"] for c in cases}, "mr": reports["sa2"]})
    lines, got = _said(tmp_path, base, follow, capsys)
    left = got["summary"]["left_out"]["pairs"]
    assert sorted(left) == [f"{c} -> {c}" for c in cases]
    at = next(i for i, s in enumerate(lines) if "left out of the mean change: 12 pair(s)" in s)
    assert [s.strip() for s in lines[at + 1:at + 12]] == [*left[:10], "... and 2 more"]
    assert not any(s.strip() == "mr -> mr" for s in lines) and not any(left[10] in s or left[11] in s for s in lines)


def test_nothing_is_listed_when_no_pair_is_left_out(reports, tmp_path, capsys):
    lines, got = _said(tmp_path, reports["sa"], reports["sa2"], capsys)
    assert "left_out" not in got["summary"] and not any("left out" in s or " -> " in s for s in lines)
