"""`medseg batch` over a folder of zips: each ``.zip`` is one case named by its stem (a DICOM
study or one image file inside), its reference found beside it, never taken for a reference
itself; ``--dicom-seg`` writes SEGs referencing the zip's images, ``--series`` picks a zip's
series, and ``--resume`` judges the case by the zip file's sha256.

The case's labels are saved as another command's (kept, never segmented again), so the batch
writes its SEG files and measures without running the model."""

from __future__ import annotations

import csv
import sys
import zipfile
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid

from medseg._files import sha256_path
from medseg.batch import discover_cases, find_reference
from medseg.cli import run_cli

if (_IO := str(Path(__file__).resolve().parents[1] / "io")) not in sys.path:
    sys.path.insert(0, _IO)
from io_synth import write_cine_series, write_phantom_cine_series  # noqa: E402


def _zip(folder: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            z.write(f, f.relative_to(folder).as_posix())
    return dest


def test_each_zip_is_a_case_named_by_its_stem(tmp_path):
    inp = tmp_path / "in"
    write_cine_series(tmp_path / "a", n_slices=2, n_phases=1)
    _zip(tmp_path / "a", inp / "1234567_20209_2_0.zip")
    _zip(tmp_path / "a", inp / "site2" / "p7.zip")
    (inp / "p7_gt.nii.gz").write_bytes(b"x")  # another folder's: not p7's reference beside it
    (inp / "site2" / "p7_gt.nii.gz").write_bytes(b"x")
    (inp / "site2" / "p7_seg.zip").write_bytes(b"x")  # a zip is never reference labels
    cases = discover_cases(inp, prompts_from=inp)
    got = {c.case: (Path(c.input).relative_to(inp).as_posix(), c.reference and Path(c.reference).relative_to(inp).as_posix(), c.error)
           for c in cases}
    assert got["1234567_20209_2_0"] == ("1234567_20209_2_0.zip", None, "no reference labels for case '1234567_20209_2_0' in "
                                        f"{inp} (looked for 1234567_20209_2_0 + _gt, _labels, _label, _seg, _segmentation, _mask, _manual or nothing, + .nii.gz etc.)")
    assert got["p7"] == ("site2/p7.zip", "site2/p7_gt.nii.gz", None)
    assert find_reference("p7", inp / "site2").name == "p7_gt.nii.gz"
    (inp / "site2" / "p7_gt.nii.gz").unlink()  # p7_seg.zip is left: no label file
    p7 = next(c for c in discover_cases(inp, prompts_from=inp) if c.case == "p7")
    assert p7.reference is None and p7.error.startswith("no reference labels for case 'p7'")


def _kept_labels(ph, zipped: Path, out: Path, series: str | None = None) -> None:
    from medseg.io import read_volume, write_labels

    prov = {"command": "segment", "input": str(zipped), "input_sha256": sha256_path(zipped), **({"series": series} if series else {})}
    write_labels(ph.labels, read_volume(zipped, series=series), out / f"{zipped.stem}.nii.gz", ph.label_map, provenance=prov)


def test_batch_dicom_seg_of_zipped_studies_and_a_resume(tmp_path):
    """Two zipped studies, one with a localizer beside its cine (``--series`` picks the cine):
    each case's SEGs reference the images inside its zip; a ``--resume`` keeps every case."""
    uid, out = generate_uid(), tmp_path / "out"
    ph = write_phantom_cine_series(tmp_path / "p1", uid)
    write_cine_series(tmp_path / "p1", rows=20, cols=22, description="LOCALIZER", prefix="LOC", series_number=1)
    ph2 = write_phantom_cine_series(tmp_path / "p2", generate_uid())
    z1, z2 = _zip(tmp_path / "p1", tmp_path / "in" / "p1.zip"), _zip(tmp_path / "p2", tmp_path / "in" / "p2.zip")
    _kept_labels(ph, z1, out, series="sa cine")
    _kept_labels(ph2, z2, out)
    args = ["batch", str(tmp_path / "in"), "-o", str(out), "--auto", "--dicom-seg", "--resume", "--series", "sa cine"]
    assert run_cli(args) == 0
    rows = {r["case"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert {k: r["status"] for k, r in rows.items()} == {"p1": "skipped", "p2": "skipped"}
    for case, folder in (("p1", tmp_path / "p1"), ("p2", tmp_path / "p2")):
        segs = sorted((out / f"{case}_seg").glob(f"{case}_frame*.dcm"))
        assert len(segs) == 6, case
        referenced = {i.ReferencedSOPInstanceUID for p in segs for s in dcmread(p).ReferencedSeriesSequence
                      for i in s.ReferencedInstanceSequence}
        assert referenced == {dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in folder.glob("IM*.dcm")}, case
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.dcm")}
    assert run_cli(args) == 0  # nothing changed: every SEG kept
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.dcm")} == before


def test_batch_segments_the_series_series_names_in_a_zip(tmp_path, one_torch_thread):
    """``--series`` reaches a zipped study as it reaches a folder (the localizer beside the cine
    left out), and the sidecar records the zip, its sha256 and the series."""
    import json

    write_phantom_cine_series(tmp_path / "p1", generate_uid())
    write_cine_series(tmp_path / "p1", rows=20, cols=22, description="LOCALIZER", prefix="LOC", series_number=1)
    z = _zip(tmp_path / "p1", tmp_path / "in" / "p1.zip")
    out = tmp_path / "out"
    assert run_cli(["batch", str(tmp_path / "in"), "-o", str(out), "--auto", "--frames", "0", "--series", "sa cine"]) == 0
    prov = json.loads((out / "p1.json").read_text())["provenance"]
    assert (prov["input"], prov["input_sha256"], prov["series"], prov["input_shape"]) == (str(z.resolve()), sha256_path(z), "sa cine", [6, 6, 64, 64])
