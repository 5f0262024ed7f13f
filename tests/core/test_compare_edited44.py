"""`medseg compare` of a report whose labels were edited by hand since medseg wrote them (the
report's `inputs.labels_edited`): the change was credited to the sidecar's model alone."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from medseg.cli._app import run_cli


def _labels(tmp_path, phantom, name):
    from medseg.batch.kept import labels_sha256
    from medseg.io import write_labels

    lab = phantom.labels[:1]
    vol = phantom.image.with_array(phantom.image.array[:1], frame_times_s=None)
    prov = {"command": "batch", "model_id": "default", "model_sha256": "a" * 64, "adapter_id": None, "adapter_sha256": None,
            "labels_sha256": labels_sha256(lab)}
    write_labels(lab, vol, tmp_path / f"{name}.nii.gz", "lv=1,myo=2,rv=3", provenance=prov)
    return tmp_path / f"{name}.nii.gz"


def test_compare_cautions_a_visit_whose_labels_were_edited_by_hand(tmp_path, phantom, capsys):
    base, follow = _labels(tmp_path, phantom, "base"), _labels(tmp_path, phantom, "follow")
    img = nib.load(str(follow))
    a = np.asarray(img.dataobj).copy()
    a[tuple(np.argwhere(a == 2)[:60].T)] = 0  # the reader erased some myocardium with nibabel
    nib.save(nib.Nifti1Image(a, img.affine, img.header), str(follow))
    for p in (base, follow):
        assert run_cli(["measure", str(p), "-o", str(tmp_path / f"{p.name[:-7]}_r.json")]) == 0
    assert run_cli(["compare", str(tmp_path / "base_r.json"), str(tmp_path / "follow_r.json"), "-o", str(tmp_path / "c.json"),
                    "--allow-other-patient"]) == 0
    cautions = json.loads((tmp_path / "c.json").read_text())["pairs"][0]["cautions"]
    assert any("follow-up labels were edited by hand" in c for c in cautions), cautions
    assert not any("baseline labels were edited" in c for c in cautions)
