"""medseg's geometry against independent libraries on real data (benchmarks/geometry_oracle.py, one
image of every set): world positions of corner and interior voxels, values, spacing and slice order
against SimpleITK, nibabel and each DICOM file's own position, and labels written in every format
read back by them. Skipped without ../shared/data."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import geometry_oracle as oracle  # noqa: E402

TOL_MM = 1e-3


@pytest.fixture(scope="module")
def rows(shared_data, tmp_path_factory):
    import SimpleITK as sitk

    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's on Sunnybrook's non-conformant UIDs
            return oracle.run(shared_data, list(oracle.SETS), per_set=1, write_per_set=1, work=tmp_path_factory.mktemp("oracle"))
    finally:
        sitk.ProcessObject_SetGlobalWarningDisplay(True)


def test_every_set_agrees_with_the_other_libraries(rows):
    bad = [r for r in rows if not r.passed(TOL_MM)]
    assert not bad, "\n".join(f"{r.set} {r.case} {r.check}: {r.max_mm:.3g} mm, ok={r.ok} {r.note}" for r in bad)
    assert {r.set for r in rows} == set(oracle.SETS)


def test_each_kind_of_check_ran(rows):
    """No set passes by checking nothing: reading against both libraries (DICOM: GDCM's series,
    every file's position and one file alone), every label format read back, a DICOM SEG frame."""
    checks = {(r.set, r.check) for r in rows if r.points > 0}
    for name in ("acdc", "mnms2", "mscmr-lge"):
        assert {(name, "read nibabel"), (name, "read SimpleITK")} <= checks
    assert {("sunnybrook", c) for c in ("read SimpleITK", "read IPP/IOP per file", "read one file SimpleITK")} <= checks
    assert any(s == "sunnybrook" and c.startswith("write SEG frame") for s, c in checks)
    for name in oracle.SETS:
        for ending in (".nii.gz -> nibabel", ".nii.gz -> SimpleITK", ".mha", ".nrrd", ".seg.nrrd"):
            assert any(s == name and c.startswith(f"write {ending}") for s, c in checks), (name, ending)


def test_the_table_and_the_exit_code(shared_data, capsys):
    """The script's own entry: the table, and exit 0 when everything agrees."""
    assert oracle.main(["--data", str(shared_data), "--sets", "mnms2", "--per-set", "1", "--write-per-set", "0"]) == 0
    out = capsys.readouterr().out
    assert "read SimpleITK" in out and "0 mismatches" in out
