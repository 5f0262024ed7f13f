"""A single-frame DICOM image with ImagePositionPatient and ImageOrientationPatient but no
PixelSpacing (an ultrasound or secondary-capture image, a projection with ImagerPixelSpacing).

ITK (GDCM, so SimpleITK and 3D Slicer) places it by its position and orientation: 1 mm pixels,
or ImagerPixelSpacing's for CR / DX. medseg put it at origin 0 with identity direction, so its
labels lay elsewhere than the image in every ITK tool (on the oblique image below, its first
pixel 11.6 mm from ITK's, its plane at 90 degrees to ITK's). Now it lies where ITK puts it; its pixel size is the
ultrasound region's or ImagerPixelSpacing's when the file has one, else unknown (1 mm,
``spacing_known`` False) as before. MR and CT images without PixelSpacing are refused as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medseg.errors import GeometryError
from medseg.io import read_volume, write_labels
from medseg.io.geometry import RASTER_AFFINE, affine_from_sitk

US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
DX_IMAGE = "1.2.840.10008.5.1.4.1.1.1.1"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
IPP, IOP = [5.0, -3.0, 10.0], [0.8660254, 0.5, 0.0, 0.0, 0.0, -1.0]  # an oblique plane
ROWS, COLS = 24, 32


def _image(path: Path, sop: str = US_IMAGE, modality: str = "US", iop=IOP, **tags) -> Path:
    """A single-frame 8-bit image with ImagePositionPatient IPP, ImageOrientationPatient ``iop``
    (None: none), no PixelSpacing, and ``tags`` (ImagerPixelSpacing, SequenceOfUltrasoundRegions)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID = sop, generate_uid(), ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = sop, meta.MediaStorageSOPInstanceUID, modality
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID, ds.PatientID = generate_uid(), generate_uid(), generate_uid(), "P1"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.Rows, ds.Columns = ROWS, COLS
    ds.ImagePositionPatient = IPP
    if iop is not None:
        ds.ImageOrientationPatient = iop
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = np.random.default_rng(2).integers(0, 200, (ROWS, COLS), dtype=np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _region(dx_cm: float, dy_cm: float) -> Sequence:
    r = Dataset()
    r.RegionSpatialFormat, r.RegionDataType, r.RegionFlags = 1, 1, 0
    r.RegionLocationMinX0, r.RegionLocationMinY0, r.RegionLocationMaxX1, r.RegionLocationMaxY1 = 0, 0, COLS - 1, ROWS - 1
    r.PhysicalUnitsXDirection, r.PhysicalUnitsYDirection, r.PhysicalDeltaX, r.PhysicalDeltaY = 3, 3, dx_cm, dy_cm
    return Sequence([r])


def _itk(path: Path):
    import SimpleITK as sitk

    return sitk.ReadImage(str(path))


def _unit_columns(affine: np.ndarray) -> np.ndarray:
    return affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)


@pytest.mark.parametrize("sop,modality", [(US_IMAGE, "US"), ("1.2.840.10008.5.1.4.1.1.7", "OT")])
def test_without_a_pixel_size_it_lies_exactly_where_itk_puts_it(tmp_path, sop, modality):
    """No pixel size in the file: medseg's affine is ITK's (origin at the position, directions
    from the orientation, 1 mm pixels), the spacing still unknown; labels written as NIfTI read
    back in SimpleITK on the DICOM's grid (they overlay it in Slicer)."""
    path = _image(tmp_path / "im.dcm", sop, modality)
    vol, itk = read_volume(path), _itk(path)
    assert not vol.spacing_known and vol.meta["positioned"] is False
    assert np.allclose(vol.affine, affine_from_sitk(itk), atol=1e-6)
    assert not np.allclose(vol.affine, RASTER_AFFINE)
    import SimpleITK as sitk

    labels = np.zeros(vol.shape, np.uint8)
    labels[0, 0, 3:9, 4:12] = 1
    write_labels(labels, vol, tmp_path / "lab.nii.gz", "lv=1")
    lab = sitk.ReadImage(str(tmp_path / "lab.nii.gz"))
    assert np.allclose(lab.GetOrigin(), itk.GetOrigin(), atol=1e-4) and np.allclose(lab.GetDirection(), itk.GetDirection(), atol=1e-5)
    assert np.allclose(lab.GetSpacing()[:2], itk.GetSpacing()[:2])


def test_the_ultrasound_region_gives_the_pixel_size_at_itks_position_and_directions(tmp_path):
    """With a calibrated ultrasound region: origin and directions as ITK's; the pixel size the
    region's (0.6 mm columns, 0.4 mm rows; ITK keeps 1 mm there), spacing known."""
    path = _image(tmp_path / "us.dcm", SequenceOfUltrasoundRegions=_region(0.06, 0.04))
    vol, itk = read_volume(path), _itk(path)
    ref = affine_from_sitk(itk)
    assert vol.spacing_known and vol.spacing[1:] == pytest.approx((0.4, 0.6))
    assert np.allclose(vol.affine[:3, 3], ref[:3, 3]) and np.allclose(_unit_columns(vol.affine), _unit_columns(ref), atol=1e-6)
    assert "geometry_note" not in vol.meta


def test_imager_pixel_spacing_gives_the_pixel_size_with_a_note(tmp_path):
    """A DX image with ImagerPixelSpacing: exactly ITK's placement and pixel size (GDCM takes
    ImagerPixelSpacing for DX), spacing known, and a note that it is the size at the detector."""
    path = _image(tmp_path / "dx.dcm", DX_IMAGE, "DX", ImagerPixelSpacing=[0.4, 0.6])
    vol, itk = read_volume(path), _itk(path)
    assert itk.GetSpacing()[:2] == pytest.approx((0.6, 0.4))
    assert vol.spacing_known and np.allclose(vol.affine, affine_from_sitk(itk), atol=1e-6)
    assert "ImagerPixelSpacing's, 0.4 x 0.6 mm, measured at the detector" in vol.meta["geometry_note"]


def test_an_orientation_that_is_none_leaves_it_at_origin_0_with_a_note(tmp_path):
    """Row and column directions that are not unit vectors at right angles place nothing: the
    image lies at origin 0 (as without a position) and ``geometry_note`` says why."""
    vol = read_volume(_image(tmp_path / "bad.dcm", iop=[2.0, 0.0, 0.0, 0.0, 1.0, 0.0]))
    assert np.allclose(vol.affine, RASTER_AFFINE) and not vol.spacing_known
    assert "ImageOrientationPatient [2.0, 0.0, 0.0, 0.0, 1.0, 0.0] whose row and column directions" in vol.meta["geometry_note"]
    assert "placed at origin 0 as an image without position" in vol.meta["geometry_note"]


def test_an_mr_image_without_pixel_spacing_is_still_refused(tmp_path):
    """ITK places an MR image without PixelSpacing at 1 mm pixels; medseg refuses it as before
    (an MR image's pixel size is never unknown), ImagerPixelSpacing or not."""
    with pytest.raises(GeometryError, match="missing spacing: mr.dcm has no valid PixelSpacing"):
        read_volume(_image(tmp_path / "mr.dcm", MR_IMAGE, "MR", ImagerPixelSpacing=[0.4, 0.6]))


def test_labels_written_at_origin_0_say_why_they_no_longer_pair_and_seg_says_what_is_missing(tmp_path):
    """Labels an earlier release wrote for such an image (at origin 0, RASTER_AFFINE) gave only
    "grid does not match"; now the error says why and to segment again. DICOM SEG said the image
    "has none" of position and orientation: it has both, and lacks PixelSpacing."""
    from medseg.errors import ImageWriteError
    from medseg.io import Volume, check_same_grid

    vol = read_volume(_image(tmp_path / "us.dcm"))
    assert vol.meta["placed_without_spacing"] is True
    old = Volume(np.zeros(vol.shape, np.uint8), RASTER_AFFINE.copy(), modality="US")
    with pytest.raises(GeometryError, match="where medseg before 2026-12-07 put this image .* segment it again"):
        check_same_grid(vol, old, "old.nii.gz")
    with pytest.raises(ImageWriteError, match="has no PixelSpacing: write .nii.gz instead"):
        write_labels(np.ones(vol.shape, np.uint8), vol, tmp_path / "s.dcm", "lv=1")
