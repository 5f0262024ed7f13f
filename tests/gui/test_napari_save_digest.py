"""A batch's (or segment's) labels opened in napari, edited and saved over the file: the sidecar
records the ``labels_sha256`` of the labels saved, not the batch's (it kept the batch's, so
``measure`` took the save for labels never edited since, and missed a later edit in another
program, ITK-SNAP or 3D Slicer, of the saved file)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest


@pytest.fixture()
def batch_output(tmp_path):
    """``c1.nii.gz`` + sidecar as a batch writes them (command, input sha256, labels_sha256)."""
    from medseg._files import sha256_path
    from medseg.batch.kept import labels_sha256
    from medseg.io import write_labels
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=1, n_slices=4, shape=(48, 48), seed=5)
    image = tmp_path / "c1_image.nii.gz"
    write_labels(ph.labels, ph.image, tmp_path / "ref.nii.gz", "lv=1,myo=2,rv=3")  # any file: its sha256 is the input's
    image.write_bytes((tmp_path / "ref.nii.gz").read_bytes())
    out = tmp_path / "c1.nii.gz"
    prov = {"command": "batch", "input": str(image), "input_sha256": sha256_path(image), "labels_sha256": labels_sha256(ph.labels)}
    write_labels(ph.labels, ph.image, out, "lv=1,myo=2,rv=3", prov)
    return out


def _edit_and_save(out):
    from medseg_napari._reader import read_image
    from medseg_napari._writer import write_label_layer

    data, kwargs, kind = read_image(str(out))[0]
    assert kind == "labels"
    data = np.array(data)
    z = int(np.argmax((data[0] == 3).sum(axis=(1, 2))))
    data[0, z][data[0, z] == 3] = 0  # the RV erased on one slice
    write_label_layer(out, data, kwargs)
    return data


def test_a_napari_save_over_batch_labels_records_the_digest_of_what_it_saved(batch_output):
    from medseg.batch.kept import labels_differ, labels_sha256
    from medseg.io import read_label_volume

    before = json.loads(batch_output.with_name("c1.json").read_text())["provenance"]["labels_sha256"]
    saved = _edit_and_save(batch_output)
    prov = json.loads(batch_output.with_name("c1.json").read_text())["provenance"]
    assert prov["edited_from"] == "batch"
    assert prov["labels_sha256"] == labels_sha256(read_label_volume(batch_output).array) == labels_sha256(saved) != before
    assert prov["actions"][-1]["labels_sha256"] == prov["labels_sha256"]
    assert labels_differ(batch_output) is False  # as saved

    img = nib.load(str(batch_output))  # then edited in another program, the sidecar left as it was
    data = np.asarray(img.dataobj).copy()
    data[data == 2] = 0
    nib.save(nib.Nifti1Image(data, img.affine, img.header), str(batch_output))
    assert labels_differ(batch_output) is True


def test_a_napari_save_from_before_the_digest_is_not_taken_for_a_hand_edit(batch_output):
    """Sidecars napari wrote before: ``edited_from`` with the batch's digest (of the labels before
    the edit) and no digest in the edit: nothing told, as before."""
    from medseg.batch.kept import labels_differ

    _edit_and_save(batch_output)
    side = batch_output.with_name("c1.json")
    doc = json.loads(side.read_text())
    del doc["provenance"]["actions"][-1]["labels_sha256"]
    doc["provenance"]["labels_sha256"] = "0" * 64
    side.write_text(json.dumps(doc))
    assert labels_differ(batch_output) is None


def test_measure_names_labels_edited_after_a_napari_save(batch_output, tmp_path, capsys):
    from medseg.cli import run_cli

    _edit_and_save(batch_output)
    assert run_cli(["measure", str(batch_output), "-o", str(tmp_path / "m1.json")]) == 0
    assert "labels_edited" not in json.loads((tmp_path / "m1.json").read_text())["inputs"]
    img = nib.load(str(batch_output))
    data = np.asarray(img.dataobj).copy()
    data[data == 2] = 0
    nib.save(nib.Nifti1Image(data, img.affine, img.header), str(batch_output))
    capsys.readouterr()
    assert run_cli(["measure", str(batch_output), "-o", str(tmp_path / "m2.json")]) == 0
    assert json.loads((tmp_path / "m2.json").read_text())["inputs"]["labels_edited"]
    assert "labels changed since medseg wrote them" in capsys.readouterr().err
