"""OUT_DIR/METHODS.md of `medseg batch`: every statement follows the run (prompts, adapter,
--measure with and without --subjects, failures, review counts, a resume with other options, the
last shard) and the code's constants, on tiny phantom studies."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from batch_data import MAP, write_case

from medseg.cli import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cine_case(folder: Path, case: str, seed: int) -> None:
    """``<case>.nii.gz``: a 2-frame short-axis cine (4-D NIfTI) and ``<case>_gt.nii.gz``."""
    import nibabel as nib

    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=2, n_slices=5, shape=(64, 64), seed=seed)
    nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 4), ph.image.affine), str(folder / f"{case}.nii.gz"))
    write_labels(ph.labels, ph.image, folder / f"{case}_gt.nii.gz", MAP)


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    """c1: a cine; c2: one frame; c3: a damaged file (fails)."""
    folder = tmp_path_factory.mktemp("studies")
    _cine_case(folder, "c1", 3)
    write_case(folder, "c2", seed=4, shape=(64, 64), n_slices=5)
    (folder / "c3.nii.gz").write_bytes(b"not a nifti")
    shutil.copy(folder / "c2_gt.nii.gz", folder / "c3_gt.nii.gz")
    return folder


def _batch(inp: Path, out: Path, *extra: str) -> int:
    return run_cli(["batch", str(inp), "-o", str(out), "--prompts-from", str(inp), "--label-map", MAP, *extra])


@pytest.fixture(scope="module")
def key_slice(studies, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("key")
    assert _batch(studies, out, "--key-slice", "--measure") == 1  # c3 failed
    return out


def _text(out: Path) -> str:
    return (out / "METHODS.md").read_text(encoding="utf-8")


def test_key_slice_run_states_its_prompts_model_sha256_counts_and_failure(key_slice):
    from medseg._files import sha256_path
    from medseg.models.registry import shipped_checkpoint

    text, summary = _text(key_slice), json.loads((key_slice / "summary.json").read_text())
    assert "one bounding box per structure on a single slice of each frame (cine) from the reference labels" in text
    assert "on every slice" not in text and "zero-click" not in text
    assert f"sha256 {sha256_path(shipped_checkpoint())}" in text and "without an adapter" in text
    assert f"flagged {summary['n_needs_review']} of the 2 cases segmented for review" in text  # the two segmented; c3 failed
    assert summary["n_failed"] == 1 and "1 case failed (" in text
    assert "--key-slice" in text and "--measure" in text and "--subjects" not in text
    assert "Body surface area" not in text  # no body data: no BSA sentence
    assert "Kirillov et al. Segment Anything." in text and "Bernard et al." in text


def test_measurement_sentences_follow_the_code_constants(key_slice, monkeypatch):
    from medseg import enclosure, propagation
    from medseg.measure import qc, volumes
    from medseg.methods import methods_text

    before = methods_text(key_slice)
    assert f"times {volumes.MYOCARDIAL_DENSITY_G_PER_ML:g} g/mL" in before and before == _text(key_slice).replace(
        re.search(r"Written: (\S+)", _text(key_slice)).group(1), re.search(r"Written: (\S+)", before).group(1))
    monkeypatch.setattr(volumes, "MYOCARDIAL_DENSITY_G_PER_ML", 1.07)
    monkeypatch.setattr(qc, "BASAL_COVERAGE_MIN", 0.6)
    monkeypatch.setattr(propagation, "MIN_SCORE", 0.52)
    monkeypatch.setattr(enclosure, "BESIDE_MARGIN", 2)
    after = methods_text(key_slice)
    assert "times 1.07 g/mL" in after and "times 1.05 g/mL" not in after
    assert "at least 60% of its cavity" in after and "at least 50%" not in after
    assert "IoU fell below 0.52" in after and "more than 2 slices beyond" in after


def test_reference_range_sources_and_papillary_convention_come_from_the_rows(key_slice, monkeypatch):
    from medseg._files import read_medseg_csv
    from medseg.measure import reference
    from medseg.methods import methods_text

    rows = read_medseg_csv(key_slice / "cohort.csv")
    text = methods_text(key_slice)
    assert "LVEF" in text and reference.REFERENCE_RANGES["cmr_lvef_pct"][3] in text  # the cine has an EF
    pool = sum(r["papillary_muscles.counted_in"] == "blood_pool" for r in rows if r.get("per_study") != "FALSE")
    assert f"in the LV blood pool (LV volumes, not LV mass) in {pool} of" in text
    ranges = dict(reference.REFERENCE_RANGES)
    ranges["cmr_lvef_pct"] = (*ranges["cmr_lvef_pct"][:3], "Another cohort (Someone 2030)")
    monkeypatch.setattr(reference, "REFERENCE_RANGES", ranges)
    assert "Another cohort (Someone 2030)" in methods_text(key_slice)


def test_box_prompts_with_subjects_give_the_bsa_sentence(studies, tmp_path):
    (tmp_path / "subjects.csv").write_text("case,height_cm,weight_kg,sex\nc1,180,80,M\n", encoding="utf-8")
    out = tmp_path / "out"
    assert _batch(studies, out, "--measure", "--subjects", str(tmp_path / "subjects.csv")) == 1
    text = _text(out)
    assert "a bounding box from the reference labels on every slice that holds the structure, without propagation" in text
    assert "single slice" not in text and "Propagation to the next slice" not in text  # nothing propagated
    assert "Body surface area (Mosteller formula) came from the height and weight in the subjects file for 1 of" in text
    assert "--subjects (1 row)" in text


def test_zero_click_without_measure_says_nothing_of_measurements(tmp_path):
    write_case(tmp_path / "in", "z1", seed=5, shape=(64, 64), n_slices=5)
    (tmp_path / "in" / "z1_gt.nii.gz").unlink()
    out = tmp_path / "out"
    assert run_cli(["batch", str(tmp_path / "in"), "-o", str(out), "--auto"]) == 0
    text = _text(out)
    assert "no prompt: zero-click" in text and "bounding box" not in text and "--auto" in text
    for word in ("Measurements", "g/mL", "basal", "Body surface", "reference ranges", "Petersen"):
        assert word not in text, word


def test_resume_with_an_adapter_and_a_corrected_case_is_reported_as_mixed(key_slice, tmp_path):
    import nibabel as nib

    from medseg.adapters import find_adapter, read_adapter_meta

    out = tmp_path / "out"
    shutil.copytree(key_slice, out)
    img = nib.load(str(out / "c2.nii.gz"))  # corrected by hand in another program: kept by --resume
    data = np.asarray(img.dataobj).copy()
    data[data == 1] = 0
    nib.save(nib.Nifti1Image(data, img.affine, img.header), str(out / "c2.nii.gz"))
    studies = Path(json.loads((out / "c1.json").read_text())["provenance"]["input"]).parent
    assert _batch(studies, out, "--key-slice", "--measure", "--resume", "--adapter", "cmr-lge") == 1
    text = _text(out)
    sha = read_adapter_meta(find_adapter("cmr-lge"))["adapter_sha256"]
    assert "not all segmented with the same weights" in text
    assert re.search(r'1 case with the model "default" \(sha256 \w{12}\.\.\.\) with the LoRA adapter "cmr-lge"', text)
    assert "1 case with the model \"default\"" in text and "without an adapter" in text
    assert f"adapter: cmr-lge, sha256 {sha}" in text
    assert "The labels of 1 case were edited by hand after medseg wrote them, 1 of them kept as corrected" in text
    assert "in 1 of 2 cases" in text  # the LV threshold: not with an adapter
    assert "Zhuang. Multivariate mixture model" in text  # the adapter's data set (MS-CMRSeg)
    assert "Prompting differed" not in text  # key slice on a cine and on one frame: one way of prompting


def test_only_the_last_shard_writes_the_methods(studies, tmp_path):
    out = tmp_path / "out"
    assert _batch(studies, out, "--key-slice", "--shard", "2/2") == 0  # c2
    assert not (out / "METHODS.md").exists()
    assert _batch(studies, out, "--key-slice", "--shard", "1/2") == 1  # c1, c3 (fails): then merged
    text = _text(out)
    assert "segmented in 2 cases" in text and "1 case failed" in text


def test_a_run_cut_short_leaves_no_earlier_methods_section(studies, tmp_path, monkeypatch, capsys):
    """An earlier run's METHODS.md stayed beside the summary of a run interrupted after it (and
    described other cases and options); a run that ends names the file in its closing line."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "METHODS.md").write_text("an earlier run's methods\n", encoding="utf-8")
    import medseg.batch.run as run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "run_case", interrupted)
    assert _batch(studies, out, "--key-slice") != 0
    assert not (out / "METHODS.md").exists()
    monkeypatch.undo()
    capsys.readouterr()
    assert _batch(studies, out, "--key-slice", "--resume") == 1  # c3 fails
    assert "methods section: " in capsys.readouterr().err.replace("\n", "") and "earlier run" not in _text(out)
