"""A DICOM SEG given to the commands: measure with the SEG's own label map, segment and batch
prompts from SEGs without a --label-map, a cine SEG prompting and scored on its own frame."""

from __future__ import annotations

import json

import numpy as np
import pytest
from io_synth import write_cine_series

from medseg.io import read_label_volume, read_volume, write_dicom_seg, write_labels


def test_measure_reads_a_dicom_seg_with_its_own_label_map(tmp_path, capsys):
    """`medseg measure SEG.dcm` measures what `measure LABELS.nii.gz` measures for the same
    labels, taking the label map from the SEG's segments (its sidecar holds the values the
    labels had before: lv=3 here, segment number 2)."""
    import json

    from medseg.cli import run_cli

    write_cine_series(tmp_path / "cine", n_slices=4, n_phases=1, rows=40, cols=40)
    vol = read_volume(tmp_path / "cine")
    yy, xx = np.mgrid[:40, :40]
    lab = np.zeros(vol.grid_shape, np.uint8)
    lab[0:3][:, (yy - 20) ** 2 + (xx - 20) ** 2 <= 64] = 3
    lab[0:3][:, ((yy - 20) ** 2 + (xx - 20) ** 2 > 64) & ((yy - 20) ** 2 + (xx - 20) ** 2 <= 121)] = 2
    lm = "myo=2,lv=3"
    write_labels(lab, vol, tmp_path / "seg.nii.gz", lm)
    write_labels(lab, vol, tmp_path / "seg.dcm", lm)
    for name in ("seg.nii.gz", "seg.dcm"):
        assert run_cli(["measure", str(tmp_path / name), "-o", str(tmp_path / f"{name}.report.json")]) == 0, capsys.readouterr().err
    nii, seg = (json.loads((tmp_path / f"{n}.report.json").read_text()) for n in ("seg.nii.gz", "seg.dcm"))
    assert seg["inputs"]["label_map"] == "myo=1,lv=2" and seg["inputs"]["label_map_from"].endswith("seg.dcm")
    assert seg["volumes_ml"]["lv"] == pytest.approx(nii["volumes_ml"]["lv"], rel=1e-6) and nii["volumes_ml"]["lv"] > 0
    assert seg["lv_mass_g"] == pytest.approx(nii["lv_mass_g"], rel=1e-6)
    # with the labels' own --label-map (lv=3), the SEG's segments are read by name, not by number
    assert run_cli(["measure", str(tmp_path / "seg.dcm"), "--label-map", lm, "-o", str(tmp_path / "seg.map.json")]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "seg.map.json").read_text())["volumes_ml"]["lv"] == pytest.approx(nii["volumes_ml"]["lv"], rel=1e-6)
    capsys.readouterr()
    assert run_cli(["info", str(tmp_path / "seg.dcm"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "dicom-seg" and info["segments"] == "myo=1, lv=2" and info["shape"] == [1, *vol.grid_shape]


def test_segment_takes_prompts_from_a_dicom_seg_without_a_label_map(tmp_path):
    """`medseg segment SERIES --prompts-from SEG.dcm`: the SEG names its segments, so no
    --label-map is needed (its values are segment numbers, not the labels' values before)."""
    import json

    from medseg.cli import run_cli

    write_cine_series(tmp_path / "one", n_slices=3, n_phases=1, rows=48, cols=48)
    vol = read_volume(tmp_path / "one")
    lab = np.zeros(vol.grid_shape, np.uint8)
    lab[:, 14:34, 14:34] = 4  # la=4: segment 2
    lab[:, 18:30, 18:30] = 1
    write_dicom_seg(lab, vol, tmp_path / "ref.dcm", "lv=1,la=4")
    assert run_cli(["segment", str(tmp_path / "one"), "--prompts-from", str(tmp_path / "ref.dcm"), "-o", str(tmp_path / "out.nii.gz")]) == 0
    side = json.loads((tmp_path / "out.json").read_text())
    assert set(side["label_map"]) == {"lv", "la"}
    assert {p["structure"] for a in side["provenance"]["actions"] if a.get("op") == "prompt" for p in [a["prompt"]]} == {"lv", "la"}


def test_batch_takes_prompts_from_dicom_segs_without_a_label_map(tmp_path):
    """`medseg batch DIR --prompts-from SEGS`: as for segment, SEG references need no
    --label-map; a folder with other label files still asks for it, before any case runs."""
    import json

    from medseg.cli import run_cli

    write_cine_series(tmp_path / "in" / "one", n_slices=3, n_phases=1, rows=48, cols=48)
    vol = read_volume(tmp_path / "in" / "one")
    lab = np.zeros(vol.grid_shape, np.uint8)
    lab[:, 14:34, 14:34] = 4
    lab[:, 18:30, 18:30] = 1
    (tmp_path / "refs").mkdir()
    write_dicom_seg(lab, vol, tmp_path / "refs" / "one_seg.dcm", "lv=1,la=4")
    assert run_cli(["batch", str(tmp_path / "in"), "--prompts-from", str(tmp_path / "refs"), "-o", str(tmp_path / "out")]) == 0
    assert set(json.loads((tmp_path / "out" / "one.json").read_text())["label_map"]) == {"lv", "la"}
    write_labels(lab, vol, tmp_path / "refs2" / "one_gt.nii.gz", "lv=1,la=4")
    (tmp_path / "refs2" / "one_gt.json").unlink()  # labels that name no map (medseg's sidecar names it: tests/core/test_consistency_followups.py)
    assert run_cli(["batch", str(tmp_path / "in"), "--prompts-from", str(tmp_path / "refs2"), "-o", str(tmp_path / "out2")]) == 1
    assert not (tmp_path / "out2" / "one.nii.gz").exists()


def test_prompts_and_evaluate_take_a_cine_seg_on_its_own_frame(tmp_path):
    """`segment CINE --prompts-from seg_frame01.dcm` prompts frame 1 only (it was refused:
    a SEG holds one phase); `evaluate` scores that frame of the cine against it."""
    from medseg.cli import run_cli

    write_cine_series(tmp_path / "cine", n_slices=3, n_phases=2, rows=48, cols=48)
    vol = read_volume(tmp_path / "cine")
    lab = np.zeros((2, *vol.grid_shape), np.uint8)
    lab[1, :, 14:34, 14:34] = 2
    lab[1, :, 18:30, 18:30] = 1
    write_labels(lab, vol, tmp_path / "ref.dcm", "lv=1,myo=2")  # ref_frame01.dcm (frame 0 has no labels)
    seg = tmp_path / "ref_frame01.dcm"
    assert seg.is_file() and not (tmp_path / "ref_frame00.dcm").exists()
    assert run_cli(["segment", str(tmp_path / "cine"), "--prompts-from", str(seg), "-o", str(tmp_path / "out.nii.gz")]) == 0
    out = read_label_volume(tmp_path / "out.nii.gz").array
    assert out.shape == vol.shape and not out[0].any() and out[1].any()
    side = json.loads((tmp_path / "out.json").read_text())
    assert {a["prompt"]["frame"] for a in side["provenance"]["actions"] if a.get("op") == "prompt"} == {1}
    (tmp_path / "pairs.csv").write_text(f"image,label,case\n{tmp_path / 'cine'},{seg},c1\n")
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "pairs.csv"), "--prompt", "box", "-o", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["cases"][0]["dice"]["lv"] > 0.5  # no --label-map: the SEG names its segments
    # the SEG's segment numbers (lv 1, myo 2) are read by name under another map's values
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "pairs.csv"), "--label-map", "myo=2,lv=3", "--prompt", "box", "-o", str(tmp_path / "r3.json")]) == 0
    res3 = json.loads((tmp_path / "r3.json").read_text())
    assert res3["cases"][0]["dice"] == pytest.approx(res["cases"][0]["dice"])
