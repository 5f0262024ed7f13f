"""The napari reader claims every file ending medseg reads (JPEG, BMP and TIFF echo frames were
left to napari's own readers, without medseg's modality and layer metadata)."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np
import pytest
import yaml
from medseg_napari._layers import META_VOLUME
from medseg_napari._reader import ENDINGS, get_reader, read_image
from PIL import Image

from medseg.io.readers import EXTENSIONS

MANIFEST = Path(__file__).resolve().parents[2] / "napari_plugin" / "napari.yaml"


def test_manifest_and_reader_claim_every_medseg_ending():
    patterns = [p for r in yaml.safe_load(MANIFEST.read_text())["contributions"]["readers"] for p in r["filename_patterns"]]
    for ending in EXTENSIONS:
        assert any(fnmatch.fnmatch(f"study{ending}", p) for p in patterns), ending
        assert ending in ENDINGS
    assert [e for e in ENDINGS if e.endswith(".nrrd")][0] == ".seg.nrrd"  # the longest ending first (case names)


@pytest.mark.parametrize("ending", [".jpg", ".bmp", ".tif"])
def test_raster_echo_frames_open_through_medseg(tmp_path, ending):
    y, x = np.mgrid[:64, :80]
    frame = ((np.hypot(y - 32, x - 40) < 20) * 200 + 20).astype(np.uint8)
    path = tmp_path / f"apical4ch{ending}"
    Image.fromarray(frame).save(path)
    assert get_reader(str(path)) is read_image
    (data, meta, kind), = read_image(str(path))
    assert kind == "image" and data.shape[-2:] == (64, 80)
    assert meta["name"] == "apical4ch" and META_VOLUME in meta["metadata"]


def test_a_zipped_dicom_series_opens_as_one_image_layer(tmp_path):
    """A ``.zip`` (UK Biobank's, a PACS export's) opens through medseg: the folder it holds."""
    import sys
    import zipfile

    if (io := str(Path(__file__).resolve().parents[1] / "io")) not in sys.path:
        sys.path.insert(0, io)
    from io_synth import write_cine_series

    series = write_cine_series(tmp_path / "study", n_slices=3, n_phases=2, rows=20, cols=20)
    with zipfile.ZipFile(tmp_path / "study.zip", "w") as z:
        for f in sorted(series.folder.iterdir()):
            z.write(f, f"study/{f.name}")
    assert get_reader(str(tmp_path / "study.zip")) is read_image
    (data, meta, kind), = read_image(str(tmp_path / "study.zip"))
    assert kind == "image" and data.shape == (2, 3, 20, 20) and meta["name"] == "study"
    assert meta["metadata"][META_VOLUME].meta["path"] == str(tmp_path / "study.zip")
