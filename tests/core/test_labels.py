"""Label maps: parsing, validation, remapping."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import LabelMapError
from medseg.labels import DEFAULT_LABEL_MAP, LabelMap


@pytest.mark.parametrize("spec, expected", [
    ("lv=3,myo=2,rv=1", {"lv": 3, "myo": 2, "rv": 1}),
    (" lv = 1 , rv=3 ", {"lv": 1, "rv": 3}),
    ('{"lv": 1, "myo": 2}', {"lv": 1, "myo": 2}),
    ('{"label_map": {"la": 4}}', {"la": 4}),
    ({"aorta": 6}, {"aorta": 6}),
    (None, DEFAULT_LABEL_MAP.to_dict()),
])
def test_parse(spec, expected):
    assert LabelMap.parse(spec).to_dict() == expected


@pytest.mark.parametrize("spec", ["", "lv", "lv=x", "lv=1.5", "lv=0", "lv=1,rv=1", "lv=1,lv=2", "{bad json", "[1,2]", "l v=1"])
def test_parse_errors(spec):
    with pytest.raises(LabelMapError):
        LabelMap.parse(spec)


def test_json_file(tmp_path):
    f = tmp_path / "m.json"
    f.write_text('{"lv": 2}')
    assert LabelMap.parse(str(f)).to_dict() == {"lv": 2}
    with pytest.raises(LabelMapError):
        LabelMap.parse(str(tmp_path / "missing.json"))


def test_remap_acdc_to_default():
    acdc = LabelMap.parse("rv=1,myo=2,lv=3")
    lab = np.array([0, 1, 2, 3])
    assert acdc.remap(lab, DEFAULT_LABEL_MAP).tolist() == [0, 3, 2, 1]
    with pytest.raises(LabelMapError, match="not in the label map"):
        acdc["la"]


def test_by_name_recodes_only_maps_that_differ_for_shared_structures():
    import numpy as np

    from medseg.labels import LabelMap

    acdc, mine = LabelMap.parse("rv=1,myo=2,lv=3"), LabelMap.parse("lv=1,myo=2,rv=3")
    lab = np.array([0, 1, 2, 3, 3], np.uint8)  # ACDC values
    assert acdc.by_name(lab, mine).tolist() == [0, 3, 2, 1, 1]
    assert acdc.by_name(lab, acdc) is lab  # same map: untouched
    assert LabelMap.parse("segment1=1").by_name(lab, mine) is lab  # no name in common: values are the target's


@pytest.mark.parametrize("spec", ["LV=3,MYO=2,RV=1", "Lv=3,Myo=2,Rv=1", '{"LV": 3, "MYO": 2, "RV": 1}'])
def test_medseg_structure_names_in_capitals_are_medsegs(spec):
    """`--label-map LV=3,MYO=2,RV=1` made structures "LV", "MYO", "RV" of their own: measure then
    said the map names no LV blood pool. Other names keep their spelling."""
    assert LabelMap.parse(spec).values == {"lv": 3, "myo": 2, "rv": 1}
    assert LabelMap.parse("Scar=4,LV=3").values == {"Scar": 4, "lv": 3}
    with pytest.raises(LabelMapError, match="'lv' appears twice"):
        LabelMap.parse("lv=1,LV=2")


def test_capital_names_measure_as_medsegs(tmp_path, capsys):
    """Through the CLI: labels measured with LV=3,MYO=2,RV=1 read as with lv=3,myo=2,rv=1."""
    from medseg.cli._app import run_cli
    from medseg.io import write_labels
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=1, n_slices=6, shape=(64, 64), seed=0)
    acdc = LabelMap.parse("lv=3,myo=2,rv=1")
    write_labels(ph.label_map.remap(ph.labels[0], acdc), ph.image, tmp_path / "gt.nii.gz", acdc)
    reports = []
    for spec in ("lv=3,myo=2,rv=1", "LV=3,MYO=2,RV=1"):
        out = tmp_path / f"{spec[:2]}.json"
        assert run_cli(["measure", str(tmp_path / "gt.nii.gz"), "--label-map", spec, "-o", str(out)]) == 0, capsys.readouterr().err
        reports.append(__import__("json").loads(out.read_text()))
    assert reports[0]["volumes_ml"] == reports[1]["volumes_ml"] and reports[1]["volumes_ml"]["lv"] > 0
