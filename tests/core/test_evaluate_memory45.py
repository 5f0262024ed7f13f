"""`medseg evaluate` kept every case's image Volume and label arrays until the clinical errors
(~0.6 MB a tiny study, ~100 MB a real cine): the rows now hold the labels packed and the image's
grid only, and the clinical numbers are those of the full arrays."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medseg import evaluation
from medseg.evaluation_keep import Grid, PackedLabels, kept_for_clinical, labels
from medseg.io.volume import Volume

AFF = np.diag([1.5, 1.5, 8.0, 1.0])


def _stack(r_lv: float, z: int = 6, n: int = 48) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    d = np.hypot(yy - n / 2, xx - n / 2)
    sl = np.zeros((n, n), np.uint8)
    sl[np.hypot(yy - n / 2, xx - 6) < 5] = 1
    sl[d < r_lv + 4] = 2
    sl[d < r_lv] = 3
    return np.repeat(sl[None], z, axis=0)


def _study(tmp_path, names):
    a, b = tmp_path / "ref", tmp_path / "pred"
    a.mkdir()
    b.mkdir()
    for case, r_lv in names:
        lab = _stack(r_lv)
        nib.save(nib.Nifti1Image(np.where(lab > 0, 200.0, 40.0).astype(np.float32).T.copy(), AFF), str(a / f"{case}.nii.gz"))
        nib.save(nib.Nifti1Image(lab.T.copy(), AFF), str(a / f"{case}_gt.nii.gz"))
        nib.save(nib.Nifti1Image(_stack(r_lv - 1).T.copy(), AFF), str(b / f"{case}.nii.gz"))
    return evaluation.with_predictions(evaluation.read_pairs(str(a)), str(b))


@pytest.mark.parametrize("names", [(("p1_ED", 11.0), ("p1_ES", 7.0), ("p2_ED", 12.0), ("p2_ES", 8.0)),  # phase in the names
                                   (("patient001_frame01", 11.0), ("patient001_frame09", 7.0))])  # ACDC's frames
def test_rows_reaching_the_clinical_errors_hold_no_image_and_no_raw_labels(tmp_path, monkeypatch, names):
    seen = []
    real = evaluation.clinical_errors

    def spy(cases, label_map):
        for c in cases:
            seen.append({k: c[k] for k in ("_pred", "_ref", "_vol")})
        return real(cases, label_map)

    monkeypatch.setattr(evaluation, "clinical_errors", spy)
    r = evaluation.evaluate_pairs(_study(tmp_path, names), "rv=1,myo=2,lv=3", None, None)
    assert len(seen) == len(names)
    for row in seen:
        assert not isinstance(row["_vol"], Volume) and not hasattr(row["_vol"], "array")  # the image's voxels are gone
        assert isinstance(row["_vol"], Grid) and row["_vol"].spacing == pytest.approx((8.0, 1.5, 1.5))
        assert all(isinstance(row[k], PackedLabels) for k in ("_pred", "_ref"))  # no raw label array either
        assert row["_ref"].nbytes_packed < labels(row, "_ref").nbytes / 4
    n_studies = len(names) // 2
    assert r["summary"]["n_clinical_cases"] == n_studies
    # the clinical numbers are those of the full arrays: ED r=11 vs predicted r=10 -> a smaller predicted EDV
    clin = [c["clinical"] for c in r["cases"] if "clinical" in c]
    assert len(clin) == n_studies and all(c["edv_pred_ml"] < c["edv_ref_ml"] for c in clin)
    assert all("_pred" not in c and "_vol" not in c for c in r["cases"])


def test_packed_labels_give_back_the_array_a_broadcast_cine_included():
    lab = _stack(9.0)
    cine = np.broadcast_to(lab, (5, *lab.shape))  # one phase's labels over a cine's frames: a view
    vol = Volume(array=np.zeros((1, *lab.shape), np.float32), affine=AFF)
    kept = kept_for_clinical(cine, lab, vol)
    assert kept["_pred"].shape == cine.shape and np.array_equal(labels(kept, "_pred"), cine)
    assert labels(kept, "_ref").dtype == lab.dtype and np.array_equal(labels(kept, "_ref"), lab)
    assert np.array_equal(kept["_vol"].affine, AFF) and kept["_vol"].spacing == vol.spacing and kept["_vol"].spacing_known
    assert np.array_equal(labels({"_ref": lab}, "_ref"), lab)  # a plain array passes through
