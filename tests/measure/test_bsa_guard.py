"""A height without a weight (or the reverse) given to the library: BSA and every indexed value
came out NaN without a word (``medseg measure`` refused it; the library did not)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from measure_phantoms import LVPhantom, centred_affine, rasterise
from measure_phantoms import echo_view as _view

from medseg.measure import bsa_m2, measure_cine, measure_ed_es, measure_phase
from medseg.measure.echo import measure_echo, measure_echo_clip
from medseg.measure.geometry import MeasurementError
from medseg.measure.volumes import report_bsa

LMAP = "lv=1,myo=2,rv=3"
SHAPE = (9, 48, 48)
AFF = centred_affine((10.0, 1.5, 1.5), SHAPE)
HALF = [({"height_cm": 180.0}, "a height (180 cm) without a weight: body surface area needs both (give both, or neither for no BSA)"),
        ({"weight_kg": 80.0}, "a weight (80 kg) without a height: body surface area needs both (give both, or neither for no BSA)")]


def _phantom(r_cav=16.0):
    return rasterise(LVPhantom(b=(0.0, 0.0, 1.0), r_cav=r_cav, rv_depth_mm=8.0, thickness=lambda th: np.full_like(th, 6.0)), AFF, SHAPE)


@pytest.fixture(scope="module")
def ed_es():
    return _phantom(16.0), _phantom(12.0)


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text.strip()
    return text


@pytest.mark.parametrize("body,message", HALF, ids=["height_only", "weight_only"])
def test_a_reports_bsa_refuses_one_without_the_other(body, message):
    with pytest.raises(MeasurementError) as err:
        report_bsa(body.get("height_cm"), body.get("weight_kg"))
    assert _one_line(err) == message
    assert math.isnan(report_bsa(None, None)) and report_bsa(180, 80) == pytest.approx(2.0)  # neither: no BSA; both: BSA
    assert math.isnan(bsa_m2(body.get("height_cm"), body.get("weight_kg")))  # the formula alone keeps its documented NaN


@pytest.mark.parametrize("body,message", HALF, ids=["height_only", "weight_only"])
def test_measure_ed_es_and_cine_refuse_one_without_the_other(ed_es, body, message):
    ed, es = ed_es
    with pytest.raises(MeasurementError) as err:
        measure_ed_es(ed, es, AFF, LMAP, **body)
    assert _one_line(err) == message
    with pytest.raises(MeasurementError, match="body surface area needs both"):
        measure_cine(np.stack([ed, es, ed]), AFF, LMAP, **body)
    full = measure_ed_es(ed, es, AFF, LMAP, height_cm=180.0, weight_kg=80.0)
    none = measure_ed_es(ed, es, AFF, LMAP)
    assert full["bsa_m2"] == pytest.approx(2.0) and math.isnan(none["bsa_m2"])
    assert "bsa_m2" not in measure_phase(ed, AFF, LMAP)  # one phase takes no body data: nothing to refuse


@pytest.mark.parametrize("body,message", HALF, ids=["height_only", "weight_only"])
def test_echo_refuses_one_without_the_other(body, message):
    ed, es = _view(22.0, 80.0, True, shape=(440, 350)), _view(17.0, 70.0, True, shape=(440, 350))
    with pytest.raises(MeasurementError) as err:
        measure_echo(ed, es, spacing_a4c_mm=(0.3, 0.3), **body)
    assert _one_line(err) == message
    with pytest.raises(MeasurementError, match="body surface area needs both"):
        measure_echo_clip(np.stack([ed, es, ed]), spacing_mm=(0.3, 0.3), **body)


def test_a_cohort_row_with_half_the_body_data_is_measured_without_bsa_and_says_why(tmp_path):
    """batch --measure: a subjects row (or DICOM header) with a height and no weight is not an
    error for the whole case: the row is measured without BSA and its note says why."""
    from medseg.batch.cohort import _body, _body_note, _Who
    from medseg.subjects import Subject

    who = _Who(Subject("p1", height_cm=180.0, sex="F"))
    assert _body(who) == {"sex": "F"}
    assert _body_note(who, {"bsa_m2": math.nan}) == "no BSA or indexed values: a height and no weight (subjects row or DICOM header)"
    dicom = _Who(None, (("weight_kg", 70.0),))
    assert _body(dicom) == {} and _body_note(dicom, {"bsa_m2": math.nan}).startswith("no BSA or indexed values: a weight and no height")
    both = _Who(Subject("p1", height_cm=180.0), (("weight_kg", 80.0),))
    assert _body(both) == {"height_cm": 180.0, "weight_kg": 80.0} and _body_note(both, {"bsa_m2": 2.0}) == ""
