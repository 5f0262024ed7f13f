"""A pixel size given in napari for images that record none (PNG, video): the measurement
panel's Pixel size field, volumes in mL, ``inputs.spacing_from``, and labels saved with it so
``medseg measure`` on them needs nothing (as ``--pixel-spacing`` on the command line)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from medseg_napari import _measure as m
from medseg_napari import _pixel_size as px
from napari_helpers import gui_ready, start_widget
from PIL import Image

from medseg.io.volume import GIVEN_SPACING
from medseg.phantoms import echo_apical_phantom

T_OUT = 120_000
needs_gui = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))


@pytest.mark.parametrize(("text", "want"), [("0.3", (0.3, 0.3)), (" 0.7, 0.5 ", (0.7, 0.5)), ("", None), ("  ", None)])
def test_parse_pixel_size(text, want):
    assert px.parse_pixel_size(text) == want


@pytest.mark.parametrize("text", ["abc", "0", "-0.3", "0.3,0.3,0.3", "nan", "inf", "0.3,", "0.3;0.3"])
def test_bad_pixel_sizes_are_one_line_value_errors(text):
    with pytest.raises(ValueError, match=r"^Pixel size must be one or two positive numbers in mm") as e:
        px.parse_pixel_size(text)
    assert "\n" not in str(e.value)


def test_a_size_is_given_replaced_and_taken_back_but_a_file_keeps_its_own():
    vol = echo_apical_phantom("a4c", n_frames=2, seed=1, spacing=None).image
    assert px.size_text(vol) == ""
    given = px.with_size(vol, (0.7, 0.5), "clip")
    assert given.spacing_known and given.spacing[1:] == pytest.approx((0.7, 0.5)) and px.size_text(given) == "0.7,0.5"
    again = px.with_size(given, (0.3, 0.3), "clip")  # a second value replaces the first, never refused as "another"
    assert again.spacing[1:] == pytest.approx((0.3, 0.3)) and px.size_text(again) == "0.3"
    back = px.with_size(again, None, "clip")
    assert not back.spacing_known and back.spacing[1:] == pytest.approx((1.0, 1.0)) and "spacing_from" not in back.meta
    own = echo_apical_phantom("a4c", n_frames=2, seed=1, spacing=0.3).image
    assert px.size_text(own) is None and px.with_size(own, (0.3, 0.3), "f") is own
    with pytest.raises(ValueError, match="records its pixel size"):
        px.with_size(own, (0.5, 0.5), "f")
    stack = echo_apical_phantom("a4c", seed=1, spacing=None).image.with_array(np.zeros((1, 3, 8, 8)))
    with pytest.raises(ValueError, match="stack of 3 slices"):
        px.with_size(stack, (0.3, 0.3), "s")


def test_a_given_size_measures_as_a_file_that_records_it():
    known = echo_apical_phantom("a4c", n_frames=6, seed=1, spacing=0.3)
    none = echo_apical_phantom("a4c", n_frames=6, seed=1, spacing=None)
    ref = m.measure_labels(known.labels, known.image, known.label_map)
    bare = m.measure_labels(none.labels, none.image, none.label_map)
    from medseg.labels import LabelMap

    digest = {"labels_sha256": m.labels_digests({"labels": none.labels})}  # the labels measured
    run = {"label_map": LabelMap.parse(none.label_map).to_string(), "settings": {**m.PANEL_SETTINGS, "clip": True}}  # as measure records
    assert np.isnan(bare["lv"]["edv_ml"]) and bare["inputs"] == {"spacing_from": None, **run, **digest}
    rep = m.measure_labels(none.labels, px.with_size(none.image, (0.3, 0.3), "clip"), none.label_map)
    assert rep["lv"]["edv_ml"] == pytest.approx(ref["lv"]["edv_ml"]) and rep["lv"]["ef_pct"] == pytest.approx(bare["lv"]["ef_pct"])
    assert rep["inputs"] == {"spacing_from": GIVEN_SPACING, **run, "settings": {**run["settings"], "pixel_spacing": [0.3, 0.3]}, **digest}
    rep6 = m.measure_labels(none.labels, px.with_size(none.image, (0.6, 0.6), "clip"), none.label_map)
    assert rep6["lv"]["edv_ml"] == pytest.approx(8 * rep["lv"]["edv_ml"], rel=1e-6)  # disks: volume as spacing cubed
    assert ("Pixel size (given)", "0.3 x 0.3", "mm") in m.summary_rows(rep)
    assert ref["inputs"]["spacing_from"] == "file" and not any(q == "Pixel size (given)" for q, _, _ in m.summary_rows(ref))


def test_labels_written_with_a_given_size_carry_it_and_measure_needs_nothing(tmp_path, capsys):
    from medseg_napari._writer import write_labels_volume

    from medseg.cli._app import run_cli
    from medseg.io import read_label_volume

    none = echo_apical_phantom("a4c", n_frames=6, seed=1, spacing=None)
    like = px.with_size(none.image, (0.3, 0.3), "clip")
    write_labels_volume(none.labels, like, tmp_path / "clip.nii.gz", none.label_map, {"tool": "test"})
    assert nib.load(tmp_path / "clip.nii.gz").header.get_zooms()[:2] == pytest.approx((0.3, 0.3))
    prov = json.loads((tmp_path / "clip.json").read_text())["provenance"]
    assert prov["spacing_from"] == GIVEN_SPACING and prov["pixel_spacing_mm"] == [0.3, 0.3] and prov["spacing_known"] is True
    assert read_label_volume(tmp_path / "clip.nii.gz").spacing_known
    code = run_cli(["measure", str(tmp_path / "clip.nii.gz"), "--clip", "-o", str(tmp_path / "r.json")])
    assert code == 0, capsys.readouterr().out
    cli = json.loads((tmp_path / "r.json").read_text())
    ref = m.measure_labels(none.labels, like, none.label_map)
    assert cli["inputs"]["spacing_from"] == f"file (segment {GIVEN_SPACING})"
    assert cli["lv"]["edv_ml"] == pytest.approx(ref["lv"]["edv_ml"], rel=1e-4)
    bare = tmp_path / "bare.nii.gz"  # without a given size: 1 mm pixels nobody measured, EF only
    write_labels_volume(none.labels, none.image, bare, none.label_map, {"tool": "test"})
    assert "spacing_from" not in json.loads((tmp_path / "bare.json").read_text())["provenance"]


# -- the panel -----------------------------------------------------------------------------
def _panel(viewer, qtbot):
    from medseg_napari._qt.measure_widget import MeasureWidget

    w = MeasureWidget(viewer)
    viewer.window.add_dock_widget(w, name="medseg: measurement", area="right")
    qtbot.wait(50)
    return w


def _measured(w, qtbot):
    w.measure()
    qtbot.waitUntil(lambda: w.measure_btn.isEnabled(), timeout=T_OUT)
    return w.report


def _png(path, a):
    Image.fromarray(np.asarray(a, np.uint8)).save(path)
    return str(path)


@pytest.mark.gui
@needs_gui
def test_the_panel_takes_a_pixel_size_for_png_labels_and_refuses_bad_ones(make_napari_viewer, qtbot, tmp_path):
    from medseg_napari._layers import META_VOLUME

    ph = echo_apical_phantom("a4c", n_frames=6, seed=1, spacing=None)
    areas = [(ph.labels[t, 0] == ph.label_map.values["lv"]).sum() for t in range(6)]
    ed, es = int(np.argmax(areas)), int(np.argmin(areas))
    viewer = make_napari_viewer()
    viewer.open(_png(tmp_path / "s_4CH_ED_gt.png", ph.labels[ed, 0]), plugin="medseg")
    viewer.open(_png(tmp_path / "s_4CH_ES_gt.png", ph.labels[es, 0]), plugin="medseg")
    w = _panel(viewer, qtbot)
    w.labels_combo.setCurrentText("s_4CH_ED_gt labels")
    w.es_combo.setCurrentText("s_4CH_ES_gt labels")
    w.label_map.setText(",".join(f"{k}={v}" for k, v in ph.label_map.values.items()))
    assert not w.pixel_size.isHidden() and w.pixel_size.text() == ""
    layer = viewer.layers["s_4CH_ED_gt labels"]
    before = layer.metadata[META_VOLUME]
    for bad in ("abc", "0", "-0.3", "0.3,0.3,0.3"):
        w.pixel_size.setText(bad)
        assert _measured(w, qtbot) is None and w.status.text().startswith("Pixel size must be one or two positive numbers")
        assert layer.metadata[META_VOLUME] is before  # nothing changed
    w.pixel_size.setText("")
    bare = _measured(w, qtbot)
    assert bare is not None, w.status.text()
    assert np.isnan(bare["lv"]["edv_ml"]) and bare["inputs"]["spacing_from"] is None
    w.pixel_size.setText("0.3")
    rep = _measured(w, qtbot)
    ref = m.measure_labels(ph.labels[ed], px.with_size(ph.image, (0.3, 0.3), "x"), ph.label_map, es_labels=ph.labels[es])
    assert rep["lv"]["edv_ml"] == pytest.approx(ref["lv"]["edv_ml"]) and rep["lv"]["edv_ml"] > 0
    assert rep["lv"]["ef_pct"] == pytest.approx(bare["lv"]["ef_pct"]) and rep["inputs"]["spacing_from"] == GIVEN_SPACING
    for name in ("s_4CH_ED_gt labels", "s_4CH_ES_gt labels"):  # kept on both layers; drawn as before (data coordinates)
        assert viewer.layers[name].metadata[META_VOLUME].meta["spacing_from"] == GIVEN_SPACING
        assert tuple(viewer.layers[name].scale) == (1.0, 1.0, 1.0, 1.0)
    w.labels_combo.setCurrentText("s_4CH_ES_gt labels")
    w.labels_combo.setCurrentText("s_4CH_ED_gt labels")
    assert w.pixel_size.text() == "0.3"  # shown again for the layer that has it


@pytest.mark.gui
@needs_gui
def test_no_field_for_labels_whose_image_records_a_spacing(make_napari_viewer, qtbot, small_cine, tmp_path):
    _, labels, _ = small_cine
    gt = np.transpose(np.asarray(labels[0], np.uint8), (2, 1, 0))  # (x, y, z) as NIfTI stores it
    nib.save(nib.Nifti1Image(gt, np.diag([1.8, 1.8, 10.0, 1.0])), tmp_path / "cine_gt.nii.gz")
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "cine_gt.nii.gz"), plugin="medseg")
    viewer.add_labels(np.asarray(labels), name="console labels")  # no file: its scale counts
    w = _panel(viewer, qtbot)
    for name in ("cine_gt labels", "console labels"):
        w.labels_combo.setCurrentText(name)
        assert w.pixel_size.isHidden() and w._form.labelForField(w.pixel_size).isHidden()


@pytest.mark.gui
@needs_gui
def test_a_session_on_a_clip_keeps_the_size_when_saved(make_napari_viewer, qtbot, model_provider, tmp_path, capsys):
    from medseg_napari._layers import META_VOLUME, image_layer_kwargs

    from medseg.cli._app import run_cli
    from medseg.types import Box

    ph = echo_apical_phantom("a4c", n_frames=2, seed=1, spacing=None)
    viewer = make_napari_viewer()
    viewer.add_image(ph.image.array, **image_layer_kwargs(ph.image, "clip"))
    seg = start_widget(viewer, qtbot, model_provider, "clip")
    lv = ph.labels[:, 0] == ph.label_map.values["lv"]
    for t in range(2):
        ys, xs = np.nonzero(lv[t])
        seg.controller.prompt("lv", t, 0, box=Box(ys.min(), xs.min(), ys.max(), xs.max()))
    seg.binding.labels.refresh()
    w = _panel(viewer, qtbot)
    w.labels_combo.setCurrentText("clip labels")
    assert not w.pixel_size.isHidden()
    w.pixel_size.setText("0.3")
    rep = _measured(w, qtbot)
    assert rep["mode"] == "echo_clip" and rep["lv"]["edv_ml"] > 0 and "0.3 x 0.3 mm given" in w.status.text()
    assert seg.controller.volume.spacing[1:] == pytest.approx((0.3, 0.3))
    assert viewer.layers["clip"].metadata[META_VOLUME].meta["spacing_from"] == GIVEN_SPACING
    assert tuple(viewer.layers["clip boxes"].scale) == tuple(viewer.layers["clip"].scale) == (1.0, 1.0, 1.0, 1.0)
    files = seg.save(tmp_path / "clip_labels.nii.gz")
    assert nib.load(files[0]).header.get_zooms()[:2] == pytest.approx((0.3, 0.3))
    assert json.loads((tmp_path / "clip_labels.json").read_text())["provenance"]["pixel_spacing_mm"] == [0.3, 0.3]
    assert run_cli(["measure", str(files[0]), "--clip", "-o", str(tmp_path / "r.json")]) == 0, capsys.readouterr().out
    cli = json.loads((tmp_path / "r.json").read_text())
    assert cli["lv"]["edv_ml"] == pytest.approx(rep["lv"]["edv_ml"], rel=1e-4)
    assert cli["inputs"]["spacing_from"] == f"file (segment {GIVEN_SPACING})"
