"""Upgrading medseg with months of outputs of the previous version: `medseg compare` of an old
REPORT.json (no ``inputs.segmentation``) or an archived batch folder must not take the model of
labels written at the same path since (segmented again, another model) for the model the old
numbers were measured with. Old outputs are simulated by editing new ones (True/False cells,
no per_study column, no inputs.segmentation)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from medseg.cli import run_cli

MAP = "lv=1,myo=2,rv=3"
SHA_A, SHA_B = "a" * 64, "b" * 64


def _labels(path: Path, sha: str, seed: int = 1, ef: float = 0.6) -> Path:
    """A small cine phantom's labels with a sidecar naming the model ``sha``."""
    from medseg.io import write_labels
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=4, n_slices=6, shape=(64, 64), spacing=(10.0, 1.5, 1.5), seed=seed, ef=ef, pose_jitter=False)
    prov = {"model_id": "default", "model_sha256": sha, "adapter_id": None, "adapter_sha256": None, "needs_review": False}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_labels(ph.labels, ph.image, path, MAP, provenance=prov)
    return path


def _old_report(labels: Path, out: Path) -> Path:
    """``medseg measure`` of ``labels``, as the previous version wrote it (no inputs.segmentation)."""
    assert run_cli(["measure", str(labels), "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    del rep["inputs"]["segmentation"]
    out.write_text(json.dumps(rep))
    return out


def test_old_report_whose_labels_were_segmented_again_does_not_borrow_their_model(tmp_path, capsys):
    """An old report of labels made with model B; the file was segmented again with model A since:
    its sidecar no longer says what the report measured (its sha256 is not the report's)."""
    lab = _labels(tmp_path / "lab" / "p1.nii.gz", SHA_B)
    base = _old_report(lab, tmp_path / "base.json")
    _labels(lab, SHA_A, seed=2)  # the same path, segmented again with another model
    follow = _old_report(_labels(tmp_path / "lab" / "p1_follow.nii.gz", SHA_A, ef=0.5), tmp_path / "follow.json")
    out = tmp_path / "c.json"
    assert run_cli(["compare", str(base), str(follow), "-o", str(out)]) == 0
    cautions = json.loads(out.read_text())["pairs"][0]["cautions"]
    assert any("models cannot be compared: baseline not recorded" in c for c in cautions), cautions
    # the label file as measured: its sidecar is read (model B), and the change of model refused
    _labels(lab, SHA_B)
    assert run_cli(["compare", str(base), str(follow), "-o", str(out)]) == 1
    assert "model or adapter differs" in capsys.readouterr().err


def _batch_folder(folder: Path, sha: str, ef: float = 0.6) -> Path:
    """A folder as the previous `medseg batch --measure` wrote it: labels + sidecars beside
    summary.csv (``output`` an absolute path in this folder), cohort.csv with True/False and no per_study."""
    from medseg._files import write_json_atomic, write_text_atomic
    from medseg.measure.export import report_row

    lab = _labels(folder / "s01.nii.gz", sha, ef=ef)
    assert run_cli(["measure", str(lab), "-o", str(folder.parent / f"{folder.name}_m.json")]) == 0
    row = {"case": "s01", "needs_review": "True", "confidence": 0.9, **report_row(json.loads((folder.parent / f"{folder.name}_m.json").read_text()))}
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, list(row), lineterminator="\n")
    w.writeheader()
    w.writerow(row)
    write_text_atomic(folder / "cohort.csv", buf.getvalue())
    write_text_atomic(folder / "summary.csv", f"case,status,needs_review,output\ns01,ok,True,{lab.resolve()}\n")
    write_json_atomic(folder / "summary.json", {"settings": {"basal_rule": True}})
    return folder


def test_archived_batch_folder_reads_its_own_sidecars_not_where_it_was_made(tmp_path, capsys):
    """results/ of the old version copied to archive/, then results/ segmented again with another
    model: archive/summary.csv still names results/; compare must read archive/'s own labels."""
    results = _batch_folder(tmp_path / "results", SHA_B)
    archive = tmp_path / "archive"
    shutil.copytree(results, archive)
    shutil.rmtree(results)
    _batch_folder(results, SHA_A, ef=0.5)  # rerun with the new version and another model
    out = tmp_path / "c.json"
    assert run_cli(["compare", str(archive), str(results), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "model or adapter differs" in err and len(err.strip().splitlines()) == 1
    assert run_cli(["compare", str(archive), str(results), "-o", str(out), "--allow-model-change"]) == 0
    pair = json.loads(out.read_text())["pairs"][0]
    assert any("baseline segmentation needs review" in c for c in pair["cautions"])  # old "True" read as TRUE
    assert pair["measures"]["lv.ef_pct"]["change"] < 0
