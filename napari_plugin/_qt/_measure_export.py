"""The measurement dock's "Export CSV / JSON…": the report shown, only while it is of the labels
the layers hold.

A mixin of :class:`medseg_napari._qt.measure_widget.MeasureWidget`. The report records the
digest of the labels it measured (``inputs.labels_sha256``, :func:`medseg_napari._measure.labels_digests`);
Export (and the study page) is refused, said in one line, while a measurement runs (the report
shown is of the labels before an edit) and once the layers measured hold other labels (painted,
undone, propagated since) or were closed: an export never carries numbers of labels no longer there.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QFileDialog

from .. import _measure as m
from .._messages import error_line

MEASURING = "Measuring…: export when the measurement is done (the numbers shown are of the labels before)"


class ExportMixin:
    """Export of the report shown; the widget keeps ``report``, ``viewer``, ``_measured``,
    ``_measuring`` and ``_say``."""

    report: dict[str, Any] | None
    viewer: Any

    def export_problem(self) -> str | None:
        """Why the report shown cannot be exported now (one line), or None."""
        if self._measuring:
            return MEASURING
        if self.report is None:
            return "measure first"
        measured = getattr(self, "_measured", None)  # None: a report shown from code (show_report), of no layers
        if measured is None:
            return None
        layers = list(self.viewer.layers)
        gone = [ly.name for ly in measured.keys.values() if not any(ly is x for x in layers)]
        if gone:
            return f"the label layer {gone[0]!r} measured was closed: its numbers are no longer shown"
        changed = m.stale_labels(self.report, {k: ly.data for k, ly in measured.keys.items()})
        if changed:
            names = " and ".join(repr(measured.keys[k].name) for k in changed)
            return f"the labels of {names} changed since they were measured: Measure again, then export"
        return None

    def export(self, path: str) -> None:
        """Write the report shown to ``path`` (.json or .csv); ValueError when it may not be exported now."""
        problem = self.export_problem()
        if problem:
            raise ValueError(problem)
        out = m.export_report(self.report, path)
        self._say(f"Exported {out.name}")

    def _ask_export(self) -> None:
        problem = self.export_problem()  # said before a file is asked for
        if problem:
            self._say(problem, error=True)
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export measurements", "measurements.csv", "CSV (*.csv);;JSON (*.json)")
        if path:
            try:
                self.export(path)
            except (ValueError, OSError) as e:  # a folder it cannot write: one line, not a traceback
                self._say(error_line(e), error=True)
