"""Docks of the medseg widgets: one opened beside another medseg dock joins it as a tab.

Plugins > medseg > Segmentation, then Measurement, then Review stacked three docks in napari's
right-hand area: at 1600 x 1100 the measurement table showed two rows above a sliver of its plot
and the review table none. ``python -m medseg_napari`` (:func:`medseg_napari.open_study`) tabs
them; the Plugins menu now does too. A dock placed elsewhere (another area, floating, already
tabbed) is left where it is.
"""

from __future__ import annotations

from typing import Any


def _is_medseg(dock: Any) -> bool:
    from qtpy.QtWidgets import QWidget

    inner = dock.widget()
    seen = [inner, *inner.findChildren(QWidget)] if inner is not None else []
    return any(type(w).__module__.startswith("medseg_napari._qt") for w in seen)


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
    if not isinstance(window, QMainWindow) or dock.isFloating() or window.tabifiedDockWidgets(dock):
        return False
    area = window.dockWidgetArea(dock)
    others = [d for d in window.findChildren(QDockWidget) if d is not dock and d.isVisible() and not d.isFloating()
              and window.dockWidgetArea(d) == area and _is_medseg(d)]
    if not others:
        return False
    window.tabifyDockWidget(others[0], dock)
    QTimer.singleShot(0, dock.raise_)  # in front once Qt has built the tab bar
    return True
