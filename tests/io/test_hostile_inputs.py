"""Hostile, resource-exhausting inputs from outside (a collaborator's study, a shared file): the
raster and video readers keep to the memory guard every other reader has (medseg.io.limits),
Pillow's decompression-bomb warning is no two-line Python warning, and a PNG whose image data
inflate far beyond its header is not inflated to its end."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medseg.errors import ImageReadError
from medseg.io import read_volume
from medseg.io.limits import ENV_VAR


@pytest.fixture(autouse=True)
def _no_env_limit(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(path: Path, width: int, height: int, idat: bytes) -> Path:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


def _one_line(e: pytest.ExceptionInfo, path: Path, *says: str) -> str:
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and all(s in msg for s in says), msg
    return msg


def test_png_keeps_to_the_memory_limit(tmp_path, monkeypatch):
    # 2000 x 2000 zeros: a 4 kB file declaring 20 MB with its float32 copy
    p = _png(tmp_path / "big.png", 2000, 2000, zlib.compress(b"\0" * (2001 * 2000), 9))
    assert p.stat().st_size < 20_000
    assert read_volume(p).shape == (1, 1, 2000, 2000)  # within the limit: read as before
    monkeypatch.setenv(ENV_VAR, "0.01")  # 10 MB
    with pytest.raises(ImageReadError) as e:
        read_volume(p)
    _one_line(e, p, "(2000, 2000)", "would need 20.0 MB", ENV_VAR)


def test_colour_raster_counts_four_bytes_a_pixel(tmp_path, monkeypatch):
    p = tmp_path / "rgb.png"
    Image.new("RGB", (1000, 1000), (10, 20, 30)).save(p)
    monkeypatch.setenv(ENV_VAR, "0.006")  # 6 MB: 1 M pixels of 4 bytes + the float32 copy need 8 MB
    with pytest.raises(ImageReadError) as e:
        read_volume(p)
    _one_line(e, p, "4-byte voxels", "8.0 MB")


def test_pillow_bomb_warning_is_no_python_warning_and_its_error_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow warns above 1000 pixels, refuses above 2000
    warn = tmp_path / "warn.png"
    Image.new("L", (40, 40), 7).save(warn)  # 1600 pixels
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vol = read_volume(warn)
    assert vol.shape == (1, 1, 40, 40)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)], [str(w.message) for w in caught]
    bomb = tmp_path / "bomb.png"
    Image.new("L", (50, 50), 7).save(bomb)  # 2500 pixels
    with pytest.raises(ImageReadError) as e:
        read_volume(bomb)
    _one_line(e, bomb, "DecompressionBombError")


def test_png_deflate_bomb_is_not_inflated_to_its_end(tmp_path, monkeypatch):
    """A 100 x 100 PNG whose image data inflate to 64 MB (its rows check inflated them all: a
    60 MB file took minutes); refused after little more than the 10 kB its header needs."""
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(b"\0" * (1 << 22)) for _ in range(16)) + z.flush()
    p = _png(tmp_path / "zbomb.png", 100, 100, idat)
    inflated = []
    real = zlib.decompressobj

    class Counting:
        def __init__(self, *a):
            self._z = real(*a)

        def decompress(self, data, max_length=0):
            out = self._z.decompress(data, max_length)
            inflated.append(len(out))
            return out

        def __getattr__(self, name):
            return getattr(self._z, name)

    monkeypatch.setattr(zlib, "decompressobj", Counting)
    with pytest.raises(ImageReadError) as e:
        read_volume(p)
    _one_line(e, p, "more than the 100x100 pixels")
    assert sum(inflated) < 4 << 20, sum(inflated)


def _clip(path: Path, n_frames: int = 12, size: tuple[int, int] = (48, 64)) -> Path:
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.height, s.width = size
        s.pix_fmt = "yuv420p"
        for _ in range(n_frames):
            frame = av.VideoFrame.from_ndarray((rng.random((*size, 3)) * 255).astype(np.uint8), format="rgb24")
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


def test_video_keeps_to_the_memory_limit(tmp_path, monkeypatch):
    import imageio.v3 as iio

    p = _clip(tmp_path / "clip.avi")
    vol = read_volume(p)  # within the limit: the frames imageio reads, as before
    assert np.array_equal(vol.array[:, 0], iio.imread(p, plugin="pyav", format="gray"))
    assert vol.meta["fps"] == 25.0 and vol.meta["codec"] == "mpeg4"
    monkeypatch.setenv(ENV_VAR, "0.0001")  # 100 kB: 12 frames of 48 x 64 and their float32 copy need 184 kB
    with pytest.raises(ImageReadError) as e:
        read_volume(p)
    _one_line(e, p, "the video (shape (12, 48, 64), uint8)", ENV_VAR)


def test_video_frames_beyond_the_declared_count_are_counted(tmp_path, monkeypatch):
    """A container that declares no frame count (or too few): the frames decoded are checked as
    they come (imageio stacked them all, without limit)."""
    from medseg.io.video import _decode

    class Props:
        shape, dtype = (0, 100, 100), np.uint8

    class Clip:  # an endless clip of unknown length
        def properties(self, format):
            return Props()

        def iter(self, format, thread_type):
            while True:
                yield np.zeros((100, 100), np.uint8)

    monkeypatch.setenv(ENV_VAR, "0.001")  # 1 MB: 20 frames of 100 x 100 (5 bytes a pixel)
    with pytest.raises(ImageReadError) as e:
        _decode(Clip(), tmp_path / "endless.mp4")
    _one_line(e, tmp_path / "endless.mp4", "more than 20 frames", ENV_VAR)

    class Few(Clip):  # declares 2 frames, holds 5
        def properties(self, format):
            class P:
                shape, dtype = (2, 4, 4), np.uint8
            return P()

        def iter(self, format, thread_type):
            yield from (np.full((4, 4), i, np.uint8) for i in range(5))

    monkeypatch.delenv(ENV_VAR)
    assert [int(f[0, 0]) for f in _decode(Few(), tmp_path / "few.mp4")] == [0, 1, 2, 3, 4]
