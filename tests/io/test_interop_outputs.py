"""Labels as other tools see them (3D Slicer, ITK-SNAP, MITK: ITK; PACS viewers: the DICOM SEG).

An oblique DICOM series' labels, in every format medseg writes, overlay the series as
SimpleITK reads the series itself (same size, origin, spacing and direction cosines: no LPS/RAS
flip); a cine's NIfTI / MHA labels keep time as the 4th axis with the frame step in seconds; a
cine's DICOM SEGs each reference their own phase's images, with named, coloured, coded segments.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

sitk = pytest.importorskip("SimpleITK")
hd = pytest.importorskip("highdicom")

sys.path.insert(0, str(Path(__file__).parent))
from io_synth import write_cine_series  # noqa: E402

from medseg.errors import ImageWriteError  # noqa: E402
from medseg.io import read_sidecar, read_volume, write_labels  # noqa: E402

LMAP = "lv=1,myo=2,rv=3"


def _geometry(img) -> tuple:
    """(size, origin, spacing, direction) of the first three axes of a SimpleITK image."""
    d = img.GetDimension()
    direction = np.asarray(img.GetDirection()).reshape(d, d)[:3, :3]
    return (tuple(img.GetSize()[:3]), np.asarray(img.GetOrigin()[:3]), np.asarray(img.GetSpacing()[:3]), direction)


def _same(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and all(np.allclose(x, y, atol=1e-4) for x, y in zip(a[1:], b[1:]))


def _labels(shape: tuple) -> np.ndarray:
    lab = np.zeros(shape, np.uint8)
    lab[..., 1, 3:6, 2:5] = 1  # asymmetric: a flipped axis would not overlay
    lab[..., 2, 6:8, 4:7] = 3
    return lab


def _series_by_phase(folder: Path) -> dict[float, list[pydicom.Dataset]]:
    out: dict[float, list[pydicom.Dataset]] = {}
    for f in folder.glob("*.dcm"):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        out.setdefault(round(float(ds.TriggerTime) / 400.0), []).append(ds)
    return out


@pytest.mark.parametrize("ending", [".nii.gz", ".nii", ".mha", ".nrrd", ".seg.nrrd"])
def test_labels_of_an_oblique_series_overlay_it_as_simpleitk_reads_the_series(tmp_path, ending):
    series = write_cine_series(tmp_path / "dcm", n_slices=4, n_phases=1, rows=12, cols=10)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series.folder)))
    source = reader.Execute()
    vol = read_volume(series.folder)
    lab = _labels(vol.array.shape[1:])
    label_file = write_labels(lab, vol, tmp_path / f"seg{ending}", LMAP)[0]
    back = sitk.ReadImage(str(label_file))
    assert _same(_geometry(back), _geometry(source))
    # the voxels land where they were painted: (Z, Y, X) of medseg is SimpleITK's (x, y, z) reversed
    assert np.array_equal(sitk.GetArrayFromImage(back), lab)
    if ending.startswith(".nii"):
        hdr = nib.load(label_file).header
        assert (int(hdr["qform_code"]), int(hdr["sform_code"])) == (1, 1)  # scanner coordinates, both set


def test_a_cines_labels_keep_time_as_the_fourth_axis_in_seconds(tmp_path):
    series = write_cine_series(tmp_path / "dcm", n_slices=4, n_phases=3, rows=12, cols=10)
    vol = read_volume(series.folder)
    lab = _labels(vol.array.shape)
    normal = series.ipps[1] - series.ipps[0]
    first = sorted(series.folder.glob("*.dcm"), key=lambda f: np.dot(np.asarray(pydicom.dcmread(f).ImagePositionPatient, float), normal))
    names = {ds.SOPInstanceUID for ds in _series_by_phase(series.folder)[0]}
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in first if pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID in names])
    source = reader.Execute()
    nii = write_labels(lab, vol, tmp_path / "cine.nii.gz", LMAP)[0]
    img = nib.load(nii)
    assert img.shape == (10, 12, 4, 3)  # x, y, z, t: time is the 4th axis
    assert img.header.get_xyzt_units() == ("mm", "sec")
    assert img.header["pixdim"][4] == pytest.approx(0.4, abs=1e-3)  # trigger times 0, 400, 800 ms
    mha = write_labels(lab, vol, tmp_path / "cine.mha", LMAP)[0]
    for f in (nii, mha):
        back = sitk.ReadImage(str(f))
        assert back.GetDimension() == 4 and back.GetSpacing()[3] == pytest.approx(0.4, abs=1e-3)
        assert _same(_geometry(back), _geometry(source))


def test_each_frames_seg_references_its_own_phases_images_with_named_coloured_segments(tmp_path):
    series = write_cine_series(tmp_path / "dcm", n_slices=3, n_phases=2, rows=12, cols=10)
    vol = read_volume(series.folder)
    written = write_labels(_labels(vol.array.shape), vol, tmp_path / "seg.dcm", LMAP)
    segs = sorted(p for p in written if p.suffix == ".dcm")
    assert [p.name for p in segs] == ["seg_frame00.dcm", "seg_frame01.dcm"]
    phases = _series_by_phase(series.folder)
    for t, path in enumerate(segs):
        seg = hd.seg.segread(str(path))
        own = {ds.SOPInstanceUID: ds for ds in phases[t]}
        refs = [fr.DerivationImageSequence[0].SourceImageSequence[0] for fr in seg.PerFrameFunctionalGroupsSequence]
        assert {r.ReferencedSOPInstanceUID for r in refs} == set(own)  # this phase's images, all of them
        for fr, r in zip(seg.PerFrameFunctionalGroupsSequence, refs):
            assert np.allclose([float(v) for v in fr.PlanePositionSequence[0].ImagePositionPatient],
                               [float(v) for v in own[r.ReferencedSOPInstanceUID].ImagePositionPatient], atol=1e-3)
        ds0 = phases[t][0]
        assert seg.FrameOfReferenceUID == ds0.FrameOfReferenceUID and seg.StudyInstanceUID == ds0.StudyInstanceUID
        items = list(seg.SegmentSequence)
        assert [i.SegmentLabel for i in items] == ["LV blood pool", "LV myocardium", "RV blood pool"]
        assert [i.TrackingID for i in items] == ["lv", "myo", "rv"]
        assert [i.SegmentedPropertyTypeCodeSequence[0].CodeValue for i in items] == ["87878005", "49848007", "53085002"]
        assert all(len(i.RecommendedDisplayCIELabValue) == 3 and i.get("SegmentDescription") for i in items)


def test_a_cines_labels_written_as_nifti_and_mha_share_one_sidecar(tmp_path):
    """Regression: write_labels checked a cine's .mha / .nrrd with check_output, whose check before
    segmenting (no provenance yet) took the .nii.gz of the same labels for another segmentation."""
    series = write_cine_series(tmp_path / "dcm", n_slices=3, n_phases=2, rows=12, cols=10)
    vol = read_volume(series.folder)
    lab = _labels(vol.array.shape)
    write_labels(lab, vol, tmp_path / "seg.nii.gz", LMAP)
    assert [p.name for p in write_labels(lab, vol, tmp_path / "seg.mha", LMAP)] == ["seg.mha", "seg.json"]
    assert read_sidecar(tmp_path / "seg.mha")["labels"] == ["seg.nii.gz", "seg.mha"]
    with pytest.raises(ImageWriteError, match="another segmentation"):  # other labels are still refused
        write_labels(np.zeros_like(lab), vol, tmp_path / "seg.nii", "lv=1", {"command": "other"})
    with pytest.raises(ImageWriteError, match="4-D NRRD"):  # and a cine's NRRD, as before
        write_labels(lab, vol, tmp_path / "other.nrrd", LMAP)
    assert not (tmp_path / "other.nrrd").exists() and not (tmp_path / "seg.nii").exists()
