"""The measurement dock's "Save study page (PDF)…": the one-page A4 study of ``medseg measure
--pdf`` (:mod:`medseg_napari._study_page`) of what the panel measured.

A mixin of :class:`medseg_napari._qt.measure_widget.MeasureWidget`: the labels measured are kept
with their report (:meth:`_keep_measured`, at Measure), the images under the contours, the
session's model and the Review dock's confidences are gathered on the main thread when saving,
and the page (some 2 s) is drawn and written in a worker, atomically. The outcome is said in
the status line and as one napari notification.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtWidgets import QFileDialog, QPushButton

from .. import _study_page as sp
from .._layers import as_4d
from .._messages import error_line

PDF_TIP = "Write what is measured on one A4 page (numbers, normal ranges, plots, contours, QC), as medseg measure --pdf"


def _notify(text: str, error: bool = False) -> None:
    """napari's notification of a save: one line, no traceback."""
    from napari.utils.notifications import show_info, show_warning

    (show_warning if error else show_info)(text)


class StudyPageMixin:
    """The study page button and its save; the widget keeps ``report``, ``viewer`` and ``_say``."""

    report: dict[str, Any] | None
    viewer: Any
    _measured: sp.Measured | None = None  # of the report shown
    _next_measured: sp.Measured | None = None  # of the measurement running
    _saving_page = False

    def _pdf_button(self) -> QPushButton:
        self.pdf_btn = QPushButton("Save study page (PDF)…")
        self.pdf_btn.setEnabled(False)
        self.pdf_btn.setToolTip(PDF_TIP)
        self.pdf_btn.clicked.connect(lambda: self.save_study_page())
        return self.pdf_btn

    def _pdf_ready(self) -> None:
        """The button enabled while a report is shown, of the labels the layers hold
        (:mod:`medseg_napari._qt._measure_stale`), and no page is being written."""
        self.pdf_btn.setEnabled(self.report is not None and self._measured is not None and not self._saving_page
                                and not getattr(self, "_stale", False))

    def _keep_measured(self, data: np.ndarray, es: np.ndarray | None, lmap: Any, like: Any, opts: dict[str, Any]) -> None:
        """Keep what Measure measures (the worker's copies, the layers measured) for the page of
        its report (:meth:`_pdf_shown`); the report shown until then is no longer paged."""
        layers = self.viewer.layers
        name, es_name = self.labels_combo.currentText(), self.es_combo.currentText()
        keys = {"ed": layers[name], "es": layers[es_name]} if es is not None else {"labels": layers[name]}
        modality = getattr(like, "modality", None)
        body = {"height_cm": opts.get("height_cm") or None, "weight_kg": opts.get("weight_kg") or None, "sex": opts.get("sex")}
        self._next_measured = sp.Measured(data, es, lmap, keys, modality if modality in ("MR", "CT", "US") else None, body)
        self._measured = None
        self._pdf_ready()

    def _pdf_shown(self) -> None:
        """The measurement's report is shown: its page can be saved."""
        self._measured, self._next_measured = self._next_measured, None
        self._pdf_ready()

    def save_study_page(self, path: str | None = None) -> None:
        """Write the study page of the report shown to ``path`` (asked for when None), in a worker."""
        from ._workers import start_worker

        if self.report is None or self._measured is None or self._saving_page:
            return
        problem = self.export_problem()  # measuring again, or the labels changed since (_measure_export)
        if problem:
            self._page_failed(ValueError(problem))
            return
        try:
            page = self._page_inputs()
        except (ValueError, RuntimeError) as e:  # a layer gone with its data: said, not raised
            self._page_failed(e)
            return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save study page", f"{page['case']}_study.pdf", "PDF (*.pdf)")
            if not path:
                return
        report = page.pop("report")
        self._saving_page = True
        self._pdf_ready()
        self._say("Writing the study page…")
        self._page_worker = start_worker(sp.write_page, report, path, progress={"desc": "medseg: writing the study page"}, **page,
                                         on_done=self._page_saved, on_error=self._page_failed, on_finished=self._page_finished)

    def _page_saved(self, path: Any) -> None:
        self._say(f"Study page saved: {path}")
        _notify(f"medseg: study page saved: {path}")

    def _page_failed(self, e: BaseException) -> None:
        text = f"Could not save the study page: {error_line(e)}"
        self._say(text, error=True)
        _notify(f"medseg: {text}", error=True)

    def _page_finished(self) -> None:
        self._saving_page = False
        self._page_worker = None
        self._pdf_ready()

    def _page_inputs(self) -> dict[str, Any]:
        """``write_study_pdf``'s keywords (and ``report``): the contours, the image slices under
        them, the case, and for a medseg session's labels its model and current confidences."""
        m, report = self._measured, self.report
        labels, frames = sp.phases(report, m)
        bound = self._bindings(m)
        key_of = {"ED": "ed", "ES": "es"} if m.es is not None else {}
        images: dict[str, np.ndarray] = {}
        for phase, lab in labels.items():
            key = key_of.get(phase, "labels")
            img = sp.image_phase(self._image_under(m.keys[key], bound.get(key)), frames[phase], lab.shape)
            if img is not None:
                images[phase] = img
        first = next(iter(m.keys))
        b = bound.get(first)
        case = sp.case_of(b.image if b is not None else self._image_under(m.keys[first], None), m.keys[first],
                          getattr(b.controller, "source", None) if b is not None else None)
        segmentation, confidence = {}, {}
        for key, b in bound.items():
            review = self._current_review(b, m.es if key == "es" else m.data, m.keys[key])
            needs = None
            if review is not None:
                from .._review import review_provenance

                prov = review_provenance(review._review, b.controller.volume.n_frames)
                confidence[key], needs = prov["confidence"], prov["needs_review"]
            segmentation[key] = sp.model_record(b.controller.session, needs)
        return {"report": sp.page_report(report, segmentation), "labels": labels, "label_map": m.label_map, "frames": frames,
                "images": images or None, "confidence": confidence, "case": case, "modality": m.modality, "body": m.body}

    def _bindings(self, m: sp.Measured) -> dict[str, Any]:
        """Report file key -> the segmentation session (binding) whose label layer was measured as it."""
        from .review_widget import find_segment_widget

        seg = find_segment_widget(self.viewer)
        found = {}
        for key, layer in m.keys.items():
            b = next((b for b in (seg.bindings.values() if seg is not None else ()) if b.labels is layer), None)
            if b is not None:
                found[key] = b
        return found

    def _image_under(self, labels: Any, binding: Any) -> Any:
        """The image layer under ``labels``: its session's, else one named as the labels
        ("<image> labels"), else the first image layer on the labels' grid."""
        from napari.layers import Image

        if binding is not None:
            return binding.image
        images = [ly for ly in self.viewer.layers if isinstance(ly, Image)]
        stem = str(labels.name).removesuffix(" labels")
        named = [ly for ly in images if ly.name == stem]
        grid = [ly for ly in images if tuple(ly.data.shape[: ly.ndim][-2:]) == tuple(labels.data.shape[-2:])]
        return (named or grid or [None])[0]

    def _current_review(self, binding: Any, measured: np.ndarray, layer: Any) -> Any:
        """The Review dock's check of ``binding``'s session, when it is of the labels measured."""
        from .review_widget import ReviewWidget

        window = getattr(self.viewer, "window", None)
        docks = list(getattr(window, "dock_widgets", {}).values()) if window is not None else []
        for w in docks:
            r = getattr(w, "review", None) if isinstance(w, ReviewWidget) else None
            if (r is not None and r.session is binding.controller.session and r.checked and not r.stale
                    and np.array_equal(as_4d(np.asarray(layer.data)), measured)):
                return r
        return None
