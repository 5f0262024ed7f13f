"""`medseg batch --resume --measure` over finished cases: each case's label file read once, its
cohort row reused from the earlier run (``OUT_DIR/measured``) when nothing it was measured from
has changed, and the same summary and cohort.csv as measuring every case again; labels edited
by hand, another subjects file, --no-basal-rule, another sidecar or other code measure again.
Tiny phantom studies (1, 4, 48, 48); the fixture runs the model once."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from batch_data import MAP, write_case

from medseg.cli import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CASES = ("c1", "c2")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> tuple[Path, Path]:
    """(studies folder, OUT_DIR of a fresh `batch --measure` of its cases)."""
    studies, out = tmp_path_factory.mktemp("studies"), tmp_path_factory.mktemp("fresh") / "out"
    for i, case in enumerate(CASES):
        write_case(studies, case, seed=3 + i, shape=(48, 48), n_slices=4)
    assert run_cli(["batch", str(studies), "-o", str(out), *_args(studies)]) == 0
    return studies, out


def _args(studies: Path) -> list[str]:
    return ["--prompts-from", str(studies), "--key-slice", "--label-map", MAP, "--workers", "1", "--measure"]


def _resume(studies: Path, out: Path, *extra: str) -> None:
    assert run_cli(["batch", str(studies), "-o", str(out), *_args(studies), "--resume", *extra]) == 0


def _outputs(out: Path) -> tuple[str, str, bytes]:
    """summary.csv and summary.json without their ``seconds`` (a timing), and cohort.csv's bytes;
    the output folder's path (each copy has its own) as ``OUT``."""
    rows = list(csv.reader((out / "summary.csv").read_text(encoding="utf-8").replace(str(out), "OUT").splitlines()))
    at = rows[0].index("seconds")
    summary = json.loads((out / "summary.json").read_text().replace(json.dumps(str(out))[1:-1], "OUT"))
    for r in summary["cases"]:
        r.pop("seconds")
    return (json.dumps([r[:at] + r[at + 1:] for r in rows]), json.dumps(summary, allow_nan=True),
            (out / "cohort.csv").read_bytes().replace(str(out).encode(), b"OUT"))


def _copy(out: Path, to: Path) -> Path:
    shutil.copytree(out, to)
    return to


def _count(monkeypatch, module, name: str) -> list[int]:
    calls: list[int] = []
    fn = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(1) or fn(*a, **k))
    return calls


def test_resume_reuses_each_row_reads_each_label_file_once_and_writes_the_same_files(fresh, tmp_path, monkeypatch):
    import medseg.batch.measure_rows as mr
    import medseg.io.readers as readers

    studies, out = fresh
    assert sorted(p.name for p in (out / "measured").iterdir()) == [f"{c}.json" for c in CASES]  # stored as measured
    reused, anew = _copy(out, tmp_path / "reused"), _copy(out, tmp_path / "anew")
    shutil.rmtree(anew / "measured")  # measured as before the store existed
    measured, decoded = _count(monkeypatch, mr, "_measure"), []
    read = readers._read
    monkeypatch.setattr(readers, "_read", lambda p, *a, **k: decoded.append(Path(p).name) or read(p, *a, **k))
    _resume(studies, reused)
    assert measured == [] and sorted(decoded) == [f"{c}.nii.gz" for c in CASES]  # each label file decoded once: checks only
    _resume(studies, anew)
    assert len(measured) == len(CASES) and sorted(decoded) == sorted([f"{c}.nii.gz" for c in CASES] * 2)  # once: checks and measure
    assert _outputs(reused) == _outputs(anew)
    assert (reused / "cohort.csv").read_bytes() == (out / "cohort.csv").read_bytes()  # as the fresh run's
    assert {r["status"] for r in json.loads((reused / "summary.json").read_text())["cases"]} == {"skipped"}


def _edit_labels(out: Path, studies: Path, monkeypatch) -> list[str]:
    """c1's labels changed in another program (ITK-SNAP), the batch's sidecar left as it was."""
    import nibabel as nib

    img = nib.load(str(out / "c1.nii.gz"))
    a = np.asarray(img.dataobj).copy()
    a[a == 2] = 0  # the myocardium erased: other mass and thickness
    nib.save(nib.Nifti1Image(a, img.affine, img.header), str(out / "c1.nii.gz"))
    return []


def _subjects(out: Path, studies: Path, monkeypatch) -> list[str]:
    """A resume with a subjects file, then another content of that file."""
    f = out.parent / "subjects.csv"
    f.write_text("case,height_cm,weight_kg,group\nc1,180,80,DCM\n")
    _resume(studies, out, "--subjects", str(f))
    f.write_text("case,height_cm,weight_kg,group\nc1,150,50,HCM\n")
    return ["--subjects", str(f)]


def _basal_rule(out: Path, studies: Path, monkeypatch) -> list[str]:
    return ["--no-basal-rule"]


def _sidecar(out: Path, studies: Path, monkeypatch) -> list[str]:
    """c1's sidecar says its input had no physical spacing (the labels are the same)."""
    side = json.loads((out / "c1.json").read_text())
    side["provenance"]["spacing_known"] = False
    (out / "c1.json").write_text(json.dumps(side))
    return []


def _software(out: Path, studies: Path, monkeypatch) -> list[str]:
    import medseg.batch.measure_rows as mr

    monkeypatch.setattr(mr, "_software_digest", lambda: "another medseg")
    return []


def _damaged_store(out: Path, studies: Path, monkeypatch) -> list[str]:
    (out / "measured" / "c1.json").write_text('{"key": ')
    (out / "measured" / "c2.json").write_text('{"key": "0", "result": {"measure_note": "stale"}}')
    return []


@pytest.mark.parametrize("change, differs", [(_edit_labels, True), (_subjects, True), (_basal_rule, True), (_sidecar, True),
                                             (_software, False), (_damaged_store, False)])
def test_a_changed_input_of_a_row_measures_it_again(fresh, tmp_path, monkeypatch, change, differs):
    """Whatever a row was measured from changes: the resume writes what measuring every case
    again writes (never the stored row)."""
    import medseg.batch.measure_rows as mr

    studies, out = fresh
    reused, anew = _copy(out, tmp_path / "a" / "out"), _copy(out, tmp_path / "b" / "out")
    extra = change(reused, studies, monkeypatch)
    change(anew, studies, monkeypatch)
    shutil.rmtree(anew / "measured")
    measured = _count(monkeypatch, mr, "_measure")
    _resume(studies, reused, *extra)
    assert len(measured) >= 1
    _resume(studies, anew, *extra)
    assert _outputs(reused) == _outputs(anew)
    assert ((reused / "cohort.csv").read_bytes() != (out / "cohort.csv").read_bytes()) == differs
    if change is _subjects:
        row = next(r for r in csv.DictReader((reused / "cohort.csv").open()) if r["case"] == "c1")
        assert row["group"] == "HCM"


def test_labels_saved_over_after_the_checks_read_them_are_measured_as_they_are_now(fresh, tmp_path, monkeypatch):
    """The label file read for the resume checks, then saved over before the case is measured:
    the row (and the one stored for the next resume) is of the labels now in the file."""
    from medseg.batch import BatchOptions
    from medseg.batch.kept import label_reader
    from medseg.batch.measure_rows import _measure, measured_row

    studies, out = fresh
    out = _copy(out, tmp_path / "out")
    shutil.rmtree(out / "measured")
    options, labels = BatchOptions(out_dir=str(out), measure=True), label_reader(out / "c1.nii.gz")
    before = labels()
    _edit_labels(out, studies, monkeypatch)
    now = _measure(out / "c1.nii.gz", options, "c1", str(studies / "c1.nii.gz"))
    assert measured_row(out / "c1.nii.gz", options, "c1", str(studies / "c1.nii.gz"), labels) == now
    assert measured_row(out / "c1.nii.gz", options, "c1", str(studies / "c1.nii.gz")) == now  # the stored row
    was = next(r for r in json.loads((out / "summary.json").read_text())["cases"] if r["case"] == "c1")
    assert labels() is before and now["cohort_row"]["lv_mass_g"] != was["lv_mass_g"]


def test_a_row_json_cannot_give_back_is_not_stored(tmp_path):
    """A result with a tuple or a numpy number would come back from JSON changed: not stored."""
    from medseg.batch.measure_rows import _plain

    assert _plain({"a": [1, 2.5, None, True, "x"], "b": {"c": float("nan")}})
    assert not _plain({"a": (1, 2)}) and not _plain({"a": np.float64(1.0)}) and not _plain({1: "a"})
