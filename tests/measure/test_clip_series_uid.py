"""`medseg measure A4C --a2c A2C`: two label files segmented from one image are refused by the
series that was read (the sidecars' ``series_uid``), not by the ``--series`` text. One clip
picked as ``--series 3`` and again as ``--series ...50405`` (its uid's end) passed the check and
measured a "biplane" EF of one view; two series of one DICOM folder are two images, measured.
`segment` and `batch` record the SeriesInstanceUID read from a DICOM input (no other input)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from medseg.cli import run_cli
from medseg.errors import MedsegError
from medseg.io import read_sidecar

if (_IO := str(Path(__file__).resolve().parents[1] / "io")) not in sys.path:
    sys.path.insert(0, _IO)
from io_synth import write_cine_series, write_phantom_cine_series  # noqa: E402

MAP = "lv=1,myo=2,rv=3,la=4,ra=5"
SHA = "ab" * 32
UID_A, UID_B = "1.2.826.0.1.3680043.8.498.50405", "1.2.826.0.1.3680043.8.498.50406"


def _clip(path: Path, view: str, series: str, uid: str | None, frames: tuple[int, ...] | None = None) -> Path:
    """A phantom apical clip's labels with a sidecar as `segment DIR --series SERIES` writes it
    (``uid``: the series read, None: a sidecar of an earlier medseg); ``frames``: only these labelled."""
    from medseg.io import write_labels
    from medseg.phantoms import echo_apical_phantom

    ph = echo_apical_phantom(view, n_frames=10, seed=1, spacing=0.7)
    lab = ph.labels.astype(np.uint8)
    if frames is not None:
        lab = np.where(np.isin(np.arange(len(lab)), frames)[:, None, None, None], lab, 0).astype(np.uint8)
    prov = {"input": "/data/study1", "input_sha256": SHA, "series": series, "command": "segment", **({"series_uid": uid} if uid else {})}
    write_labels(lab, ph.image, path, MAP, provenance=prov)
    return path


def _measure(tmp_path: Path, a4c: Path, a2c: Path, capsys) -> tuple[int, str, Path]:
    out = tmp_path / f"{a4c.stem}_{a2c.stem}.json"
    rc = run_cli(["measure", str(a4c), "--a2c", str(a2c), "-o", str(out)])
    return rc, " ".join(capsys.readouterr().err.split()), out


def test_one_series_picked_by_number_and_by_uid_is_refused(tmp_path, capsys):
    """r3's series.py: the whole clip (--series 3) and its ed,es-only copy (--series ...50405),
    one series read: refused, nothing written; the same with sidecars that record no uid (an
    earlier medseg) is checked by the text, as before, and passes."""
    whole = _clip(tmp_path / "whole.nii.gz", "a4c", "3", UID_A)
    edes = _clip(tmp_path / "edes.nii.gz", "a4c", "...50405", UID_A, frames=(1, 5))
    rc, err, out = _measure(tmp_path, whole, edes, capsys)
    assert rc == 1 and not out.exists()
    assert f"whole.nii.gz and edes.nii.gz were both segmented from study1, series {UID_A} (their sidecars say)" in err
    old4 = _clip(tmp_path / "old4.nii.gz", "a4c", "3", None)
    old2 = _clip(tmp_path / "old2.nii.gz", "a4c", "...50405", None, frames=(1, 5))
    assert _measure(tmp_path, old4, old2, capsys)[0] == 0
    one_uid = _clip(tmp_path / "one_uid.nii.gz", "a4c", "...50405", UID_A, frames=(1, 5))  # one side without a uid: the text
    assert _measure(tmp_path, old4, one_uid, capsys)[0] == 0
    assert _measure(tmp_path, old4, _clip(tmp_path / "same_text.nii.gz", "a4c", "3", UID_A, frames=(1, 5)), capsys)[0] == 1


def test_two_series_of_one_folder_are_measured(tmp_path, capsys):
    """Two series uids of one DICOM folder are two images: measured as the two views, also when
    their --series texts were one (a part of each description that matched one at a time)."""
    a4c = _clip(tmp_path / "s_a4c.nii.gz", "a4c", "apical", UID_A)
    a2c = _clip(tmp_path / "s_a2c.nii.gz", "a2c", "apical", UID_B)
    rc, err, out = _measure(tmp_path, a4c, a2c, capsys)
    assert rc == 0, err
    assert json.loads(out.read_text())["method"] == "biplane_disks"


@pytest.fixture(scope="module")
def torch_one():
    """One torch thread for the model runs (the shared test machine has 2 cores), as batch's tests."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, str]:
    """A DICOM folder: the phantom cine (``sa cine``, series number 5) beside a localizer (1)."""
    folder = tmp_path_factory.mktemp("uid") / "study"
    write_phantom_cine_series(folder, generate_uid())
    write_cine_series(folder, rows=20, cols=22, description="LOCALIZER", prefix="LOC", series_number=1)
    import pydicom

    uid = str(pydicom.dcmread(next(folder.glob("IM*.dcm")), stop_before_pixels=True).SeriesInstanceUID)
    return folder, uid


def test_segment_records_the_series_read_and_measure_refuses_it_twice(study, tmp_path, torch_one):
    """`segment DIR --series 5` and `--series ...<uid end>` read one series: both sidecars record
    its uid, and the two label files are refused as the two clips of a biplane measure."""
    from medseg.cli._measure_clips import _check_sources

    folder, uid = study
    by_number, by_uid = tmp_path / "n.nii.gz", tmp_path / "u.nii.gz"
    assert run_cli(["segment", str(folder), "--series", "5", "--auto", "--frames", "0", "-o", str(by_number)]) == 0
    assert run_cli(["segment", str(folder), "--series", "..." + uid[-6:], "--auto", "--frames", "0", "-o", str(by_uid)]) == 0
    provs = [read_sidecar(p)["provenance"] for p in (by_number, by_uid)]
    assert [p["series"] for p in provs] == ["5", "..." + uid[-6:]] and [p["series_uid"] for p in provs] == [uid, uid]
    with pytest.raises(MedsegError, match=f"were both segmented from study, series {uid}"):
        _check_sources(by_number, by_uid)


def test_batch_records_the_series_read_and_a_nifti_none(study, tmp_path, torch_one):
    """batch --series: a DICOM folder case's sidecar records the series uid read; an image-file
    case records none (no series was read); a previous release's sidecar, without it, resumes as complete."""
    import shutil

    import nibabel as nib

    folder, uid = study
    shutil.copytree(folder, tmp_path / "in" / "study")
    from medseg.io import read_volume

    vol = read_volume(folder, series="sa cine")
    nib.save(nib.Nifti1Image(np.ascontiguousarray(vol.array[0].T).astype(np.float32), vol.affine), str(tmp_path / "in" / "p1.nii.gz"))
    out = tmp_path / "out"
    assert run_cli(["batch", str(tmp_path / "in"), "-o", str(out), "--auto", "--frames", "0", "--series", "sa cine"]) == 0
    assert read_sidecar(out / "study.nii.gz")["provenance"]["series_uid"] == uid
    assert "series_uid" not in read_sidecar(out / "p1.nii.gz")["provenance"]
    # a folder of the previous release (no series_uid): --resume keeps its case as complete
    from medseg.io import sidecar_path

    side = sidecar_path(out / "study.nii.gz")
    doc = json.loads(side.read_text())
    del doc["provenance"]["series_uid"]
    side.write_text(json.dumps(doc))
    assert run_cli(["batch", str(tmp_path / "in"), "-o", str(out), "--auto", "--frames", "0", "--series", "sa cine", "--resume"]) == 0
    assert "series_uid" not in read_sidecar(out / "study.nii.gz")["provenance"]  # not segmented again
