"""`medseg compare A.json B.json` of two reports that record no patient id: a caution when their
label files are named for different studies (CAMUS p0451 against p0455 gave "LVEF mean change
+35.84" with no word about it); none when they name one study, or say none."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.cli import run_cli

MAP = "lv=1,myo=2,rv=3,la=4,ra=5"


def _clip_report(tmp: Path, folder: str, labels_name: str, seed: int) -> Path:
    from medseg.io import write_labels
    from medseg.phantoms import echo_apical_phantom

    ph = echo_apical_phantom("a4c", n_frames=8, seed=seed, spacing=0.7)
    (tmp / folder).mkdir(exist_ok=True)
    lab = write_labels(ph.labels.astype(np.uint8), ph.image, tmp / folder / labels_name, MAP)[0]
    out = tmp / folder / "report.json"
    assert run_cli(["measure", str(lab), "-o", str(out)]) == 0
    return out


def _cautions(tmp: Path, base: Path, follow: Path) -> list[str]:
    out = tmp / "c.json"
    assert run_cli(["compare", str(base), str(follow), "-o", str(out)]) == 0
    return json.loads(out.read_text())["pairs"][0]["cautions"]


def test_reports_of_two_named_studies_without_patient_ids_are_cautioned(tmp_path):
    base = _clip_report(tmp_path, "v1", "p0451_A4C.nii.gz", seed=1)
    follow = _clip_report(tmp_path, "v2", "p0455_A4C.nii.gz", seed=2)
    said = [c for c in _cautions(tmp_path, base, follow) if "patient" in c]
    assert said == ["neither visit records a patient id, and their labels are named for different studies (baseline p0451, "
                    "follow-up p0455): check they are the same patient"]


def test_one_study_at_both_visits_or_names_that_say_none_are_not_cautioned(tmp_path):
    base = _clip_report(tmp_path, "v1", "p0451_A4C.nii.gz", seed=1)
    follow = _clip_report(tmp_path, "v2", "p0451_A4C.nii.gz", seed=2)  # one study's two visits, in two folders
    assert not any("patient" in c for c in _cautions(tmp_path, base, follow))
    plain = _clip_report(tmp_path, "v3", "a4c_labels.nii.gz", seed=2)  # a name with no study in it
    assert not any("patient" in c for c in _cautions(tmp_path, base, plain))


def test_a_recorded_patient_id_keeps_the_one_sided_caution_only(tmp_path):
    base = _clip_report(tmp_path, "v1", "p0451_A4C.nii.gz", seed=1)
    follow = _clip_report(tmp_path, "v2", "p0455_A4C.nii.gz", seed=2)
    rep = json.loads(follow.read_text())
    rep["inputs"]["study"] = {"patient_id": "PAT9"}
    follow.write_text(json.dumps(rep))
    said = [c for c in _cautions(tmp_path, base, follow) if "patient" in c]
    assert said == ["the baseline records no patient id: check it is the same patient as the follow-up (PAT9)"]


@pytest.mark.parametrize(("inputs", "study"), [
    ({"ed": "/d/patient0451_4CH_ED_gt.png", "es": "/d/patient0451_4CH_ES_gt.png", "a2c_ed": "patient0451_2CH_ED_gt.png"}, "patient0451"),
    ({"ed": "patient001_frame01.nii.gz", "es": "patient001_frame12.nii.gz"}, "patient001"),
    ({"labels": "S3_A4C_half_sequence_gt.nii.gz"}, "S3"),
    ({"ed": "p1_4CH_ED.nii.gz", "es": "p2_4CH_ES.nii.gz"}, ""),  # two studies: none
    ({"labels": "seg.nii.gz"}, ""),
])
def test_the_study_is_read_from_the_label_file_names(inputs, study):
    from medseg.measure.compare import _labels_study

    assert _labels_study(inputs) == study


def test_one_subjects_visits_named_after_it_are_not_cautioned(tmp_path):
    """A review caught the caution on `sub01_visit1_A4C` vs `sub01_visit2_A4C`: names that differ
    only after their first part are one subject's visits; other first parts are still cautioned."""
    from medseg.measure.compare import _other_subject

    b = _clip_report(tmp_path, "v1", "sub01_visit1_A4C.nii.gz", 1)
    f = _clip_report(tmp_path, "v2", "sub01_visit2_A4C.nii.gz", 2)
    assert not [c for c in _cautions(tmp_path, b, f) if "patient" in c]
    assert _other_subject("patient0451", "patient0455") and _other_subject("sub01_visit1", "sub02_visit1")
    # a second review: numbered subjects after a common word are other subjects too
    assert all(_other_subject(a, b) for a, b in (("patient_001", "patient_002"), ("sub-01", "sub-02"), ("HCM_001", "HCM_002"),
                                                 ("case 1", "case 2"), ("SC-HF-I-01", "SC-HF-I-02")))
    assert not any(_other_subject(a, b) for a, b in (("Sub01-baseline", "sub01_followup"), ("", "p1"), ("HCM_001_baseline", "HCM_001_fu"),
                                                     ("sub-01_ses-01", "sub-01_ses-02"), ("p1_v1", "p1_v2"), ("2024-01-05", "2025-02-10")))
