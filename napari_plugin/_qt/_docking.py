"""Docks of the medseg widgets: one opened beside another medseg dock joins it as a tab.

Plugins > medseg > Segmentation, then Measurement, then Review stacked three docks in napari's
right-hand area: at 1600 x 1100 the measurement table showed two rows above a sliver of its plot
and the review table none. ``python -m medseg_napari`` (:func:`medseg_napari.open_study`) tabs
them; the Plugins menu now does too. A dock placed elsewhere (another area, floating, already
tabbed) is left where it is.
"""

from __future__ import annotations

from typing import Any

#: tab titles of the medseg docks: napari names them "Segmentation (medseg)" (Plugins menu) or
#: "medseg: segmentation" (:func:`medseg_napari.open_study`), which three tabs side by side cut
#: to "Segmentation (meds…"; napari still finds a dock by that name (``dock.name``, kept)
SHORT_TITLES = {"SegmentWidget": "Segmentation", "MeasureWidget": "Measurement", "ReviewWidget": "Review"}


def _medseg_widget(dock: Any) -> Any:
    from qtpy.QtWidgets import QWidget

    inner = dock.widget()
    seen = [inner, *inner.findChildren(QWidget)] if inner is not None else []
    return next((w for w in seen if type(w).__module__.startswith("medseg_napari._qt")), None)


def _is_medseg(dock: Any) -> bool:
    return _medseg_widget(dock) is not None


def short_titles(window: Any) -> None:
    """Give the tabbed medseg docks of ``window`` their short tab titles (:data:`SHORT_TITLES`);
    a dock on its own keeps its name (napari's title bar shows it)."""
    from qtpy.QtWidgets import QDockWidget

    for d in window.findChildren(QDockWidget):
        if not window.tabifiedDockWidgets(d):
            continue
        title = SHORT_TITLES.get(type(_medseg_widget(d)).__name__)
        if title and d.windowTitle() != title:
            d.setWindowTitle(title)


def join_medseg_docks(widget: Any) -> bool:
    """Tab ``widget``'s dock onto a visible medseg dock of the same area of the main window, and
    bring it to the front; False (nothing moved) when there is none, or the dock is floating or
    already tabbed."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QDockWidget, QMainWindow

    dock = widget.parent()
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parent()
    window = dock.parent() if dock is not None else None
    if isinstance(window, QMainWindow):
        short_titles(window)
    if not isinstance(window, QMainWindow) or dock.isFloating() or window.tabifiedDockWidgets(dock):
        return False
    area = window.dockWidgetArea(dock)
    others = [d for d in window.findChildren(QDockWidget) if d is not dock and d.isVisible() and not d.isFloating()
              and window.dockWidgetArea(d) == area and _is_medseg(d)]
    if not others:
        return False
    window.tabifyDockWidget(others[0], dock)
    short_titles(window)
    QTimer.singleShot(0, dock.raise_)  # in front once Qt has built the tab bar
    return True
