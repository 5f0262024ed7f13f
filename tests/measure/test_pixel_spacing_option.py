"""``--pixel-spacing ROW_MM[,COL_MM]`` on measure, segment and batch: labels and images that
record no pixel size (PNG, video) measured in millimetres; a file's own spacing is never
overridden; where the spacing came from is in the report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from measure_phantoms import echo_view
from PIL import Image

from medseg.cli._app import run_cli

ED, ES = (22.0, 80.0), (17.0, 70.0)  # half-width, length mm of the LV half-ellipse (4-chamber)
ED2, ES2 = (18.0, 80.0), (14.0, 70.0)  # 2-chamber
LMAP = "lv=1,myo=2,la=3"


def _half_ellipsoid_ml(a, b, c):
    return 2.0 / 3.0 * math.pi * a * b * c / 1000.0


def _png(path, lab):
    Image.fromarray(np.asarray(lab, np.uint8)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def views(tmp_path_factory):
    """CAMUS-named PNG label views without pixel spacing: 4-chamber drawn at 0.3 mm pixels,
    2-chamber at 0.6 mm (each view is its own acquisition)."""
    d = tmp_path_factory.mktemp("png")
    return {"4CH_ED": _png(d / "s_4CH_ED_gt.png", echo_view(*ED, True, px=0.3)),
            "4CH_ES": _png(d / "s_4CH_ES_gt.png", echo_view(*ES, True, px=0.3)),
            "2CH_ED": _png(d / "s_2CH_ED_gt.png", echo_view(*ED2, True, px=0.6)),
            "2CH_ES": _png(d / "s_2CH_ES_gt.png", echo_view(*ES2, True, px=0.6))}


def _measure(tmp_path, views, *extra, name="r.json", biplane=True):
    args = ["measure", "--ed", views["4CH_ED"], "--es", views["4CH_ES"], "--label-map", LMAP, "-o", str(tmp_path / name), *extra]
    if biplane:
        args += ["--a2c-ed", views["2CH_ED"], "--a2c-es", views["2CH_ES"]]
    rc = run_cli(args)
    return rc, (json.loads((tmp_path / name).read_text()) if rc == 0 else None)


@pytest.mark.parametrize("text, want", [("0.3", (0.3, 0.3)), ("0.7,0.5", (0.7, 0.5)), (" 0.7 , 0.5 ", (0.7, 0.5))])
def test_parse_pixel_spacing(text, want):
    from medseg.cli._options import parse_pixel_spacing

    assert parse_pixel_spacing(text) == want and parse_pixel_spacing(None) is None


@pytest.mark.parametrize("text", ["0", "-0.3", "nan", "inf", "1e400", "abc", "", "0.3,", "0.3,0.2,0.1", "0,3"])
def test_parse_pixel_spacing_refuses_in_one_line(text):
    from medseg.cli._options import parse_pixel_spacing
    from medseg.errors import MedsegError

    with pytest.raises(MedsegError, match=r"^--pixel-spacing must be one or two positive numbers in mm"):
        parse_pixel_spacing(text)


def test_biplane_png_labels_give_volumes_with_per_view_spacing(views, tmp_path):
    rc, rep = _measure(tmp_path, views, "--pixel-spacing", "0.3", "--a2c-pixel-spacing", "0.6")
    assert rc == 0
    edv, esv = _half_ellipsoid_ml(ED[0], ED2[0], ED[1]), _half_ellipsoid_ml(ES[0], ES2[0], ES[1])
    assert abs(rep["lv"]["edv_ml"] / edv - 1) <= 0.01 and abs(rep["lv"]["esv_ml"] / esv - 1) <= 0.01
    assert rep["spacing_known"] is True and rep["spacing_mm"] == [1.0, 0.3, 0.3]
    assert "biplane_without_spacing" not in [f["code"] for f in rep["flags"]]
    assert rep["inputs"]["spacing_from"] == "--pixel-spacing"
    assert rep["inputs"]["settings"]["pixel_spacing"] == [0.3, 0.3] and rep["inputs"]["settings"]["a2c_pixel_spacing"] == [0.6, 0.6]


def test_volumes_scale_as_spacing_cubed_and_ef_is_unchanged(views, tmp_path):
    """measurement.md validation 8 through the CLI: spacing x2 -> volumes x8, EF the same; and
    without --pixel-spacing the EF alone, as before."""
    _, none = _measure(tmp_path, views, name="none.json")
    _, one = _measure(tmp_path, views, "--pixel-spacing", "0.3", name="one.json")
    _, two = _measure(tmp_path, views, "--pixel-spacing", "0.6", name="two.json")
    assert none["lv"]["edv_ml"] is None and none["inputs"]["spacing_from"] is None and "pixel_spacing" not in none["inputs"]["settings"]
    for key in ("edv_ml", "esv_ml"):
        assert two["lv"][key] == pytest.approx(8 * one["lv"][key], rel=1e-9)
    assert two["atria"]["la"]["max_ml"] == pytest.approx(8 * one["atria"]["la"]["max_ml"], rel=1e-9)
    assert one["lv"]["ef_pct"] == pytest.approx(none["lv"]["ef_pct"], abs=1e-9) == pytest.approx(two["lv"]["ef_pct"], abs=1e-9)


def test_rectangular_pixels_are_row_then_column(tmp_path):
    """0.3 mm rows, 0.6 mm columns (DICOM PixelSpacing order): a view drawn at 0.3 mm with every
    other column kept measures as the full one; the other order does not."""
    ed, es = echo_view(*ED, True, px=0.3)[:, ::2], echo_view(*ES, True, px=0.3)[:, ::2]
    v = {"4CH_ED": _png(tmp_path / "a_4CH_ED.png", ed), "4CH_ES": _png(tmp_path / "a_4CH_ES.png", es)}
    _, rep = _measure(tmp_path, v, "--pixel-spacing", "0.3,0.6", biplane=False)
    want = _half_ellipsoid_ml(ED[0], ED[0], ED[1])
    assert abs(rep["lv"]["edv_ml"] / want - 1) <= 0.02 and rep["spacing_mm"] == [1.0, 0.3, 0.6]
    _, swapped = _measure(tmp_path, v, "--pixel-spacing", "0.6,0.3", name="swapped.json", biplane=False)
    assert abs(swapped["lv"]["edv_ml"] / want - 1) > 0.2


def test_a_file_with_its_own_spacing_is_not_overridden(tmp_path, capsys):
    from medseg.io import Volume, write_labels
    from medseg.io.volume import affine_from_spacing

    paths = {}
    for k, (a, c) in (("4CH_ED", ED), ("4CH_ES", ES)):
        lab = echo_view(a, c, True, px=0.3)
        paths[k] = str(tmp_path / f"n_{k}.nii.gz")
        write_labels(lab, Volume(lab[None, None].astype(np.float32), affine_from_spacing((1.0, 0.3, 0.3))), paths[k], LMAP)
    rc, rep = _measure(tmp_path, paths, "--pixel-spacing", "0.3", biplane=False)  # the same: accepted, the file's
    assert rc == 0 and rep["inputs"]["spacing_from"] == "file" and rep["lv"]["edv_ml"] > 0
    capsys.readouterr()
    rc, _ = _measure(tmp_path, paths, "--pixel-spacing", "0.5", name="other.json", biplane=False)
    cap = capsys.readouterr()
    err = (cap.out + cap.err).strip()
    assert rc == 1 and not (tmp_path / "other.json").exists(), err
    assert len(err.splitlines()) == 1 and "records a pixel spacing of 0.3 x 0.3 mm" in err and "--pixel-spacing gives 0.5 x 0.5" in err


def test_png_4ch_views_with_2ch_files_that_record_their_own(views, tmp_path, capsys):
    """PNG 4-chamber views and 2-chamber NIfTI views at 0.6 mm: --pixel-spacing 0.3 reached the
    2-chamber files too, and the error said to leave --pixel-spacing out, which the PNGs need;
    it now names --a2c-pixel-spacing, which measures them."""
    from medseg.io import Volume, write_labels
    from medseg.io.volume import affine_from_spacing

    mixed = dict(views)
    for k, (a, c) in (("2CH_ED", ED2), ("2CH_ES", ES2)):
        lab = echo_view(a, c, True, px=0.6)
        mixed[k] = str(tmp_path / f"s_{k}_gt.nii.gz")
        write_labels(lab, Volume(lab[None, None].astype(np.float32), affine_from_spacing((1.0, 0.6, 0.6))), mixed[k], LMAP)
    capsys.readouterr()
    rc, _ = _measure(tmp_path, mixed, "--pixel-spacing", "0.3", name="mixed.json")
    err = " ".join((capsys.readouterr().err).split())
    assert rc == 1 and "--a2c-pixel-spacing gives their own" in err
    rc, rep = _measure(tmp_path, mixed, "--pixel-spacing", "0.3", "--a2c-pixel-spacing", "0.6", name="mixed2.json")
    _, both = _measure(tmp_path, views, "--pixel-spacing", "0.3", "--a2c-pixel-spacing", "0.6", name="png.json")
    assert rc == 0 and rep["lv"]["edv_ml"] == pytest.approx(both["lv"]["edv_ml"], rel=1e-3)


@pytest.mark.parametrize("extra, msg", [(["--pixel-spacing", "0"], "--pixel-spacing must be one or two positive numbers"),
                                        (["--a2c-pixel-spacing", "x"], "--a2c-pixel-spacing must be one or two positive numbers"),
                                        (["--a2c-pixel-spacing", "0.3"], "give it with --a2c-ed and --a2c-es")])
def test_measure_refuses_bad_spacing_in_one_line(views, tmp_path, capsys, extra, msg):
    rc, _ = _measure(tmp_path, views, *extra, biplane=False)
    cap = capsys.readouterr()
    out = (cap.out + cap.err).strip()
    assert rc == 1 and msg in out and len(out.splitlines()) == 1 and not (tmp_path / "r.json").exists()


def test_a_stack_without_spacing_is_refused():
    from medseg.errors import GeometryError
    from medseg.io import Volume
    from medseg.io.volume import with_pixel_spacing

    stack = Volume(np.zeros((1, 3, 8, 8), np.uint8), np.eye(4), spacing_known=False)
    with pytest.raises(GeometryError, match="stack of 3 slices that records no spacing"):
        with_pixel_spacing(stack, (0.5, 0.5), "x.mha")
    one = with_pixel_spacing(Volume(np.zeros((4, 1, 8, 8), np.uint8), np.eye(4), spacing_known=False), (0.7, 0.5))  # a clip
    assert one.spacing == (1.0, 0.7, 0.5) and one.spacing_known and one.meta["spacing_from"] == "--pixel-spacing"


def test_echo_clip_labels_from_a_video_get_volumes(tmp_path):
    """Labels of an AVI clip (written as NIfTI, their sidecar saying no spacing) over the cycle."""
    from medseg.io import Volume, write_labels

    frames = [echo_view(a, 80.0 - 10.0 * i / 4, True, px=0.3, shape=(433, 346)) for i, a in enumerate((22.0, 20.0, 17.0, 20.0, 22.0))]
    arr = np.stack(frames)[:, None]
    clip = Volume(arr.astype(np.float32), np.eye(4), frame_times_s=np.arange(5) * 0.1, modality="US", spacing_known=False)
    write_labels(arr, clip, tmp_path / "clip.nii.gz", LMAP)
    assert run_cli(["measure", str(tmp_path / "clip.nii.gz"), "-o", str(tmp_path / "c0.json")]) == 0
    assert run_cli(["measure", str(tmp_path / "clip.nii.gz"), "-o", str(tmp_path / "c.json"), "--pixel-spacing", "0.3"]) == 0
    c0, c = (json.loads((tmp_path / n).read_text()) for n in ("c0.json", "c.json"))
    assert c0["lv"]["edv_ml"] is None and c["inputs"]["spacing_from"] == "--pixel-spacing"
    assert abs(c["lv"]["edv_ml"] / _half_ellipsoid_ml(22.0, 22.0, 80.0) - 1) <= 0.01
    assert c["lv"]["ef_pct"] == pytest.approx(c0["lv"]["ef_pct"], abs=1e-9)


def test_overlay_png_image_under_labels_given_a_spacing(tmp_path):
    """--image PNGs (no spacing) under PNG labels given one: on the labels' grid, drawn."""
    labs = {k: echo_view(a, c, True, px=0.3, shape=(433, 346)) for k, (a, c) in (("4CH_ED", ED), ("4CH_ES", ES))}
    v = {k: _png(tmp_path / f"o_{k}_gt.png", lab) for k, lab in labs.items()}
    img, img_es = (_png(tmp_path / f"o_{k}.png", (lab * 60).astype(np.uint8)) for k, lab in labs.items())
    rc, rep = _measure(tmp_path, v, "--pixel-spacing", "0.3", "--plots", str(tmp_path / "plots"), "--image", img, "--image", img_es,
                       biplane=False)
    assert rc == 0 and (tmp_path / "plots" / "overlay.png").is_file()


def test_segment_writes_the_spacing_and_measure_then_needs_none(model, tmp_path, capsys):
    """segment a PNG (prompted from PNG reference labels) with --pixel-spacing: the NIfTI labels
    carry it, the sidecar says where it came from, and measure reads volumes from them alone."""
    paths = {}
    for k, (a, c) in (("4CH_ED", ED), ("4CH_ES", ES)):
        lab = echo_view(a, c, True, px=0.6, wall_mm=8.0)
        ref = _png(tmp_path / f"p_{k}_gt.png", lab)
        img = _png(tmp_path / f"p_{k}.png", np.choose(lab, [40, 20, 160, 60]).astype(np.uint8))
        paths[k] = str(tmp_path / f"p_{k}.nii.gz")
        assert run_cli(["segment", img, "-o", paths[k], "--prompts-from", ref, "--label-map", LMAP, "--pixel-spacing", "0.6"]) == 0
    import nibabel as nib

    assert nib.load(paths["4CH_ED"]).header.get_zooms()[:2] == pytest.approx((0.6, 0.6))
    prov = json.loads((tmp_path / "p_4CH_ED.json").read_text())["provenance"]
    assert prov["spacing_from"] == "--pixel-spacing" and prov["pixel_spacing_mm"] == [0.6, 0.6] and prov["spacing_known"] is True
    rc = run_cli(["measure", "--ed", paths["4CH_ED"], "--es", paths["4CH_ES"], "-o", str(tmp_path / "m.json")])
    rep = json.loads((tmp_path / "m.json").read_text())
    assert rc == 0 and rep["inputs"]["spacing_from"] == "file (segment --pixel-spacing)"
    assert abs(rep["lv"]["edv_ml"] / _half_ellipsoid_ml(ED[0], ED[0], ED[1]) - 1) <= 0.15  # the model's labels, not the truth
    img = str(tmp_path / "p_4CH_ED.png")
    replayed = str(tmp_path / "r.nii.gz")  # --replay writes with the spacing the sidecar records
    assert run_cli(["segment", img, "-o", replayed, "--replay", str(tmp_path / "p_4CH_ED.json")]) == 0
    assert nib.load(replayed).header.get_zooms()[:2] == pytest.approx((0.6, 0.6))
    assert np.array_equal(np.asanyarray(nib.load(replayed).dataobj), np.asanyarray(nib.load(paths["4CH_ED"]).dataobj))
    capsys.readouterr()
    assert run_cli(["segment", img, "-o", str(tmp_path / "x.png"), "--auto", "--pixel-spacing", "0.6"]) == 1  # a PNG would lose it
    assert "a PNG records no pixel spacing" in "".join(capsys.readouterr()) and not (tmp_path / "x.png").exists()


def test_batch_signature_changes_with_the_spacing():
    from medseg.batch import BatchOptions

    base = BatchOptions(out_dir="/tmp/x")
    assert base.signature() != BatchOptions(out_dir="/tmp/x", pixel_spacing=(0.3, 0.3)).signature()
    assert base.signature() == BatchOptions(out_dir="/tmp/x", pixel_spacing=None).signature()  # old outputs stay valid


def test_batch_measure_reports_volumes_of_png_cases(model, tmp_path):
    """batch --pixel-spacing: the NIfTI labels carry it, so --measure's cohort row has volumes."""
    src = tmp_path / "in"
    src.mkdir()
    for k, (a, c) in (("4CH_ED", ED), ("4CH_ES", ES)):
        lab = echo_view(a, c, True, px=0.6, wall_mm=8.0, shape=(216, 173))
        _png(src / f"b_{k}_gt.png", lab)
        _png(src / f"b_{k}.png", np.choose(lab, [40, 20, 160, 60]).astype(np.uint8))
    out = tmp_path / "out"
    assert run_cli(["batch", str(src), "-o", str(out), "--prompts-from", str(src), "--label-map", LMAP, "--measure", "--pixel-spacing", "0.6"]) == 0
    import csv

    row = next(csv.DictReader((out / "cohort.csv").open()))
    assert row["spacing_mm"] == "1.0 0.6 0.6" and float(row["lv.edv_ml"]) == pytest.approx(_half_ellipsoid_ml(ED[0], ED[0], ED[1]), rel=0.15)
    assert json.loads((out / "b_4CH_ED.json").read_text())["provenance"]["spacing_from"] == "--pixel-spacing"
