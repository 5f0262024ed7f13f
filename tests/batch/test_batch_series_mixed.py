"""``medseg batch --series`` over an INPUT_DIR that mixes DICOM folder cases and image-file
cases: a ``.zip`` holding one image file (a NIfTI) is an image-file case, which ignores
``--series`` as a plain NIfTI does (it failed: "--series picks a series ... holds one image
file"); a zip of a DICOM study is a folder case still; an INPUT_DIR whose cases are all image
files or zips of one is refused before anything is read."""

from __future__ import annotations

import csv
import json
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.uid import generate_uid

from medseg._files import sha256_path
from medseg.batch import discover_cases
from medseg.cli import run_cli
from medseg.io.archive import folder_like

if (_IO := str(Path(__file__).resolve().parents[1] / "io")) not in sys.path:
    sys.path.insert(0, _IO)
from io_synth import write_cine_series, write_phantom_cine_series  # noqa: E402
from zip_synth import zip_tree  # noqa: E402

SERIES = "sa cine"


def _nifti_zip(tmp_path: Path, name: str, extra: dict[str, bytes] | None = None) -> Path:
    """``in/<name>.zip`` holding one NIfTI (one frame of the phantom cine, 2 slices), and ``extra`` files."""
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=1, n_slices=2, shape=(64, 64), spacing=(10.0, 2.0, 2.0), seed=3)
    folder = tmp_path / f"{name}_files"
    folder.mkdir()
    nib.save(nib.Nifti1Image(np.ascontiguousarray(ph.image.array[0].T).astype(np.float32), ph.image.affine), str(folder / f"{name}.nii.gz"))
    for member, data in (extra or {}).items():
        (folder / member).write_bytes(data)
    dest = tmp_path / "in" / f"{name}.zip"
    dest.parent.mkdir(parents=True, exist_ok=True)
    return zip_tree(folder, dest)


def _study(folder: Path) -> None:
    """A DICOM study folder: the phantom cine (``sa cine``) beside a localizer."""
    write_phantom_cine_series(folder, generate_uid())
    write_cine_series(folder, rows=20, cols=22, description="LOCALIZER", prefix="LOC", series_number=1)


def _rows(out: Path) -> dict[str, dict]:
    return {r["case"]: r for r in csv.DictReader((out / "summary.csv").open())}


def test_a_zip_of_one_image_file_is_no_folder(tmp_path):
    """folder_like: a zip read as the folder it holds (DICOM members, by ending or by the DICM
    marker of members without one) is; a zip of one NIfTI (a readme beside it) is not; a damaged
    zip is left to its reader, which says why."""
    assert not folder_like(_nifti_zip(tmp_path, "p1", {"README.txt": b"case p1\n"}))
    write_cine_series(tmp_path / "dcm", n_slices=2, n_phases=1)
    assert folder_like(zip_tree(tmp_path / "dcm", tmp_path / "study.zip"))
    with zipfile.ZipFile(tmp_path / "bare.zip", "w") as z:  # DICOM files without an ending, as UK Biobank's
        for f in sorted((tmp_path / "dcm").iterdir()):
            z.write(f, f"cine/{f.stem}")
    assert folder_like(tmp_path / "bare.zip")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not a zip")
    assert folder_like(tmp_path / "broken.zip") and folder_like(tmp_path) and not folder_like(tmp_path / "bare.zip!x")


def test_mixed_batch_segments_a_zipped_nifti_beside_a_dicom_study(tmp_path, one_torch_thread):
    """The study reads the series --series names; the zipped NIfTI is segmented, its sidecar
    records no series (it failed with "holds one image file")."""
    _study(tmp_path / "in" / "study")
    z = _nifti_zip(tmp_path, "p1")
    assert [c.case for c in discover_cases(tmp_path / "in", series=SERIES)] == ["p1", "study"]
    out = tmp_path / "out"
    assert run_cli(["batch", str(tmp_path / "in"), "-o", str(out), "--auto", "--frames", "0", "--series", SERIES]) == 0
    rows = _rows(out)
    assert {k: r["status"] for k, r in rows.items()} == {"p1": "ok", "study": "ok"}, rows
    p1 = json.loads((out / "p1.json").read_text())["provenance"]
    assert (p1["input"], p1["input_sha256"], p1["input_shape"]) == (str(z.resolve()), sha256_path(z), [1, 2, 64, 64]) and "series" not in p1
    assert json.loads((out / "study.json").read_text())["provenance"]["series"] == SERIES


def test_mixed_batch_remakes_review_sheets_of_kept_labels(tmp_path):
    """Labels kept from another command (never segmented again): their review sheets are drawn
    from the images, the zipped NIfTI read without --series, the study with it."""
    from medseg.io import read_volume, write_labels

    _study(tmp_path / "in" / "study")
    z = _nifti_zip(tmp_path, "p1")
    out = tmp_path / "out"
    for case, path, series in (("p1", z, None), ("study", tmp_path / "in" / "study", SERIES)):
        vol = read_volume(path, series=series)
        labels = np.zeros(vol.shape, np.uint8)
        labels[..., 20:40, 20:40] = 1
        prov = {"command": "segment", "input": str(path), "input_sha256": sha256_path(path),
                **({"series": series} if series else {})}
        write_labels(labels, vol, out / f"{case}.nii.gz", "lv=1", provenance=prov)
    assert run_cli(["batch", str(tmp_path / "in"), "-o", str(out), "--auto", "--review-png", "--series", SERIES]) == 0
    rows = _rows(out)
    assert all(r["status"] in ("ok", "skipped") and not r["reason"].startswith("--series") for r in rows.values()), rows
    assert (out / "p1_review.png").is_file() and (out / "study_review.png").is_file()


def test_batch_of_image_files_and_zips_of_one_refuses_series(tmp_path, capsys):
    """No DICOM folder case (a plain NIfTI, a zip of one): --series is refused before OUT_DIR is
    made, naming the cases; without it they are a batch of two."""
    _nifti_zip(tmp_path, "p1")
    (tmp_path / "in" / "p2.nii.gz").write_bytes((tmp_path / "p1_files" / "p1.nii.gz").read_bytes())
    out = tmp_path / "out"
    assert run_cli(["batch", str(tmp_path / "in"), "-o", str(out), "--auto", "--series", SERIES]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "holds none: its 2 case(s) are image files (p1.zip, p2.nii.gz)" in err and not out.exists()
    assert [c.case for c in discover_cases(tmp_path / "in")] == ["p1", "p2"]
