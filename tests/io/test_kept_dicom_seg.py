"""`medseg batch --dicom-seg` after a correction: a re-run keeps labels corrected by hand (or in
another program) and must remake the DICOM SEG from them. It used to leave the batch's SEG,
made from the labels before the correction, in ``OUT/<case>_seg/``, where it is what goes to
PACS, and the summary said ``none: ?``."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
from io_synth import write_cine_series

from medseg.cli import run_cli
from medseg.io import read_label_volume


def test_a_kept_case_gets_its_dicom_seg_remade_from_the_corrected_labels(tmp_path):
    write_cine_series(tmp_path / "in" / "pat1", n_slices=3, n_phases=1, rows=24, cols=20, seed=3)
    (tmp_path / "p.json").write_text(json.dumps({"prompts": [{"structure": "lv", "frame": 0, "slice": 1, "box": [6, 5, 17, 14]}]}))
    out = tmp_path / "out"
    args = ["batch", str(tmp_path / "in"), "--prompts", str(tmp_path / "p.json"), "-o", str(out), "--dicom-seg", "--resume"]
    assert run_cli(args) == 0
    seg_file = out / "pat1_seg" / "pat1.dcm"
    before = read_label_volume(seg_file).array
    assert before.any()

    for f in [*out.iterdir(), *(out / "pat1_seg").iterdir()]:  # the batch ran a while ago (a coarse clock must not hide the edit)
        earlier = os.stat(f).st_mtime_ns - 10 * 10**9
        os.utime(f, ns=(earlier, earlier))
    # corrected in ITK-SNAP: the LV erased, the batch's sidecar left as it was
    img = nib.load(str(out / "pat1.nii.gz"))
    data = np.asarray(img.dataobj).copy()
    data[data > 0] = 0
    nib.save(nib.Nifti1Image(data, img.affine, img.header), str(out / "pat1.nii.gz"))

    assert run_cli(args) == 0
    row = json.loads((out / "summary.json").read_text())["cases"][0]
    assert row["status"] == "skipped" and row["reason"].startswith("kept: labels changed since the batch wrote them")
    assert row["dicom_seg"] == "pat1.dcm"
    after = read_label_volume(seg_file)
    assert not after.array.any()  # the corrected (empty) labels, not the batch's LV
    assert np.array_equal(after.array, read_label_volume(out / "pat1.nii.gz").array)

    made = os.stat(seg_file).st_mtime_ns
    assert run_cli(args) == 0  # the SEG is newer than the correction now: left as it is
    assert os.stat(seg_file).st_mtime_ns == made
    assert json.loads((out / "summary.json").read_text())["cases"][0]["dicom_seg"] == "pat1.dcm"
