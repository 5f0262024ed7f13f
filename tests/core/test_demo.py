"""`medseg demo` is README command 1's main job: it must run on the shipped model and be right."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner


@pytest.mark.slow  # ~18 s on the shared 2-core CPU
def test_demo_segments_and_measures_the_generated_cine(tmp_path):
    from medseg.cli import app

    res = CliRunner().invoke(app, ["demo", "-o", str(tmp_path / "demo")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "demo" / "demo_summary.json").read_text())
    for mode in ("key-slice", "auto"):
        r = summary[mode]
        assert min(r["dice"].values()) > 0.9, (mode, r["dice"])
        # the clinical numbers a user reads first: an apical leak at ES once made zero-click LVEF 13 % here
        assert abs(r["lvef_pct"] - r["lvef_truth_pct"]) < 6.0, (mode, r)
        assert abs(r["lv_mass_g"] - r["lv_mass_truth_g"]) < 15.0, (mode, r)
        # the ES cavity drawn a little large (LVEF 5 points low) reads as a thinner ES wall: ~10 points here
        assert abs(r["wall_thickening_pct"] - r["wall_thickening_truth_pct"]) < 15.0, (mode, r)
        for phase in ("ED", "ES"):
            assert (tmp_path / "demo" / f"{mode}_{phase}.nii.gz").is_file()
        assert (tmp_path / "demo" / f"{mode}_review.png").stat().st_size > 10_000
    assert summary["model"]["model_id"] == "default"
    # the cine keeps its frame interval (it read 1 s per frame, its truth labels ~0.04 s)
    from medseg.io import read_label_volume, read_volume

    times = read_volume(tmp_path / "demo" / "cine.nii.gz").frame_times_s
    truth = read_label_volume(tmp_path / "demo" / "truth_labels.nii.gz").frame_times_s
    assert times is not None and truth is not None and abs(times[1] - truth[1]) < 1e-4 and 0.02 < times[1] < 0.1
