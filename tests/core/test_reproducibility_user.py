"""A methods section and a reviewer asking "can these numbers be regenerated?": every output
records the software it was made with (medseg, python, torch, numpy versions), the device and
torch threads of the model, the date and the settings; `medseg --version` prints them; the same
run gives the same labels with another torch thread count, and `adapt` the same weights with the
same seed."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch

from medseg.cli._app import run_cli

ACDC_MAP = "lv=3,myo=2,rv=1"


@pytest.fixture(scope="module")
def study(tmp_path_factory, phantom):
    """One phantom frame as NIfTI and its reference labels in ACDC's values."""
    from medseg.io.geometry import medseg_to_nifti

    d = tmp_path_factory.mktemp("repro")
    vol = phantom.image.with_array(phantom.image.array[:1], frame_times_s=None)
    nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(d / "img.nii.gz"))
    lab = phantom.labels[0]
    acdc = np.select([lab == phantom.label_map["lv"], lab == phantom.label_map["myo"], lab == phantom.label_map["rv"]], [3, 2, 1], 0)
    nib.save(nib.Nifti1Image(medseg_to_nifti(acdc[None].astype(np.uint8), 3), vol.affine), str(d / "gt.nii.gz"))
    return d


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _versions_are_this_process(rec: dict) -> None:
    from medseg import __version__

    assert rec["medseg_version"] == __version__ and rec["python_version"] == platform.python_version()
    assert rec["torch_version"] == torch.__version__ and rec["numpy_version"] == np.__version__


def test_segment_sidecar_records_versions_device_and_threads(study, tmp_path):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert run_cli(["segment", str(study / "img.nii.gz"), "-o", str(tmp_path / "a.nii.gz"), "--prompts-from", str(study / "gt.nii.gz"),
                        "--label-map", ACDC_MAP, "--key-slice"]) == 0
    finally:
        torch.set_num_threads(threads)
    prov = json.loads((tmp_path / "a.json").read_text())["provenance"]
    _versions_are_this_process(prov)
    assert prov["device"] == "cpu" and prov["torch_threads"] == 1 and prov["created"]


@pytest.mark.parametrize("mode", ["key-slice", "auto"])
@pytest.mark.slow  # ~19 s over its 2 cases on the shared 2-core CPU
def test_same_labels_and_confidences_with_one_or_two_torch_threads(study, model, mode):
    """Thread-count-dependent reductions must not move a voxel or a confidence (the threads also
    decide whether slices are predicted in parallel threads: Session.parallel_map)."""
    from medseg.io import read_volume
    from medseg.labels import LabelMap
    from medseg.prompt_file import study_prompts
    from medseg.segment import segment_volume

    vol = read_volume(study / "img.nii.gz")
    lmap = LabelMap.parse(ACDC_MAP)
    kw = {"auto": True} if mode == "auto" else {"prompts": study_prompts(vol, None, study / "gt.nii.gz", lmap, True), "label_map": lmap}
    threads, runs = torch.get_num_threads(), []
    try:
        for n in (1, 2, 1):
            torch.set_num_threads(n)
            runs.append(segment_volume(vol, model, **kw))
    finally:
        torch.set_num_threads(threads)
    for r in runs[1:]:
        assert np.array_equal(r.labels, runs[0].labels)
        assert r.provenance["confidence"] == runs[0].provenance["confidence"]
    assert [r.provenance["torch_threads"] for r in runs] == [1, 2, 1]


def test_evaluate_result_records_versions_and_date(study, tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"image,label\n{study / 'img.nii.gz'},{study / 'gt.nii.gz'}\n")
    assert run_cli(["evaluate", "--pairs", str(pairs), "--label-map", ACDC_MAP, "--prompt", "box", "-o", str(tmp_path / "r.json")]) == 0
    settings = json.loads((tmp_path / "r.json").read_text())["settings"]
    _versions_are_this_process(settings)
    assert settings["device"] == "cpu" and settings["torch_threads"] >= 1 and settings["created"]
    assert settings["prompt"] == "box" and settings["model_sha256"]
    case = json.loads((tmp_path / "r.json").read_text())["cases"][0]
    assert case["image_sha256"] == _sha256(study / "img.nii.gz") and case["label_sha256"] == _sha256(study / "gt.nii.gz")


def test_measure_report_records_label_hashes_settings_and_versions(study, tmp_path):
    out = tmp_path / "rep.json"
    assert run_cli(["measure", str(study / "gt.nii.gz"), "--label-map", ACDC_MAP, "--aha-method", "septum_split", "-o", str(out),
                    "--csv", str(tmp_path / "rep.csv")]) == 0
    inputs = json.loads(out.read_text())["inputs"]
    assert inputs["sha256"] == {"labels": _sha256(study / "gt.nii.gz")}
    assert inputs["settings"] == {"aha_method": "septum_split", "base": "auto", "interpolate_missing": False, "basal_rule": True, "clip": False}
    from medseg import __version__

    assert inputs["medseg_version"] == __version__ and inputs["python_version"] == platform.python_version() and inputs["created"]
    header = (tmp_path / "rep.csv").read_text().splitlines()[0].split(",")
    assert "inputs.settings.aha_method" in header and "inputs.sha256.labels" in header


def test_version_prints_what_a_methods_section_needs(capsys):
    from medseg import __version__
    from medseg.models.registry import shipped_sha256

    assert run_cli(["--version"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"medseg {__version__}"
    assert f"python {platform.python_version()}" in out[1] and f"torch {torch.__version__}" in out[1] and f"numpy {np.__version__}" in out[1]
    assert out[2] == f"default model sha256 {shipped_sha256()}"


def test_a_replay_on_another_device_is_noted():
    from medseg.replay_sidecar import identity_notes

    rec = SimpleNamespace(provenance={"model_sha256": "a" * 64, "model_id": "default", "adapter_sha256": None, "device": "cpu"})
    loaded = SimpleNamespace(sha256="a" * 64, model_id="default", adapter_sha256=None, adapter_id=None, device="cuda")
    assert identity_notes(rec, loaded) == ["the session was recorded on cpu, replayed on cuda: a few edge voxels may differ"]
    assert identity_notes(rec, SimpleNamespace(**{**vars(loaded), "device": "cpu"})) == []


@pytest.mark.slow  # ~10 s on the shared 2-core CPU
def test_adapt_records_its_environment_and_data_and_repeats_its_weights(tmp_path):
    """Same pairs, same --seed, same threads: the same adapter file, byte for byte; its
    medseg.json names the torch threads and versions and the sha256 of every image and label."""
    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    rows = []
    for i in range(2):
        ph = cine_sax_phantom(n_frames=1, n_slices=3, shape=(80, 80), spacing=(8.0, 1.5, 1.5), seed=60 + i)
        img, lab = tmp_path / f"s{i}.nii.gz", tmp_path / f"s{i}_gt.nii.gz"
        nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 3), ph.image.affine), str(img))
        write_labels(ph.labels, ph.image, lab, ph.label_map.subset(["lv", "myo", "rv"]))
        rows.append(f"image,label\n{img},{lab}\n")
    (tmp_path / "train.csv").write_text(rows[0])
    (tmp_path / "val.csv").write_text(rows[1])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        for name in ("a", "b"):
            assert run_cli(["adapt", "--pairs", str(tmp_path / "train.csv"), "--val", str(tmp_path / "val.csv"), "--label-map", "lv=1,myo=2,rv=3",
                            "-o", str(tmp_path / name), "--steps", "2", "--val-every", "1", "--rank", "2", "--batch-size", "2", "--seed", "5"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert _sha256(tmp_path / "a" / "adapter_model.safetensors") == _sha256(tmp_path / "b" / "adapter_model.safetensors")
    training = json.loads((tmp_path / "a" / "medseg.json").read_text())["training"]
    assert training["config"]["seed"] == 5 and training["torch_threads"] == 1 and training["device"] == "cpu"
    assert training["torch_version"] == torch.__version__ and training["python_version"] == platform.python_version()
    assert training["data_sha256"] == {
        "train": [{"case": "s0", "image_sha256": _sha256(tmp_path / "s0.nii.gz"), "label_sha256": _sha256(tmp_path / "s0_gt.nii.gz")}],
        "val": [{"case": "s1", "image_sha256": _sha256(tmp_path / "s1.nii.gz"), "label_sha256": _sha256(tmp_path / "s1_gt.nii.gz")}]}


def test_napari_saved_labels_record_the_image_sha256_and_replay_checks_it(study, model, tmp_path, capsys):
    """napari's *Save labels* records the image's sha256, as segment does, so a replay checks the
    image (it noted "the image is not checked") and refuses another one."""
    from medseg_napari._controller import SegmentController

    from medseg.io import read_volume
    from medseg.types import Box

    vol = read_volume(study / "img.nii.gz")
    labels = np.zeros(vol.shape, np.uint8)
    c = SegmentController(vol, labels, model, source=str(study / "img.nii.gz"))
    c.prompt("lv", 0, 2, box=Box(40, 40, 70, 70))
    c.save(tmp_path / "nap.nii.gz")
    prov = json.loads((tmp_path / "nap.json").read_text())["provenance"]
    assert prov["input_sha256"] == _sha256(study / "img.nii.gz") and prov["tool"] == "medseg-napari"
    _versions_are_this_process(prov)
    capsys.readouterr()
    assert run_cli(["segment", str(study / "img.nii.gz"), "-o", str(tmp_path / "r.nii.gz"), "--replay", str(tmp_path / "nap.json")]) == 0
    assert "not checked" not in " ".join(capsys.readouterr().err.split())
    other = tmp_path / "other.nii.gz"
    img = nib.load(str(study / "img.nii.gz"))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj) + 1, img.affine), str(other))
    assert run_cli(["segment", str(other), "-o", str(tmp_path / "r2.nii.gz"), "--replay", str(tmp_path / "nap.json")]) != 0
    assert not (tmp_path / "r2.nii.gz").exists()


def test_batch_summary_names_the_software(tmp_path):
    """summary.json had the settings but no versions: a methods section had to open a case's sidecar."""
    import json

    from medseg import __version__
    from medseg.batch.cohort import write_summary

    write_summary(tmp_path, [{"case": "c1", "status": "failed", "reason": "x", "output": "", "input": "c1.nii.gz"}])
    sw = json.loads((tmp_path / "summary.json").read_text())["software"]
    assert sw["medseg_version"] == __version__ and sw["python_version"].count(".") == 2 and sw["numpy_version"]
