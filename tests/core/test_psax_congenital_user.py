"""Two users walked through: an echo scientist with parasternal short-axis (PSAX) frames whose
expert outlines are COCO polygons (SIUE), and a paediatric / congenital heart disease scientist
with HVSMR-2.0 slices whose masks are colour-coded, measuring children.

What they met: a COCO file given as ``--label-map`` printed its whole ``images`` list as the
"label value"; a COCO file or an RGB mask given as a reference named no way to convert it
(``medseg.io.annotations`` + ``examples/annotation_references.py`` now do); one PSAX frame given
to ``measure`` was told to give apical views; a child's height and weight had their indexed
values flagged against adults' reference ranges. Real-data checks skip without ../shared/data."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medseg.errors import ImageReadError, LabelMapError
from medseg.io.annotations import HVSMR_COLOURS, coco_labels, colour_labels, parse_colours, read_coco
from medseg.labels import LabelMap

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _ring_xy(cx, cy, r, n=48):
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [float(v) for p in zip(cx + r * np.cos(a), cy + r * np.sin(a)) for v in p]


def _coco(tmp_path, as_string=False):
    epi, lv, rv = _ring_xy(40, 32, 14), _ring_xy(40, 32, 8), [4.0, 10.0, 22.0, 10.0, 22.0, 50.0, 4.0, 50.0]
    seg = (lambda p: json.dumps([p])) if as_string else (lambda p: [p])
    coco = {"images": [{"id": 7, "file_name": "f1.png", "height": 64, "width": 64}],
            "categories": [{"id": 1, "name": "LE"}, {"id": 2, "name": "LV"}, {"id": 3, "name": "RE"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "segmentation": seg(epi)},
                            {"id": 2, "image_id": 7, "category_id": 2, "segmentation": seg(lv)},
                            {"id": 3, "image_id": 7, "category_id": 3, "segmentation": seg(rv)}]}
    p = tmp_path / "ann.json"
    p.write_text(json.dumps(coco))
    return p


# -- COCO polygons ---------------------------------------------------------------------------

def test_a_coco_file_as_label_map_is_one_short_line_naming_the_converter(tmp_path):
    p = _coco(tmp_path)
    with pytest.raises(LabelMapError) as e:
        LabelMap.parse(str(p))
    msg = str(e.value)
    assert "COCO annotation file" in msg and "annotation_references.py" in msg and len(msg) < 300, msg


def test_a_label_value_that_is_a_long_list_is_shown_cut(tmp_path):
    with pytest.raises(LabelMapError) as e:
        LabelMap.parse(json.dumps({"lv": list(range(1000))}))
    assert "must be an integer" in str(e.value) and len(str(e.value)) < 120 and str(e.value).endswith("...")


def test_a_coco_file_given_as_reference_labels_names_the_converter(tmp_path):
    from medseg.io import read_label_volume

    with pytest.raises(ImageReadError, match="annotation_references.py"):
        read_label_volume(_coco(tmp_path))


@pytest.mark.parametrize("as_string", [False, True])
def test_coco_polygons_fill_in_the_order_given(tmp_path, as_string):
    coco = read_coco(_coco(tmp_path, as_string))
    lab = coco_labels(coco, "f1.png", {"LE": "myo", "LV": "lv", "RE": "rv"}, "lv=1,myo=2,rv=3")
    assert lab.shape == (64, 64) and lab[32, 40] == 1 and lab[32, 40 + 11] == 2 and lab[30, 12] == 3 and lab[0, 0] == 0
    lv = lab == 1
    assert abs(lv.sum() - np.pi * 64) < 25 and (lab == 2).sum() > 300
    inner_last = coco_labels(coco, "f1.png", {"LV": "lv", "LE": "myo"}, "lv=1,myo=2")
    assert not (inner_last == 1).any()  # the epicardium painted over the LV: the order is the user's


def test_coco_refusals_are_one_line(tmp_path):
    coco = read_coco(_coco(tmp_path))
    cases = [({"XX": "lv"}, "f1.png", "not in the file"), ({"LV": "lv"}, "nope.png", "no image"),
             ({"LV": "scar"}, "f1.png", "not in the label map")]
    for cats, name, want in cases:
        with pytest.raises(LabelMapError, match=want):
            coco_labels(coco, name, cats, "lv=1,myo=2")
    coco["annotations"][1]["segmentation"] = {"counts": [1, 2], "size": [64, 64]}
    with pytest.raises(LabelMapError, match="RLE"):
        coco_labels(coco, "f1.png", {"LV": "lv"}, "lv=1")
    coco["annotations"][1]["segmentation"] = [[1.0, 2.0, 3.0]]
    with pytest.raises(LabelMapError, match="3 or more finite"):
        coco_labels(coco, "f1.png", {"LV": "lv"}, "lv=1")
    bad = tmp_path / "notcoco.json"
    bad.write_text('{"lv": 1}')
    with pytest.raises(LabelMapError, match="not a COCO"):
        read_coco(bad)


# -- colour-coded masks ----------------------------------------------------------------------

def test_colour_masks_become_labels_and_a_stray_colour_is_named():
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[2:6, 2:6] = HVSMR_COLOURS["lv"]
    rgb[8:12, 2:6] = HVSMR_COLOURS["pa"]
    rgb[14:16, 2:6] = HVSMR_COLOURS["svc"]  # not in medseg's map: left out
    lab = colour_labels(rgb, parse_colours("hvsmr"), "lv=1,rv=3,pa=7")
    assert (lab == 1).sum() == 16 and (lab == 7).sum() == 16 and lab[14, 2] == 0
    rgb[0, 0] = (200, 10, 10)  # an anti-aliased edge
    with pytest.raises(LabelMapError, match=r"\(200, 10, 10\) \(1 px\)"):
        colour_labels(rgb, parse_colours("hvsmr"), "lv=1")
    assert parse_colours("lv=#ff0000,rv=0/0/255") == {"lv": (255, 0, 0), "rv": (0, 0, 255)}
    with pytest.raises(LabelMapError, match="bad colour"):
        parse_colours("lv=#ff00")


def test_an_rgb_reference_names_the_converter(tmp_path):
    from medseg.io import read_label_volume

    p = tmp_path / "m.png"
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[2:4, 2:4] = (255, 0, 0)
    Image.fromarray(rgb).save(p)
    with pytest.raises(LabelMapError, match="annotation_references.py colours"):
        read_label_volume(p)


def _example():
    spec = importlib.util.spec_from_file_location("annotation_references", EXAMPLES / "annotation_references.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_example_writes_named_references_and_pairs(tmp_path):
    from medseg.io import read_label_volume
    from medseg.io.writers import read_sidecar

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(imgs / "f1.png")
    rows = _example().main(["coco", str(_coco(tmp_path)), str(imgs), str(tmp_path / "refs"), "--categories", "LE=myo,LV=lv,RE=rv"])
    assert [r["label"] for r in rows] == ["f1_gt.png"] and (tmp_path / "refs" / "pairs.csv").is_file()
    ref = tmp_path / "refs" / "f1_gt.png"
    lab = read_label_volume(ref).array[0, 0]
    assert lab[32, 40] == 1 and lab[32, 51] == 2 and lab[30, 12] == 3
    assert read_sidecar(ref)["label_map"] == {"lv": 1, "myo": 2, "rv": 3}


# -- segment: the ultrasound default on a PSAX frame -------------------------------------------

def test_zero_click_with_the_ultrasound_default_that_finds_no_lv_suggests_the_psax_structures():
    """`segment PSAX.png --auto --modality US` looked for lv, myo, la: on SIUE MF0319PRE_9_ES_50
    it drew the RV as "la", found no LV, and said nothing about --structures lv,myo,rv."""
    from medseg.cli.segment_cmd import structures_hint
    from medseg.io import Volume

    us = Volume(np.zeros((1, 1, 32, 32), np.float32), np.eye(4), modality="US")
    assert "--structures lv,myo,rv" in structures_hint(us, True, None, ["lv"])
    assert structures_hint(us, True, ("lv", "myo", "la"), ["lv"]) is None  # asked for by name
    assert structures_hint(us, True, None, []) is None  # an apical view found its LV


# -- measure: a PSAX frame, a child ------------------------------------------------------------

def test_one_psax_frame_is_called_a_short_axis_section(tmp_path, capsys):
    from medseg.cli._app import run_cli

    lab = np.zeros((64, 64), np.uint8)
    lab[_disk(lab.shape, 32, 32, 14)] = 2
    lab[_disk(lab.shape, 32, 32, 8)] = 1
    Image.fromarray(lab).save(tmp_path / "psax_gt.png")
    assert run_cli(["measure", str(tmp_path / "psax_gt.png"), "--label-map", "lv=1,myo=2", "-o", str(tmp_path / "r.json")]) == 1
    err = capsys.readouterr()
    out = err.out + err.err
    assert "short-axis section" in out and "apical 4-chamber" not in out and "Traceback" not in out


def _sax(r_lv):
    lab = np.zeros((8, 64, 64), np.uint8)
    for z in range(8):
        lab[z][_disk((64, 64), 32, 32, r_lv + 6)] = 2
        lab[z][_disk((64, 64), 32, 32, r_lv)] = 1
    return lab


def test_a_child_gets_no_adult_range_flags_and_is_told_so():
    from medseg.measure import measure_ed_es

    aff = np.diag([1.5, 1.5, 8.0, 1.0])
    adult = measure_ed_es(_sax(20), _sax(19), aff, "lv=1,myo=2", height_cm=175, weight_kg=70)
    assert {"lvef_low"} <= {f["code"] for f in adult["flags"]} and "adults" in next(f["message"] for f in adult["flags"] if f["code"] == "lvef_low")
    child = measure_ed_es(_sax(20), _sax(19), aff, "lv=1,myo=2", height_cm=115, weight_kg=20)
    codes = {f["code"] for f in child["flags"]}
    assert not any("reference" in f for f in child["flags"]) and "reference_ranges_not_applied" in codes
    note = next(f for f in child["flags"] if f["code"] == "reference_ranges_not_applied")
    assert note["severity"] == "info" and "lvef_low" in note["message"] and "115 cm" in note["message"]
    assert child["lv"]["ef_pct"] == adult["lv"]["ef_pct"] and child["bsa_m2"] == pytest.approx(np.sqrt(115 * 20 / 3600))
    assert "reference_ranges_not_applied" not in {f["code"] for f in measure_ed_es(_sax(20), _sax(19), aff, "lv=1,myo=2")["flags"]}


def test_a_child_echo_gets_no_adult_range_flags():
    from scipy import ndimage

    from medseg.measure import measure_echo
    from medseg.phantoms import echo_apical_phantom

    ph = echo_apical_phantom("a4c", seed=0)
    ed = ph.labels[0, 0]
    lv = ph.label_map.values["lv"]
    es = ed.copy()
    es[(ed == lv) & ~ndimage.binary_erosion(ed == lv, iterations=1)] = 0  # EF of a few %: low for an adult
    kw = {"label_map": ph.label_map, "spacing_a4c_mm": (0.3, 0.3)}
    adult = measure_echo(ed, es, height_cm=170, weight_kg=70, **kw)
    assert "lvef_low" in {f["code"] for f in adult["flags"]}
    child = measure_echo(ed, es, height_cm=110, weight_kg=18, **kw)
    assert "lvef_low" not in {f["code"] for f in child["flags"]} and "reference_ranges_not_applied" in {f["code"] for f in child["flags"]}


# -- real data (skip without ../shared/data) ---------------------------------------------------

def test_siue_coco_conversion_matches_polygons_filled_by_hand(shared_data):
    """coco_labels (which the training pack uses too) against the polygons filled one by one with
    scikit-image: the epicardium as myocardium, the LV over it, the RV outside the epicardium."""
    import json

    from skimage.draw import polygon

    from medseg.training.pack import read_siue

    d = shared_data / "siue-psax-echo"
    coco = read_coco(d / "Val_annotations.json")
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    recs = {r.volume.split("/", 1)[1]: r for r in read_siue(shared_data) if r.split == 1}
    assert len(recs) == 5
    for stem, rec in recs.items():
        im = next(i for i in coco["images"] if i["file_name"] == f"{stem}.png")
        shape = (im["height"], im["width"])
        masks = {n: np.zeros(shape, bool) for n in ("LE", "LV", "RE")}
        for a in (a for a in coco["annotations"] if a["image_id"] == im["id"]):
            segs = json.loads(a["segmentation"]) if isinstance(a["segmentation"], str) else a["segmentation"]
            for poly in segs:
                xy = np.asarray(poly, float).reshape(-1, 2)
                masks[cats[a["category_id"]]][polygon(xy[:, 1], xy[:, 0], shape)] = True
        want = np.zeros(shape, np.uint8)
        want[masks["LE"]], want[masks["LV"]], want[masks["RE"] & ~masks["LE"]] = 2, 1, 3
        lab = coco_labels(coco, f"{stem}.png", {"RE": "rv", "LE": "myo", "LV": "lv"}, "lv=1,myo=2,rv=3")
        assert np.array_equal(lab, want) and np.array_equal(rec.labels, want), stem


def test_every_hvsmr_mask_converts_with_the_hvsmr_colours(shared_data):
    masks = sorted((shared_data / "hvsmr2" / "masks").glob("*.png"))
    assert masks
    seen = set()
    for m in masks:
        lab = colour_labels(np.asarray(Image.open(m).convert("RGB")), HVSMR_COLOURS, "lv=1,rv=3,la=4,ra=5,aorta=6,pa=7", str(m))
        seen |= set(np.unique(lab).tolist())
    assert {1, 3, 4, 6, 7} <= seen


# -- evaluate: a structure the reference has none of ---------------------------------------------

def test_a_structure_drawn_where_the_reference_has_none_is_reported(tmp_path, capsys):
    """A single ventricle (or an HVSMR slice with no RV): labels with an "RV" scored Dice lv 1.000
    and nothing said of the RV drawn; now `not_in_reference` (RESULT.json, CASES.csv, console)."""
    import csv

    from medseg.cli._app import run_cli
    from medseg.io import read_volume, write_labels

    Image.fromarray((np.random.default_rng(1).random((48, 48)) * 255).astype(np.uint8)).save(tmp_path / "c1.png")
    img = read_volume(tmp_path / "c1.png")
    ref = np.zeros((48, 48), np.uint8)
    ref[_disk(ref.shape, 24, 30, 8)] = 1
    write_labels(ref, img, tmp_path / "c1_gt.png", "lv=1,rv=3")
    pred = ref.copy()
    pred[5:15, 2:12] = 3
    (tmp_path / "pred").mkdir()
    write_labels(pred, img, tmp_path / "pred" / "c1.nii.gz", "lv=1,rv=3")
    (tmp_path / "pairs.csv").write_text(f"image,label,case\n{tmp_path / 'c1.png'},{tmp_path / 'c1_gt.png'},c1\n")
    argv = ["evaluate", "--pairs", str(tmp_path / "pairs.csv"), "--predicted", str(tmp_path / "pred"), "-o", str(tmp_path / "r.json"),
            "--csv", str(tmp_path / "cases.csv")]
    assert run_cli(argv) == 0
    out = " ".join(capsys.readouterr().err.split())
    case = json.loads((tmp_path / "r.json").read_text())["cases"][0]
    assert case["dice"] == {"lv": 1.0} and case["not_in_reference"] == {"rv": 100}
    assert "drawn where the reference has none: c1 (rv 100 voxels)" in out
    assert next(csv.DictReader(open(tmp_path / "cases.csv")))["not_in_reference"] == "rv"
