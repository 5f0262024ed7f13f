"""The Measurement panel after its labels change, the Review dock after another image is chosen,
and what the panel's export records (review of session 52).

* The panel kept its numbers, "Measured: ..." and an enabled Export / Save study page after the
  labels measured were painted, undone or written by the session (Auto -> Measure -> Undo left
  the labels empty under "LV 342.9 mL"): now said in the status line, Export and the page greyed
  until Measure again (or the labels put back).
* After the measured layer was closed the status line still read "Measured: ..." over the
  emptied table: now it says why the table is empty.
* The Review dock kept the list of the study checked after another image was chosen in the
  segmentation dock, and Save sheet wrote it.
* The panel's JSON had no ``inputs.label_map`` / ``inputs.settings``, which ``medseg measure``
  writes (an echo export could not be read by ``medseg compare``).

Headless: ``xvfb-run -a``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from napari_helpers import gui_ready, measure_panel

pytestmark = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
T_OUT = 60_000  # ms
STALE = "changed since they were measured"


def _measured(w, qtbot):
    w.measure()
    qtbot.waitUntil(lambda: w.report is not None and not w._measuring, timeout=T_OUT)
    assert w.status.text().startswith("Measured:") and w.export_btn.isEnabled() and w.pdf_btn.isEnabled()


def _current(w) -> bool:
    return w.status.text().startswith("Measured:") and w.export_btn.isEnabled() and w.pdf_btn.isEnabled()


def _stale(w) -> bool:
    return STALE in w.status.text() and not w.export_btn.isEnabled() and not w.pdf_btn.isEnabled()


def _written(layer) -> None:
    """What the segmentation dock does after the session wrote ``layer``'s buffer in place."""
    from medseg_napari._layers import META_WRITES

    layer.metadata[META_WRITES] = layer.metadata.get(META_WRITES, 0) + 1
    layer.refresh(extent=False)


def test_slider_moves_do_not_digest_the_labels_again(make_napari_viewer, qtbot, small_cine, monkeypatch):
    """napari emits set_data on every slider move: each stop digested the whole measured cine
    (0.9 s; 2 s for a CT) on the GUI thread. Moves change none of the labels' fingerprint: no
    digest; a session write after them still marks the numbers stale."""
    import medseg_napari._measure as m

    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    w = measure_panel(viewer, vol, truth, ["cine labels"])
    layer = viewer.layers["cine labels"]
    _measured(w, qtbot)
    calls = []
    real = m.labels_digests
    monkeypatch.setattr(m, "labels_digests", lambda arrays: calls.append(1) or real(arrays))
    for z in (1, 2, 3, 0, 2):
        viewer.dims.set_current_step(1, z)
        qtbot.wait(250)
    assert calls == [] and _current(w)
    layer.data[0, 2] = 0
    _written(layer)
    qtbot.waitUntil(lambda: _stale(w), timeout=T_OUT)
    assert calls


def test_painting_napari_undo_and_writes_mark_the_numbers_stale_until_put_back(make_napari_viewer, qtbot, small_cine, tmp_path):
    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    w = measure_panel(viewer, vol, truth, ["cine labels"])
    layer = viewer.layers["cine labels"]
    _measured(w, qtbot)
    rows = w.table.rowCount()

    layer.paint((0, 3, 10, 10), 1)  # napari's brush (its own undo history)
    qtbot.waitUntil(lambda: _stale(w), timeout=T_OUT)
    assert "'cine labels'" in w.status.text() and "Measure again" in w.status.text()
    assert w.table.rowCount() == rows  # the numbers stay readable, said to be of the labels before
    with pytest.raises(ValueError, match=STALE):
        w.export(str(tmp_path / "stale.json"))
    layer.undo()  # napari's undo: the labels measured again
    qtbot.waitUntil(lambda: _current(w), timeout=T_OUT)

    before = layer.data[0, 3].copy()  # as the segmentation dock writes: in place, its write count, then refresh
    layer.data[0, 3] = 0
    _written(layer)
    qtbot.waitUntil(lambda: _stale(w), timeout=T_OUT)
    layer.data[0, 3] = before
    _written(layer)
    qtbot.waitUntil(lambda: _current(w), timeout=T_OUT)

    layer.visible = False  # a hidden layer says nothing of a write: checked when shown again
    layer.data[1, 2] = 0
    _written(layer)
    layer.visible = True
    qtbot.waitUntil(lambda: _stale(w), timeout=T_OUT)
    _measured(w, qtbot)  # measured again: current, exportable
    w.export(str(tmp_path / "now.json"))
    assert json.loads((tmp_path / "now.json").read_text())["inputs"]["labels_sha256"]["labels"]


def test_the_status_says_why_the_table_was_emptied(make_napari_viewer, qtbot, small_cine):
    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    w = measure_panel(viewer, vol, truth, ["other", "cine labels"])
    _measured(w, qtbot)
    w.labels_combo.setCurrentText("other")
    assert w.table.rowCount() == 0 and "Measured" not in w.status.text() and w.status.text().startswith("Other labels chosen")
    _measured(w, qtbot)
    viewer.layers.remove(viewer.layers["other"])
    assert w.table.rowCount() == 0 and not w.export_btn.isEnabled()
    assert w.status.text().startswith("The label layer 'other' measured was closed: its numbers were cleared.")
    assert "'cine labels' is chosen under Labels" in w.status.text()


def test_undo_in_the_session_marks_the_numbers_stale(make_napari_viewer, qtbot, model_provider, small_cine):
    """The review's worst case: the session's Undo emptied the labels measured."""
    from medseg_napari._controller import box_rectangle
    from medseg_napari._qt.measure_widget import MeasureWidget
    from napari_helpers import start_widget

    from medseg.types import Box

    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    viewer.add_image(vol.array, name="cine", scale=(1.0, *vol.spacing))
    seg = start_widget(viewer, qtbot, model_provider, "cine", T_OUT)
    viewer.dims.current_step = (0, 3, *viewer.dims.current_step[2:])
    qtbot.waitUntil(lambda: not seg.busy and not seg.controller.needs_embedding(0, 3), timeout=T_OUT)
    seg.binding.shapes.add_rectangles(box_rectangle(Box.from_mask(truth[0, 3] == 1), 0, 3, 4))
    qtbot.waitUntil(lambda: not seg.busy and (seg.binding.labels.data[0, 3] == 1).any(), timeout=T_OUT)
    w = MeasureWidget(viewer)
    viewer.window.add_dock_widget(w, name="medseg: measurement")
    assert w.labels_combo.currentText() == "cine labels"
    _measured(w, qtbot)
    seg.ui.undo.click()
    assert not seg.binding.labels.data.any()
    qtbot.waitUntil(lambda: _stale(w), timeout=T_OUT)
    seg.ui.redo.click()
    qtbot.waitUntil(lambda: _current(w), timeout=T_OUT)


def test_the_review_list_follows_the_image_chosen(make_napari_viewer, qtbot, model_provider, small_cine, tmp_path):
    from medseg_napari._controller import box_rectangle
    from medseg_napari._qt.review_widget import ReviewWidget
    from napari_helpers import start_widget

    from medseg.types import Box

    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    viewer.add_image(vol.array[:1], name="cine", scale=(1.0, *vol.spacing))
    viewer.add_image(np.zeros((1, 1, 64, 64), np.float32), name="echo")
    seg = start_widget(viewer, qtbot, model_provider, "cine", T_OUT)
    rev = ReviewWidget(viewer, seg)
    viewer.window.add_dock_widget(rev, name="medseg: review")
    viewer.dims.current_step = (0, 3, *viewer.dims.current_step[2:])
    qtbot.waitUntil(lambda: not seg.busy and not seg.controller.needs_embedding(0, 3), timeout=T_OUT)
    seg.binding.shapes.add_rectangles(box_rectangle(Box.from_mask(truth[0, 3] == 1), 0, 3, 4))
    qtbot.waitUntil(lambda: not seg.busy and (seg.binding.labels.data[0, 3] == 1).any(), timeout=T_OUT)
    seg.select_structure("myo")  # boxed on the RV: a myocardium not around the LV, flagged
    seg.binding.shapes.add_rectangles(box_rectangle(Box.from_mask(truth[0, 3] == 3), 0, 3, 4))
    qtbot.waitUntil(lambda: not seg.busy and (seg.binding.labels.data[0, 3] == 2).any(), timeout=T_OUT)
    rev.check()
    qtbot.waitUntil(lambda: rev.review is not None and not seg.busy, timeout=T_OUT)
    rows, summary = rev.table.rowCount(), rev.summary.text()
    assert rows > 0 and rev.sheet_btn.isEnabled()

    seg.ui.image.setCurrentText("echo")  # no session there: not its list
    assert rev.table.rowCount() == 0 and not rev.sheet_btn.isEnabled() and not rev.mark_btn.isEnabled()
    assert rev.summary.text().startswith("The list is of 'cine': choose it under Image")
    rev.save_sheet(str(tmp_path / "sheet.png"))
    assert not (tmp_path / "sheet.png").exists() and "not of the image chosen" in rev.status.text()

    seg.ui.image.setCurrentText("cine")  # back: the same list, kept
    assert rev.table.rowCount() == rows and rev.summary.text() == summary and rev.sheet_btn.isEnabled()
    rev.save_sheet(str(tmp_path / "sheet.png"))
    assert (tmp_path / "sheet.png").exists()


def test_the_export_records_the_label_map_and_settings_as_medseg_measure(tmp_path, capsys):
    from medseg_napari import _measure as m
    from medseg_napari._writer import write_labels_volume

    from medseg.cli._app import run_cli
    from medseg.measure.compare import read_visits
    from medseg.phantoms import cine_sax_phantom, echo_apical_phantom

    cine = cine_sax_phantom(n_frames=4, n_slices=7, shape=(96, 96), spacing=(10.0, 1.8, 1.8), seed=3)
    echo = echo_apical_phantom("a4c", n_frames=6, seed=1, spacing=0.3)
    for name, ph, extra, opts in (("cine", cine, [], {}), ("nobase", cine, ["--no-basal-rule"], {"basal_rule": False}),
                                  ("clip", echo, ["--clip"], {})):
        write_labels_volume(ph.labels, ph.image, tmp_path / f"{name}.nii.gz", ph.label_map, {"tool": "test"})
        report = tmp_path / f"{name}_report.json"  # not {name}.json: the labels' sidecar
        assert run_cli(["measure", str(tmp_path / f"{name}.nii.gz"), *extra, "-o", str(report)]) == 0, capsys.readouterr().out
        cli = json.loads(report.read_text())["inputs"]
        panel = m.measure_labels(ph.labels, ph.image, m.in_use(ph.label_map, np.unique(ph.labels)), **opts)
        assert panel["inputs"]["settings"] == cli["settings"], name
        assert panel["inputs"]["label_map"] == cli["label_map"], name
        out = m.export_report(panel, tmp_path / f"panel_{name}.json")
        assert read_visits(out)[0][0].settings == {k: v for k, v in cli["settings"].items() if "spacing" not in k}
