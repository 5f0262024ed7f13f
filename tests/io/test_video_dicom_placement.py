"""Where an AVI/MP4 clip and a DICOM image without position lie: as a PNG does, where ITK
(SimpleITK, GDCM, 3D Slicer) places an image without geometry: origin 0, identity direction in
LPS (``RASTER_AFFINE``). A frame of a clip saved as PNG and the clip's labels written as NIfTI
then overlay in those tools (medseg placed clips at RAS identity before, x and y mirrored). The
arrays keep the file's rows and columns; labels medseg wrote before (at RAS identity) still pair
with the clip or DICOM image in ``evaluate`` and ``measure --image``."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import imageio.v3 as iio
import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from io_synth import IOP, write_us_clip
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medseg.cli import run_cli
from medseg.errors import GeometryError
from medseg.io import read_label_volume, read_volume, write_labels
from medseg.io.geometry import RASTER_AFFINE, check_same_grid
from medseg.io.volume import Volume

if (_MEASURE := str(Path(__file__).resolve().parents[1] / "measure")) not in sys.path:
    sys.path.insert(0, _MEASURE)

H, W, T = 40, 64, 3
MAP = "lv=1,myo=2,la=3"


def _masks() -> np.ndarray:
    """(T, H, W) labels off every axis of symmetry (a mirror in x or y moves them)."""
    m = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        m[t, 5:14, 40 + t:58] = 1
        m[t, 20:24, 3:9 + t] = 2
    return m


def _avi(path: Path, frames_tyx: np.ndarray) -> Path:
    rgb = np.repeat(frames_tyx[..., None], 3, axis=-1).astype(np.uint8)
    iio.imwrite(path, rgb, plugin="pyav", codec="mjpeg", fps=25, out_pixel_format="yuvj420p")
    return path


def _frame_onto(labels_path: Path, png_path: Path, t: int) -> np.ndarray:
    """Frame ``t`` of 2-D + time NIfTI labels resampled by SimpleITK onto a PNG as SimpleITK reads it."""
    lab = sitk.ReadImage(str(labels_path))
    size = list(lab.GetSize())
    frame = sitk.Extract(lab, [size[0], size[1]] + [0] * (len(size) - 2), [0, 0] + [0] * (len(size) - 3) + [t])
    image = sitk.ReadImage(str(png_path))
    return sitk.GetArrayFromImage(sitk.Resample(frame, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, frame.GetPixelID()))


def test_a_clip_and_its_png_frames_share_the_placement_itk_gives(tmp_path):
    """The clip's NIfTI labels, frame by frame, resampled by SimpleITK onto that frame saved as
    PNG, are the labels (they came out mirrored, empty, with the clip at RAS identity)."""
    masks = _masks()
    vol = read_volume(_avi(tmp_path / "clip.avi", np.where(masks > 0, 220, 20)))
    assert np.allclose(vol.affine, RASTER_AFFINE) and vol.meta["format"] == "video"
    assert np.abs(vol.array[:, 0].astype(int) - np.where(masks > 0, 220, 20)).mean() < 4  # rows and columns as the file's (lossy codec)
    out = write_labels(masks[:, None], vol, tmp_path / "clip_seg.nii.gz", MAP)[0]
    for t in range(T):
        png = tmp_path / f"frame{t}.png"
        Image.fromarray(vol.array[t, 0]).save(png)
        assert np.allclose(read_volume(png).affine, vol.affine)  # one convention for a clip and its frames
        assert np.array_equal(_frame_onto(out, png, t), masks[t])
    back = read_label_volume(out)
    assert np.array_equal(back.array[:, 0], masks) and back.same_grid(vol)


def _old_labels(path: Path, labels_tyx: np.ndarray, affine: np.ndarray) -> Path:
    """2-D + time labels as NIfTI on ``affine`` (an earlier medseg's: RAS identity for a clip)."""
    nib.save(nib.Nifti1Image(np.ascontiguousarray(labels_tyx[:, None].T).astype(np.int16), affine), str(path))
    return path


def _evaluate(tmp_path: Path, image: Path, labels: Path, name: str) -> tuple[int, dict]:
    pred = tmp_path / f"pred_{name}"
    pred.mkdir()
    (pred / "case.nii.gz").write_bytes(labels.read_bytes())
    pairs = tmp_path / f"pairs_{name}.csv"
    with pairs.open("w", newline="") as f:
        csv.writer(f).writerows([["case", "image", "label"], ["case", str(image), str(labels)]])
    out = tmp_path / f"eval_{name}.json"
    rc = run_cli(["evaluate", "--pairs", str(pairs), "--label-map", MAP, "--predicted", str(pred), "-o", str(out)])
    return rc, json.loads(out.read_text()) if out.exists() else {}


def _echo_clip() -> np.ndarray:
    from measure_phantoms import echo_view

    return np.stack([echo_view(w, 60.0 + w, True, px=1.0, shape=(140, 110)) for w in (19.0, 21.0, 16.0)]).astype(np.uint8)


def test_labels_written_for_a_clip_before_still_pair_with_it(tmp_path, capsys):
    """A clip's labels an earlier medseg wrote as NIfTI (RAS identity) still pair with the clip
    (now at RASTER_AFFINE): evaluate scores them, measure --image draws the clip under them;
    labels mirrored in x alone are refused as before."""
    labels = _echo_clip()
    clip = _avi(tmp_path / "clip.avi", np.choose(labels, [30, 90, 200, 140]).astype(np.uint8))
    old = _old_labels(tmp_path / "old.nii.gz", labels, np.eye(4))
    rc, res = _evaluate(tmp_path, clip, old, "old")
    assert rc == 0 and res["cases"][0]["dice"]["lv"] == 1.0
    plots = tmp_path / "plots"
    assert run_cli(["measure", str(old), "--label-map", MAP, "--image", str(clip), "--plots", str(plots), "-o", str(tmp_path / "m.json")]) == 0
    assert (plots / "overlay.png").is_file()
    capsys.readouterr()
    x_only = _old_labels(tmp_path / "x_only.nii.gz", labels, np.diag([-1.0, 1.0, 1.0, 1.0]))
    assert _evaluate(tmp_path, clip, x_only, "x_only")[0] == 1
    assert "grid does not match" in capsys.readouterr().err


# -- DICOM without position -------------------------------------------------------------------
def _with_region(path: Path, dest: Path, dx_cm: float = 0.03, dy_cm: float = 0.05) -> Path:
    ds = pydicom.dcmread(path)
    r = Dataset()
    r.RegionSpatialFormat, r.RegionDataType, r.RegionFlags = 1, 1, 0
    r.RegionLocationMinX0, r.RegionLocationMinY0, r.RegionLocationMaxX1, r.RegionLocationMaxY1 = 0, 0, ds.Columns - 1, ds.Rows - 1
    r.PhysicalUnitsXDirection, r.PhysicalUnitsYDirection, r.PhysicalDeltaX, r.PhysicalDeltaY = 3, 3, dx_cm, dy_cm
    ds.SequenceOfUltrasoundRegions = Sequence([r])
    ds.save_as(dest)
    return dest


@pytest.mark.parametrize("frames", [5, 1])
@pytest.mark.parametrize("region", [False, True])
def test_a_dicom_image_without_position_lies_where_itk_puts_it(tmp_path, frames, region):
    """SimpleITK (GDCM) puts a DICOM image without ImagePositionPatient / ImageOrientationPatient
    at origin 0, identity direction in LPS: medseg's world points are its, the pixel size of the
    ultrasound region aside (ITK keeps 1 mm pixels there; the directions agree)."""
    path = tmp_path / "us.dcm"
    pixels = write_us_clip(path, n_frames=frames)
    if region:
        path = _with_region(path, tmp_path / "region.dcm")
    vol, itk = read_volume(path), sitk.ReadImage(str(path))
    scale = np.array([0.3, 0.5]) if region else np.ones(2)
    assert np.allclose(vol.spacing[1:][::-1], scale)
    for col, row in ((0, 0), (19, 0), (0, 15), (7, 3)):
        ras = vol.affine @ [col, row, 0, 1]
        lps = np.array(itk.TransformIndexToPhysicalPoint((col, row, 0))[:2])
        assert np.allclose([-ras[0], -ras[1]], lps * scale)
    assert np.array_equal(vol.array[:, 0], pixels) and np.array_equal(sitk.GetArrayFromImage(itk).reshape(pixels.shape), pixels)


@pytest.mark.parametrize("region", [False, True])
def test_labels_written_for_a_dicom_clip_before_still_pair_with_it(tmp_path, region):
    """Labels an earlier medseg wrote for a position-less DICOM clip (RAS identity, or the region's
    diag(dx, dy, 1)) pair with it still; evaluate scores them."""
    path = tmp_path / "us.dcm"
    write_us_clip(path, n_frames=3)
    if region:
        path = _with_region(path, tmp_path / "region.dcm")
    vol = read_volume(path)
    old_affine = np.diag([0.3, 0.5, 1.0, 1.0]) if region else np.eye(4)
    assert np.allclose(vol.affine, RASTER_AFFINE @ old_affine)
    labels = np.zeros((3, 16, 20), np.uint8)
    labels[:, 3:9, 4:12] = 1
    labels[:, 10:13, 2:6] = 2
    check_same_grid(vol, Volume(labels[:, None], old_affine), "old labels")
    rc, res = _evaluate(tmp_path, path, _old_labels(tmp_path / "old.nii.gz", labels, old_affine), "old")
    assert rc == 0 and res["cases"][0]["dice"]["lv"] == 1.0


def test_a_positioned_dicom_clip_keeps_its_mirror_refused(tmp_path):
    """A legacy multi-frame clip with a position and an orientation is placed by them; the x/y
    mirror of that placement is another place, refused as before."""
    path = tmp_path / "us.dcm"
    write_us_clip(path, n_frames=3)
    ds = pydicom.dcmread(path)
    ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing = [5.0, -3.0, 10.0], [f"{v:.6f}" for v in IOP], [0.5, 0.3]
    ds.save_as(path)
    vol = read_volume(path)
    labels = np.zeros((3, 1, 16, 20), np.uint8)
    check_same_grid(vol, Volume(labels, vol.affine.copy()), "labels")
    with pytest.raises(GeometryError, match="grid does not match"):
        check_same_grid(vol, Volume(labels, np.diag([-1.0, -1.0, 1.0, 1.0]) @ vol.affine), "mirrored labels")
