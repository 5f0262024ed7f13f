"""`medseg compare` of echo reports: a biplane report against a single-plane one is cautioned
("method differs"; it was a clean change), and an echo report paired with a short-axis MR one
is cautioned and left out of the summary's mean and SD (it gave "LVEF mean change -9.00")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_compare import _report

from medseg.cli import run_cli

ECHO_MAP = "lv=1,myo=2,rv=3,la=4,ra=5"


def _clips(tmp: Path) -> tuple[Path, Path]:
    from medseg.io import write_labels
    from medseg.phantoms import echo_apical_phantom

    out = []
    for view in ("a4c", "a2c"):
        ph = echo_apical_phantom(view, n_frames=10, seed=1, spacing=0.7)
        out.append(write_labels(ph.labels.astype(np.uint8), ph.image, tmp / f"p1_{view.upper()}.nii.gz", ECHO_MAP)[0])
    return out[0], out[1]


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """Reports of one echo study: biplane (two clips), single plane (the 4-chamber clip alone);
    and two short-axis MR cine reports (LVEF 60 and 45 %)."""
    tmp = tmp_path_factory.mktemp("echo")
    a4c, a2c = _clips(tmp)
    out = {"biplane": tmp / "biplane.json", "single": tmp / "single.json"}
    assert run_cli(["measure", str(a4c), "--a2c", str(a2c), "-o", str(out["biplane"])]) == 0
    assert run_cli(["measure", str(a4c), "-o", str(out["single"])]) == 0
    out["sa"], out["sa2"] = _report(tmp, "sa", seed=1, ef=0.6, sha=None), _report(tmp, "sa2", seed=1, ef=0.45, sha=None)
    return out


def _compare(tmp_path: Path, base: Path, follow: Path, *extra: str) -> dict:
    out = tmp_path / "c.json"
    assert run_cli(["compare", str(base), str(follow), "-o", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_biplane_against_single_plane_is_cautioned(reports, tmp_path):
    """r3's cmp2.py: biplane (baseline) vs the 4-chamber clip alone (follow-up): the method change
    is cautioned; one echo modality, so the pair stays in the summary."""
    got = _compare(tmp_path, reports["biplane"], reports["single"])
    pair = got["pairs"][0]
    assert pair["cautions"] == ["method differs: baseline biplane_disks, follow-up single_plane_disks_clip"]
    assert pair["in_summary"] and got["summary"]["measures"]["lv.ef_pct"]["n"] == 1 and "left_out" not in got["summary"]
    again = tmp_path / "single_again.json"  # one method at both visits: no such caution
    again.write_bytes(reports["single"].read_bytes())
    same = _compare(tmp_path, reports["single"], again)
    assert not any("method differs" in c for c in same["pairs"][0]["cautions"])


def test_echo_against_short_axis_is_left_out_of_the_mean(reports, tmp_path, capsys):
    """r3's cmp.py: an echo report vs a short-axis MR cine: one caution saying so (the label map
    and pixel spacing are not cautioned again), values and change kept, no mean change; the
    plot is still drawn."""
    got = _compare(tmp_path, reports["biplane"], reports["sa"], "--plots", str(tmp_path / "plots"), "--csv", str(tmp_path / "c.csv"))
    pair = got["pairs"][0]
    assert pair["in_summary"] is False and "lv.ef_pct" in pair["measures"]
    assert pair["cautions"][0] == ("baseline is apical views (method of disks), follow-up an ED/ES report: another method's measure "
                                   "(apical views against a short-axis stack), not a change of the heart; left out of the summary's mean and SD")
    import csv

    with open(tmp_path / "c.csv", newline="", encoding="utf-8") as fh:  # R: mean(change[in_summary]) as the JSON's summary
        assert [r["in_summary"] for r in csv.DictReader(fh)] == ["FALSE"]
    assert not any(c.startswith(("label maps differ", "pixel spacing differs")) for c in pair["cautions"])
    assert got["summary"]["measures"] == {} and got["summary"]["left_out"]["pairs"] == ["biplane -> sa"]
    said = capsys.readouterr().out
    assert ": mean change" not in said and "left out of the mean change: 1 pair(s) of an echo and a short-axis report" in said
    assert (tmp_path / "plots" / "lvef_change.png").stat().st_size > 0


def _folder(folder: Path, cases: dict[str, Path]) -> Path:
    """A `medseg batch --measure` folder's tables, one cohort row per case from its report."""
    from medseg._files import csv_text, write_json_atomic, write_text_atomic
    from medseg.measure.export import report_row

    rows = [{"case": c, "needs_review": False, **report_row(json.loads(p.read_text()))} for c, p in cases.items()]
    folder.mkdir(parents=True)
    write_text_atomic(folder / "cohort.csv", csv_text(list(dict.fromkeys(k for r in rows for k in r)), rows))
    write_json_atomic(folder / "summary.json", {"settings": {"basal_rule": True}})
    return folder


def test_batch_folders_read_the_method_and_leave_echo_against_short_axis_out(reports, tmp_path):
    """Two batch folders: p1 measured by echo at baseline, by MR at follow-up (left out); p2 by
    MR both times (the mean is its change alone); p3 biplane then single plane (cohort.csv's
    method column: cautioned, in the mean)."""
    base = _folder(tmp_path / "base", {"p1": reports["biplane"], "p2": reports["sa"], "p3": reports["biplane"]})
    follow = _folder(tmp_path / "follow", {"p1": reports["sa"], "p2": reports["sa2"], "p3": reports["single"]})
    got = _compare(tmp_path, base, follow)
    pairs = {p["baseline"]["case"]: p for p in got["pairs"]}
    assert [pairs[c]["in_summary"] for c in ("p1", "p2", "p3")] == [False, True, True]
    assert "method differs: baseline biplane_disks, follow-up single_plane_disks_clip" in pairs["p3"]["cautions"]
    ef = got["summary"]["measures"]["lv.ef_pct"]
    want = [pairs[c]["measures"]["lv.ef_pct"]["change"] for c in ("p2", "p3")]
    assert ef["n"] == 2 and ef["mean_change"] == pytest.approx(sum(want) / 2, abs=1e-3)
    assert got["summary"]["left_out"]["pairs"] == ["p1 -> p1"]
