"""A label file's sidecar JSON (``labels.json``: label map + provenance) that is truncated, or
names an invalid label map, is refused in one line naming it by the commands that rely on it
(no --label-map), not taken for a missing one; with --label-map it stops nothing."""

from __future__ import annotations

import json

import pytest

from medseg.cli._app import run_cli
from medseg.errors import LabelMapError
from medseg.io import read_sidecar, write_labels
from medseg.io.writers import is_medseg_labels, own_label_map, sidecar_problem

ACDC = {"lv": 3, "myo": 2, "rv": 1}


@pytest.fixture(scope="module")
def labels(tmp_path_factory):
    """ED labels of a short-axis phantom written by medseg with ACDC's values (its sidecar says so)."""
    from medseg.labels import LabelMap
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=1, n_slices=5, shape=(64, 64), spacing=(8.0, 1.5, 1.5), seed=2)
    lm = ph.label_map.subset(["lv", "myo", "rv"])
    acdc = LabelMap.parse(ACDC)
    out = tmp_path_factory.mktemp("side") / "lab.nii.gz"
    write_labels(lm.remap(ph.labels, acdc), ph.image, out, acdc, provenance={"command": "segment"})
    return out


def _broken(labels, tmp_path, text):
    """A copy of ``labels`` whose sidecar holds ``text``: bytes, a str, or made from the sound
    sidecar's dict by a callable."""
    import shutil

    lab = tmp_path / labels.name
    shutil.copy(labels, lab)
    side = json.loads(labels.with_name("lab.json").read_text())
    text = text(side) if callable(text) else text
    (tmp_path / "lab.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    return lab


def _truncated(side):  # the sidecar cut in half, as a full disk leaves it
    text = json.dumps(side, indent=2)
    return text[: len(text) // 2]


CASES = {
    "truncated": (_truncated, "is not valid JSON ("),
    "not utf-8": (b'{"label_map": \xff\xfe}', "is not valid JSON (not UTF-8 text)"),
    "negative value": (lambda side: json.dumps({**side, "label_map": {"lv": -1, "myo": 2}}), "has an invalid label map (label value for 'lv' must be a positive integer, got -1)"),
    "string value": (lambda side: json.dumps({**side, "label_map": {"lv": "3", "myo": 2, "rv": 1}}), "label value for 'lv' must be a positive integer, got '3'"),
    "empty map": (lambda side: json.dumps({**side, "label_map": {}}), "has an invalid label map (label map is empty"),
    "map is a list": (lambda side: json.dumps({**side, "label_map": []}), "has an invalid label map (label_map is list, not an object"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_sidecar_is_named_not_taken_for_none(case, labels, tmp_path):
    text, message = CASES[case]
    lab = _broken(labels, tmp_path, text)
    assert message in sidecar_problem(lab)
    with pytest.raises(LabelMapError, match="lab.json beside the labels .*: give --label-map or repair/remove it$"):
        own_label_map(lab)
    assert own_label_map(lab, strict=False) is None  # a caller with a map of its own goes on
    with pytest.raises(LabelMapError, match="give --predicted-label-map or repair/remove it$"):
        own_label_map(lab, flag="--predicted-label-map")  # the option that gives the map, where it is another
    assert read_sidecar(lab) is None or case in ("negative value", "string value", "empty map")


def test_a_sound_or_foreign_sidecar_is_no_problem(labels, tmp_path):
    assert sidecar_problem(labels) is None and own_label_map(labels)[0].values == ACDC and is_medseg_labels(labels)
    bids = _broken(labels, tmp_path, json.dumps({"RepetitionTime": 0.003, "Manufacturer": "x"}))  # dcm2niix's sidecar of an image
    assert sidecar_problem(bids) is None and own_label_map(bids) is None
    (tmp_path / "lab.json").unlink()
    assert sidecar_problem(bids) is None and own_label_map(bids) is None


@pytest.mark.parametrize("case", ["truncated", "negative value", "string value"])
def test_measure_refuses_a_broken_sidecar_in_one_line_unless_given_a_map(case, labels, tmp_path, capsys):
    lab = _broken(labels, tmp_path, CASES[case][0])
    assert run_cli(["measure", str(lab), "-o", str(tmp_path / "r.json")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{tmp_path / 'lab.json'} beside the labels" in err and "give --label-map" in err
    assert "name no structures" not in err and not (tmp_path / "r.json").exists()
    # --label-map: the sidecar is not needed, and a broken one stops nothing
    assert run_cli(["measure", str(lab), "--label-map", "lv=3,myo=2,rv=1", "-o", str(tmp_path / "r.json")]) == 0
    assert (tmp_path / "r.json").is_file()


def test_info_says_what_is_wrong_with_the_sidecar(labels, tmp_path, capsys):
    lab = _broken(labels, tmp_path, _truncated)
    assert run_cli(["info", str(lab), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["sidecar"].startswith("lab.json is not valid JSON") and d["sidecar"].endswith(": not used") and "label_map" not in d
    assert run_cli(["info", str(labels), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert "sidecar" not in d and d["label_map"] == "lv=3, myo=2, rv=1"
