"""What a hands-on class found (File > Open Sample > medseg cine, the three medseg docks): 12
flags of which 8 were ``absent_structure`` for structures nobody segmented, the hidden truth
layer selected after opening the sample (painting offered into a layer nobody sees), Review
messages cut at the dock's edge, a Review summary kept over a restarted session, and empty
wall-thickness bullseyes with a 0-14 colour bar and nothing saying why."""

from __future__ import annotations

import numpy as np
import pytest
from napari_helpers import gui_ready, start_widget

T_OUT = 60_000  # ms
needs_gui = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))


# -- Flags: structures nobody labelled -------------------------------------------------------
@needs_gui
def test_flags_fold_the_structures_nobody_labelled(make_napari_viewer, qtbot, small_cine):
    """A session's layer names lv, myo, rv, la, ra; the class segmented the LV (every frame)
    and the myocardium (one frame): rv, la and ra gave 6 ``absent_structure`` flags and an RV
    ``ef_undefined``, one line each. They are one line now; the myocardium missing at ED and ES
    (labelled elsewhere) is still listed, and the report keeps every flag (as ``medseg measure``)."""
    from medseg_napari._layers import META_LABEL_MAP, image_layer_kwargs
    from medseg_napari._qt.measure_widget import MeasureWidget

    from medseg.labels import LabelMap

    vol, truth, _ = small_cine
    labels = np.where(truth == 1, 1, 0).astype(np.uint8)  # the LV on every frame
    labels[0][truth[0] == 2] = 2  # the myocardium on frame 0 only
    viewer = make_napari_viewer()
    image = viewer.add_image(vol.array, **image_layer_kwargs(vol, "cine"))
    session_map = LabelMap({"lv": 1, "myo": 2, "rv": 3, "la": 4, "ra": 5})
    viewer.add_labels(labels, name="cine labels", scale=image.scale, translate=image.translate,
                      metadata={META_LABEL_MAP: session_map.to_dict()})
    w = MeasureWidget(viewer)
    viewer.window.add_dock_widget(w, name="medseg: measurement")
    w.labels_combo.setCurrentText("cine labels")
    w.basal_rule.setChecked(False)
    w.measure()
    qtbot.waitUntil(lambda: w.report is not None and w.measure_btn.isEnabled(), timeout=T_OUT)
    flags = w.report["flags"]
    about = [f for f in flags if f.get("structure") in ("rv", "la", "ra")]
    assert len(about) == 7  # kept in the report
    lines = [w.flags.item(i).text() for i in range(w.flags.count())]
    assert len(lines) == len(flags) - len(about) + 1
    assert lines[-1].startswith("7 more about LA, RA, RV, labelled on no frame") and "absent_structure x6" in lines[-1]
    assert sum(line.startswith("absent_structure (structure myo") for line in lines) == 2
    assert w.tabs.tabText(2) == f"Flags ({len(flags) - 7})"


# -- Open Sample: the image selected, not the hidden truth ---------------------------------
@needs_gui
def test_open_sample_selects_the_image_not_the_hidden_truth(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open_sample("medseg", "cine")
    qtbot.waitUntil(lambda: viewer.layers.selection.active is viewer.layers["cine phantom"], timeout=5_000)
    assert list(viewer.layers.selection) == [viewer.layers["cine phantom"]]
    assert not viewer.layers["cine phantom truth"].visible
    view = viewer.window._qt_viewer.layers  # the layer list highlights the image alone
    assert [i.row() for i in view.selectionModel().selectedRows()] == [1]  # rows top down: truth 0, image 1
    viewer.open_sample("medseg", "cine")  # a second copy: its own image
    qtbot.waitUntil(lambda: viewer.layers.selection.active is viewer.layers["cine phantom [1]"], timeout=5_000)
    viewer.layers.selection.active = viewer.layers["cine phantom truth"]  # chosen by hand: kept
    assert viewer.layers.selection.active is viewer.layers["cine phantom truth"]


# -- Review: readable messages, reset on a new session --------------------------------------
@needs_gui
def test_review_message_wraps_inside_the_dock(make_napari_viewer, qtbot):
    from medseg_napari._qt.review_widget import ReviewWidget
    from medseg_napari._review import ReviewRow

    text = "frame 9, slice 2: no myocardium around the LV cavity, on a mid-ventricular slice of the stack"

    class Stub:
        rows = [ReviewRow("myo_not_enclosing_lv", "slice", text, "myo", 9, 2)]
        summary = "1 of 1 flags to review."

        def row(self, i):
            return self.rows[i]

    viewer = make_napari_viewer()
    w = ReviewWidget(viewer)
    w.resize(430, 500)
    w.show()
    w.review = Stub()
    w._fill()
    qtbot.wait(50)
    t = w.table
    assert t.horizontalScrollBar().maximum() == 0  # the Message column ends inside the dock
    assert t.rowHeight(0) > 1.5 * t.fontMetrics().height()  # wrapped over the row's lines
    assert t.item(0, 6).text() == text.removeprefix("frame 9, slice 2: ")  # the Frame and Slice columns say where
    assert t.item(0, 6).toolTip() == text


@needs_gui
def test_review_resets_when_the_session_restarts(make_napari_viewer, qtbot, model_provider, small_cine):
    from medseg_napari._layers import image_layer_kwargs
    from medseg_napari._qt.review_widget import ReviewWidget

    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    viewer.add_image(vol.array, **image_layer_kwargs(vol, "cine"))
    seg = start_widget(viewer, qtbot, model_provider, "cine")
    seg.controller.labels[...] = np.where(truth == 1, 1, 0)
    rev = ReviewWidget(viewer)
    viewer.window.add_dock_widget(rev, name="medseg: review")
    rev.check()
    qtbot.waitUntil(lambda: rev.review is not None and not seg.busy and rev.check_btn.isEnabled(), timeout=T_OUT)
    assert rev.summary.text() != rev.idle_hint()
    seg.start_session()  # restart: new labels and prompt layers, a new session
    qtbot.waitUntil(lambda: rev.review is None, timeout=T_OUT)
    qtbot.waitUntil(lambda: not seg.busy, timeout=T_OUT)
    assert rev.summary.text() == "Check to list what needs review in 'cine'."
    assert rev.table.rowCount() == 0 and not rev.sheet_btn.isEnabled()


# -- Wall thickness: an empty bullseye says why ------------------------------------------------
def test_empty_bullseye_says_why_instead_of_a_colour_scale(small_cine):
    """The LV propagated through the cine, no myocardium at ED: both bullseyes were "–" in every
    segment under a 0-14 colour bar."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from medseg_napari import _measure as m

    from medseg.labels import LabelMap

    vol, truth, _ = small_cine
    report = m.measure_labels(np.where(truth == 1, 1, 0).astype(np.uint8), vol, LabelMap({"lv": 1, "myo": 2}), basal_rule=False)
    assert m.plot_panels(report) == 3
    fig = Figure(figsize=(4, 8), dpi=80)
    FigureCanvasAgg(fig)
    m.draw_report(fig, report, columns=1)
    fig.canvas.draw()
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert f"No myocardium at ED (frame {report['ed_frame']}): no wall thickness" in texts
    assert any(t.startswith("No myocardium at ED and ES") for t in texts)
    assert len(fig.axes) == 3  # the curve and two bullseyes: no colour bar (a 0-14 scale over "–")
