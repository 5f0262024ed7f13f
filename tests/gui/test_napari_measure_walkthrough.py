"""What a scripted session of the measurement and review panels found (ACDC ED/ES ``_gt``
files with and without a label map, M&Ms-2 long-axis and CAMUS apical pairs, the cine and echo
samples, a dock at its minimum width; under xvfb): the Unit column pushed out of view, spin
boxes squeezed by napari's style sheet, a typed label map that left the layers in other colours
and unnamed, a result shown for a layer removed while it was measured, an empty plot for an
apical pair without pixel spacing, flags for structures medseg's map names but the labels never
held, and a Check with no count. Widget tests run headless (``xvfb-run -a``)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from medseg_napari import _measure as m
from napari_helpers import gui_ready

from medseg.labels import DEFAULT_LABEL_MAP, LabelMap

ACDC = "lv=3,myo=2,rv=1"
T_OUT = 60_000  # ms


def _panel(viewer, qtbot, width: int | None = None):
    from medseg_napari._qt.measure_widget import MeasureWidget

    w = MeasureWidget(viewer)
    dock = viewer.window.add_dock_widget(w, name="medseg: measurement", area="right")
    if width is not None:
        from qtpy.QtCore import Qt

        viewer.window._qt_window.resizeDocks([dock], [width], Qt.Orientation.Horizontal)
    qtbot.wait(100)
    return w


def _measured(w, qtbot) -> None:
    w.measure()
    qtbot.waitUntil(lambda: w.measure_btn.isEnabled(), timeout=T_OUT)
    qtbot.wait(50)


def _echo_clip_report() -> dict:
    from medseg.phantoms import echo_apical_phantom

    ph = echo_apical_phantom("a4c", n_frames=6, seed=1)
    return m.measure_labels(ph.labels, ph.image, ph.label_map)


# -- the measurement panel -------------------------------------------------------------------
@pytest.mark.gui
@pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
@pytest.mark.parametrize("width", [10, 520])  # the dock at its minimum width, and a usual one
def test_the_unit_column_stays_in_view_beside_a_long_method(make_napari_viewer, qtbot, width):
    """An echo clip's Method ("single-plane method of disks, one view over the cycle") sized the
    Value column to its text: the Unit column lay beyond the table's right edge."""
    viewer = make_napari_viewer(show=True)
    w = _panel(viewer, qtbot, width)
    w.show_report(_echo_clip_report())
    qtbot.wait(100)
    t = w.table
    assert t.columnViewportPosition(2) + t.columnWidth(2) <= t.viewport().width()
    assert not t.horizontalScrollBar().isVisible()
    method = next(r for r in range(t.rowCount()) if t.item(r, 0).text() == "Method")
    one_line = t.fontMetrics().horizontalAdvance(t.item(method, 1).text()) < t.columnWidth(1) - 6
    assert one_line or t.rowHeight(method) > t.rowHeight(0)  # wrapped, not cut


@pytest.mark.gui
@pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
def test_napari_style_squeezes_no_unit_spin_box(make_napari_viewer, qtbot):
    """napari's style sheet gives spin boxes a minimum width (70 px + padding) that layouts take
    over the size hint: at the dock's minimum width "175 cm" showed as "175 c"."""
    viewer = make_napari_viewer(show=True)
    w = _panel(viewer, qtbot, 10)
    for spin in (w.height_cm, w.weight_kg, w.heart_rate):
        assert spin.width() >= spin.sizeHint().width()


@pytest.mark.gui
@pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
def test_a_typed_label_map_colours_and_names_the_layers(make_napari_viewer, qtbot, small_cine):
    """ACDC's ``_gt`` files open without structure names: measured with a typed label map, both
    layers take its structures' colours (LV red, not RV) and names ("structure: lv" in napari's
    status bar); left empty, the status line says medseg's values were taken."""
    from medseg_napari._layers import colour_for, layer_geometry

    vol, truth, _ = small_cine
    ed, es = 0, int(np.argmin([(truth[t] == 1).sum() for t in range(truth.shape[0])]))
    acdc = [LabelMap.parse("lv=1,myo=2,rv=3").remap(truth[t], LabelMap.parse(ACDC))[None] for t in (ed, es)]
    viewer = make_napari_viewer(show=True)
    layers = [viewer.add_labels(a, name=f"{n}_gt labels", **layer_geometry(vol)) for a, n in zip(acdc, ("ed", "es"))]
    viewer.add_labels(truth[ed][None], name="medseg_values_gt labels", **layer_geometry(vol))
    w = _panel(viewer, qtbot)
    w.labels_combo.setCurrentText("medseg_values_gt labels")
    _measured(w, qtbot)  # measured, and said with which values, as `medseg measure` notes
    assert w.report is not None and "name no structures: read with medseg's values (lv=1,myo=2,rv=3)" in w.status.text()
    w.labels_combo.setCurrentText("ed_gt labels")
    w.es_combo.setCurrentText("es_gt labels")
    w.label_map.setText(ACDC)
    _measured(w, qtbot)
    assert w.report is not None and w.status.text() == "Measured: ED + ES layers."
    for layer in layers:
        assert np.allclose(layer.colormap.map(np.array([3]))[0], to_rgba(colour_for("lv")))
        assert np.allclose(layer.colormap.map(np.array([1]))[0], to_rgba(colour_for("rv")))
        names = dict(zip(layer.features["index"], layer.features["structure"]))
        assert names[3] == "lv" and names[2] == "myo" and names[1] == "rv"


@pytest.mark.gui
@pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
def test_a_layer_removed_while_measured_shows_no_result(make_napari_viewer, qtbot, small_cine):
    """The report of a label layer removed while its measurement ran was shown when the worker
    returned, beside a Labels choice that no longer named it, and could be exported."""
    from medseg_napari._layers import layer_geometry

    vol, truth, _ = small_cine
    viewer = make_napari_viewer(show=True)
    viewer.add_labels(truth, name="cine labels", **layer_geometry(vol))
    w = _panel(viewer, qtbot)
    w.measure()
    viewer.layers.remove("cine labels")
    qtbot.waitUntil(lambda: w.measure_btn.isEnabled(), timeout=T_OUT)
    qtbot.wait(50)
    assert w.report is None and w.table.rowCount() == 0 and not w.export_btn.isEnabled()
    assert "dropped" in w.status.text()


@pytest.mark.gui
@pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
def test_another_pixel_size_is_said_in_mm(make_napari_viewer, qtbot, small_cine):
    """The refusal wrote numpy's repr: "((np.float64(1.484), np.float64(1.484)) vs ...) mm"."""
    vol, truth, _ = small_cine
    viewer = make_napari_viewer(show=True)
    viewer.add_labels(truth[:1], name="ed labels", scale=(1, 10, 1.8, 1.8))
    viewer.add_labels(truth[1:2], name="es labels", scale=(1, 10, 1.5, 1.5))
    w = _panel(viewer, qtbot)
    w.labels_combo.setCurrentText("ed labels")
    w.es_combo.setCurrentText("es labels")
    w.measure()
    assert "(1.5 x 1.5 vs 1.8 x 1.8 mm)" in w.status.text() and "np." not in w.status.text()


def test_an_apical_pair_without_pixel_spacing_draws_bars_in_percent_of_edv():
    """A CAMUS ED + ES pair (PNG, no pixel spacing) drew an empty "volume (mL)" plot: its bars
    are ED 100 % and ES 100 - EF %, as a clip's curve is drawn in % of EDV."""
    from medseg.phantoms import echo_apical_phantom

    ph = echo_apical_phantom("a4c", n_frames=8, seed=1, spacing=None)
    clip = m.measure_labels(ph.labels, ph.image, ph.label_map)
    rep = m.measure_labels(ph.labels[clip["ed_frame"]], ph.image, ph.label_map, es_labels=ph.labels[clip["es_frame"]])
    fig = Figure()
    m.draw_report(fig, rep)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert ax.get_ylabel() == "volume (% of EDV)"
    assert heights == pytest.approx([100.0, 100.0 - rep["lv"]["ef_pct"]])
    assert np.isnan(rep["lv"]["edv_ml"])  # the report itself keeps no volume


def test_medseg_map_is_cut_to_the_structures_held_as_medseg_measure_does(small_cine):
    """The cine sample's truth (medseg's map, lv..pa) measured in the panel gave 8
    absent_structure flags (LA, RA, aorta, PA at ED and ES) that ``medseg measure`` on the same
    labels does not give."""
    from types import SimpleNamespace

    from medseg_napari._layers import META_LABEL_MAP
    from medseg_napari._scripting import measure_layer

    vol, truth, _ = small_cine
    assert m.in_use(DEFAULT_LABEL_MAP, np.unique(truth)).names == ["lv", "myo", "rv"]
    own = LabelMap.parse("lv=1,myo=2,rv=3,la=4")
    assert m.in_use(own, [0, 1, 2, 3]) is own  # a map the labels name is measured as it is
    layer = SimpleNamespace(data=truth, scale=None, translate=None, metadata={META_LABEL_MAP: DEFAULT_LABEL_MAP.to_dict()})
    codes = [f["code"] for f in measure_layer(layer)["flags"]]
    assert "absent_structure" not in codes


# -- the review panel ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def prompted(loaded_model):
    """A session on a 1-frame, 4-slice phantom with one box per structure and slice."""
    from medseg.phantoms import cine_sax_phantom
    from medseg.session import Session
    from medseg.types import Box, SlicePrompt

    ph = cine_sax_phantom(n_frames=1, n_slices=4, shape=(96, 96), seed=3)
    s = Session(ph.image, loaded_model)
    for name, value in (("lv", 1), ("myo", 2), ("rv", 3)):
        for z in range(ph.labels.shape[1]):
            mask = ph.labels[0, z] == value
            if mask.sum() > 3:
                s.apply_prompt(SlicePrompt(name, 0, z, box=Box.from_mask(mask)))
    return ph, s


def test_check_counts_the_slices_it_scores(prompted):
    """Check's progress bar had no count: the check reports (slices scored, slices to score)."""
    from medseg_napari._review import ReviewList

    _, session = prompted
    review = ReviewList(session)
    calls: list[tuple[int, int]] = []
    rows = review.check(lambda done, total: calls.append((done, total)))
    total = review.slices_to_score()
    assert total > 0 and calls == [(k, total) for k in range(1, total + 1)]
    assert "parallel_map" not in vars(session)  # the session is left as it was
    assert rows == ReviewList(session).check()


@pytest.mark.gui
@pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
def test_the_check_progress_bar_has_a_count(make_napari_viewer, qtbot, model_provider, prompted, monkeypatch):
    from medseg_napari._layers import image_layer_kwargs
    from medseg_napari._qt.review_widget import ReviewWidget
    from napari._qt import qthreading
    from napari_helpers import start_widget

    bars = []

    class Recorded(qthreading.progress):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            bars.append(self)

    monkeypatch.setattr(qthreading, "progress", Recorded)
    ph, _ = prompted
    viewer = make_napari_viewer()
    viewer.add_image(ph.image.array, **image_layer_kwargs(ph.image, "phantom"))
    seg = start_widget(viewer, qtbot, model_provider, "phantom")
    seg.controller.labels[...] = ph.labels
    w = ReviewWidget(viewer, seg)
    viewer.window.add_dock_widget(w, name="medseg: review")
    w.check_btn.click()
    qtbot.waitUntil(lambda: w.review is not None and not seg.busy, timeout=T_OUT)
    bar = next(b for b in bars if b.desc == "medseg: checking the segmentation")
    assert bar.total == w.review.slices_to_score() > 0 and bar.n == bar.total


def test_apical_layers_named_for_other_views_are_refused():
    """CAMUS's 4CH_ED_gt beside its 2CH_ES_gt measured a plausible EF (22 % for a 26 % biplane)."""
    assert m.echo_names_problem("patient0451_4CH_ED_gt", "patient0451_4CH_ES_gt") is None
    assert m.echo_names_problem("p1_4CH_ED labels", "es labels") is None  # names that say nothing
    assert "2-chamber one: measure ED and ES of one view" in m.echo_names_problem("p1_4CH_ED_gt", "p1_2CH_ES_gt")
    assert "named the 4-chamber ES view, but is measured as ED" in m.echo_names_problem("p1_4CH_ES labels", "p1_4CH_ED labels")
    assert "different studies (p1, p2)" in m.echo_names_problem("p1_4CH_ED_gt", "p2_4CH_ES_gt")


@pytest.mark.gui
@pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
def test_the_panel_refuses_a_4ch_ed_with_a_2ch_es(make_napari_viewer, qtbot):
    from medseg.phantoms import echo_apical_phantom

    a4c, a2c = (echo_apical_phantom(v, n_frames=8, seed=1, spacing=None) for v in ("a4c", "a2c"))
    viewer = make_napari_viewer(show=True)
    viewer.add_labels(a4c.labels[0], name="p1_4CH_ED_gt")
    viewer.add_labels(a2c.labels[4], name="p1_2CH_ES_gt")
    viewer.add_labels(a4c.labels[4], name="p1_4CH_ES_gt")
    w = _panel(viewer, qtbot)
    w.labels_combo.setCurrentText("p1_4CH_ED_gt")
    w.es_combo.setCurrentText("p1_2CH_ES_gt")
    w.measure()
    assert "measure ED and ES of one view" in w.status.text() and w.report is None
    w.es_combo.setCurrentText("p1_4CH_ES_gt")
    _measured(w, qtbot)
    assert w.report is not None and w.report["mode"] == "echo"
