"""`medseg compare` of a report that records a patient id with one that records none (a DICOM
report against a NIfTI one): paired as given, with a caution saying the follow-up has no id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medseg.cli import run_cli


def _report(tmp: Path, name: str, ef: float) -> Path:
    from medseg.io import write_labels
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=4, n_slices=6, shape=(64, 64), spacing=(10.0, 1.5, 1.5), seed=1, ef=ef, pose_jitter=False)
    lab = tmp / f"{name}.nii.gz"
    write_labels(ph.labels, ph.image, lab, "lv=1,myo=2,rv=3",
                 provenance={"model_id": "default", "model_sha256": "a" * 64, "adapter_id": None, "adapter_sha256": None})
    out = tmp / f"{name}_report.json"
    assert run_cli(["measure", str(lab), "-o", str(out)]) == 0
    return out


def _with_patient(path: Path, pid: str | None) -> Path:
    rep = json.loads(path.read_text())
    if pid:
        rep["inputs"]["study"] = {"patient_id": pid, "study_date": "20240101"}
    else:
        rep["inputs"].pop("study", None)
    out = path.with_name(f"{path.stem}_{pid or 'none'}.json")
    out.write_text(json.dumps(rep))
    return out


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("p52")
    return _report(tmp, "base", 0.6), _report(tmp, "follow", 0.5)


@pytest.mark.parametrize("with_id, lacks, has", [("base", "follow-up", "baseline"), ("follow", "baseline", "follow-up")])
def test_one_side_without_patient_id_is_cautioned(two, tmp_path, capsys, with_id, lacks, has):
    b = _with_patient(two[0], "SCD0000501" if with_id == "base" else None)
    f = _with_patient(two[1], "SCD0000501" if with_id == "follow" else None)
    out = tmp_path / "c.json"
    assert run_cli(["compare", str(b), str(f), "-o", str(out)]) == 0  # a caution, not a refusal
    res = json.loads(out.read_text())
    cautions = res["pairs"][0]["cautions"]
    assert f"the {lacks} records no patient id: check it is the same patient as the {has} (SCD0000501)" in cautions
    assert res["summary"]["n_pairs_with_cautions"] == 1
    assert "1 with cautions" in capsys.readouterr().out


@pytest.mark.parametrize("ids", [("P1", "P1"), (None, None)])
def test_both_or_neither_with_patient_id_no_such_caution(two, tmp_path, ids):
    b, f = _with_patient(two[0], ids[0]), _with_patient(two[1], ids[1])
    out = tmp_path / "c.json"
    assert run_cli(["compare", str(b), str(f), "-o", str(out)]) == 0
    assert not any("patient id" in c for c in json.loads(out.read_text())["pairs"][0]["cautions"])
