"""DICOM reading guards the mutation audit found untested: slice order along the slice normal
(not world z), ultrasound-region calibration, and series mixing orientations."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from io_synth import write_cine_series, write_us_clip
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medseg.errors import GeometryError
from medseg.io import read_volume, slice_positions_mm
from medseg.io.geometry import lps_to_ras

# a sagittal orientation (LPS): rows run anterior -> posterior, columns head -> feet; the slice
# normal (row x column) is (-1, 0, 0): every slice has the same world z
_SAG_ROW, _SAG_COL = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])


def _reorient(folder, series, row, col, origin) -> np.ndarray:
    """Move the slices of ``series`` (written by write_cine_series into ``folder``) onto the
    orientation (row, col), slice k at ``origin + k * step * normal``; returns the new IPPs."""
    normal = np.cross(row, col)
    ipps = np.asarray(origin, float)[None] + np.arange(len(series.ipps))[:, None] * series.step_mm * normal[None]
    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(f)
        z = int(np.argmin(np.linalg.norm(series.ipps - np.asarray(ds.ImagePositionPatient, float), axis=1)))
        ds.ImagePositionPatient = [f"{v:.4f}" for v in ipps[z]]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col)]
        ds.save_as(f, enforce_file_format=True)
    return ipps


def test_a_stack_whose_normal_has_no_z_component_reads_in_slice_order(tmp_path):
    """A sagittal (or long-axis-like) stack has the same world z on every slice: its slices are
    ordered and spaced by their position along the slice normal. Sorted by world z they fell
    into one position (the stack read as a cine of single slices, or was refused) and the
    volumes came out wrong."""
    s = write_cine_series(tmp_path / "sag", n_slices=5, n_phases=2, step_mm=7.0, seed=4)  # files shuffled
    ipps = _reorient(tmp_path / "sag", s, _SAG_ROW, _SAG_COL, origin=(30.0, -60.0, 45.0))
    assert np.ptp(ipps[:, 2]) == 0.0  # no z difference to sort by
    vol = read_volume(tmp_path / "sag")
    assert vol.shape == (2, 5, 12, 10)
    assert np.allclose(vol.spacing, (7.0, 1.5, 1.25), atol=1e-4)
    assert np.array_equal(vol.array, s.pixels.astype(np.float32) * s.slope + s.intercept)
    assert np.allclose(np.diff(slice_positions_mm(vol)), 7.0, atol=1e-3)
    for z in range(5):
        assert np.allclose(vol.index_to_world([[z, 0, 0]])[0], lps_to_ras(ipps[z]), atol=1e-3)


def _add_us_regions(path, *regions: tuple[int, int, float, float]) -> None:
    """Give an ultrasound file SequenceOfUltrasoundRegions items (units x, units y, delta x, delta y)."""
    ds = pydicom.dcmread(path)
    items = []
    for ux, uy, dx, dy in regions:
        r = Dataset()
        r.RegionSpatialFormat, r.RegionDataType, r.RegionFlags = 1, 1, 0
        r.RegionLocationMinX0, r.RegionLocationMinY0, r.RegionLocationMaxX1, r.RegionLocationMaxY1 = 0, 0, ds.Columns - 1, ds.Rows - 1
        r.PhysicalUnitsXDirection, r.PhysicalUnitsYDirection = ux, uy
        r.PhysicalDeltaX, r.PhysicalDeltaY = dx, dy
        items.append(r)
    ds.SequenceOfUltrasoundRegions = Sequence(items)
    ds.save_as(path, enforce_file_format=True)


def test_ultrasound_region_calibration_gives_the_pixel_size_in_mm(tmp_path):
    """An echo clip without ImagePositionPatient/PixelSpacing is calibrated by its ultrasound
    region (PhysicalDelta in cm): rows are PhysicalDeltaY apart, columns PhysicalDeltaX. With
    the two swapped every area and length of a clip with non-square pixels was wrong. A region
    in other units (seconds, a Doppler strip) is not a pixel size and is skipped."""
    pixels = write_us_clip(tmp_path / "us.dcm", n_frames=3)
    # first region: a time axis (units 4 = seconds) that must be skipped; then the B-mode region in cm
    _add_us_regions(tmp_path / "us.dcm", (4, 3, 0.01, 0.5), (3, 3, 0.02, 0.05))
    vol = read_volume(tmp_path / "us.dcm")
    assert vol.spacing_known and vol.modality == "US"
    assert vol.spacing[1:] == pytest.approx((0.5, 0.2))  # (dy, dx) mm = (deltaY, deltaX) * 10
    assert np.array_equal(vol.array[:, 0], pixels.astype(np.float32))
    only_other_units = write_us_clip(tmp_path / "us2.dcm", n_frames=3)
    _add_us_regions(tmp_path / "us2.dcm", (4, 7, 0.01, 0.5))
    vol2 = read_volume(tmp_path / "us2.dcm")
    assert not vol2.spacing_known and vol2.spacing[1:] == pytest.approx((1.0, 1.0))
    assert np.array_equal(vol2.array[:, 0], only_other_units.astype(np.float32))


def test_images_of_different_orientations_in_one_series_are_refused(tmp_path):
    """A folder whose images share a series but not an orientation (a localiser saved with the
    cine, a re-planned slice) cannot be stacked: GeometryError naming it, rather than a volume
    whose slices are silently mis-registered."""
    s = write_cine_series(tmp_path / "mixed", n_slices=3, n_phases=1)
    # one slice rotated in its own plane by 30 degrees: same normal and positions, other IOP
    ds0 = pydicom.dcmread(sorted((tmp_path / "mixed").iterdir())[0])
    iop = np.asarray(ds0.ImageOrientationPatient, float)
    a = np.deg2rad(30.0)
    row, col = np.cos(a) * iop[:3] + np.sin(a) * iop[3:], -np.sin(a) * iop[:3] + np.cos(a) * iop[3:]
    for f in sorted((tmp_path / "mixed").iterdir()):
        ds = pydicom.dcmread(f)
        if np.allclose(np.asarray(ds.ImagePositionPatient, float), s.ipps[1], atol=1e-3):
            ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col)]
            ds.save_as(f, enforce_file_format=True)
    with pytest.raises(GeometryError, match="different orientations"):
        read_volume(tmp_path / "mixed")
