"""Two labs sharing an adapter: lab A trains one with ``medseg adapt`` and mails the zipped
folder; lab B unpacks it, installs it in ``$MEDSEG_HOME/adapters`` and segments with it.

A sweep found that lab B could load wrong weights with nothing said (a weights file damaged in
transfer into other finite values, or another adapter's file copied into the folder: both
loaded under the card of the first), that an adapter of a newer format loaded as if this medseg
knew it, that a zip unpacked one folder too deep was "not a medseg adapter folder" (and missing
from ``medseg models``) without a word about the adapter inside, that the card named neither the
medseg version, the date nor the weights' sha256 that outputs record, and that a DICOM SEG
named no model or adapter.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg._files import sha256_file
from medseg.adapters import apply_lora, attach_adapter, check_adapter_file, find_adapter, list_adapters, lora_config, read_adapter_meta, save_adapter
from medseg.cli._app import run_cli
from medseg.errors import CheckpointError
from medseg.models import load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))


def _save(base, out: Path, seed: int) -> Path:
    peft_model = apply_lora(copy.deepcopy(base.model), lora_config(rank=4))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    meta = {"base_model_id": "default", "base_model_sha256": base.sha256, "modality": "MR", "label_map": {"lv": 1}}
    return save_adapter(peft_model, out, meta, "# card\n")


@pytest.fixture(scope="module")
def lab_a(tmp_path_factory):
    """Two adapters lab A made (same settings, other weights)."""
    base = load_model("default")
    d = tmp_path_factory.mktemp("labA")
    return _save(base, d / "scannerA", 1), _save(base, d / "scannerA-v2", 2)


@pytest.fixture()
def image(tmp_path):
    import nibabel as nib

    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=1, n_slices=2, shape=(48, 48), seed=1)
    nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 3), ph.image.affine), str(tmp_path / "img.nii.gz"))
    return tmp_path / "img.nii.gz"


def _received(lab_a, tmp_path, name="Lab B Zürich/scannerA") -> Path:
    out = tmp_path / name
    shutil.copytree(lab_a[0], out)
    return out


def _one_error_line(capfd) -> str:
    err = capfd.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: ") and not lines[0].startswith("error: unexpected"), err
    return lines[0]


def test_the_folder_records_its_weights_sha256_and_the_card_names_version_date_and_hash(lab_a):
    folder = lab_a[0]
    meta = json.loads((folder / "medseg.json").read_text())
    digest = sha256_file(folder / "adapter_model.safetensors")
    assert meta["adapter_sha256"] == digest and meta["format"] == "medseg-adapter/1"
    card = (folder / "README.md").read_text()
    assert card.startswith("# card") and digest in card and meta["date"] in card and f"medseg {meta['medseg_version']}" in card
    loaded = attach_adapter(load_model("default"), str(folder))
    assert loaded.provenance()["adapter_sha256"] == digest  # what outputs record is what the card names


@pytest.mark.parametrize("damage", ["bits_flipped", "other_adapters_weights"])
def test_weights_that_are_not_the_recorded_ones_are_refused(damage, lab_a, tmp_path, image, capfd, monkeypatch):
    """Both are valid safetensors with finite LoRA weights of the right shapes: every other check
    passed them and the wrong weights segmented under this adapter's name and card."""
    bad = _received(lab_a, tmp_path)
    weights = bad / "adapter_model.safetensors"
    if damage == "bits_flipped":
        from safetensors.torch import load_file, save_file

        state = load_file(str(weights))
        key = next(k for k in sorted(state) if "lora_B" in k)
        state[key] = state[key] + 1e-3  # a few changed bytes: still finite, still small
        save_file(state, str(weights), metadata={"format": "pt"})
    else:
        shutil.copy(lab_a[1] / "adapter_model.safetensors", weights)
    with pytest.raises(CheckpointError, match="its medseg.json records"):
        attach_adapter(load_model("default"), str(bad))
    out = tmp_path / "out.nii.gz"
    assert run_cli(["segment", str(image), "--auto", "--adapter", str(bad), "-o", str(out)]) == 1
    line = _one_error_line(capfd)
    assert "sha256" in line and "another adapter's weights" in line and not out.exists()
    home = tmp_path / "home"
    shutil.copytree(bad, home / "adapters" / "scannerA")
    monkeypatch.setenv("MEDSEG_HOME", str(home))
    row = next(r for r in list_adapters() if r["name"] == "scannerA")
    assert row["source"].startswith("broken:") and "its medseg.json records" in row["source"]


def test_an_adapter_recording_no_weights_sha256_still_loads(tmp_path, monkeypatch):
    """An adapter made before medseg recorded the hash (cmr-lge as it was shipped until 2026-12-07)."""
    shipped = find_adapter("cmr-lge")
    meta = json.loads((shipped / "medseg.json").read_text())
    assert meta["adapter_sha256"] == sha256_file(shipped / "adapter_model.safetensors")  # the shipped one is checked
    old = tmp_path / "home" / "adapters" / "lge-old"
    shutil.copytree(shipped, old)
    del meta["adapter_sha256"]
    (old / "medseg.json").write_text(json.dumps(meta))
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path / "home"))
    check_adapter_file(old)
    row = next(r for r in list_adapters() if r["name"] == "lge-old")
    assert row.get("sha256") and row["modality"] == "LGE-MR" and row["date"] and row["medseg_version"]


def test_an_adapter_of_a_newer_format_is_refused_in_one_line(lab_a, tmp_path, image, capfd):
    newer = _received(lab_a, tmp_path)
    meta = json.loads((newer / "medseg.json").read_text())
    (newer / "medseg.json").write_text(json.dumps({**meta, "format": "medseg-adapter/2", "medseg_version": "9.0.0"}))
    with pytest.raises(CheckpointError, match=r"format \"medseg-adapter/2\" \(made by medseg \"9.0.0\"\).*reads medseg-adapter/1"):
        read_adapter_meta(newer)
    assert run_cli(["segment", str(image), "--auto", "--adapter", str(newer), "-o", str(tmp_path / "o.nii.gz")]) == 1
    assert "update medseg" in _one_error_line(capfd)


def test_a_zip_unpacked_one_folder_too_deep_names_the_inner_folder(lab_a, tmp_path, image, capfd, monkeypatch):
    home = tmp_path / "home"
    outer = home / "adapters" / "scannerA"
    shutil.copytree(lab_a[0], outer / "scannerA")
    (outer / "__MACOSX").mkdir()  # as a zip made on a Mac unpacks
    assert run_cli(["segment", str(image), "--auto", "--adapter", str(outer), "-o", str(tmp_path / "o.nii.gz")]) == 1
    line = _one_error_line(capfd)
    assert "it holds the adapter folder 'scannerA'" in line
    monkeypatch.setenv("MEDSEG_HOME", str(home))
    row = next(r for r in list_adapters() if r["name"] == "scannerA")  # was not listed at all
    assert row["source"].startswith("broken:") and "one folder too deep" in row["source"]
    assert run_cli(["segment", str(image), "--auto", "--adapter", str(outer / "scannerA"), "-o", str(tmp_path / "o.nii.gz")]) == 0


def test_a_dicom_seg_names_the_model_and_adapter_that_made_it(tmp_path):
    import pydicom
    from io_synth import write_cine_series

    from medseg.io import read_volume, write_labels

    write_cine_series(tmp_path / "dcm", n_slices=2, n_phases=1, rows=12, cols=10)
    vol = read_volume(tmp_path / "dcm")
    labels = np.zeros(vol.array.shape, dtype=np.uint8)
    labels[..., 3:8, 3:7] = 1
    prov = {"model_id": "default", "model_sha256": "a" * 64, "adapter_id": "scannerA", "adapter_sha256": "b" * 64}
    write_labels(labels, vol, tmp_path / "seg.dcm", "lv=1", provenance=prov)
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    params = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmParameters
    assert f"adapter_id=scannerA,adapter_sha256={'b' * 64}" in params and f"model_sha256={'a' * 64}" in params


def test_batch_summary_names_the_adapter_weights_it_ran_with(lab_a, tmp_path, image):
    """summary.json's settings gave the adapter's name alone ("scannerA": which of lab A's?)."""
    folder = _received(lab_a, tmp_path, "Lab B Zürich/in")
    shutil.rmtree(folder)
    folder.mkdir()
    shutil.copy(image, folder / "case 1.nii.gz")
    out = tmp_path / "out"
    assert run_cli(["batch", str(folder), "-o", str(out), "--auto", "--structures", "lv", "--adapter", str(lab_a[0])]) == 0
    settings = json.loads((out / "summary.json").read_text())["settings"]
    sidecar = json.loads((out / "case 1.json").read_text())["provenance"]
    assert settings["adapter_sha256"] == sidecar["adapter_sha256"] == sha256_file(lab_a[0] / "adapter_model.safetensors")
    assert settings["model_sha256"] == sidecar["model_sha256"]
