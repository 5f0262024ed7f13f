"""The measurement dock's watch on the labels it measured: a report whose labels changed since
is said to be of the labels before, and its Export / study page greyed until Measure again.

A mixin of :class:`medseg_napari._qt.measure_widget.MeasureWidget`. While a report of label
layers is shown, their ``events.set_data`` and ``events.data`` schedule one check (napari 0.9.2
emits ``set_data`` for a brush stroke, a fill, its own undo / redo, a new ``data``, and the
segmentation session's writes: prompts, Auto, propagation, its Undo / Redo, each followed by a
refresh; a slider move emits it too, so a burst makes one check; ``paint`` and ``labels_update``
(brush, fill) too). A check after events that changed none of the layers' data object, session
write count (``metadata["medseg_writes"]``) or napari undo / redo history (a slider move, a
redraw) is skipped: the digest of a whole cine or CT took 0.9-2 s each time a slider stopped.
The check is
:meth:`~medseg_napari._qt._measure_export.ExportMixin.export_problem` (the digest the report
records against the layers' labels): while they differ the status line says so in red, Export
and Save study page are greyed; labels put back (the edit undone) show the report as current
again. A hidden layer emits nothing: it is checked when shown, when the dock is shown, and on Export.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QTimer

CHECK_MS = 150  # after the last change of a burst (a brush stroke, slider moves)


class StaleMixin:
    """The watch; the widget keeps ``report``, ``_measured``, ``_measuring``, ``export_btn``,
    ``export_problem``, ``_pdf_ready``, ``_say`` and ``_measured_line``."""

    _stale = False  # the report shown is of labels the layers no longer hold
    _watched: tuple[Any, ...] = ()  # the layers whose events are connected
    _stale_timer: QTimer | None = None
    _painted = False  # a brush stroke or fill since the last check: check whatever the fingerprint says
    _checked: tuple[Any, ...] | None = None  # the watched layers' fingerprint at the last check

    def _watch_measured(self) -> None:
        """Watch the layers of the report just shown (none for a report shown from code)."""
        self._unwatch_measured()
        measured = getattr(self, "_measured", None)
        self._watched = tuple(measured.keys.values()) if measured is not None else ()
        for layer in self._watched:
            layer.events.set_data.connect(self._labels_touched)
            layer.events.data.connect(self._labels_touched)
            layer.events.paint.connect(self._labels_painted)
            layer.events.labels_update.connect(self._labels_painted)
        self._checked = self._fingerprint()  # the labels the report was measured on
        self._pdf_ready()  # no longer stale: the page of this report can be saved

    def _unwatch_measured(self) -> None:
        for layer in self._watched:
            layer.events.set_data.disconnect(self._labels_touched)
            layer.events.data.disconnect(self._labels_touched)
            layer.events.paint.disconnect(self._labels_painted)
            layer.events.labels_update.disconnect(self._labels_painted)
        self._watched = ()
        self._checked = None
        self._painted = False
        self._stale = False
        if self._stale_timer is not None:
            self._stale_timer.stop()

    def _labels_touched(self, *_: Any) -> None:
        """A measured layer's labels may have changed: check once the burst is over."""
        if self._stale_timer is None:
            self._stale_timer = QTimer(self)
            self._stale_timer.setSingleShot(True)
            self._stale_timer.setInterval(CHECK_MS)
            self._stale_timer.timeout.connect(self._check_if_touched)
        self._stale_timer.start()  # restarted by each event of a burst

    def _labels_painted(self, *_: Any) -> None:
        self._painted = True
        self._labels_touched()

    def _fingerprint(self) -> tuple[Any, ...]:
        """What changes when a watched layer's labels may have: its data object, the session's
        write count, napari's undo / redo history (a slider move changes none of them)."""
        from .._layers import META_WRITES

        return tuple((id(layer.data), layer.metadata.get(META_WRITES, 0), len(getattr(layer, "_undo_history", ())),
                      len(getattr(layer, "_redo_history", ()))) for layer in self._watched)

    def _check_if_touched(self) -> None:
        """The timer's check: skipped when the events changed nothing of the labels' fingerprint."""
        if not self._painted and self._checked is not None and self._fingerprint() == self._checked:
            return
        self.check_stale()

    def check_stale(self) -> bool:
        """Say whether the report shown is of labels the layers no longer hold (status line,
        Export and study page follow); False while measuring or with no report of layers."""
        if self.report is None or self._measuring or getattr(self, "_measured", None) is None:
            return False
        try:
            problem = self.export_problem()
        except RuntimeError:  # the dock was closed: its Qt objects are gone
            return False
        self._checked, self._painted = self._fingerprint(), False
        stale = problem is not None
        if stale != self._stale or stale:
            self._stale = stale
            self.export_btn.setEnabled(not stale)
            self._pdf_ready()
            self._say(stale_line(problem) if stale else self._measured_line(), error=stale)
        return stale


def stale_line(problem: str) -> str:
    """The status line of a report whose labels changed (``problem``: :meth:`export_problem`'s)."""
    changed = "changed since they were measured"
    if changed in problem:  # "the labels of 'x labels' changed since ...: Measure again, then export"
        who = problem.split(changed)[0].strip()
        return (f"{who[0].upper()}{who[1:]} {changed}: the numbers shown are of the labels before. "
                "Measure again (Export and the study page wait for it).")
    return f"{problem[0].upper()}{problem[1:]}."
