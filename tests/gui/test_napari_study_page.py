"""The measurement dock's "Save study page (PDF)…": the one-page A4 PDF of ``medseg measure
--pdf`` of what the panel measured, through a (patched) file dialog, in a worker, atomically.
Headless (``xvfb-run -a``)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from napari_helpers import gui_ready

if gui_ready():
    pytest.skip(gui_ready(), allow_module_level=True)

pytestmark = pytest.mark.gui
T_OUT = 60_000  # ms


@pytest.fixture
def measured(make_napari_viewer, qtbot, monkeypatch):
    """A measurement dock over the cine sample, its truth labels measured; (widget, notifications)."""
    import medseg_napari._qt._measure_pdf as mp
    from medseg_napari._qt.measure_widget import MeasureWidget

    viewer = make_napari_viewer()
    viewer.open_sample("medseg", "cine")
    w = MeasureWidget(viewer)
    viewer.window.add_dock_widget(w, name="medseg: measurement")
    shown: list[tuple[str, bool]] = []
    monkeypatch.setattr(mp, "_notify", lambda text, error=False: shown.append((text, error)))
    w.labels_combo.setCurrentText("cine phantom truth")
    w.height_cm.setValue(180)
    w.weight_kg.setValue(80)
    assert not w.pdf_btn.isEnabled()  # nothing measured yet
    w.measure()
    qtbot.waitUntil(lambda: w.report is not None, timeout=T_OUT)
    return w, shown


def _table(w) -> dict[str, str]:
    return {w.table.item(r, 0).text(): w.table.item(r, 1).text() for r in range(w.table.rowCount())}


def test_study_page_button_writes_the_panels_numbers_on_one_page(measured, qtbot, monkeypatch, tmp_path):
    from matplotlib.figure import Figure
    from qtpy.QtWidgets import QFileDialog

    from medseg.measure import study_pdf

    w, shown = measured
    assert w.pdf_btn.isEnabled() and w.pdf_btn.text() == "Save study page (PDF)…"
    pages: list[Figure] = []
    real = study_pdf.study_page
    monkeypatch.setattr(study_pdf, "study_page", lambda *a, **kw: pages.append(real(*a, **kw)) or pages[-1])
    asked = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (asked.append(a[2]) or str(tmp_path / "page"), ""))
    w.pdf_btn.click()
    assert not w.pdf_btn.isEnabled()  # while the worker writes
    qtbot.waitUntil(lambda: bool(shown), timeout=T_OUT)
    out = tmp_path / "page.pdf"  # the extension added
    assert shown == [(f"medseg: study page saved: {out}", False)] and w.status.text() == f"Study page saved: {out}"
    assert asked == ["cine phantom_study.pdf"]  # proposed after the image layer
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", data)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.pdf"]  # no temporary left
    qtbot.waitUntil(w.pdf_btn.isEnabled, timeout=5_000)
    text = " | ".join(study_pdf.page_text(pages[0]))
    table = _table(w)
    assert "Cardiac measurements: cine phantom" in text
    for name in ("LV EF", "LV EDV", "LV ESV", "LV mass"):  # the panel's numbers, as the panel shows them
        assert table[name] in text, (name, table[name])
    assert "height 180 cm, weight 80 kg" in text
    assert "labels not made by a medseg model" in text  # truth labels: no model claimed
    assert any(a.get_title().startswith("ED") for a in pages[0].axes)  # the contour panels, over the image
    assert any(a.images for a in pages[0].axes if a.get_title().startswith("ED"))
    w.measure()  # measuring again: the report shown is not that of the labels now measured
    assert not w.pdf_btn.isEnabled()
    qtbot.waitUntil(lambda: not w._measuring, timeout=T_OUT)
    assert w.report is not None and w.pdf_btn.isEnabled()
    w.basal_rule.setChecked(False)
    assert not w.pdf_btn.isEnabled()  # another choice: its numbers are gone, and the page with them


def test_study_page_failure_is_one_notification_and_no_file(measured, qtbot, monkeypatch, tmp_path):
    from matplotlib.figure import Figure

    w, shown = measured
    real = Figure.savefig

    def full_disk(self, fname, *a, **k):
        real(self, fname, *a, **k)  # half the work done: the temporary file exists
        raise OSError(28, "No space left on device", str(fname))

    monkeypatch.setattr(Figure, "savefig", full_disk)
    target = tmp_path / "study.pdf"
    w.save_study_page(str(target))
    qtbot.waitUntil(lambda: bool(shown), timeout=T_OUT)
    (text, error), = shown
    assert error and text.startswith("medseg: Could not save the study page: ") and "\n" not in text
    assert text == f"medseg: Could not save the study page: cannot write or read {target}: No space left on device"
    assert not target.exists() and list(tmp_path.iterdir()) == []  # nothing half-written
    assert "ff6b6b" in w.status.styleSheet()
    qtbot.waitUntil(w.pdf_btn.isEnabled, timeout=5_000)  # ready to try again
    shown.clear()
    w.save_study_page(str(tmp_path / "study.png"))  # not a PDF: refused, said
    qtbot.waitUntil(lambda: bool(shown), timeout=T_OUT)
    assert shown == [("medseg: Could not save the study page: study.png: the study page is a PDF: name it .pdf", True)]
    assert list(tmp_path.iterdir()) == []


def test_study_page_of_session_labels_names_the_model_and_the_checked_confidence(make_napari_viewer, qtbot, model_provider, monkeypatch, tmp_path):
    """Labels of a medseg session: the page says the session's model (and adapter) and the
    confidences of the Review dock's check of those labels, as a sidecar's provenance would."""
    import medseg_napari._qt._measure_pdf as mp
    from medseg_napari._qt.measure_widget import MeasureWidget
    from medseg_napari._qt.review_widget import ReviewWidget
    from medseg_napari._review import ReviewList
    from napari_helpers import start_widget

    from medseg.measure import study_pdf

    viewer = make_napari_viewer()
    viewer.open_sample("medseg", "cine")
    seg = start_widget(viewer, qtbot, model_provider, "cine phantom")
    b = seg.binding
    truth = np.asarray(viewer.layers["cine phantom truth"].data)
    b.labels.data[0] = truth[0]  # one phase, as if segmented
    assert np.array_equal(b.controller.session.labels[0], truth[0])
    rev = ReviewWidget(viewer, seg)
    viewer.window.add_dock_widget(rev, name="medseg: review")
    rev.review = ReviewList(b.controller.session)
    rev.review.check()
    w = MeasureWidget(viewer)
    viewer.window.add_dock_widget(w, name="medseg: measurement")
    w.labels_combo.setCurrentText(b.labels.name)
    w.measure()
    qtbot.waitUntil(lambda: w.report is not None, timeout=T_OUT)
    shown, pages = [], []
    monkeypatch.setattr(mp, "_notify", lambda text, error=False: shown.append((text, error)))
    real = study_pdf.study_page
    monkeypatch.setattr(study_pdf, "study_page", lambda *a, **kw: pages.append(real(*a, **kw)) or pages[-1])
    w.save_study_page(str(tmp_path / "s.pdf"))
    qtbot.waitUntil(lambda: bool(shown), timeout=T_OUT)
    assert shown[0][1] is False and (tmp_path / "s.pdf").is_file()
    text = " | ".join(study_pdf.page_text(pages[0]))
    model = b.controller.session.model
    assert f"Segmentation: model {model.model_id} (no adapter)" in text
    lv = rev.review.volume_confidence["lv"]
    assert f"Confidence, labels: LV {lv:.2f}" in text
    # edited after the check: its confidences are no longer of these labels and are left out
    b.labels.data[0, 3][b.labels.data[0, 3] == 1] = 0
    w.measure()
    qtbot.waitUntil(lambda: w.report is not None and not w._measuring, timeout=T_OUT)
    shown.clear()
    w.save_study_page(str(tmp_path / "s2.pdf"))
    qtbot.waitUntil(lambda: bool(shown), timeout=T_OUT)
    text = " | ".join(study_pdf.page_text(pages[-1]))
    assert f"Segmentation: model {model.model_id}" in text and "Confidence, labels" not in text
