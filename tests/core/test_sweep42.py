"""Bad-input sweep of the round's additions (COCO / colour-mask references, MixedStudiesError,
child heights in batch rows, --device) and what the outputs say about the patient."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medseg.errors import LabelMapError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))


def _script():
    spec = importlib.util.spec_from_file_location("annotation_references", EXAMPLES / "annotation_references.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _coco(tmp_path: Path, **edit) -> Path:
    (tmp_path / "img").mkdir(exist_ok=True)
    for n in ("f1.png", "f2.png"):
        Image.fromarray(np.full((40, 50), 90, np.uint8)).save(tmp_path / "img" / n)
    coco = {"images": [{"id": 1, "file_name": "f1.png", "height": 40, "width": 50}, {"id": 2, "file_name": "f2.png", "height": 40, "width": 50}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[5, 5, 45, 5, 45, 35, 5, 35]]},
                            {"id": 2, "image_id": 1, "category_id": 2, "segmentation": [[15, 15, 30, 15, 30, 25]]},
                            {"id": 3, "image_id": 2, "category_id": 1, "segmentation": [[5, 5, 45, 5, 45, 35]]}],
            "categories": [{"id": 1, "name": "LE"}, {"id": 2, "name": "LV"}]}
    for k, v in edit.items():
        v(coco) if callable(v) else coco.__setitem__(k, v)
    (tmp_path / "c.json").write_text(json.dumps(coco))
    return tmp_path / "c.json"


@pytest.mark.parametrize("height", [-3, 0, 1e12])
def test_coco_image_size_that_is_no_size_is_one_line(tmp_path, height):
    """A negative height was numpy's traceback, 1e12 a 45 TiB allocation attempt."""
    from medseg.io.annotations import coco_labels, read_coco

    path = _coco(tmp_path, h=lambda c: c["images"][0].__setitem__("height", height))
    with pytest.raises(LabelMapError, match="no image's size"):
        coco_labels(read_coco(path), "f1.png", {"LE": "myo"}, "myo=2")


def test_coco_category_name_listed_twice_keeps_both_ids(tmp_path):
    """Two categories named 'LE' (merged exports): the first one's polygons were dropped, myo 0 px."""
    from medseg.io.annotations import coco_labels, read_coco

    path = _coco(tmp_path, h=lambda c: c["categories"].append({"id": 3, "name": "LE"}))
    lab = coco_labels(read_coco(path), "f1.png", {"LE": "myo", "LV": "lv"}, "lv=1,myo=2")
    assert (lab == 2).sum() > 1000 and (lab == 1).sum() > 0


def test_coco_bad_annotation_on_a_later_image_writes_nothing(tmp_path):
    """An RLE mask on the second image left the first's _gt.png without a pairs.csv."""
    path = _coco(tmp_path, h=lambda c: c["annotations"][2].__setitem__("segmentation", {"counts": "x", "size": [40, 50]}))
    with pytest.raises(LabelMapError, match="run-length"):
        _script().main(["coco", str(path), str(tmp_path / "img"), str(tmp_path / "out"), "--categories", "LE=myo,LV=lv"])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_coco_unknown_structure_is_named_against_medsegs_map(tmp_path):
    path = _coco(tmp_path)
    with pytest.raises(LabelMapError, match=r"--categories: 'foo' not medseg structure\(s\); use lv, myo"):
        _script().main(["coco", str(path), str(tmp_path / "img"), str(tmp_path / "out"), "--categories", "LE=myo,LV=foo"])


def _masks(tmp_path: Path, mask: Image.Image) -> tuple[Path, Path]:
    (tmp_path / "img").mkdir(exist_ok=True)
    (tmp_path / "masks").mkdir(exist_ok=True)
    Image.fromarray(np.full((40, 50), 90, np.uint8)).save(tmp_path / "img" / "f1.png")
    mask.save(tmp_path / "masks" / "f1.png")
    return tmp_path / "masks", tmp_path / "img"


def test_grey_mask_is_refused_not_read_as_white_pa(tmp_path):
    """A 0/255 grey-scale mask became all 'pa' (HVSMR's white) without a word."""
    m = np.zeros((40, 50), np.uint8)
    m[5:20, 5:20] = 255
    masks, img = _masks(tmp_path, Image.fromarray(m))
    with pytest.raises(LabelMapError, match="grey-scale image"):
        _script().main(["colours", str(masks), str(img), str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("colours,match", [("lv=#ff0000,rv=#ff0000", "given twice"), ("lv=#ff0000,foo=#0000ff", "'foo' not medseg structure")])
def test_colours_twice_or_unknown_structure_refused(tmp_path, colours, match):
    m = np.zeros((40, 50, 3), np.uint8)
    m[5:20, 5:20] = (255, 0, 0)
    masks, img = _masks(tmp_path, Image.fromarray(m))
    with pytest.raises(LabelMapError, match=match):
        _script().main(["colours", str(masks), str(img), str(tmp_path / "out"), "--colours", colours])


def _edit(folder: Path, prefix: str, **tags) -> None:
    import pydicom

    for f in folder.glob(f"{prefix}*.dcm"):
        ds = pydicom.dcmread(f)
        for k, v in tags.items():
            if v is None:
                delattr(ds, k)
            else:
                setattr(ds, k, v)
        ds.save_as(f)


def test_a_series_stripped_of_patient_id_and_date_is_not_another_study(tmp_path):
    """Two series of one study (slices 0-3 and 4-7) in one folder, one exported without PatientID
    and StudyDate: MixedStudiesError called them two studies and refused the volume."""
    from io_synth import write_cine_series

    from medseg.io import read_volume

    write_cine_series(tmp_path, n_slices=4, prefix="A", study_uid="1.2.3.9", series_uid="1.2.3.9.1", seed=1)
    write_cine_series(tmp_path, n_slices=4, first_slice=4, prefix="B", study_uid="1.2.3.9", series_uid="1.2.3.9.2", seed=2)
    _edit(tmp_path, "B", PatientID=None, StudyDate=None)
    assert read_volume(tmp_path).array.shape[1] == 8


def test_two_dates_of_one_patient_still_refused(tmp_path):
    from io_synth import write_cine_series

    from medseg.errors import MixedStudiesError
    from medseg.io import read_volume

    write_cine_series(tmp_path, prefix="A", seed=1)
    write_cine_series(tmp_path, prefix="B", seed=2)
    _edit(tmp_path, "B", StudyDate="20250101")
    with pytest.raises(MixedStudiesError, match="2 studies"):
        read_volume(tmp_path)


def test_batch_row_of_a_child_height_without_weight_gets_no_adult_flags():
    """A subjects row (or PatientSize) with a height of 120 cm and no weight: the height was
    dropped with the BSA, and the child's row got UK Biobank's adult range flags."""
    from medseg.batch.cohort import _child_ranges, _Who
    from medseg.measure.reference import range_flag

    rep = {"flags": range_flag("cmr_lvef_pct", 30.0, None, structure="lv")}
    assert rep["flags"] and rep["flags"][0]["code"] == "lvef_low"
    child = _child_ranges(rep, _Who(dicom=(("height_cm", 120.0),)))
    assert [f["code"] for f in child["flags"]] == ["reference_ranges_not_applied"]
    assert _child_ranges(rep, _Who(dicom=(("height_cm", 175.0),)))["flags"] == rep["flags"]
    assert _child_ranges(rep, _Who())["flags"] == rep["flags"]


def test_unknown_device_names_cuda_n():
    from medseg.errors import CheckpointError
    from medseg.models.registry import check_device

    with pytest.raises(CheckpointError, match=r"allowed: cpu, cuda, cuda:N"):
        check_device("tpu")


def test_kept_labels_off_the_image_grid_fail_and_leave_no_stale_seg(tmp_path):
    """Kept labels cropped in another program: the review sheet was redrawn from them over the
    wrong pixels, the SEG removed, and the case said 'skipped' with the old SEG's names."""
    import os

    import nibabel as nib
    from io_synth import write_cine_series

    from medseg.cli import run_cli

    write_cine_series(tmp_path / "in" / "pat1", n_slices=3, n_phases=1, rows=24, cols=20, seed=3)
    (tmp_path / "p.json").write_text(json.dumps({"prompts": [{"structure": "lv", "frame": 0, "slice": 1, "box": [6, 5, 17, 14]}]}))
    out = tmp_path / "out"
    args = ["batch", str(tmp_path / "in"), "--prompts", str(tmp_path / "p.json"), "-o", str(out), "--dicom-seg", "--review-png", "--resume"]
    assert run_cli(args) == 0
    assert (out / "pat1_seg" / "pat1.dcm").is_file() and (out / "pat1_review.png").is_file()
    for f in [*out.iterdir(), *(out / "pat1_seg").iterdir()]:
        earlier = os.stat(f).st_mtime_ns - 10 * 10**9
        os.utime(f, ns=(earlier, earlier))
    img = nib.load(str(out / "pat1.nii.gz"))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:-4].copy(), img.affine, img.header), str(out / "pat1.nii.gz"))

    assert run_cli(args) != 0
    row = json.loads((out / "summary.json").read_text())["cases"][0]
    assert row["status"] == "failed" and "grid does not match the image" in row["reason"] and "\n" not in row["reason"]
    assert row["dicom_seg"] == "none: not remade"
    assert not (out / "pat1_seg").exists() and not (out / "pat1_review.png").exists()
    assert (out / "pat1.nii.gz").is_file()  # the user's labels are never touched


def test_only_the_dicom_seg_carries_patient_name_or_birth_date(tmp_path):
    """docs/io.md, What the outputs say about the patient: the label sidecar names the input by
    path, cohort/report study fields have the PatientID and no name or birth date."""
    from io_synth import write_cine_series

    from medseg.io import read_volume, write_labels
    from medseg.io.dicom import dicom_body, dicom_study

    write_cine_series(tmp_path / "in", n_slices=3, n_phases=1, rows=16, cols=14, seed=4)  # Test^Patient, P001, born 19700101
    vol = read_volume(tmp_path / "in")
    lab = np.zeros(vol.array.shape[1:], np.uint8)
    lab[1, 4:9, 4:9] = 1
    study = dicom_study(tmp_path / "in")
    ids = {"patient_id", "study_date", "study_uid", "series_description"}  # and the scanner (no site: InstitutionName, StationName)
    assert ids <= set(study) <= ids | {"manufacturer", "manufacturer_model", "field_strength_t"} and study["patient_id"] == "P001"
    assert set(dicom_body(tmp_path / "in")) <= {"height_cm", "weight_kg", "sex"}
    write_labels(lab, vol, tmp_path / "o" / "l.nii.gz", "lv=1", provenance={"input": str(tmp_path / "in")})
    seg = write_labels(lab, vol, tmp_path / "o" / "l.dcm", "lv=1", provenance={"input": str(tmp_path / "in")})
    for f in (tmp_path / "o").iterdir():
        text = f.read_bytes()
        assert (b"Test^Patient" in text and b"19700101" in text) == (f.suffix == ".dcm"), f.name
    assert any(p.suffix == ".dcm" for p in seg)


def test_script_names_an_output_folder_that_is_a_file_without_errno(tmp_path):
    import subprocess

    path = _coco(tmp_path)
    (tmp_path / "afile").write_text("")
    r = subprocess.run([sys.executable, str(EXAMPLES / "annotation_references.py"), "coco", str(path), str(tmp_path / "img"),
                        str(tmp_path / "afile"), "--categories", "LE=myo"], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip() == f"error: {tmp_path / 'afile'}: File exists", r.stderr
