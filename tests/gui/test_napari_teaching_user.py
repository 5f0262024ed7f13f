"""An instructor's walk through the napari plugin (sample data, widgets from the Plugins menu,
provoked failures): what a student saw, and the plugin's messages in the CLI's style.
Headless (``xvfb-run -a``)."""

from __future__ import annotations

import numpy as np
import pytest
from napari_helpers import gui_ready

if gui_ready():
    pytest.skip(gui_ready(), allow_module_level=True)

pytestmark = pytest.mark.gui
T_OUT = 60_000  # ms


def test_a_session_started_from_the_plugins_menu_is_bound(make_napari_viewer, qtbot, model_provider):
    """Plugins > medseg > Segmentation hands the widget napari's PublicOnlyProxy of the viewer,
    whose ``viewer.layers[name]`` is a new wrapper at each look-up: the session started (its
    layers added, "Session started ...") but was never found again, so every button stayed grey
    and no prompt was applied."""
    viewer = make_napari_viewer()
    viewer.open_sample("medseg", "cine")
    _, seg = viewer.window.add_plugin_dock_widget("medseg", "Segmentation")
    _, meas = viewer.window.add_plugin_dock_widget("medseg", "Measurement")
    _, rev = viewer.window.add_plugin_dock_widget("medseg", "Review")
    seg.models = model_provider
    seg.start_session()
    qtbot.waitUntil(lambda: not seg.busy, timeout=T_OUT)
    assert seg.controller is not None, seg.ui.status.text()
    assert seg.ui.propagate.isEnabled() and seg.ui.click_tool.isEnabled()
    assert seg.ui.start.text().startswith("Restart")
    assert rev.segment_widget is seg


def test_the_first_status_line_names_the_image_already_open(make_napari_viewer):
    """File > Open Sample, then Plugins > medseg > Segmentation: the dock read "Open an image,
    then Start session." with the sample chosen under Image."""
    viewer = make_napari_viewer()
    viewer.open_sample("medseg", "cine")
    _, seg = viewer.window.add_plugin_dock_widget("medseg", "Segmentation")
    assert seg.ui.status.text() == "'cine phantom': Start session to segment it."


def test_error_line_words_errors_as_the_cli(tmp_path):
    """The docks showed "PromptError: ...", "MeasurementError: ...": the CLI shows the message."""
    from medseg_napari._messages import error_line

    from medseg.errors import PromptError
    from medseg.measure.geometry import MeasurementError

    assert error_line(PromptError("'lv' is empty on frame 0, slice 0:\n prompt it there first")) == \
        "'lv' is empty on frame 0, slice 0: prompt it there first"
    assert error_line(MeasurementError("the label layer is empty")) == "the label layer is empty"
    assert error_line(PermissionError(13, "Permission denied", str(tmp_path / "a.csv"))) == \
        f"cannot write or read {tmp_path / 'a.csv'}: Permission denied"
    assert error_line(KeyError("x")) == "unexpected KeyError: 'x'"
    assert error_line(MemoryError()).startswith("out of memory")


def test_a_worker_failure_is_one_red_line_without_a_class_name(make_napari_viewer, qtbot, model_provider, small_cine):
    """Propagate with nothing prompted: the worker's PromptError reached the dock as
    "PromptError: 'lv' is empty ..."; now the message alone, in red and as a notification."""
    from napari_helpers import start_widget

    image, _, _ = small_cine
    viewer = make_napari_viewer()
    viewer.add_image(image.array, name="cine")
    w = start_widget(viewer, qtbot, model_provider, "cine")
    shown = []
    import medseg_napari._qt.segment_widget as sw

    orig, sw._notify = sw._notify, shown.append
    try:
        w.ui.through.setCurrentText("slices")
        w.propagate()
        qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
        qtbot.waitUntil(lambda: bool(shown), timeout=5_000)
    finally:
        sw._notify = orig
    text = w.ui.status.text()
    assert text.startswith("'lv' is empty on frame") and "Error" not in text, text
    assert "ff6b6b" in w.ui.status.styleSheet() and shown == [f"medseg: {text}"]


def test_measurement_errors_are_red_lines_and_export_failures_are_said(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    """Measuring an empty label layer said "MeasurementError: ..." in the panel's plain colour;
    an export to a folder it could not write raised out of the button (napari's traceback)."""
    from medseg_napari import _measure
    from medseg_napari._qt.measure_widget import MeasureWidget

    viewer = make_napari_viewer()
    viewer.open_sample("medseg", "cine")
    w = MeasureWidget(viewer)
    viewer.window.add_dock_widget(w, name="medseg: measurement")
    viewer.add_labels(np.zeros((2, 3, 32, 32), np.uint8), name="empty labels")
    w.labels_combo.setCurrentText("empty labels")
    w.measure()
    qtbot.waitUntil(lambda: not w._measuring, timeout=T_OUT)
    assert w.status.text().startswith("the label layer is empty") and "Error" not in w.status.text()
    assert "ff6b6b" in w.status.styleSheet()
    w.labels_combo.setCurrentText("cine phantom truth")
    w.measure()
    qtbot.waitUntil(lambda: w.report is not None, timeout=T_OUT)
    assert "ff6b6b" not in w.status.styleSheet()  # a success is not red

    def refuse(report, path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(_measure, "export_report", refuse)
    from qtpy.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "ro" / "m.csv"), ""))
    w._ask_export()
    assert w.status.text() == f"cannot write or read {tmp_path / 'ro' / 'm.csv'}: Permission denied"
    assert "ff6b6b" in w.status.styleSheet()


def test_dicom_seg_of_a_sample_says_no_question_mark():
    """Save labels… as .dcm on a sample read "this one was read as phantom (?): write .nii.gz
    instead": the "(?)" stood for a path the sample never had."""
    from medseg.errors import ImageWriteError
    from medseg.io.seg_writer import check_dicom_source
    from medseg.phantoms import sample_data_echo

    vol, _ = sample_data_echo()
    with pytest.raises(ImageWriteError) as e:
        check_dicom_source(vol)
    assert str(e.value) == "DICOM SEG needs an image read from DICOM; this one was read as phantom: write .nii.gz instead"


def test_propagating_an_echo_clip_counts_frames(make_napari_viewer, qtbot, model_provider):
    """The echo sample (one slice, 16 frames) propagated through frames said "15 slices changed"."""
    from medseg_napari._controller import box_rectangle
    from napari_helpers import start_widget

    from medseg.types import Box

    viewer = make_napari_viewer()
    image, truth = viewer.open_sample("medseg", "echo")
    w = start_widget(viewer, qtbot, model_provider, image.name)
    t, z = w.binding.current_index(viewer)
    w.binding.shapes.add_rectangles(box_rectangle(Box.from_mask(truth.data[t, z] == 1), t, z, image.ndim))
    qtbot.waitUntil(lambda: not w.busy and w.controller.labels[t, z].any(), timeout=T_OUT)
    w.ui.through.setCurrentText("frames")
    w.propagate()
    qtbot.waitUntil(lambda: not w.busy and "Propagated" in w.ui.status.text(), timeout=T_OUT)
    n = int((w.controller.labels == 1).any(axis=(1, 2, 3)).sum()) - 1
    assert w.ui.status.text() == f"Propagated LV through frames: {n} frames changed.", w.ui.status.text()


def test_python_m_medseg_napari_says_why_a_file_cannot_be_read(tmp_path, capsys):
    """``python -m medseg_napari corrupt.nii.gz`` printed the reader's UserWarning with a line of
    source code, then "error: medseg cannot read ..." without the reason; a missing file the same."""
    from medseg_napari.__main__ import main

    bad = tmp_path / "corrupt.nii.gz"
    bad.write_bytes(b"\x1f\x8b not a nifti")
    assert main([str(bad)]) == 1
    err = capsys.readouterr().err
    assert err == f"error: cannot read NIfTI file {bad}: not a NIfTI file (header not recognised)\n", err
    assert main([str(tmp_path / "none.nii.gz")]) == 1
    assert capsys.readouterr().err == f"error: no such file or folder: {tmp_path / 'none.nii.gz'}\n"


def test_a_malformed_session_action_is_shown_as_json_not_python():
    """Load session… with a prompt action lacking its 'prompt' said "..., got None" (Python's
    repr of JSON's null)."""
    from medseg.errors import PromptError
    from medseg.types import check_action

    with pytest.raises(PromptError, match=r"a prompt must be an object with a 'structure', got null$"):
        check_action({"op": "prompt", "structure": "lv", "frame": 0}, (1, 1, 8, 8), ["lv"])
    with pytest.raises(PromptError, match=r"an action must be an object with an 'op', got \[1, 2\]$"):
        check_action([1, 2], (1, 1, 8, 8), ["lv"])


def test_measuring_with_no_label_layer_says_how_to_make_one(make_napari_viewer):
    """Measure in an empty viewer said "choose a label layer to measure" over an empty list."""
    from medseg_napari._qt.measure_widget import MeasureWidget

    viewer = make_napari_viewer()
    w = MeasureWidget(viewer)
    viewer.window.add_dock_widget(w, name="medseg: measurement")
    w.measure()
    assert w.status.text().startswith("no label layer to measure: segment an image first (Plugins > medseg > Segmentation)")
    assert "ff6b6b" in w.status.styleSheet()


def test_python_m_medseg_napari_shows_the_segmentation_tab(make_napari_viewer, qtbot):
    """``python -m medseg_napari`` opened with the review tab in front ("Start a segmentation
    session, then Check." over a session already started): the segmentation dock was raised
    before Qt had built the tab bar."""
    from medseg_napari import open_study
    from qtpy.QtWidgets import QTabBar

    viewer = make_napari_viewer(show=True)
    open_study(None, viewer=viewer, start=False)
    qtbot.wait(100)
    bars = [b for b in viewer.window._qt_window.findChildren(QTabBar) if b.count() and "Review" in
            [b.tabText(i) for i in range(b.count())]]
    assert [b.tabText(b.currentIndex()) for b in bars] == ["Segmentation"]  # short tab titles: test_napari_polish42


def _front_tab(viewer, name):
    from qtpy.QtWidgets import QTabBar

    for bar in viewer.window._qt_window.findChildren(QTabBar):
        texts = [bar.tabText(i) for i in range(bar.count())]
        if name in texts:
            return bar.tabText(bar.currentIndex()), texts
    return None, []


def test_docks_opened_from_the_plugins_menu_are_tabbed(make_napari_viewer, qtbot):
    """Plugins > medseg > Segmentation, Measurement, Review stacked three docks: the measurement
    table showed two rows over a sliver of its plot, the review table none. Now the later ones
    join the first as tabs, the one just opened in front; a dock put in another area stays there."""
    from medseg_napari._qt.measure_widget import MeasureWidget

    viewer = make_napari_viewer(show=True)
    viewer.open_sample("medseg", "cine")
    viewer.window.add_plugin_dock_widget("medseg", "Segmentation")
    _, meas = viewer.window.add_plugin_dock_widget("medseg", "Measurement")
    qtbot.waitUntil(lambda: _front_tab(viewer, "Measurement")[0] == "Measurement", timeout=5_000)
    viewer.window.add_plugin_dock_widget("medseg", "Review")
    qtbot.waitUntil(lambda: _front_tab(viewer, "Review")[0] == "Review", timeout=5_000)
    assert sorted(_front_tab(viewer, "Review")[1]) == ["Measurement", "Review", "Segmentation"]  # short titles (test_napari_polish42)
    bottom = MeasureWidget(viewer)
    viewer.window.add_dock_widget(bottom, name="medseg: bottom", area="bottom")
    qtbot.wait(100)
    assert _front_tab(viewer, "medseg: bottom") == (None, [])  # not moved into the right-hand tabs


def test_the_volume_curve_names_no_structure_it_has_no_volumes_of():
    """An LV-only cine (a class's first propagation) measured in the panel: the plot's legend
    listed "RV" beside the LV, with no RV line anywhere."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from medseg.measure.plots import draw_volume_curve

    report = {"volume_curve_ml": {"lv": [90.0, 60.0, 80.0], "rv": [None, None, None]}, "ed_frame": 0, "es_frame": 1,
              "lv": {"ef_pct": 33.3}, "rv": {"ef_pct": float("nan")}}
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    draw_volume_curve(ax, report, compact=True)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["LV (EF 33%)"]
