"""A biobank-sized cohort after segmentation: `medseg compare` of big batch folders, the batch's
summary rewrites and `--resume` checks. Scaling bugs are tested by behaviour (calls counted,
files read), never by timing; the folders are fabricated as `medseg batch --measure` lays them out."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest

from medseg.cli import run_cli

MAP = "lv=1,myo=2,rv=3"
SHA = "a" * 64


def _folder(folder: Path, n_patients: int, visits: int = 2) -> Path:
    """A batch --measure folder of ``n_patients`` x ``visits`` studies (DICOM-like: patient_id and
    study_date in cohort.csv), each with a tiny label file whose sidecar names the model."""
    from medseg._files import csv_text, write_json_atomic, write_text_atomic
    from medseg.io import write_labels
    from medseg.io.volume import Volume, affine_from_spacing

    folder.mkdir(parents=True, exist_ok=True)
    like = Volume(np.zeros((1, 2, 4, 4), np.float32), affine_from_spacing((8.0, 1.5, 1.5)))
    labels = np.zeros((1, 2, 4, 4), np.uint8)
    labels[0, :, 1:3, 1:3] = 1
    rows, summary = [], []
    for i in range(n_patients):
        for v in range(visits):
            case = f"p{i:03d}_v{v}"
            lab = folder / f"{case}.nii.gz"
            write_labels(labels, like, lab, MAP, provenance={"model_id": "default", "model_sha256": SHA, "adapter_id": None,
                                                             "adapter_sha256": None, "command": "batch"})
            ef = 60.0 - 5 * v + i % 7
            rows.append({"case": case, "patient_id": f"P{i:03d}", "study_date": f"20{20 + v}-03-0{1 + i % 9}", "needs_review": False,
                         "confidence": 0.9, "lv.edv_ml": 120.0 + i, "lv.esv_ml": 120.0 + i - (120.0 + i) * ef / 100, "lv.ef_pct": ef,
                         "spacing_mm": "8 1.5 1.5"})
            summary.append({"case": case, "status": "ok", "output": str(lab)})
    write_text_atomic(folder / "cohort.csv", csv_text(list(rows[0]), rows))
    write_text_atomic(folder / "summary.csv", csv_text(["case", "status", "output"], summary))
    write_json_atomic(folder / "summary.json", {"settings": {"basal_rule": True}})
    return folder


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return _folder(tmp_path_factory.mktemp("cohort") / "out", 12)


def test_compare_folder_indexes_its_cases_once_and_reads_each_sidecar_once(cohort, monkeypatch):
    """Each cohort row scanned every summary row for its label files (``study_of`` called
    rows x cases times: 25 million calls, 4 minutes, for 5,000 studies) and each sidecar was read
    twice; now the summary is indexed once and each sidecar read once."""
    import medseg.batch.case_names as names
    import medseg.io as mio
    from medseg.measure.compare import read_visits

    calls = {"study_of": 0, "read_sidecar": 0}
    study_of, read_sidecar = names.study_of, mio.read_sidecar

    def counted_study_of(case):
        calls["study_of"] += 1
        return study_of(case)

    def counted_read_sidecar(path):
        calls["read_sidecar"] += 1
        return read_sidecar(path)

    monkeypatch.setattr(names, "study_of", counted_study_of)
    monkeypatch.setattr(mio, "read_sidecar", counted_read_sidecar)
    visits, unmeasured = read_visits(cohort)
    n = len(visits)
    assert n == 24 and not unmeasured
    assert calls["study_of"] <= 2 * n  # not n * n
    assert calls["read_sidecar"] == n
    assert all(v.models == [{"model_id": "default", "model_sha256": SHA, "adapter_id": None, "adapter_sha256": None}] for v in visits)


def test_compare_writes_all_outputs_or_none_when_the_json_fails(cohort, tmp_path, capsys, monkeypatch):
    """The plot and the CSV were written before the JSON: a failure writing the JSON (a full
    disk) left lvef_change.png and CHANGES.csv of a run that exited 1; now nothing is written."""
    import medseg._files as files

    def disk_full(target, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    out, csv, plots = tmp_path / "changes.json", tmp_path / "changes.csv", tmp_path / "plots"
    monkeypatch.setattr(files, "write_json_atomic", disk_full)
    assert run_cli(["compare", str(cohort), "-o", str(out), "--csv", str(csv), "--plots", str(plots)]) == 74
    err = capsys.readouterr().err
    assert "No space left" in err and "Traceback" not in err
    assert not out.exists() and not csv.exists() and not (plots / "lvef_change.png").exists()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no temporary file left either
    monkeypatch.undo()
    assert run_cli(["compare", str(cohort), "-o", str(out), "--csv", str(csv), "--plots", str(plots)]) == 0
    res = json.loads(out.read_text())
    assert res["summary"]["n_pairs"] == 12 and res["paired_by"].startswith("patient_id")
    assert len(csv.read_text().splitlines()) == 13 and (plots / "lvef_change.png").stat().st_size > 1000


def test_a_slow_summary_is_not_rewritten_after_every_case(tmp_path, monkeypatch):
    """summary.csv/json were rewritten, every row encoded again, after each case: O(n^2), most
    of a --resume of thousands of finished cases. Once a rewrite is slow (a big summary), it is
    rewritten only every so often, and once more at the end with every row."""
    import medseg.batch.run as R
    from medseg.batch import BatchOptions, CaseSpec, run_batch

    clock, written = [0.0], []

    def slow_summary(out_dir, results, options=None):  # a summary of thousands of rows: 0.5 s a rewrite
        clock[0] += 0.5
        written.append(len(results))

    def skipped(case, options):  # a finished case --resume skips: 10 ms
        clock[0] += 0.01
        return {"case": case.case, "status": "skipped", "reason": "", "seconds": 0.01, "output": "", "input": case.input}

    monkeypatch.setattr(R, "_clock", lambda: clock[0], raising=False)
    monkeypatch.setattr(R, "write_summary", slow_summary)
    monkeypatch.setattr(R, "run_case", skipped)
    cases = [CaseSpec(f"c{i:03d}", str(tmp_path / f"c{i:03d}.nii.gz")) for i in range(300)]
    assert len(run_batch(cases, BatchOptions(out_dir=str(tmp_path / "out"), auto=True))) == 300
    assert written[-1] == 300  # the summary at the end has every case
    assert len(written) <= 5  # not 300 rewrites (3 s of cases, a rewrite allowed every 5 s)

    def lost_at_150(case, options):  # a batch ended by an unexpected error (a lost Dask cluster): the summary has every case done
        if case.case == "c150":
            raise RuntimeError("scheduler lost")
        return skipped(case, options)

    written.clear()
    monkeypatch.setattr(R, "run_case", lost_at_150)
    with pytest.raises(RuntimeError):
        run_batch(cases, BatchOptions(out_dir=str(tmp_path / "out"), auto=True))
    assert written[-1] == 150 and len(written) <= 5


def test_a_quick_summary_is_still_rewritten_after_every_case(tmp_path, monkeypatch):
    """A small batch's summary (a quick rewrite) still has each case as soon as it ends."""
    import medseg.batch.run as R
    from medseg.batch import BatchOptions, CaseSpec, run_batch

    written = []
    monkeypatch.setattr(R, "write_summary", lambda out_dir, results, options=None: written.append(len(results)))
    monkeypatch.setattr(R, "run_case", lambda case, options: {"case": case.case, "status": "ok", "reason": "", "seconds": 0.0,
                                                              "output": "", "input": case.input})
    run_batch([CaseSpec(f"c{i}", str(tmp_path / f"c{i}.nii.gz")) for i in range(5)], BatchOptions(out_dir=str(tmp_path / "out"), auto=True))
    assert written == [1, 2, 3, 4, 5]


def _pairs(n: int) -> dict:
    pairs = [{"baseline": {"case": f"p{i}_bl", "patient_id": f"P{i}"}, "followup": {"case": f"p{i}_fu", "patient_id": f"P{i}"},
              "measures": {"lv.ef_pct": {"baseline": 50.0 + i % 17, "followup": 48.0 + i % 13, "change": -2.0 + i % 13 - i % 17}},
              "cautions": ["needs review"] if i % 3 == 0 else []} for i in range(n)]
    d = [p["measures"]["lv.ef_pct"]["change"] for p in pairs]
    return {"pairs": pairs, "summary": {"measures": {"lv.ef_pct": {"n": n, "mean_change": float(np.mean(d)), "sd_change": float(np.std(d))}}}}


@pytest.mark.parametrize("n", [5, 2500])
def test_lvef_change_plot_stays_readable_for_a_cohort(n, tmp_path, monkeypatch):
    """2,500 pairs were 2,500 opaque lines with markers: one block of colour. A cohort's plot has
    faint lines, the mean drawn over them and a histogram of the changes; a few pairs as before."""
    import medseg.measure.plots as plots
    from medseg.measure.compare_plot import slope_png

    figs = []
    real = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: (figs.append(fig), real(fig, path))[1])
    assert slope_png(_pairs(n), tmp_path / "lvef_change.png").stat().st_size > 1000
    (fig,) = figs
    lines = [ln for ln in fig.axes[0].get_lines() if len(ln.get_xdata()) == 2 and ln.get_label().startswith("_")]
    if n == 5:
        assert len(fig.axes) == 1 and all((ln.get_alpha() or 1.0) == 1.0 for ln in lines)
    else:
        assert len(fig.axes) == 2 and fig.axes[1].get_xlabel().startswith("LVEF change")
        assert max(ln.get_alpha() for ln in lines if ln.get_alpha() is not None) <= 0.1
        assert any(ln.get_label() == "mean" for ln in fig.axes[0].get_lines())
