"""Real data: ACDC expert labels (1 RV, 2 MYO, 3 LV; skipped when ../shared/data is absent).

The NIfTI files carry a unit sform with the true spacing in pixdim, so the affine here is
built from the header zooms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.measure.report import measure_ed_es

pytestmark = pytest.mark.realdata
ACDC_MAP = "lv=3,myo=2,rv=1"


def _info(folder: Path) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in folder.joinpath("Info.cfg").read_text().splitlines() if ": " in line)


def _labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    img = nib.load(str(path))
    arr = np.asarray(img.dataobj).T  # (X, Y, Z) -> (Z, Y, X)
    aff = np.array(img.affine, dtype=float)
    zooms = np.array(img.header.get_zooms()[:3], dtype=float)
    aff[:3, :3] = aff[:3, :3] / np.linalg.norm(aff[:3, :3], axis=0) * zooms
    return np.rint(arr).astype(np.int16), aff


def _measure(root: Path, patient: str) -> tuple[dict, str]:
    folder = root / "acdc" / "training" / patient
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    info = _info(folder)
    ed, aff = _labels(folder / f"{patient}_frame{int(info['ED']):02d}_gt.nii.gz")
    es, _ = _labels(folder / f"{patient}_frame{int(info['ES']):02d}_gt.nii.gz")
    rep = measure_ed_es(ed, es, aff, ACDC_MAP, height_cm=float(info["Height"]), weight_kg=float(info["Weight"]))
    return rep, info["Group"]


@pytest.mark.parametrize("patient, group, ef_range, mass_index_range", [
    ("patient001", "DCM", (5, 40), (40, 160)),
    ("patient021", "HCM", (55, 90), (70, 250)),
    ("patient061", "NOR", (50, 80), (35, 100)),
])
def test_acdc_ef_and_mass_plausible(shared_data, patient, group, ef_range, mass_index_range):
    rep, g = _measure(shared_data, patient)
    assert g == group
    assert ef_range[0] <= rep["lv"]["ef_pct"] <= ef_range[1]
    assert mass_index_range[0] <= rep["indexed"]["lv_mass_g_m2"] <= mass_index_range[1]
    assert 0 < rep["rv"]["ef_pct"] < 90
    wt = rep["wall_thickness_mm"]
    assert 3 < wt["global_mean"] < 25
    assert all(np.isfinite(wt["segments"][str(k)]["mean"]) for k in range(1, 17))
    assert not any(f["code"] in ("ef_undefined", "esv_exceeds_edv") for f in rep["flags"])
