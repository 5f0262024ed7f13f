"""PAIRS.csv (``medseg evaluate --pairs``, ``adapt``): cases named as a folder of the same files
names them, absolute paths (``~`` expanded), and the encodings and separators ``--subjects``
reads (a European Excel's cp1252 and semicolons)."""

from __future__ import annotations

import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli
from medseg.errors import MedsegError
from medseg.pairs import read_pairs

SPEC = "lv=1,myo=2,rv=3"
#: image file names: a short-axis study saved per phase, an ACDC-style study saved per frame, dots
NAMES = ("p1_ED", "p1_ES", "q1_frame01", "q1_frame09", "patient.01.frame01")


@pytest.fixture(scope="module")
def data(tmp_path_factory, phantom):
    """``data/`` with NAMES (+ ``_gt`` references), ``pred/`` with the references as predictions."""
    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti

    root = tmp_path_factory.mktemp("pairs_csv")
    d, pred = root / "data", root / "pred"
    d.mkdir()
    pred.mkdir()
    lm = phantom.label_map.subset(["lv", "myo", "rv"])
    lv = (phantom.labels == lm["lv"]).sum(axis=(1, 2, 3))
    ed, es = int(lv.argmax()), int(lv.argmin())
    for name, t in zip(NAMES, (ed, es, ed, es, ed)):
        vol = phantom.image.with_array(phantom.image.array[t : t + 1], frame_times_s=None)
        nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(d / f"{name}.nii.gz"))
        write_labels(phantom.labels[t : t + 1], vol, d / f"{name}_gt.nii.gz", lm)
        shutil.copy(d / f"{name}_gt.nii.gz", pred / f"{name}.nii.gz")
    return root


def _csv(folder, lines, encoding="utf-8", sep=","):
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "pairs.csv"
    p.write_bytes(("\n".join(sep.join(cells) for cells in lines) + "\n").encode(encoding))
    return p


def _rows(name):
    return [(f"../data/{n}.nii.gz", f"../data/{n}_gt.nii.gz") for n in NAMES] if name is None else name


def test_csv_without_case_names_cases_as_the_folder_does(data, tmp_path):
    p = _csv(data / "csv", [("image", "label"), *_rows(None)])
    from_csv, from_folder = read_pairs(p), read_pairs(data / "data")
    key = sorted((q.case, q.phase, q.case_id, str(q.image), str(q.label)) for q in from_csv)
    assert key == sorted((q.case, q.phase, q.case_id, str(q.image), str(q.label)) for q in from_folder)
    assert {(q.case, q.phase) for q in from_csv} >= {("p1", "ED"), ("p1", "ES"), ("q1_frame01", None), ("patient.01.frame01", None)}


def test_case_and_phase_cells_win(data):
    p = _csv(data / "csv_named", [("image", "label", "case", "phase"), ("../data/p1_ED.nii.gz", "../data/p1_ED_gt.nii.gz", "x_ED", "es"),
                                  ("../data/q1_frame01.nii.gz", "../data/q1_frame01_gt.nii.gz", "", "ED")])
    assert [(q.case, q.phase) for q in read_pairs(p)] == [("x_ED", "ES"), ("q1_frame01", "ED")]


def test_two_rows_named_the_same_case_and_phase_by_their_files_are_refused(data, tmp_path):
    (tmp_path / "other").mkdir()
    for suffix in ("", "_gt"):
        shutil.copy(data / "data" / f"p1_ED{suffix}.nii.gz", tmp_path / "other" / f"p1_ED{suffix}.nii.gz")
    p = _csv(tmp_path, [("image", "label"), (str(data / "data" / "p1_ED.nii.gz"), str(data / "data" / "p1_ED_gt.nii.gz")),
                        ("other/p1_ED.nii.gz", "other/p1_ED_gt.nii.gz")])
    with pytest.raises(MedsegError, match="row 3 repeats row 2 \\(case p1 ED\\).*'case' column"):
        read_pairs(p)


def test_evaluate_csv_gives_the_folders_clinical_errors_and_absolute_paths(data, tmp_path, monkeypatch):
    """The same files as a CSV (relative paths, run from another folder) and as a folder: the same
    result (LVEF errors of p1's ED/ES and q1's frames), every path in it absolute."""
    p = _csv(data / "csv", [("image", "label"), *_rows(None)])
    monkeypatch.chdir(tmp_path)
    out = {}
    for src, name in ((os.path.relpath(p), "csv"), (str(data / "data"), "folder")):  # the CSV relative to the cwd
        assert run_cli(["evaluate", "--pairs", src, "--label-map", SPEC, "--predicted", str(data / "pred"), "-o", f"{name}.json"]) == 0
        out[name] = json.loads((tmp_path / f"{name}.json").read_text())
        for c in out[name]["cases"]:
            c.pop("seconds")
        out[name]["cases"].sort(key=lambda c: c["image"])  # a folder's cases in the order of their ids, the CSV's in its
    assert out["csv"]["cases"] == out["folder"]["cases"] and out["csv"]["summary"] == out["folder"]["summary"]
    assert out["csv"]["summary"]["n_clinical_cases"] == 2 and out["csv"]["summary"]["lvef_mae"] == pytest.approx(0.0, abs=1e-6)
    assert all(c["image"].startswith("/") and ".." not in c["image"] and c["label"].startswith("/") for c in out["csv"]["cases"])


def test_relative_paths_are_made_absolute_and_tilde_is_the_home_folder(data, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "d").mkdir(parents=True)
    shutil.copy(data / "data" / "p1_ED.nii.gz", home / "d" / "img.nii.gz")
    shutil.copy(data / "data" / "p1_ED_gt.nii.gz", home / "d" / "img_gt.nii.gz")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(data)
    _csv(data / "csv_rel", [("image", "label"), ("../data/p1_ED.nii.gz", "../data/p1_ED_gt.nii.gz"), ("~/d/img.nii.gz", "~/d/img_gt.nii.gz")])
    a, b = read_pairs("csv_rel/pairs.csv")
    assert (a.image, a.label) == (data / "data" / "p1_ED.nii.gz", data / "data" / "p1_ED_gt.nii.gz")
    assert (b.image, b.label, b.case) == (home / "d" / "img.nii.gz", home / "d" / "img_gt.nii.gz", "img")


@pytest.mark.parametrize("encoding, sep", [("cp1252", ";"), ("cp1252", ","), ("utf-8-sig", ";"), ("utf-16", "\t")])
def test_a_spreadsheets_csv_is_read_as_subjects_files_are(data, tmp_path, encoding, sep):
    """European Excel: cp1252, semicolons; a folder named with an accent."""
    d = tmp_path / "\xc9tudes"
    d.mkdir()
    for suffix in ("", "_gt"):
        shutil.copy(data / "data" / f"p1_ES{suffix}.nii.gz", d / f"p1;x,y{suffix}.nii.gz")
    p = _csv(tmp_path, [("image", "label", "case"), ('"\xc9tudes/p1;x,y.nii.gz"', '"\xc9tudes/p1;x,y_gt.nii.gz"', "'-case")], encoding, sep)
    (q,) = read_pairs(p)
    assert (q.image, q.label, q.case) == (d / "p1;x,y.nii.gz", d / "p1;x,y_gt.nii.gz", "-case")


def test_file_names_written_as_their_raw_bytes_are_found(data, tmp_path):
    """A CSV written by a script on Linux holds a name that is not UTF-8 as its bytes
    (``caf\xe9``); read as cp1252 it named "café" in UTF-8, another file: not found."""
    d = os.fsencode(tmp_path)
    for suffix in (b"", b"_gt"):
        shutil.copy(data / "data" / f"p1_ED{suffix.decode()}.nii.gz", os.fsdecode(d + b"/caf\xe9" + suffix + b".nii.gz"))
    (tmp_path / "pairs.csv").write_bytes(b"image,label\ncaf\xe9.nii.gz,caf\xe9_gt.nii.gz\n")
    (q,) = read_pairs(tmp_path / "pairs.csv")
    assert os.fsencode(q.image) == d + b"/caf\xe9.nii.gz" and q.label.is_file() and q.case == os.fsdecode(b"caf\xe9")


def test_an_evaluate_csv_reads_back_as_pairs(data, tmp_path):
    """evaluate --csv writes image, label, case and phase: a case "-x" (written "'-x") comes back."""
    from medseg._files import csv_text

    rows = [{"case": "-x", "phase": "ED", "image": str(data / "data" / "p1_ED.nii.gz"), "label": str(data / "data" / "p1_ED_gt.nii.gz")}]
    (tmp_path / "cases.csv").write_text(csv_text(["case", "phase", "dice.lv", "image", "label"], rows), encoding="utf-8")
    assert [(q.case, q.phase) for q in read_pairs(tmp_path / "cases.csv")] == [("-x", "ED")]


@pytest.mark.parametrize("content, message", [
    (b"PK\x03\x04" + b"\0" * 20, "spreadsheet workbook, not CSV"),
    (b"\xff\xfe\x00\x00x\x00", "not a readable CSV text file"),
    ("image;label\n;y\n".encode("cp1252"), "row 2: the 'image' cell is empty"),  # a row of empty cells, ``;``, is skipped
    ("image;labels\nx;y\n".encode("cp1252"), "needs columns 'image' and 'label'"),
])
def test_bad_pairs_files_are_one_line_errors(tmp_path, content, message):
    p = tmp_path / "pairs.csv"
    p.write_bytes(content)
    with pytest.raises(MedsegError) as e:
        read_pairs(p)
    assert message in str(e.value) and "\n" not in str(e.value)
