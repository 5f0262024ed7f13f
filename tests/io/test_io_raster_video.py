"""2-D raster images (PNG/JPEG/BMP/TIFF) and echo clips (AVI/MP4)."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from medseg.errors import LabelMapError
from medseg.io import read_label_volume, read_volume, write_labels


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif"])
def test_gray_raster(tmp_path, ext):
    arr = np.arange(12 * 15, dtype=np.uint8).reshape(12, 15)
    Image.fromarray(arr).save(tmp_path / f"a{ext}")
    vol = read_volume(tmp_path / f"a{ext}")
    assert vol.shape == (1, 1, 12, 15) and vol.array.dtype == np.uint8
    assert np.array_equal(vol.array[0, 0], arr)
    assert not vol.spacing_known and vol.modality == "OT" and np.allclose(vol.affine, np.diag([-1.0, -1.0, 1.0, 1.0]))  # ITK's LPS identity


def test_16bit_png_and_rgb_luminance(tmp_path):
    arr16 = (np.arange(6 * 7, dtype=np.uint16) * 1000).reshape(6, 7)
    Image.fromarray(arr16).save(tmp_path / "a16.png")
    assert np.array_equal(read_volume(tmp_path / "a16.png").array[0, 0], arr16)
    rgb = np.zeros((5, 6, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.jpg", quality=100)
    expected = 0.299 * 200 + 0.587 * 100 + 0.114 * 50
    assert np.allclose(read_volume(tmp_path / "rgb.png").array, expected, atol=1e-3)
    assert np.allclose(read_volume(tmp_path / "rgb.jpg").array, expected, atol=3)


def test_png_labels_read_and_write(tmp_path):
    lab = np.zeros((8, 9), np.uint8)
    lab[2:5, 3:6] = 3
    pal = Image.fromarray(lab, mode="P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    pal.save(tmp_path / "pal_gt.png")
    got = read_label_volume(tmp_path / "pal_gt.png")
    assert np.array_equal(got.array[0, 0], lab)  # palette indices, not colours
    Image.fromarray(np.stack([lab] * 3, -1)).save(tmp_path / "rgb_gt.png")
    with pytest.raises(LabelMapError, match="rgb_gt.png"):
        read_label_volume(tmp_path / "rgb_gt.png")

    Image.fromarray(np.zeros((8, 9), np.uint8)).save(tmp_path / "img.png")
    img = read_volume(tmp_path / "img.png")
    out_png, side = write_labels(lab, img, tmp_path / "out.png", "lv=3")
    assert np.array_equal(np.asarray(Image.open(out_png)), lab) and side.name == "out.json"
    out_nii = write_labels(lab[None], img, tmp_path / "out.nii.gz", "lv=3")[0]
    back = read_label_volume(out_nii)
    assert back.shape == (1, 1, 8, 9) and back.same_grid(img) and np.array_equal(back.array[0, 0], lab)


@pytest.mark.parametrize(("ext", "codec"), [(".avi", "mjpeg"), (".mp4", "libx264")])
def test_echo_clip(tmp_path, ext, codec):
    ramp = np.linspace(20, 230, 48).astype(np.uint8)
    frames = np.stack([np.broadcast_to((ramp + 3 * t)[None, :, None], (32, 48, 3)) for t in range(6)]).astype(np.uint8)
    pix = "yuv420p" if codec == "libx264" else "yuvj420p"
    iio.imwrite(tmp_path / f"clip{ext}", frames, plugin="pyav", codec=codec, fps=25, out_pixel_format=pix)
    vol = read_volume(tmp_path / f"clip{ext}")
    assert vol.shape == (6, 1, 32, 48) and vol.array.dtype == np.uint8
    assert vol.modality == "US" and not vol.spacing_known
    assert np.allclose(vol.frame_times_s, np.arange(6) / 25.0)
    assert np.abs(vol.array[:, 0].astype(int) - frames[..., 0].astype(int)).mean() < 4  # lossy codec
    out = write_labels(np.zeros(vol.shape, np.uint8), vol, tmp_path / "clip_seg.nii.gz", "lv=1")[0]
    back = read_label_volume(out)
    assert back.shape == vol.shape and back.same_grid(vol)
