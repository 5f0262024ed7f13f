"""`medseg measure --ed --es --a2c-ed --a2c-es` refuses one view given twice: the same file (by
any path), a copy of its labels, or two label files whose sidecars say medseg segmented them
from one image. Before, the files of one 4-chamber view as A4C and A2C gave a "biplane" EF of
30.6 % and ED given as ES 7.3 %, without a flag (names that say no view pass the name checks).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from test_measure_cli_echo import _echo_file

from medseg.cli import run_cli

MAP = "lv=1,myo=2,la=3"


@pytest.fixture
def views(tmp_path):
    """Four distinct apical views (LV 1, LA 3), named a1..a4: nothing in a name says the view."""
    from measure_phantoms import echo_view

    sizes = {"a1": (22.0, 80.0), "a2": (17.0, 70.0), "a3": (18.0, 80.0), "a4": (14.0, 70.0)}
    return {k: _echo_file(tmp_path / f"{k}.nii.gz", echo_view(w, L, True)) for k, (w, L) in sizes.items()}


def _measure(tmp_path, capsys, ed, es, a2c_ed, a2c_es):
    out = tmp_path / "r.json"
    code = run_cli(["measure", "--ed", ed, "--es", es, "--a2c-ed", a2c_ed, "--a2c-es", a2c_es, "--label-map", MAP, "-o", str(out)])
    err = " ".join(capsys.readouterr().err.split())
    return code, err, out


def test_distinct_views_are_measured(tmp_path, capsys, views):
    code, err, out = _measure(tmp_path, capsys, views["a1"], views["a2"], views["a3"], views["a4"])
    assert code == 0 and json.loads(out.read_text())["method"] == "biplane_disks"


def test_the_4_chamber_files_given_as_the_2_chamber_view_are_refused(tmp_path, capsys, views):
    code, err, out = _measure(tmp_path, capsys, views["a1"], views["a2"], views["a1"], views["a2"])
    assert code != 0 and not out.exists()
    assert "--ed and --a2c-ed are the same file (a1.nii.gz)" in err and "give the 2-chamber ED labels as --a2c-ed" in err


def test_one_file_as_ed_and_es_is_refused_also_by_another_path(tmp_path, capsys, views):
    (tmp_path / "sub").mkdir()
    other_path = str(tmp_path / "sub" / ".." / "a1.nii.gz")
    code, err, out = _measure(tmp_path, capsys, views["a1"], other_path, views["a3"], views["a4"])
    assert code != 0 and not out.exists()
    assert "--ed and --es are the same file (a1.nii.gz)" in err and "4-chamber ES labels as --es" in err


def test_a_copy_of_a_view_is_refused(tmp_path, capsys, views):
    copy = tmp_path / "copy.nii.gz"
    shutil.copy(views["a1"], copy)
    code, err, out = _measure(tmp_path, capsys, views["a1"], views["a2"], str(copy), views["a4"])
    assert code != 0 and not out.exists()
    assert "--ed and --a2c-ed hold the same labels (a1.nii.gz, copy.nii.gz" in err


def _segmented(path, labels_from, image, tmp_path):
    """``labels_from``'s labels written to ``path`` with a medseg sidecar saying ``segment`` made them from ``image``."""
    from medseg._files import sha256_path
    from medseg.io import read_volume, write_labels

    vol = read_volume(labels_from)
    write_labels(vol.array.astype(np.uint8), vol, path, MAP, provenance={"command": "segment", "input": str(image), "input_sha256": sha256_path(image)})
    return str(path)


def test_labels_segmented_from_one_image_are_refused(tmp_path, capsys, views):
    """Two segmentations of one 4-chamber image (labels that differ a little, as a second run's
    do) given as --ed and --a2c-ed: their sidecars name one input."""
    img_4ch, img_2ch = tmp_path / "p_img1.png", tmp_path / "p_img2.png"
    img_4ch.write_bytes(b"four-chamber ED image")
    img_2ch.write_bytes(b"two-chamber ED image")
    ed = _segmented(tmp_path / "s1.nii.gz", views["a1"], img_4ch, tmp_path)
    again = _segmented(tmp_path / "s3.nii.gz", views["a3"], img_4ch, tmp_path)
    code, err, out = _measure(tmp_path, capsys, ed, views["a2"], again, views["a4"])
    assert code != 0 and not out.exists()
    assert "--ed and --a2c-ed were both segmented from p_img1.png (s1.nii.gz, s3.nii.gz" in err
    ok = _segmented(tmp_path / "s4.nii.gz", views["a3"], img_2ch, tmp_path)  # another image: measured
    code, err, out = _measure(tmp_path, capsys, ed, views["a2"], ok, views["a4"])
    assert code == 0, err



def test_ed_and_es_seg_files_of_one_cine_are_two_phases_not_one_view_twice(tmp_path, capsys):
    """A cine written as DICOM SEG is one file per labelled frame, each sidecar naming the same
    cine and its own ``frame``: its ED and ES are measured (a review caught the first version
    refusing them "both segmented from la_cine"); the same frame as both is still refused."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "io"))
    from io_synth import write_cine_series

    from medseg.io import read_volume, write_labels

    write_cine_series(tmp_path / "la_cine", n_slices=1, n_phases=6, rows=80, cols=80, pixel_spacing=(1.5, 1.5))
    vol = read_volume(tmp_path / "la_cine")
    yy, xx = np.mgrid[:80, :80]
    lab = np.zeros(vol.shape, np.uint8)
    for t, (a, b) in ((0, (22, 11)), (3, (16, 8))):
        lab[t, 0][((yy - 35) / a) ** 2 + ((xx - 40) / b) ** 2 <= 1] = 1
        lab[t, 0][((yy - 62) / 8) ** 2 + ((xx - 40) / 9) ** 2 <= 1] = 4
    prov = {"input": str(tmp_path / "la_cine"), "input_sha256": "abc123", "series_uid": "1.2.3", "command": "segment"}
    segs = sorted(str(p) for p in write_labels(lab, vol, tmp_path / "la.dcm", "lv=1,myo=2,rv=3,la=4", provenance=prov) if str(p).endswith(".dcm"))
    assert len(segs) == 2
    assert run_cli(["measure", "--ed", segs[0], "--es", segs[1], "-o", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["lv"]["ef_pct"] > 0
    shutil.copy(segs[0], tmp_path / "copy.dcm")
    shutil.copy(Path(segs[0]).with_suffix(".json"), tmp_path / "copy.json")
    capsys.readouterr()
    assert run_cli(["measure", "--ed", segs[0], "--es", segs[1], "--a2c-ed", str(tmp_path / "copy.dcm"), "--a2c-es", segs[1],
                    "-o", str(tmp_path / "r2.json")]) == 1
