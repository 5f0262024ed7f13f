"""The measurement dock's number fields: height, weight and heart rate with their units."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QEvent, QSize
from qtpy.QtWidgets import QDoubleSpinBox


def unit_spin(lo: float, hi: float, suffix: str) -> QDoubleSpinBox:
    """A whole-number field from ``lo`` to ``hi`` with its unit, "–" when not given (``lo``)."""
    s = _UnitSpin()
    s.setRange(lo, hi)
    s.setDecimals(0)
    s.setSuffix(suffix)
    s.setSpecialValueText("–")
    return s


class _UnitSpin(QDoubleSpinBox):
    """A spin box never squeezed below its size hint: Qt sizes that from the font metrics of the
    longest value with its unit ("250 cm", "300 bpm") and the step buttons of the current style;
    squeezed in the dock it showed "172 c". napari's style sheet sets a minimum width (70 px
    + padding), which layouts take instead of the hint: it is raised to the hint when polished."""

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        hint = super().minimumSizeHint()
        return QSize(max(hint.width(), self.sizeHint().width()), hint.height())

    def event(self, event: Any) -> bool:
        done = super().event(event)
        if event.type() in (QEvent.Type.Polish, QEvent.Type.StyleChange, QEvent.Type.FontChange):
            self.setMinimumWidth(max(self.minimumWidth(), self.sizeHint().width()))
        return done
