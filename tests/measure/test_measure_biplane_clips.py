"""`medseg measure A4C_CLIP --a2c A2C_CLIP`: biplane disks from two apical clips, each view's ED
and ES found in its own clip (the single-clip rule), combined by the four-file code. Before it,
an echo user with two segmented clips had no biplane EF short of cutting four single-frame
files; `--a2c` did not exist."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
from measure_phantoms import echo_view

from medseg.cli import run_cli
from medseg.io import Volume, write_labels
from medseg.measure.echo import measure_echo

MAP = "lv=1,myo=2,la=3"
SHAPE = (430, 340)  # one canvas for every frame of a clip


def _view(w, length):
    return echo_view(w, length, True, shape=SHAPE)


A4C = {"ED": _view(22.0, 80.0), "ES": _view(17.0, 70.0)}
A2C = {"ED": _view(18.0, 80.0), "ES": _view(14.0, 70.0)}


def _no_spacing(path, frames, label_map=MAP):
    """Labels of a video (no pixel size; medseg's sidecar says so), one frame or a clip (T, Y, X)."""
    lab = np.asarray(frames)[:, None].astype(np.uint8)
    like = Volume(np.zeros(lab.shape, np.uint8), np.eye(4), frame_times_s=np.arange(len(lab)) * 0.04 if len(lab) > 1 else None,
                  modality="US", spacing_known=False)
    return str(write_labels(lab if len(lab) > 1 else lab[0], like, path, label_map)[0])


def _nifti(path, arr, px=0.5):  # 0.5: exact in the header's float32
    """(T, Y, X) labels as a 2-D + time NIfTI ((X, Y, 1, T)); 2-D (Y, X) as one frame; no sidecar."""
    arr = np.asarray(arr)
    data = arr[:, None].T.copy() if arr.ndim == 3 else arr[None].T.copy()
    nib.save(nib.Nifti1Image(data.astype(np.int16), np.diag([px, px, 1.0, 1.0])), str(path))
    return str(path)


def _run(argv, capsys):
    rc = run_cli(["measure", *argv])
    printed = capsys.readouterr()
    return rc, " ".join(printed.out.split()), printed.err.strip()


def test_two_frame_clips_give_the_four_file_biplane_numbers_exactly(tmp_path, capsys):
    """Clips of ED and ES (the 2-chamber one stored ES first) measure as the four single frames
    do, to the last bit: the same frames, the same code; each view's own --pixel-spacing."""
    four = {f"{v}_{ph}": _no_spacing(tmp_path / f"{v}_{ph}.nii.gz", [views[ph]]) for v, views in (("a4c", A4C), ("a2c", A2C)) for ph in ("ED", "ES")}
    a4c = _no_spacing(tmp_path / "p1_4CH_clip.nii.gz", [A4C["ED"], A4C["ES"]])
    a2c = _no_spacing(tmp_path / "p1_2CH_clip.nii.gz", [A2C["ES"], A2C["ED"]])
    spacing = ["--pixel-spacing", "0.3", "--a2c-pixel-spacing", "0.25"]
    assert _run(["--ed", four["a4c_ED"], "--es", four["a4c_ES"], "--a2c-ed", four["a2c_ED"], "--a2c-es", four["a2c_ES"], *spacing,
                 "-o", str(tmp_path / "four.json")], capsys)[0] == 0
    rc, out, _ = _run([a4c, "--a2c", a2c, *spacing, "-o", str(tmp_path / "clips.json"), "--csv", str(tmp_path / "clips.csv")], capsys)
    assert rc == 0
    want, got = (json.loads((tmp_path / f"{k}.json").read_text()) for k in ("four", "clips"))
    assert got["method"] == want["method"] == "biplane_disks"
    for key in ("lv", "lv_area_length", "lengths_mm", "atria"):
        assert got[key] == want[key]
    assert got["lv"]["ef_pct"] is not None and got["lv"]["edv_ml"] > 0 and got["la_volume_ml"] == want["la_volume_ml"]
    assert got["clips"]["a4c"] | {"frame_times_s": None} == {"n_frames": 2, "ed_frame": 0, "es_frame": 1, "volume_curve_rel": [1.0, got["clips"]["a4c"]["volume_curve_rel"][1]],
                                                             "frame_times_s": None}
    assert (got["clips"]["a2c"]["ed_frame"], got["clips"]["a2c"]["es_frame"]) == (1, 0)
    assert "4-chamber clip ED frame 0, ES frame 1; 2-chamber clip ED frame 1, ES frame 0" in out
    assert got["inputs"]["labels"] == a4c and got["inputs"]["a2c"] == a2c and set(got["inputs"]["sha256"]) == {"labels", "a2c"}
    assert got["inputs"]["settings"]["a2c_pixel_spacing"] == [0.25, 0.25] and got["inputs"]["spacing_from"] == "--pixel-spacing"
    with open(tmp_path / "clips.csv") as fh:
        row = next(csv.DictReader(fh))
    assert (row["clips.a2c.ed_frame"], row["clips.a2c.es_frame"]) == ("1", "0") and float(row["lv.ef_pct"]) == pytest.approx(got["lv"]["ef_pct"], abs=1e-3)


def test_each_clip_finds_its_own_ed_and_es(tmp_path, capsys):
    """Clips of different lengths and phases: ED/ES found in each (largest / smallest LV),
    the EF that of measure_echo on those four frames; plots, PDF and the 3-D --clip form work."""
    w4, w2 = [19.0, 21.0, 18.0, 15.0, 16.0], [14.0, 13.0, 16.0, 18.0, 17.0, 15.0]
    c4, c2 = np.stack([_view(w, 60 + w) for w in w4]), np.stack([_view(w, 55 + w) for w in w2])
    a4c, a2c = _nifti(tmp_path / "a4c.nii.gz", c4), _nifti(tmp_path / "a2c.nii.gz", c2)
    rc, out, _ = _run([a4c, "--a2c", a2c, "--label-map", MAP, "-o", str(tmp_path / "r.json"), "--plots", str(tmp_path / "plots"),
                       "--pdf", str(tmp_path / "study.pdf")], capsys)
    assert rc == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert {k: (c["ed_frame"], c["es_frame"], c["n_frames"]) for k, c in rep["clips"].items()} == {"a4c": (1, 3, 5), "a2c": (3, 1, 6)}
    want = measure_echo(c4[1], c4[3], c2[3], c2[1], label_map=MAP, spacing_a4c_mm=(0.5, 0.5), spacing_a2c_mm=(0.5, 0.5))
    assert rep["lv"]["ef_pct"] == want["lv"]["ef_pct"] and rep["lv"]["edv_ml"] == want["lv"]["edv_ml"]
    assert rep["clips"]["a2c"]["volume_curve_rel"][3] == 1.0 and len(rep["clips"]["a2c"]["volume_curve_rel"]) == 6
    assert "ED frame 1, ES frame 3 of 5; 2-chamber ED frame 3, ES frame 1 of 6" in rep["notes"][-1]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["overlay.png", "volume_curve.png"] and (tmp_path / "study.pdf").stat().st_size > 10_000
    # the same clips as 3-D files (third axis time): --clip reads both as clips
    for name, c in (("a4c3d", c4), ("a2c3d", c2)):
        nib.save(nib.Nifti1Image(c.T.astype(np.int16).copy(), np.diag([0.5, 0.5, 1.0, 1.0])), str(tmp_path / f"{name}.nii.gz"))
    assert _run([str(tmp_path / "a4c3d.nii.gz"), "--a2c", str(tmp_path / "a2c3d.nii.gz"), "--clip", "--label-map", MAP,
                 "-o", str(tmp_path / "r3.json")], capsys)[0] == 0
    rep3 = json.loads((tmp_path / "r3.json").read_text())
    assert rep3["lv"] == rep["lv"] and rep3["clips"] == rep["clips"] and rep3["inputs"]["settings"]["clip"] is True


def test_phantom_clips_give_the_truth(tmp_path, capsys):
    """Echo phantoms (a4c and a2c of one seed share the 3-D LV): the 2-chamber clip starts 3
    frames later, so its ED/ES frames are its own; EF and volumes against the analytic truth."""
    from medseg.phantoms import echo_apical_phantom

    p4, p2 = (echo_apical_phantom(v, n_frames=10, seed=1, spacing=0.7) for v in ("a4c", "a2c"))
    emap = "lv=1,myo=2,rv=3,la=4,ra=5"
    a4c = str(write_labels(p4.labels.astype(np.uint8), p4.image, tmp_path / "a4c.nii.gz", emap)[0])
    a2c = str(write_labels(np.roll(p2.labels, -3, axis=0).astype(np.uint8), p2.image, tmp_path / "a2c.nii.gz", emap)[0])
    assert _run([a4c, "--a2c", a2c, "-o", str(tmp_path / "r.json")], capsys)[0] == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    ed, es, vol = p4.info["ed_frame"], p4.info["es_frame"], p4.info["lv_volume_ml"]
    assert (rep["clips"]["a4c"]["ed_frame"], rep["clips"]["a4c"]["es_frame"]) == (ed, es)
    assert (rep["clips"]["a2c"]["ed_frame"], rep["clips"]["a2c"]["es_frame"]) == ((ed - 3) % 10, (es - 3) % 10)
    assert rep["lv"]["ef_pct"] == pytest.approx(100 * (1 - vol[es] / vol[ed]), abs=1.0)
    assert rep["lv"]["edv_ml"] == pytest.approx(vol[ed], rel=0.02) and rep["lv"]["esv_ml"] == pytest.approx(vol[es], rel=0.02)


def test_a_view_whose_lv_never_changes_gives_no_ef(tmp_path, capsys):
    a4c = _nifti(tmp_path / "a4c.nii.gz", np.stack([A4C["ED"], A4C["ES"]]))
    a2c = _nifti(tmp_path / "a2c.nii.gz", np.stack([A2C["ED"]] * 3))
    assert _run([a4c, "--a2c", a2c, "--label-map", MAP, "-o", str(tmp_path / "r.json")], capsys)[0] == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["lv"]["ef_pct"] is None and rep["clips"]["a2c"]["es_frame"] is None and rep["clips"]["a4c"]["es_frame"] == 1
    flag = next(f for f in rep["flags"] if f["code"] == "ef_undefined")
    assert "the 2-chamber clip's LV volume does not change over its 3 labelled frames" in flag["message"]


def test_clips_whose_sidecars_give_other_values_are_read_by_name(tmp_path, capsys):
    """The 2-chamber clip segmented with medseg's map (la=4), the 4-chamber with CAMUS' (la=3)."""
    clip4, clip2 = [A4C["ED"], A4C["ES"]], [A2C["ED"], A2C["ES"]]
    a4c = _no_spacing(tmp_path / "a4c.nii.gz", clip4)
    a2c = _no_spacing(tmp_path / "a2c.nii.gz", [np.where(f == 3, 4, f) for f in clip2], "lv=1,myo=2,rv=3,la=4")
    same = _no_spacing(tmp_path / "a2c_camus.nii.gz", clip2)
    for name, other in (("mixed", a2c), ("same", same)):
        assert _run([a4c, "--a2c", other, "-o", str(tmp_path / f"{name}.json")], capsys)[0] == 0
    mixed, want = (json.loads((tmp_path / f"{k}.json").read_text()) for k in ("mixed", "same"))
    assert mixed["lv"] == want["lv"] and mixed["la_volume_ml"] == want["la_volume_ml"] and mixed["la_method"] == "biplane_area_length"


def _bad_inputs(tmp_path):
    """name -> file for the refusals below."""
    clip4, clip2 = np.stack([A4C["ED"], A4C["ES"]]), np.stack([A2C["ED"], A2C["ES"]])
    f = {"a4c": _nifti(tmp_path / "a4c.nii.gz", clip4), "a2c": _nifti(tmp_path / "a2c.nii.gz", clip2),
         "frame": _nifti(tmp_path / "frame.nii.gz", A2C["ED"]), "copy": _nifti(tmp_path / "copy.nii.gz", clip4),
         "no_lv": _nifti(tmp_path / "no_lv.nii.gz", np.where(clip2 == 1, 2, clip2)),
         "lv_once": _nifti(tmp_path / "lv_once.nii.gz", np.stack([A2C["ED"], np.where(A2C["ES"] == 1, 2, A2C["ES"])])),
         "other_values": _nifti(tmp_path / "other_values.nii.gz", np.where(clip2 == 3, 5, clip2)),
         "no_spacing": _no_spacing(tmp_path / "no_spacing.nii.gz", clip2), "named_2ch": _nifti(tmp_path / "p1_2CH_clip.nii.gz", clip4),
         "sidecar_a": _no_spacing(tmp_path / "sa.nii.gz", clip4, "lv=1,myo=2,la=3"),
         "sidecar_b": _no_spacing(tmp_path / "sb.nii.gz", np.where(clip2 > 0, 1, 0), "aorta=1")}
    nib.save(nib.Nifti1Image(clip2.T.astype(np.int16).copy(), np.diag([0.5, 0.5, 1.0, 1.0])), str(tmp_path / "a2c3d.nii.gz"))
    nib.save(nib.Nifti1Image(np.stack([clip4] * 2, 1).T.astype(np.int16).copy(), np.diag([0.5, 0.5, 1.0, 1.0])), str(tmp_path / "cine.nii.gz"))
    return f | {"a2c3d": str(tmp_path / "a2c3d.nii.gz"), "cine": str(tmp_path / "cine.nii.gz")}


@pytest.mark.parametrize("argv, message", [
    (["--ed", "{a4c}", "--es", "{a4c}", "--a2c", "{a2c}"], "--a2c is the 2-chamber clip beside LABELS"),
    (["{a4c}", "--a2c", "{frame}"], "--a2c frame.nii.gz is one frame, not a clip"),
    (["{a4c}", "--a2c", "{a2c3d}"], "a2c3d.nii.gz is a 3-D file of 2 slices: if its third axis is time"),
    (["{a4c}", "--a2c", "{cine}", "--clip"], "is already a cine (2 frames of 2 slices)"),
    (["{a4c}", "--a2c", "{no_lv}"], "no_lv.nii.gz: the label map names lv=1 but no voxel has that value"),
    (["{a4c}", "--a2c", "{lv_once}"], "the 2-chamber clip: EF over a clip needs the LV (label 1) on at least two frames; it is on 1"),
    (["{a4c}", "--a2c", "{other_values}"], "the 2-chamber clip: label values 5 are not in the label map"),
    (["{a4c}", "--a2c", "{a4c}"], "LABELS and --a2c are the same file"),
    (["{a4c}", "--a2c", "{copy}"], "hold the same labels (one clip given twice?)"),
    (["{named_2ch}", "--a2c", "{a2c}"], "p1_2CH_clip.nii.gz is named the 2-chamber view, but was given as LABELS"),
    (["{a4c}", "--a2c", "{no_spacing}"], "biplane: give the pixel spacing of both views or of neither"),
    (["{sidecar_a}", "--a2c", "{sidecar_b}"], "label maps with no structure in common"),
    (["{a4c}", "--a2c", "{a2c}", "--dicom-sr", "{out_dir}/r.dcm"], "--dicom-sr needs the DICOM study of the labels"),
])
def test_bad_clip_input_is_one_line(tmp_path, capsys, argv, message):
    files = _bad_inputs(tmp_path) | {"out_dir": str(tmp_path)}
    label_map = [] if any("sidecar" in a for a in argv) else ["--label-map", MAP]
    out = tmp_path / "r.json"
    rc, _, err = _run([*[a.format(**files) for a in argv], *label_map, "-o", str(out)], capsys)
    assert rc != 0 and err.startswith("error") and message in " ".join(err.split()) and len(err.splitlines()) == 1
    assert not out.exists() and not (tmp_path / "r.dcm").exists()


def test_clips_of_a_dicom_study_give_a_biplane_sr(tmp_path, capsys, monkeypatch):
    """Labels of two DICOM ultrasound clips of one study: --dicom-sr writes the biplane numbers in it."""
    from pathlib import Path

    from pydicom import dcmread
    from pydicom.uid import generate_uid

    from medseg.io import read_volume

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "io"))
    from io_synth import write_us_clip

    study, labels = generate_uid(), {}
    for view, views in (("a4c", A4C), ("a2c", A2C)):
        write_us_clip(tmp_path / f"{view}.dcm", n_frames=2, rows=SHAPE[0], cols=SHAPE[1])
        ds = dcmread(tmp_path / f"{view}.dcm")
        ds.StudyInstanceUID = study
        ds.save_as(tmp_path / f"{view}.dcm")
        frames = np.stack([views["ED"], views["ES"]])[:, None].astype(np.uint8)
        labels[view] = str(write_labels(frames, read_volume(tmp_path / f"{view}.dcm"), tmp_path / f"{view}_labels.nii.gz", MAP,
                                        provenance={"input": str(tmp_path / f"{view}.dcm")})[0])
    rc, out, _ = _run([labels["a4c"], "--a2c", labels["a2c"], "--pixel-spacing", "0.3", "-o", str(tmp_path / "r.json"),
                       "--dicom-sr", str(tmp_path / "sr.dcm")], capsys)
    assert rc == 0 and "DICOM SR ->" in out
    rep, sr = json.loads((tmp_path / "r.json").read_text()), dcmread(tmp_path / "sr.dcm")
    assert sr.StudyInstanceUID == study and rep["dicom_sr"]["left_out"] == [] and rep["method"] == "biplane_disks"
    values = [float(i.MeasuredValueSequence[0].NumericValue) for i in _items(sr) if i.ValueType == "NUM"
              and i.ConceptNameCodeSequence[0].CodeValue == "79991-6"]  # LN LV EF biplane MOD
    assert values == [pytest.approx(rep["lv"]["ef_pct"], abs=0.01)]


def _items(ds):
    for item in ds.get("ContentSequence", []):
        yield item
        yield from _items(item)


def test_a_frame_where_one_view_lost_the_lv_is_flagged_in_that_view_and_not_its_es():
    """The single-clip outlier rule per view: the 2-chamber clip's ES frame with its LV lost
    (a small blob kept) is ``volume_outlier_frame`` with ``view``, in % of that view's ED."""
    from medseg.measure.echo_clips import measure_echo_biplane_clips
    from medseg.phantoms import echo_apical_phantom

    p4, p2 = (echo_apical_phantom(v, n_frames=20, seed=1, spacing=0.5, shape=(128, 128)) for v in ("a4c", "a2c"))
    a4c, a2c = p4.labels[:, 0], p2.labels[:, 0].copy()
    t = p2.info["es_frame"]
    lost = a2c[t] == 1
    ys, xs = np.nonzero(lost)
    yy, xx = np.mgrid[:lost.shape[0], :lost.shape[1]]
    a2c[t][lost & ~((abs(yy - ys.mean()) <= 3) & (abs(xx - xs.mean()) <= 3))] = 0
    rep = measure_echo_biplane_clips(a4c, a2c, label_map=p4.label_map, spacing_a4c_mm=(0.5, 0.5), spacing_a2c_mm=(0.5, 0.5))
    flags = [f for f in rep["flags"] if f["code"] == "volume_outlier_frame"]
    assert [(f["view"], f["frame"]) for f in flags] == [("2-chamber", t)] and flags[0]["message"].startswith("2-chamber clip: LV volume on frame")
    assert "% of EDV" in flags[0]["message"] and rep["clips"]["a2c"]["ed_frame"] == p2.info["ed_frame"]
    assert abs(rep["clips"]["a2c"]["es_frame"] - t) == 1 and rep["clips"]["a4c"]["es_frame"] == p4.info["es_frame"]
    assert 40 < rep["lv"]["ef_pct"] < 80  # the lost frame taken as ES would read near 100 %
