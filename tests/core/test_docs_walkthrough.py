"""A first-time user following README.md and docs/*.md literally: the commands they show run as
written, and what `batch` tells a user batching echo PNGs zero-click."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from medseg.cli import run_cli

REPO = Path(__file__).resolve().parents[2]


def test_readme_measure_example_runs_as_written(shared_data, tmp_path, capsys):
    """README's *Measurements* command (ACDC patient 061, expert labels: LVEF 62.5 %, LV mass
    114 g) runs with its placeholders filled in: it lacked the required -o REPORT.json."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    line = re.search(r"`(medseg measure --ed ED --es ES [^`]*)`\nwrites these", readme).group(1)
    p = shared_data / "acdc" / "training" / "patient061"
    fill = {"ED": p / "patient061_frame01_gt.nii.gz", "ES": p / "patient061_frame10_gt.nii.gz",
            "ED_IMG": p / "patient061_frame01.nii.gz", "ES_IMG": p / "patient061_frame10.nii.gz",
            "DIR": tmp_path / "plots", "REPORT.json": tmp_path / "report.json"}
    argv = [str(fill.get(a, a)) for a in shlex.split(line)[1:]]
    assert run_cli(argv) == 0, capsys.readouterr()
    report = json.loads((tmp_path / "report.json").read_text())
    assert round(report["lv"]["ef_pct"], 1) == 62.5 and round(report["lv_mass_g"]) == 114
    assert (tmp_path / "plots" / "bullseye.png").is_file() and (tmp_path / "plots" / "overlay.png").is_file()


@pytest.mark.parametrize("extra, noted", [((), True), (("--modality", "US"), False)])
def test_batch_auto_on_echo_pngs_says_what_segment_says(shared_data, tmp_path, capsys, extra, noted):
    """A CAMUS view batched --auto without --modality is searched for lv, myo, rv (a PNG records no
    modality): its LA is not segmented. `segment` says so; `batch` said nothing and the study's
    cohort row silently had no LA. Now one note for the run, none when --modality US is given."""
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "patient0451_4CH_ED.png").symlink_to(shared_data / "camus-224" / "patient0451" / "patient0451_4CH_ED.png")
    assert run_cli(["batch", str(inp), "-o", str(tmp_path / "out"), "--auto", *extra]) == 0
    said = capsys.readouterr()
    out = (said.out + said.err).replace("\n", " ")
    assert ("note: zero-click looked for lv, myo, rv" in out) is noted
    if noted:
        assert "found no RV on 1 case (patient0451_4CH_ED)" in out and "--modality US" in out
