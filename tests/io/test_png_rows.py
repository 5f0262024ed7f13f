"""A PNG whose header gives another size than its image data hold is refused in one line: Pillow
stops at the end of the compressed data and leaves the missing rows black (a header one row
taller than its data read as an image with a zero row added), or drops the rows beyond it."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from medseg.cli._app import run_cli
from medseg.errors import ImageReadError
from medseg.io import read_label_volume, read_volume

ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(a: np.ndarray, height: int | None = None, interlace: bool = False) -> bytes:
    """An 8-bit grayscale PNG of ``a`` whose IHDR says ``height`` rows (default: a's), Adam7-interlaced or not."""
    rows, cols = a.shape
    parts = [a[y0::dy, x0::dx] for x0, y0, dx, dy in ADAM7] if interlace else [a]
    raw = b"".join(b"\0" + row.tobytes() for p in parts if p.size for row in p.astype(np.uint8))  # filter 0 per row
    ihdr = struct.pack(">IIBBBBB", cols, rows if height is None else height, 8, 0, 0, 0, int(interlace))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


@pytest.fixture()
def image():
    return (np.arange(24 * 20).reshape(24, 20) % 251 + 1).astype(np.uint8)


@pytest.mark.parametrize("height, message", [
    (25, "truncated or damaged PNG: its image data end after 24 of the 25 rows its header gives (20x25)"),
    (40, "end after 24 of the 40 rows"),
    (23, "damaged PNG: its image data hold more than the 20x23 pixels its header gives"),
])
def test_a_png_whose_header_disagrees_with_its_data_is_refused(image, height, message, tmp_path, capsys):
    path = tmp_path / "m.png"
    path.write_bytes(_png(image, height))
    for read in (read_volume, read_label_volume):
        with pytest.raises(ImageReadError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read(path)
    assert run_cli(["info", str(path)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err


@pytest.mark.parametrize("interlace", [False, True])
def test_sound_pngs_read_as_they_are(image, interlace, tmp_path):
    path = tmp_path / "m.png"
    path.write_bytes(_png(image, interlace=interlace))
    assert np.array_equal(read_volume(path).array[0, 0], image)
    odd = image[:23, :13]  # passes of every size, some empty
    path.write_bytes(_png(odd, interlace=interlace))
    assert np.array_equal(read_volume(path).array[0, 0], odd)


@pytest.mark.parametrize("mode", ["1", "L", "I;16", "RGB", "RGBA", "LA", "P"])
def test_pillows_pngs_of_every_mode_read(mode, tmp_path):
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 255, (17, 29, 3), dtype=np.uint8))
    im = base.convert("L").convert(mode) if mode in ("1", "I;16", "LA") else base.convert(mode)
    im.save(tmp_path / "m.png")
    assert read_volume(tmp_path / "m.png").array.shape == (1, 1, 17, 29)
