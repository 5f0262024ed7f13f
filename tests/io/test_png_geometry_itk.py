"""Where a 2-D raster image (PNG, BMP, TIFF, JPEG) lies: as ITK (SimpleITK, 3D Slicer, ITK-SNAP)
reads it, origin 0 and identity direction in LPS. Labels medseg writes for a PNG as NIfTI, MHA or
NRRD land on the PNG's pixels there (``sitk.Resample`` onto ``sitk.ReadImage(png)`` gives the
mask back); medseg placed the PNG at RAS identity before, x and y mirrored, and the resampled
mask came out empty. The array (rows, columns) is the file's either way; a ``.png`` output is
pixel-identical; labels written on the earlier placement still pair with the PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from medseg.errors import GeometryError
from medseg.io import read_label_volume, read_volume, write_labels
from medseg.io.geometry import check_same_grid
from medseg.io.volume import Volume, with_pixel_spacing
from medseg.labels import LabelMap

H, W = 40, 64
LMAP = LabelMap.parse("lv=1,myo=2")


def _mask() -> np.ndarray:
    """(H, W) labels off every axis of symmetry (a mirror in x or y moves them)."""
    m = np.zeros((H, W), np.uint8)
    m[5:14, 40:58] = 1
    m[20:24, 3:9] = 2
    return m


def _png(tmp_path, ext=".png"):
    image = np.full((H, W), 20, np.uint8)
    image[_mask() > 0] = 220
    path = tmp_path / f"image{ext}"
    Image.fromarray(image).save(path)
    return path


def _onto(label_path, image_path) -> np.ndarray:
    """The labels resampled by SimpleITK onto the image as SimpleITK reads it (nearest neighbour)."""
    image, lab = sitk.ReadImage(str(image_path)), sitk.ReadImage(str(label_path))
    if lab.GetDimension() == 3:
        lab = lab[:, :, 0]
    return sitk.GetArrayFromImage(sitk.Resample(lab, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, lab.GetPixelID()))


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".jpg"])
def test_a_raster_image_lies_where_itk_puts_it(tmp_path, ext):
    path = _png(tmp_path, ext)
    vol, itk = read_volume(path), sitk.ReadImage(str(path))
    for col, row in ((0, 0), (W - 1, 0), (0, H - 1), (41, 7)):
        ras = vol.affine @ [col, row, 0, 1]
        lps = itk.TransformIndexToPhysicalPoint((col, row))
        assert np.allclose([-ras[0], -ras[1]], lps)
    pixels = sitk.GetArrayFromImage(itk)
    pixels = pixels[..., 0] if pixels.ndim == 3 else pixels  # ITK reads an 8-bit BMP as RGB
    assert np.abs(vol.array[0, 0].astype(int) - pixels).max() <= (8 if ext == ".jpg" else 0)  # rows and columns as the file's


@pytest.mark.parametrize("ext", [".nii.gz", ".mha", ".nrrd"])
def test_labels_written_for_a_png_overlay_it_in_itk(tmp_path, ext):
    png = _png(tmp_path)
    out = tmp_path / f"labels{ext}"
    write_labels(_mask(), read_volume(png), out, LMAP)
    assert np.array_equal(_onto(out, png), _mask())
    back = read_label_volume(out)
    assert np.array_equal(back.array[0, 0], _mask()) and np.allclose(back.affine, read_volume(png).affine)


def test_png_labels_of_a_png_are_its_pixels(tmp_path):
    png = _png(tmp_path)
    out = tmp_path / "labels.png"
    write_labels(_mask(), read_volume(png), out, LMAP)
    assert np.array_equal(np.asarray(Image.open(out)), _mask())
    assert np.array_equal(_onto(out, png), _mask())


def test_segment_of_a_png_written_as_nifti_lies_on_its_structure(tmp_path):
    """``medseg segment image.png -o labels.nii.gz`` with a box on the bright block: the labels,
    resampled by SimpleITK onto the PNG, cover the block (they were mirrored off the image)."""
    from medseg.cli import run_cli

    png = _png(tmp_path)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"format": "medseg-prompts/1", "label_map": {"lv": 1},
                                   "prompts": [{"structure": "lv", "frame": 0, "slice": 0, "box": [4, 39, 14, 58]}]}))
    out = tmp_path / "labels.nii.gz"
    assert run_cli(["segment", str(png), "--prompts", str(prompts), "-o", str(out)]) == 0
    on_png = _onto(out, png) == 1
    block = _mask() == 1
    assert 2 * np.sum(on_png & block) / (np.sum(on_png) + np.sum(block)) > 0.8


def test_labels_on_the_earlier_placement_still_pair_with_the_png(tmp_path):
    """NIfTI labels an earlier medseg wrote for a PNG (RAS identity; with --pixel-spacing its
    scale) still lie on its grid; labels anywhere else are refused as before."""
    vol = read_volume(_png(tmp_path))
    lab = _mask()[None, None]
    check_same_grid(vol, Volume(lab, np.eye(4)), "old labels")
    given = with_pixel_spacing(vol, (0.5, 0.25))
    check_same_grid(given, Volume(lab, np.diag([0.25, 0.5, 1.0, 1.0])), "old labels")
    shifted = np.eye(4)
    shifted[0, 3] = 3.0
    with pytest.raises(GeometryError, match="grid does not match"):
        check_same_grid(vol, Volume(lab, shifted), "shifted labels")
    with pytest.raises(GeometryError, match="grid does not match"):  # only beside an image file without geometry
        check_same_grid(Volume(lab.astype(np.float32), np.diag([-1.0, -1.0, 1.0, 1.0])), Volume(lab, np.eye(4)), "labels")


def test_png_labels_still_pair_with_an_image_at_ras_identity(tmp_path):
    """PNG labels (a user's mask of a video frame, of a DICOM echo image without position) lay on
    an image at RAS identity as the PNG did; they still do."""
    out = tmp_path / "mask.png"
    Image.fromarray(_mask()).save(out)
    labels = read_label_volume(out)
    check_same_grid(Volume(np.zeros((3, 1, H, W), np.uint8), np.eye(4), modality="US", spacing_known=False, meta={"format": "video"}),
                    labels, "mask.png")
    with pytest.raises(GeometryError, match="grid does not match"):
        check_same_grid(Volume(np.zeros((1, 1, H, W), np.uint8), np.diag([0.3, 0.3, 1.0, 1.0])), labels, "mask.png")
