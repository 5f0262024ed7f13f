"""Two leftovers of the walkthroughs: a DICOM study dated by its SeriesDate (or AcquisitionDate,
ContentDate) when the export left StudyDate empty; napari's saved label map."""

from __future__ import annotations

import numpy as np
import pytest


def _dicom(path, patient: str, z_mm: float = 0.0, study: str | None = None, **dates: str) -> None:
    """An image without a StudyDate unless ``dates`` gives one (the follow-up tests' writer)."""
    from test_followup_user import _dicom as write

    write(path, patient, dates.pop("StudyDate", ""), z_mm, study, **dates)


def test_a_study_without_a_study_date_is_dated_by_its_series_date_and_says_so(tmp_path, capsys):
    """An export that leaves StudyDate empty: the visit's date from SeriesDate (then
    AcquisitionDate, ContentDate), ``study_date_from`` naming the tag, and a baseline and a
    follow-up so dated in one folder are two studies, not slices of one volume."""
    from medseg.cli import run_cli
    from medseg.errors import MixedSeriesError
    from medseg.io import read_volume
    from medseg.io.dicom import dicom_study

    _dicom(tmp_path / "V1" / "IM1", "PAT0001", SeriesDate="20120315")
    assert dicom_study(tmp_path / "V1")["study_date"] == "2012-03-15"
    assert dicom_study(tmp_path / "V1")["study_date_from"] == "SeriesDate"
    _dicom(tmp_path / "V2" / "IM1", "PAT0001", AcquisitionDate="20121002", ContentDate="20121003")
    assert (dicom_study(tmp_path / "V2")["study_date"], dicom_study(tmp_path / "V2")["study_date_from"]) == ("2012-10-02", "AcquisitionDate")
    _dicom(tmp_path / "V3" / "IM1", "PAT0001", StudyDate="20121002", SeriesDate="20121003")
    assert "study_date_from" not in dicom_study(tmp_path / "V3") and dicom_study(tmp_path / "V3")["study_date"] == "2012-10-02"

    _dicom(tmp_path / "BOTH" / "IM1", "PAT0001", z_mm=0.0, SeriesDate="20120315")
    _dicom(tmp_path / "BOTH" / "IM2", "PAT0001", z_mm=8.0, ContentDate="20121002")
    with pytest.raises(MixedSeriesError, match=r"folder holds 2 studies \(PAT0001 2012-03-15 \.\.\.\w+; PAT0001 2012-10-02 "):
        read_volume(tmp_path / "BOTH")
    assert run_cli(["info", str(tmp_path / "BOTH")]) == 0
    out = capsys.readouterr().out
    assert "PAT0001 2012-03-15 (SeriesDate)" in out and "PAT0001 2012-10-02 (ContentDate)" in out


def test_a_series_dated_only_by_its_series_date_is_of_the_study_of_that_day(tmp_path):
    """One visit whose series carry StudyDate and SeriesDate-only headers of the same day (an
    anonymiser giving each series a study UID of its own): one study, its series stacked."""
    from medseg.io import read_volume
    from medseg.io.dicom_frames import read_header
    from medseg.io.dicom_series import _studies_of

    _dicom(tmp_path / "V" / "IM1", "PAT0001", z_mm=0.0, StudyDate="20120315")
    _dicom(tmp_path / "V" / "IM2", "PAT0001", z_mm=8.0, SeriesDate="20120315")
    headers = [(p, read_header(p, strict=False)) for p in sorted((tmp_path / "V").iterdir())]
    assert len(_studies_of(headers)) == 1
    assert read_volume(tmp_path / "V").shape[1] == 2


def test_a_napari_save_lists_the_structures_segmented_as_segment_does(tmp_path):
    """The panel's map is medseg's default one (lv ... pa): a save wrote all seven, and
    `medseg measure` of the file flagged LA, RA, aorta and PA absent at ED and ES, structures
    nobody segmented. Now the saved map is cut to lv, myo, rv, the structures the labels hold and
    those the session's actions name (an LA prompted and not found stays, as in segment's map);
    a map of the user's own is written as it is."""
    import json

    from medseg_napari._layers import META_LABEL_MAP, META_PROVENANCE
    from medseg_napari._reader import read_image
    from medseg_napari._writer import write_label_layer

    from medseg.cli import run_cli
    from medseg.labels import DEFAULT_LABEL_MAP
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=4, n_slices=4, shape=(48, 48), seed=0)
    assert set(np.unique(ph.labels)) == {0, 1, 2, 3}
    attrs = {"metadata": {"medseg_volume": ph.image, META_LABEL_MAP: DEFAULT_LABEL_MAP.to_dict(),
                          META_PROVENANCE: {"actions": [{"op": "prompt", "prompt": {"structure": "la", "frame": 0, "slice": 1}},
                                                        {"op": "auto", "structures": ["lv", "aorta"], "frames": [0]}]}}}
    out = write_label_layer(tmp_path / "saved.nii.gz", ph.labels, attrs)
    side = json.loads(out[1].read_text())
    assert side["label_map"] == {"lv": 1, "myo": 2, "rv": 3, "la": 4, "aorta": 6}
    assert run_cli(["measure", str(out[0]), "-o", str(tmp_path / "r.json")]) == 0
    absent = [f["message"] for f in json.loads((tmp_path / "r.json").read_text())["flags"] if f["code"] == "absent_structure"]
    assert absent and not any(s in m for m in absent for s in ("ra (", "pa ("))
    (_, kw, kind), = read_image(str(out[0]))  # re-opened: the saved map is the layer's
    assert kind == "labels" and kw["metadata"][META_LABEL_MAP] == side["label_map"]

    attrs["metadata"][META_PROVENANCE] = {}
    out = write_label_layer(tmp_path / "plain.nii.gz", ph.labels, attrs)
    assert json.loads(out[1].read_text())["label_map"] == {"lv": 1, "myo": 2, "rv": 3}
    own = {"lv": 1, "myo": 2, "rv": 3, "la": 4}
    attrs["metadata"][META_LABEL_MAP] = own
    out = write_label_layer(tmp_path / "own.nii.gz", ph.labels, attrs)
    assert json.loads(out[1].read_text())["label_map"] == own
