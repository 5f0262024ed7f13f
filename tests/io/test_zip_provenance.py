"""What an image read from a zip leaves for later: its ``meta["files"]`` are ``study.zip!member``
references, which the DICOM SEG writer reads back through the archive (a SEG referencing the
source SOP instances, as from the unzipped folder); ``measure --dicom-sr`` finds the study in
the zip a sidecar names; ``info`` lists a zip's series and ``--series`` picks one."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from io_synth import write_cine_series, write_phantom_cine_series
from pydicom import dcmread
from pydicom.uid import generate_uid
from zip_synth import zip_tree

from medseg.cli import run_cli
from medseg.errors import MedsegError
from medseg.io import read_volume, write_labels
from medseg.io.seg_writer import write_dicom_seg


def _referenced(seg) -> set[str]:
    return {i.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}


@pytest.fixture(scope="module")
def zipped_phantom(tmp_path_factory):
    root = tmp_path_factory.mktemp("zipseg")
    ph = write_phantom_cine_series(root / "study", generate_uid())
    return root / "study", zip_tree(root / "study", root / "study.zip", prefix="study/"), ph


def test_a_dicom_seg_of_a_zipped_series_references_its_images(zipped_phantom, tmp_path, private_tmp):
    folder, z, ph = zipped_phantom
    from_zip, from_folder = read_volume(z), read_volume(folder)
    seg_zip, seg_folder = (dcmread(write_dicom_seg(ph.labels[0], vol, tmp_path / f"{name}.dcm", ph.label_map, frame=0))
                           for vol, name in ((from_zip, "zip"), (from_folder, "folder")))
    sources = {dcmread(folder / f"IM{z * 6 + 1:04d}.dcm", stop_before_pixels=True).SOPInstanceUID for z in range(6)}
    assert _referenced(seg_zip) == _referenced(seg_folder) == sources
    assert seg_zip.StudyInstanceUID == seg_folder.StudyInstanceUID and seg_zip.PatientID == "SR0001"
    assert np.array_equal(seg_zip.pixel_array, seg_folder.pixel_array)
    assert list(private_tmp.iterdir()) == []


def test_segment_a_zip_to_dicom_seg_and_measure_its_sr_from_the_zip(zipped_phantom, tmp_path, capsys, private_tmp):
    """The sidecar's input is the zip: ``measure --dicom-sr`` reads the study's headers from it."""
    folder, z, ph = zipped_phantom
    vol = read_volume(z)
    labels = tmp_path / "labels.nii.gz"
    write_labels(ph.labels, vol, labels, ph.label_map, provenance={"input": str(z)})
    assert json.loads((tmp_path / "labels.json").read_text())["provenance"]["input"] == str(z)
    assert run_cli(["measure", str(labels), "-o", str(tmp_path / "r.json"), "--dicom-sr", str(tmp_path / "sr.dcm")]) == 0, capsys.readouterr()
    sr = dcmread(tmp_path / "sr.dcm")
    listed = {i.ReferencedSOPInstanceUID for s in sr.CurrentRequestedProcedureEvidenceSequence
              for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
    assert listed == {dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in folder.iterdir()}
    assert sr.PatientID == "SR0001"
    assert list(private_tmp.iterdir()) == []


def test_a_dicom_seg_of_a_zip_that_is_gone_is_one_line(tmp_path, private_tmp):
    series = write_cine_series(tmp_path / "s", n_slices=2, n_phases=1, rows=20, cols=20)
    z = zip_tree(series.folder, tmp_path / "s.zip")
    vol = read_volume(z)
    z.unlink()
    labels = np.zeros(vol.shape, np.uint8)
    labels[0, 0, 5:9, 5:9] = 1
    with pytest.raises(MedsegError, match=r"^no such file: .*s\.zip$"):
        write_labels(labels, vol, tmp_path / "x.dcm", "lv=1")
    assert not (tmp_path / "x.dcm").exists() and list(private_tmp.iterdir()) == []


def test_info_lists_the_series_of_a_zip_and_series_picks_one(tmp_path, capsys, private_tmp):
    write_cine_series(tmp_path / "d", description="CINE SA", prefix="A", series_number=3)
    write_cine_series(tmp_path / "d", rows=20, cols=22, description="LOCALIZER", prefix="B", series_number=1, seed=2)
    z = zip_tree(tmp_path / "d", tmp_path / "two_series.zip")
    assert run_cli(["info", str(z), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["number"], r["description"], r["images"], r["folder"]) for r in listed["series"]] == \
           [(1, "LOCALIZER", 8, "two_series.zip"), (3, "CINE SA", 8, "two_series.zip")]
    assert run_cli(["info", str(z), "--series", "LOCALIZER", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["shape"] == [2, 4, 20, 22]
    assert run_cli(["info", str(z), "--series", "9"]) == 1
    got = capsys.readouterr()
    assert f"error: {z}: no series matches --series '9'" in " ".join((got.out + got.err).split())
    assert list(private_tmp.iterdir()) == []


def test_series_of_a_zip_holding_one_nifti_is_refused_in_one_line(tmp_path):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.ones((20, 20, 3), np.float32), np.eye(4)), tmp_path / "a.nii.gz")
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.write(tmp_path / "a.nii.gz", "a.nii.gz")
    with pytest.raises(MedsegError, match=r"a\.zip holds one image file$"):
        read_volume(tmp_path / "a.zip", series="3")


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # Sunnybrook's non-conformant UIDs, read back in the SEGs
def test_sunnybrook_zipped_expert_contours_give_the_folders_dicom_seg(shared_data, tmp_path, private_tmp):
    """SCD0000501 zipped: its expert contours drawn on the image read from the zip, written as a
    DICOM SEG of the phase they outline, reference the same source images as from the folder."""
    from medseg.io.contours import contour_labels

    series = shared_data / "sunnybrook" / "dicoms" / "SCD0000501"
    z = zip_tree(series, tmp_path / "SCD0000501.zip")
    segs = []
    for name, image in (("zip", read_volume(z)), ("folder", read_volume(series))):
        labels = contour_labels(image, shared_data / "sunnybrook" / "contourfiles" / "SC-HF-I-6")
        t = int(np.argmax([(labels.array[k] > 0).sum() for k in range(image.n_frames)]))
        out = write_dicom_seg(labels.array[t], image, tmp_path / f"{name}.dcm", labels.meta["label_map"], frame=t)
        segs.append(dcmread(out))
    assert _referenced(segs[0]) == _referenced(segs[1]) and len(_referenced(segs[0])) > 0
    assert np.array_equal(segs[0].pixel_array, segs[1].pixel_array)
    assert list(private_tmp.iterdir()) == []
