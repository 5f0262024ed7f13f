"""What an instructor preparing a class found (napari sample data, the three medseg docks,
``medseg demo``): a demo table that never said what "key-slice" and "auto" are nor what to do
next, a Review hint that stayed "Start a segmentation session" over a started one, "Nothing to
review" with the myocardium on one slice under a propagated LV, the basal-rule box offered for an
apical echo, tab titles cut to "Segmentation (meds…", and "Redone: 135 slices restored"."""

from __future__ import annotations

import numpy as np
import pytest
from napari_helpers import gui_ready, start_widget

T_OUT = 60_000  # ms
needs_gui = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))


# -- medseg demo: what its modes are, and what to do next -------------------------------------
def test_demo_says_what_its_modes_are_and_what_to_do_next(tmp_path, monkeypatch):
    """The demo's modes explained and two next commands, which work on what it wrote (the model
    replaced by the truth: the wording is under test, not the segmentation, tests/core/test_demo.py)."""
    import types

    import medseg.models
    import medseg.segment

    def segment_volume(vol, loaded, prompts=None, auto=False, label_map=None, **_kw):
        labels = truth[[int(np.argmin([np.abs(ph_image[t] - vol.array[0]).sum() for t in range(len(ph_image))]))]]
        return types.SimpleNamespace(labels=labels, provenance={"review": {"flags": []}, "confidence": {"slices": []}})

    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=20, n_slices=10, shape=(192, 192), spacing=(10.0, 1.5, 1.5), seed=7)
    ph_image, truth = ph.image.array, ph.labels
    monkeypatch.setattr(medseg.segment, "segment_volume", segment_volume)
    monkeypatch.setattr(medseg.models, "load_model", lambda *a, **k: types.SimpleNamespace(provenance=lambda: {"model_id": "fake"}))
    from medseg.demo import run_demo

    lines: list[str] = []
    run_demo(tmp_path / "demo", log=lines.append)
    text = "\n".join(lines)
    legend = next(line for line in lines if line.startswith("modes:"))
    assert "key-slice = one box per structure on one slice" in legend and "auto = zero-click" in legend
    assert lines.index(legend) < next(i for i, line in enumerate(lines) if line.startswith("key-slice:"))  # before the table
    assert f"python -m medseg_napari {tmp_path / 'demo' / 'cine.nii.gz'}" in text
    measure = next(line for line in lines if "medseg measure" in line).split("medseg measure", 1)[1].split()
    from typer.testing import CliRunner

    from medseg.cli import app

    res = CliRunner().invoke(app, ["measure", *measure])  # the printed command runs as printed
    assert res.exit_code == 0, res.output
    assert (tmp_path / "demo" / "report.json").is_file()


# -- review: a myocardium left on one slice under a propagated LV ------------------------------
def test_review_flags_an_lv_propagated_with_the_myocardium_on_one_slice():
    """The LV on every slice and frame, the myocardium on one slice: "Nothing to review". The
    mid-ventricular LV slices with no myocardium are now myo_not_enclosing_lv (0 %)."""
    from medseg.phantoms import cine_sax_phantom
    from medseg.review import review_segmentation

    ph = cine_sax_phantom(n_frames=4, n_slices=10, shape=(96, 96), spacing=(10.0, 1.8, 1.8), seed=7)
    lm = ph.label_map.subset(["lv", "myo", "rv"])
    lv_only = np.where(ph.labels == lm["lv"], lm["lv"], 0).astype(ph.labels.dtype)
    one = lv_only.copy()
    one[1, 5][ph.labels[1, 5] == lm["myo"]] = lm["myo"]
    flags = review_segmentation(one, ph.image.affine, lm, asked=["lv", "myo"])["flags"]
    hits = [f for f in flags if f["code"] == "myo_not_enclosing_lv"]
    assert hits and {f["frame"] for f in hits} == {1} and 5 not in {f["slice"] for f in hits}
    assert all("no myocardium around the LV cavity" in f["message"] and f["value"] == 0 for f in hits)
    full = np.where(np.isin(ph.labels, [lm["lv"], lm["myo"]]), ph.labels, 0).astype(ph.labels.dtype)
    assert not [f for f in review_segmentation(full, ph.image.affine, lm, asked=["lv", "myo"])["flags"]
                if f["code"] == "myo_not_enclosing_lv"]  # the truth: nothing new
    # an LV segmented on its own (no myocardium anywhere in the frame) is not an enclosure problem
    assert not [f for f in review_segmentation(lv_only, ph.image.affine, lm, asked=["lv"])["flags"] if f["code"] == "myo_not_enclosing_lv"]


# -- undo / redo wording ------------------------------------------------------------------------
def test_undo_and_redo_say_what_they_did():
    from medseg_napari._qt._segment_operations import step_text

    from medseg.session import Change

    ch = Change("redo", regions={(0, z): (0, 0, 1, 1) for z in range(135)})
    assert step_text("redo", ch, True) == "Redid the step (135 slices). Undo (Ctrl+Z) takes it back."
    assert step_text("undo", ch, True) == "Undid the last step (135 slices). Redo (Ctrl+Shift+Z) brings it back."
    assert step_text("undo", Change("undo"), True) == "Undid the last step (a lock change). Redo (Ctrl+Shift+Z) brings it back."
    assert step_text("redo", ch, False) == "Nothing to redo."
    assert step_text("undo", ch, False) == "Nothing to undo."
    assert step_text("undo", ch, False, dropped=3) == ("Nothing more to undo: the 3 oldest steps were let go to keep the undo history "
                                                       "under 1024 MB (MEDSEG_UNDO_MB).")


# -- napari --------------------------------------------------------------------------------------
@needs_gui
def test_review_hint_follows_the_session(make_napari_viewer, qtbot, model_provider, small_cine):
    from medseg_napari._qt.review_widget import ReviewWidget

    viewer = make_napari_viewer()
    rev = ReviewWidget(viewer)
    assert rev.summary.text() == "Open Plugins > medseg > Segmentation, start a session there, then Check."
    viewer.add_image(small_cine[0].array, name="cine")
    w = start_widget(viewer, qtbot, model_provider, "cine")
    qtbot.waitUntil(lambda: rev.summary.text() == "Check to list what needs review in 'cine'.", timeout=5_000)
    viewer.layers.remove(w.binding.labels)  # the session closed with its labels layer
    qtbot.waitUntil(lambda: rev.summary.text() == "Start a session on 'cine' in the Segmentation tab, then Check.", timeout=5_000)


@needs_gui
@pytest.mark.parametrize("shape, one_view", [((5, 1, 40, 40), True), ((40, 40), True), ((5, 40, 40), False), ((3, 5, 40, 40), False)])
def test_basal_rule_is_greyed_for_one_view(make_napari_viewer, shape, one_view):
    """An apical echo's labels (one slice: measured by disks) offered the SCMR basal rule."""
    from medseg_napari._qt.measure_widget import MeasureWidget

    viewer = make_napari_viewer()
    data = np.zeros(shape, np.uint8)
    data[..., 10:20, 10:20] = 1
    viewer.add_labels(data, name="x labels")
    w = MeasureWidget(viewer)
    assert w.labels_combo.currentText() == "x labels"
    assert w.basal_rule.isEnabled() is not one_view
    assert ("Short-axis stacks only" in w.basal_rule.toolTip()) is one_view
    w.basal_rule.setChecked(False)
    assert w._inputs()[-1]["basal_rule"] is one_view  # greyed: no basal_rule_off flag from a box the user cannot see


@needs_gui
def test_medseg_tabs_are_readable_and_still_found_by_name(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QTabBar

    viewer = make_napari_viewer(show=True)
    viewer.open_sample("medseg", "cine")
    for name in ("Segmentation", "Measurement", "Review"):
        viewer.window.add_plugin_dock_widget("medseg", name)

    def tabs():
        bars = [[b.tabText(i) for i in range(b.count())] for b in viewer.window._qt_window.findChildren(QTabBar)]
        return sorted(next((texts for texts in bars if "Review" in texts or "Review (medseg)" in texts), []))

    qtbot.waitUntil(lambda: tabs() == ["Measurement", "Review", "Segmentation"], timeout=5_000)
    # napari still finds them by their names (the Plugins menu re-opens the same dock)
    assert {"Segmentation (medseg)", "Measurement (medseg)", "Review (medseg)"} <= set(viewer.window._wrapped_dock_widgets)
    dock, _ = viewer.window.add_plugin_dock_widget("medseg", "Review")
    assert dock is viewer.window._wrapped_dock_widgets["Review (medseg)"]
