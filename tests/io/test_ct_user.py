"""A cardiac CT user's path: an axial CT series (DICOM CT with its rescale, padding and gantry
tilt) read and described, and labels written and measured on its grid. Small synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medseg.cli._app import run_cli

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def write_ct_series(folder, hu, spacing=(0.8, 0.7, 0.7), tilt_deg=0.0, padding=-2000, signed=True):
    """``hu`` (Z, Y, X) as an axial CT series, slice 0 the most superior (as scanners list
    them), stored as HU + 1024 with RescaleIntercept -1024; outside a circular field of view
    the stored ``padding`` (PixelPaddingValue). A gantry tilt leans the image columns by
    ``tilt_deg`` while the table steps along z: a sheared stack."""
    folder.mkdir(parents=True, exist_ok=True)
    nz, ny, nx = hu.shape
    dz, dy, dx = spacing
    t = np.deg2rad(tilt_deg)
    yy, xx = np.mgrid[:ny, :nx]
    outside = (yy - (ny - 1) / 2) ** 2 + (xx - (nx - 1) / 2) ** 2 > (min(ny, nx) / 2) ** 2
    study, series, fref = generate_uid(), generate_uid(), generate_uid()
    for k in range(nz):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CT_STORAGE, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(k), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CT_STORAGE, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, fref
        ds.Modality, ds.PatientID, ds.PatientName, ds.SeriesNumber, ds.InstanceNumber = "CT", "CT1", "Ct^Test", 3, k + 1
        ds.StudyDate, ds.StudyTime, ds.SeriesDescription, ds.GantryDetectorTilt = "20240101", "120000", "CTA Heart", tilt_deg
        ds.PatientBirthDate, ds.PatientSex, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "19600101", "M", "1", "A1", ""
        ds.PixelSpacing, ds.SliceThickness = [dy, dx], dz
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, float(np.cos(t)), float(np.sin(t))]
        ds.ImagePositionPatient = [-20.0, -30.0, 40.0 - k * dz]
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = ny, nx, 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, int(signed)
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        stored = np.round(hu[k] + 1024)
        if padding is not None:
            stored[outside] = padding
            ds.PixelPaddingValue = padding
        ds.PixelData = stored.astype(np.int16 if signed else np.uint16).tobytes()
        ds.save_as(folder / f"IM{k:04d}.dcm", enforce_file_format=True)
    return folder


def _hu(nz=6, ny=32, nx=32, seed=0):
    rng = np.random.default_rng(seed)
    hu = np.full((nz, ny, nx), -850.0)  # lung
    hu[:, 8:24, 8:24] = 40.0 + rng.normal(0, 20, (nz, 16, 16))  # mediastinum
    hu[:, 12:20, 12:20] = 400.0  # a contrast-filled chamber
    return hu


@pytest.mark.parametrize(("tilt", "signed"), [(0.0, True), (15.0, True), (0.0, False)])
def test_info_says_orientation_hu_range_and_gantry_tilt(tmp_path, capsys, tilt, signed):
    hu = _hu()
    folder = write_ct_series(tmp_path / "ct", hu, tilt_deg=tilt, signed=signed, padding=-2000 if signed else 0)
    assert run_cli(["info", str(folder), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    inside = hu[:, 16, 16]  # the padding outside the circle becomes the lowest other value (lung)
    assert d["modality"] == "CT" and d["axcodes"] == "LPS"
    assert d["value_range"] == [pytest.approx(hu.min(), abs=0.5), pytest.approx(inside.max(), abs=0.5)]
    if tilt:
        assert d["plane"] == "oblique"  # the image plane leans 15 degrees from axial
        assert d["slice_tilt_deg"] == pytest.approx(tilt, abs=0.01)
        assert d["slice_distance_mm"] == pytest.approx(0.8 * np.cos(np.deg2rad(tilt)), abs=1e-4)  # what volumes use
        assert d["spacing_mm"][0] == pytest.approx(0.8)  # the table step
    else:
        assert d["plane"] == "axial" and "slice_tilt_deg" not in d
    assert run_cli(["info", str(folder)]) == 0
    table = capsys.readouterr().out
    assert "value range" in table and "-850 .. 400 HU" in table
    assert ("slice tilt" in table) == bool(tilt)


def test_info_of_a_png_gives_no_orientation(tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) % 200).save(tmp_path / "slice.png")
    assert run_cli(["info", str(tmp_path / "slice.png"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert "plane" not in d and d["value_range"] == [0, 199]  # no geometry in a PNG: no plane claimed


def test_info_of_a_calibrated_echo_dicom_gives_no_orientation(tmp_path, capsys):
    """An echo clip's ultrasound-region calibration gives millimetres but no patient
    orientation: its placeholder affine is not called axial."""
    import pydicom
    from io_synth import write_us_clip
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    write_us_clip(tmp_path / "us.dcm", n_frames=3)
    ds = pydicom.dcmread(tmp_path / "us.dcm")
    region = Dataset()
    region.RegionSpatialFormat, region.RegionDataType, region.RegionFlags = 1, 1, 0
    region.RegionLocationMinX0, region.RegionLocationMinY0, region.RegionLocationMaxX1, region.RegionLocationMaxY1 = 0, 0, 19, 15
    region.PhysicalUnitsXDirection, region.PhysicalUnitsYDirection, region.PhysicalDeltaX, region.PhysicalDeltaY = 3, 3, 0.02, 0.05
    ds.SequenceOfUltrasoundRegions = Sequence([region])
    ds.save_as(tmp_path / "us.dcm", enforce_file_format=True)
    assert run_cli(["info", str(tmp_path / "us.dcm"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["spacing_known"] and "plane" not in d and "axcodes" not in d


def test_colour_mask_png_says_its_colours(tmp_path):
    """A colour-coded mask (HVSMR-2.0's masks: LV red, RV blue, ...) is refused as labels,
    naming the colours a user has to map to values."""
    from PIL import Image

    from medseg.errors import LabelMapError
    from medseg.io import read_label_volume

    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[2:8, 2:8] = (255, 0, 0)
    rgb[10:16, 10:16] = (0, 0, 255)
    Image.fromarray(rgb).save(tmp_path / "mask.png")
    with pytest.raises(LabelMapError, match=r"3 colours \(0, 0, 0\), \(0, 0, 255\), \(255, 0, 0\);.*integer values"):
        read_label_volume(tmp_path / "mask.png")


def _labels(shape):
    lab = np.zeros(shape, np.uint8)
    lab[1:5, 12:20, 12:20] = 1  # lv: the contrast-filled chamber
    lab[1:5, 10:22, 10:12] = 2  # myo beside it
    return lab


@pytest.mark.parametrize("tilt", [0.0, 15.0])
def test_dicom_seg_of_a_ct_lies_on_its_grid_and_reads_back(tmp_path, tilt):
    """The DICOM SEG of an axial CT references every image at its own position; that of a
    gantry-tilted CT (slices stepping along z, image planes tilted: a sheared grid) read back
    too (highdicom's volume wants the step along the normal: it was refused, so `measure`,
    `evaluate` and `--prompts-from` could not use the SEG medseg had written)."""
    import highdicom as hd
    import pydicom

    from medseg.io import check_same_grid, read_label_volume, read_volume, write_labels

    folder = write_ct_series(tmp_path / "ct", _hu(), tilt_deg=tilt)
    image = read_volume(folder)
    lab = _labels(image.grid_shape)
    write_labels(lab, image, tmp_path / "seg.dcm", "lv=1,myo=2")
    seg = hd.seg.segread(tmp_path / "seg.dcm")
    sources = {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(f, stop_before_pixels=True) for f in folder.iterdir())}
    for frame in seg.PerFrameFunctionalGroupsSequence:  # each frame at the position of the image it references
        src = sources[frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID]
        assert np.allclose([float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient],
                           [float(v) for v in src.ImagePositionPatient], atol=1e-4)
    back = read_label_volume(tmp_path / "seg.dcm")
    check_same_grid(image, back, "SEG")
    assert np.array_equal(back.array[0], lab) and back.meta["label_map"] == {"lv": 1, "myo": 2}


def test_a_sheared_seg_whose_frames_scatter_in_plane_stays_refused(tmp_path):
    """Frames that lie on no straight line (one moved 1 mm in-plane) are not forced onto one."""
    import highdicom as hd

    from medseg.errors import ImageReadError
    from medseg.io import read_label_volume, read_volume, write_labels

    image = read_volume(write_ct_series(tmp_path / "ct", _hu(), tilt_deg=15.0))
    write_labels(_labels(image.grid_shape), image, tmp_path / "seg.dcm", "lv=1,myo=2")
    seg = hd.seg.segread(tmp_path / "seg.dcm")
    pos = seg.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence[0]
    pos.ImagePositionPatient = [float(pos.ImagePositionPatient[0]) + 1.0, *[float(v) for v in pos.ImagePositionPatient[1:]]]
    seg.save_as(tmp_path / "moved.dcm")
    with pytest.raises(ImageReadError, match="do not form one label volume"):
        read_label_volume(tmp_path / "moved.dcm")


def test_dicom_seg_of_an_anonymised_export_without_type2_patient_attributes(tmp_path):
    """An anonymiser that deleted PatientBirthDate, AccessionNumber, ... (type 2: present, may
    be empty): the SEG was refused after the whole segmentation ("'FileDataset' object has no
    attribute 'PatientBirthDate'"); it is written with them empty."""
    import pydicom

    from medseg.io import read_label_volume, read_volume, write_labels
    from medseg.io.seg_writer import TYPE2_COPIED

    folder = write_ct_series(tmp_path / "ct", _hu())
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        for keyword in TYPE2_COPIED:
            if keyword in ds:
                delattr(ds, keyword)
        ds.save_as(f)
    image = read_volume(folder)
    lab = _labels(image.grid_shape)
    write_labels(lab, image, tmp_path / "seg.dcm", "lv=1,myo=2")
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert all(seg[k].value in ("", None) for k in ("PatientName", "PatientBirthDate", "AccessionNumber"))
    assert np.array_equal(read_label_volume(tmp_path / "seg.dcm").array[0], lab)


def test_measure_no_basal_rule_counts_every_lv_slice(tmp_path):
    """The SCMR 50% rule is a short-axis rule; on axial CT labels it left out the superior axial
    slices where less of the LV is ringed by myocardium (the CT phantom's zero-click labels: 31
    slices, 18 mL). `--no-basal-rule` gives the LV volume as all its voxels, and says so."""
    from medseg.io import Volume, write_labels
    from medseg.io.volume import affine_from_spacing

    lab = np.zeros((8, 40, 40), np.uint8)
    yy, xx = np.mgrid[:40, :40]
    r = np.hypot(yy - 20, xx - 20)
    lab[1:6][:, (r >= 6) & (r < 9)] = 2  # myocardium ringed round the LV on slices 1-5
    lab[1:8][:, r < 6] = 1  # LV on slices 1-7: slices 6 and 7 without myocardium (the base)
    lab[7][(r >= 9) & (r < 13)] = 4  # the left atrium beside it: the base is the high end
    image = Volume(np.zeros((1, *lab.shape), np.float32), affine_from_spacing((1.0, 1.0, 1.0)), modality="CT")
    write_labels(lab, image, tmp_path / "lab.nii.gz", "lv=1,myo=2,la=4")
    voxel_ml = 1e-3
    assert run_cli(["measure", str(tmp_path / "lab.nii.gz"), "-o", str(tmp_path / "rule.json")]) == 0
    rule = json.loads((tmp_path / "rule.json").read_text())
    assert rule["excluded_basal_slices"] == [7, 6]
    assert run_cli(["measure", str(tmp_path / "lab.nii.gz"), "-o", str(tmp_path / "all.json"), "--no-basal-rule"]) == 0
    every = json.loads((tmp_path / "all.json").read_text())
    assert every["excluded_basal_slices"] == []
    assert every["volumes_ml"]["lv"] == pytest.approx((lab == 1).sum() * voxel_ml)
    assert every["volumes_ml"]["lv"] > rule["volumes_ml"]["lv"]
    assert any(f["code"] == "basal_rule_off" for f in every["flags"])


def test_a_sheared_seg_without_its_empty_frames_lands_on_the_tilted_ct(tmp_path):
    """A SEG another tool wrote (highdicom's default, as dcmqi's and 3D Slicer's: empty frames
    left out) for a gantry-tilted CT: its slices land on the image's sheared stack."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    from medseg.io import check_same_grid, read_label_volume, read_volume
    from medseg.io.seg_reader import onto_image_stack

    image = read_volume(write_ct_series(tmp_path / "ct", _hu(nz=8), tilt_deg=12.0))
    sources = [pydicom.dcmread(f) for f in image.meta["files"][0]]
    mask = np.zeros(image.grid_shape, np.uint8)
    mask[1:3, 12:20, 12:20] = 1
    mask[5, 14:18, 14:18] = 1  # slices 0, 3, 4, 6, 7 empty: left out of the SEG
    lv = hd.seg.SegmentDescription(segment_number=1, segment_label="LV", segmented_property_category=codes.SCT.Tissue,
                                   segmented_property_type=codes.SCT.LeftVentricle,
                                   algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
    seg = hd.seg.Segmentation(source_images=sources, pixel_array=mask, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                              segment_descriptions=[lv], series_instance_uid=hd.UID(), series_number=9, sop_instance_uid=hd.UID(),
                              instance_number=1, manufacturer="other", manufacturer_model_name="tool", software_versions="1",
                              device_serial_number="1")
    assert seg.NumberOfFrames == 3
    seg.save_as(tmp_path / "seg.dcm")
    back = onto_image_stack(image, read_label_volume(tmp_path / "seg.dcm"))
    check_same_grid(image, back, "SEG")
    assert np.array_equal(back.array[0], mask)


def test_a_ct_without_its_rescale_is_refused_before_it_is_segmented(tmp_path, capsys):
    """A CT NIfTI of stored values (0-4095: RescaleIntercept left out) given `--modality CT`:
    the -250..750 HU window clipped it and zero-click answered with confident nonsense (the CT
    phantom: LV Dice 0.14, myocardium 0.00 at confidence 0.96). Refused in one line, nothing
    written."""
    import nibabel as nib

    stored = np.transpose(_hu(nz=4, ny=64, nx=64) + 1024.0).astype(np.int16)  # nibabel's [x, y, z]
    nib.save(nib.Nifti1Image(stored, np.diag([0.7, 0.7, 0.8, 1.0])), tmp_path / "raw.nii.gz")
    out = tmp_path / "seg.nii.gz"
    assert run_cli(["segment", str(tmp_path / "raw.nii.gz"), "-o", str(out), "--modality", "CT", "--auto"]) == 1
    said = capsys.readouterr()
    err = said.out + said.err
    assert "segmented as CT but holds no negative values (174 .. 1424)" in " ".join(err.split())
    assert not out.exists() and not (tmp_path / "seg.json").exists()


def test_hounsfield_problem_passes_hounsfield_units():
    from medseg.preprocess import hounsfield_problem

    assert hounsfield_problem(_hu()) is None  # lung at -850
    assert hounsfield_problem(np.array([-1.0, 3000.0])) is None
    assert "no negative values (0 .. 4095)" in hounsfield_problem(np.array([0.0, 4095.0]))


def test_adapt_refuses_a_ct_without_its_rescale_before_training(tmp_path, capsys):
    """`medseg adapt` on CT pairs whose header says CT but whose values lack the rescale (0-4095):
    segment refuses such an image, adapt trained on it, every slice clipped by the HU window to
    near-flat grey. Refused in one line before training, nothing written."""
    import nibabel as nib

    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for i in range(2):
        img = nib.Nifti1Image(np.transpose(_hu(nz=4, ny=64, nx=64, seed=i) + 1024.0).astype(np.int16), np.diag([0.7, 0.7, 0.8, 1.0]))
        img.header["descrip"] = b"CT angiography"
        nib.save(img, pairs / f"c{i}.nii.gz")
        lab = np.zeros((64, 64, 4), np.uint8)
        lab[24:40, 24:40, :] = 1
        nib.save(nib.Nifti1Image(lab, np.diag([0.7, 0.7, 0.8, 1.0])), pairs / f"c{i}_gt.nii.gz")
    out = tmp_path / "adapter"
    code = run_cli(["adapt", "--pairs", str(pairs), "--label-map", "lv=1", "-o", str(out), "--steps", "2"])
    said = capsys.readouterr()
    err = " ".join((said.out + said.err).split())
    assert code == 1 and "c0.nii.gz: read as CT but holds no negative values (174 .. 1424)" in err, err
    assert not out.exists()
