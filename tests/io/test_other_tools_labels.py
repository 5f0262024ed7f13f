"""``--label-map FILE`` of other tools: an ITK-SNAP label description file and an nnU-Net
dataset.json (v1 and v2), their label names matched to medseg's structures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseg.cli import run_cli
from medseg.errors import LabelMapError
from medseg.label_files import named_map, notes, structure_of
from medseg.labels import LabelMap
from medseg.phantoms import cine_sax_phantom

ACDC = {"lv": 3, "myo": 2, "rv": 1}
#: as ITK-SNAP's label editor exports it (Export...), for ACDC's labels
ITKSNAP = """################################################
# ITK-SnAP Label Description File
# File format:
# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL
# Fields:
#    IDX:   Zero-based index
#    -R-:   Red color component (0..255)
#    -G-:   Green color component (0..255)
#    -B-:   Blue color component (0..255)
#    -A-:   Label transparency (0.00 .. 1.00)
#    VIS:   Label visibility (0 or 1)
#    IDX:   Label mesh visibility (0 or 1)
#  LABEL:   Label description
################################################
    0     0    0    0        0  0  0    "Clear Label"
    1   255    0    0        1  1  1    "RV cavity"
    2     0  255    0        1  1  1    "LV myocardium"
    3     0    0  255        1  1  1    "LV cavity"
"""
NNUNET_V2 = {"channel_names": {"0": "cineMRI"}, "labels": {"background": 0, "right_ventricle": 1, "Myocardium": 2, "Left Ventricle": 3},
             "numTraining": 100, "file_ending": ".nii.gz"}
#: nnU-Net v1's Task027_ACDC names
NNUNET_V1 = {"name": "ACDC", "modality": {"0": "MRI"}, "labels": {"0": "background", "1": "RV", "2": "MLV", "3": "LVC"}, "numTraining": 100}


def _write(path, text):
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    return str(path)


@pytest.mark.parametrize("name", ["acdc.label", "acdc.txt", "ACDC.TXT"])
def test_itksnap_label_file(tmp_path, name):
    lm = LabelMap.parse(_write(tmp_path / name, ITKSNAP))
    assert lm.values == ACDC and lm.names == ["lv", "myo", "rv"]  # medseg's order, whatever the file's


def test_itksnap_crlf_tabs_alpha_and_latin1(tmp_path):
    text = '# ITK-SnAP Label Description File\r\n0\t0\t0\t0\t0\t0\t0\t"Clear Label"\r\n  7 0 0 255  0.5  1  0  "Left ventricle"\r\n'
    assert LabelMap.parse(_write(tmp_path / "a.txt", text)).values == {"lv": 7}
    raw = b'1 255 0 0 1 1 1 "LV"\n2 0 255 0 1 1 1 "Myok\xe4rd"\n'  # Latin-1, as an older Windows ITK-SNAP may write
    assert LabelMap.parse(_write(tmp_path / "b.txt", raw)).values == {"lv": 1}


@pytest.mark.parametrize("doc", [NNUNET_V2, NNUNET_V1])
def test_nnunet_dataset_json(tmp_path, doc):
    path = _write(tmp_path / "dataset.json", json.dumps(doc))
    assert LabelMap.parse(path).values == ACDC
    assert LabelMap.parse(json.dumps(doc)).values == ACDC  # the JSON as text


def test_plain_json_maps_unchanged(tmp_path):
    assert LabelMap.parse('{"lv": 3, "myo": 2}').values == {"lv": 3, "myo": 2}
    side = {"labels": ["x.nii.gz"], "label_map": {"lv": 1, "rv": 3}}  # medseg's sidecar: "labels" is a list of files
    assert LabelMap.parse(_write(tmp_path / "x.json", json.dumps(side))).values == {"lv": 1, "rv": 3}
    assert LabelMap.parse("lv=3,myo=2,rv=1").values == ACDC


@pytest.mark.parametrize("name, expected", [("LV", "lv"), ("left ventricle", "lv"), ("LV blood pool", "lv"), ("LV cavity", "lv"),
                                            ("LVC", "lv"), ("Myocardium", "myo"), ("LV_Myocardium", "myo"), ("MLV", "myo"),
                                            ("RV", "rv"), ("right_ventricle", "rv"), ("RV cavity", "rv"), ("Left Atrium", "la"),
                                            ("Pulmonary artery", "pa"), ("Aorta", "aorta"), ("Clear Label", ""), ("background", ""),
                                            ("Papillary muscles", None), ("Label 1", None)])
def test_names(name, expected):
    assert structure_of(name) == expected


def test_unknown_names_left_out_with_a_note():
    out, said = named_map({0: "Clear Label", 1: "RV", 2: "Myo", 3: "LV", 4: "Papillary muscles", 5: "Scar"}, "f.txt")
    assert out == ACDC
    assert len(said) == 1 and "4 'Papillary muscles', 5 'Scar'" in said[0]
    assert "--label-map lv=3,myo=2,rv=1,papillary_muscles=4,scar=5" in said[0]
    LabelMap.parse(said[0].rsplit("--label-map ", 1)[1].rstrip(")"))  # the map the note offers parses


def test_notes_of_a_dataset_json(tmp_path):
    doc = {"labels": {"background": 0, "RV": 1, "MYO": 2, "LV": 3, "scar": 4}}
    path = _write(tmp_path / "dataset.json", json.dumps(doc))
    assert LabelMap.parse(path).values == ACDC
    assert [n.split(": ", 1)[1] for n in notes(path)] == ["label(s) 4 'scar' name no medseg structure: left out "
                                                          "(to keep them as structures of your own, give --label-map lv=3,myo=2,rv=1,scar=4)"]
    assert notes(json.dumps(NNUNET_V2)) == notes("lv=3,myo=2,rv=1") == notes('{"lv": 1}') == []


BAD = [
    ("empty.txt", "", "holds no label lines"),
    ("comments.txt", "# ITK-SnAP Label Description File\n#\n", "holds no label lines"),
    ("binary.label", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + bytes(range(256)), "not a text file"),
    ("fields.txt", '1 255 0 0 1 1 1 "RV"\n2 0 255 0 1 1 "LV"\n', "line 2 is not an ITK-SNAP label line"),
    ("unquoted.txt", "1 255 0 0 1 1 1 LV\n", "line 1 is not an ITK-SNAP label line"),
    ("astext.txt", "lv=3,myo=2,rv=1\n", "a map as text"),
    ("dup.txt", '1 255 0 0 1 1 1 "RV"\n1 0 255 0 1 1 1 "LV"\n', "label index 1 appears twice"),
    ("big.txt", '70000 255 0 0 1 1 1 "LV"\n', "outside 0..65535"),
    ("neg.txt", '-1 255 0 0 1 1 1 "LV"\n', "outside 0..65535"),
    ("default.label", '0 0 0 0 0 0 0 "Clear Label"\n1 255 0 0 1 1 1 "Label 1"\n', "no label names a medseg structure ('Label 1')"),
    ("two.txt", '3 0 0 255 1 1 1 "LV cavity"\n4 0 0 255 1 1 1 "Left Ventricle"\n', "'LV cavity' and 4 'Left Ventricle' both name lv"),
    ("region.json", json.dumps({"labels": {"background": 0, "heart": [1, 2, 3]}}), "region-based"),
    ("mixed.json", json.dumps({"labels": {"0": "background", "LV": 1}}), "mix nnU-Net v1"),
    ("float.json", json.dumps({"labels": {"background": 0, "LV": 1.5}}), "not a label value"),
    ("high.json", json.dumps({"labels": {"background": 0, "LV": 70000}}), "outside 0..65535"),
    ("dupv.json", json.dumps({"labels": {"background": 0, "LV": 1, "RV": 1}}), "label value 1 appears twice"),
    ("nolabels.json", json.dumps({"labels": {}}), "is empty"),
    ("map.lut", '1 255 0 0 1 1 1 "LV"\n', "not a label map medseg reads"),
]


@pytest.mark.parametrize("name, content, message", BAD, ids=[b[0] for b in BAD])
def test_bad_files(tmp_path, name, content, message):
    path = _write(tmp_path / name, content)
    with pytest.raises(LabelMapError, match=None) as e:
        LabelMap.parse(path)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert notes(path) == []  # the command's parse says what is wrong, once


def test_missing_file():
    with pytest.raises(LabelMapError, match="label map file not found: nope.label"):
        LabelMap.parse("nope.label")


# -- through the CLI -------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def acdc_labels(tmp_path_factory):
    """A short-axis phantom's labels in ACDC's values (1 RV, 2 MYO, 3 LV), as a plain NIfTI that names no structures."""
    d = tmp_path_factory.mktemp("tool_maps")
    ph = cine_sax_phantom(n_frames=1, n_slices=6, shape=(64, 64), seed=2)
    lab = np.zeros_like(ph.labels[0])
    lab[ph.labels[0] == 1], lab[ph.labels[0] == 2], lab[ph.labels[0] == 3] = 3, 2, 1
    from medseg.io.nifti import write_nifti_labels

    write_nifti_labels(lab[None], ph.image, d / "gt.nii.gz")  # no sidecar: the file names no structure
    return d


def _measure(labels, lmap, out):
    assert run_cli(["measure", str(labels), "--label-map", lmap, "-o", str(out)]) == 0
    return json.loads(out.read_text())


def test_measure_with_tool_files_as_with_typed_map(acdc_labels, tmp_path, capsys):
    gt = acdc_labels / "gt.nii.gz"
    want = _measure(gt, "lv=3,myo=2,rv=1", tmp_path / "typed.json")
    for name, content in (("s.label", ITKSNAP), ("v2.json", json.dumps(NNUNET_V2)), ("v1.json", json.dumps(NNUNET_V1))):
        got = _measure(gt, _write(tmp_path / name, content), tmp_path / f"{name}.out.json")
        assert got["label_map"] == ACDC and got["volumes_ml"] == want["volumes_ml"] and got["lv_mass_g"] == want["lv_mass_g"]
    assert "note:" not in capsys.readouterr().err


def test_evaluate_with_tool_file_and_note(acdc_labels, tmp_path, capsys):
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "case.nii.gz").write_bytes((acdc_labels / "gt.nii.gz").read_bytes())
    (tmp_path / "pairs.csv").write_text(f"case,image,label\ncase,{acdc_labels / 'gt.nii.gz'},{acdc_labels / 'gt.nii.gz'}\n")
    lmap = _write(tmp_path / "pap.label", ITKSNAP + '    4   255  255    0        1  1  1    "Papillary muscles"\n')
    out = tmp_path / "r.json"
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "pairs.csv"), "--label-map", lmap, "--predicted", str(pred), "-o", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["cases"][0]["dice"] == {"lv": 1.0, "myo": 1.0, "rv": 1.0}
    err = capsys.readouterr().err
    assert err.count("note: ") == 1 and "4 'Papillary muscles' name no medseg structure: left out" in err


@pytest.mark.parametrize("name, content", [b[:2] for b in BAD if b[0] in ("dup.txt", "default.label", "binary.label", "mixed.json")])
def test_cli_bad_file_one_line_nothing_written(acdc_labels, tmp_path, capsys, name, content):
    out = tmp_path / "r.json"
    assert run_cli(["measure", str(acdc_labels / "gt.nii.gz"), "--label-map", _write(tmp_path / name, content), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_acdc_validation_patient(tmp_path, shared_data):
    gt = shared_data / "acdc" / "training" / "patient017" / "patient017_frame01_gt.nii.gz"
    want = _measure(gt, "lv=3,myo=2,rv=1", tmp_path / "typed.json")
    got = _measure(gt, _write(tmp_path / "acdc.label", ITKSNAP), tmp_path / "file.json")
    assert got["volumes_ml"] == want["volumes_ml"] and got["volumes_ml"]["lv"] > 100
