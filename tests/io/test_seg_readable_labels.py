"""medseg's DICOM SEG segments carry a label other viewers show as it is (3D Slicer, OHIF: "LV
blood pool", as medseg's .seg.nrrd names them; "lv" before) and medseg's name as the TrackingID;
medseg reads them back by name, its earlier SEGs (short labels, no TrackingID) too, and a segment
renamed in another viewer by its TrackingID."""

from __future__ import annotations

import numpy as np
import pydicom
from io_synth import write_cine_series

from medseg.io import read_label_volume, read_volume, write_dicom_seg
from medseg.io.seg_reader import seg_label_map


def _seg(tmp_path, label_map: str = "lv=1,myo=2,rv=3,scar=4"):
    write_cine_series(tmp_path / "cine", n_slices=3, n_phases=1)
    vol = read_volume(tmp_path / "cine")
    lab = np.zeros(vol.grid_shape, np.uint8)
    lab[0:2, 3:8, 2:6], lab[1, 1:3, 1:3], lab[2, 8:10, 6:8], lab[0, 0, 0] = 1, 2, 3, 4
    return write_dicom_seg(lab, vol, tmp_path / "seg.dcm", label_map), lab


def test_segment_labels_are_readable_and_read_back_by_name(tmp_path):
    path, lab = _seg(tmp_path)
    ds = pydicom.dcmread(path)
    assert [(d.SegmentLabel, d.TrackingID) for d in ds.SegmentSequence] == [
        ("LV blood pool", "lv"), ("LV myocardium", "myo"), ("RV blood pool", "rv"), ("scar", "scar")]
    assert seg_label_map(path) == {"lv": 1, "myo": 2, "rv": 3, "scar": 4}
    assert np.array_equal(np.asarray(read_label_volume(path).array)[0], lab)


def test_a_seg_of_an_earlier_medseg_with_short_labels_reads_back(tmp_path):
    path, _ = _seg(tmp_path)
    ds = pydicom.dcmread(path)
    for d in ds.SegmentSequence:
        d.SegmentLabel = d.TrackingID  # as medseg wrote them: "lv", no tracking
        del d.TrackingID, d.TrackingUID
    ds.save_as(tmp_path / "old.dcm")
    assert seg_label_map(tmp_path / "old.dcm") == {"lv": 1, "myo": 2, "rv": 3, "scar": 4}


def test_a_segment_renamed_in_another_viewer_keeps_its_structure(tmp_path):
    path, _ = _seg(tmp_path)
    ds = pydicom.dcmread(path)
    ds.SegmentSequence[3].SegmentLabel = "Infarct (reviewed)"
    ds.SegmentSequence[0].SegmentLabel = "Segment_1"
    ds.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue = "12345"
    ds.save_as(tmp_path / "renamed.dcm")
    assert seg_label_map(tmp_path / "renamed.dcm") == {"lv": 1, "myo": 2, "rv": 3, "infarct (reviewed)": 4}
