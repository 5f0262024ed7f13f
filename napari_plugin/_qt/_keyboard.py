"""Keyboard and readability helpers shared by the medseg docks.

* :func:`error_style`: the red of an error line, readable on napari's dark *and* light theme
  (the dark theme's ``#ff6b6b`` was 2.3:1 against the light theme's background);
* :class:`FocusKeeper`: a button pressed from the keyboard that greys out while its job runs
  no longer throws the focus onto whatever widget comes next (after **Auto** it landed on the
  dock's "hide this panel" title button, so the next Space hid the dock);
* :func:`add_undo_shortcuts`: ``Ctrl+Z`` / ``Ctrl+Shift+Z`` / ``Ctrl+Y`` inside the dock too
  (the Undo button says "Ctrl+Z", which worked only with the canvas focused).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QKeySequence

ERROR_ON_DARK, ERROR_ON_LIGHT = "#ff6b6b", "#b00020"  # >= 4.5:1 on napari's dark / light backgrounds


def _theme_background(viewer: Any) -> str | None:
    try:
        from napari.utils.theme import get_theme

        return str(get_theme(getattr(viewer, "theme", "dark")).background.as_hex())
    except Exception:  # an unknown theme name, or napari without themes: the dark default
        return None


def error_colour(viewer: Any) -> str:
    """The colour of an error line for the viewer's theme (a light background: a dark red)."""
    bg = _theme_background(viewer)
    return ERROR_ON_LIGHT if bg is not None and QColor(bg).lightnessF() > 0.5 else ERROR_ON_DARK


def error_style(viewer: Any, error: bool = True) -> str:
    """The status label's style sheet: the theme's error red, or "" (the theme's text colour)."""
    return f"color: {error_colour(viewer)};" if error else ""


class FocusKeeper:
    """Where the keyboard focus goes while a widget's job runs and when it ends.

    :meth:`around` a job's start remembers the focused widget of ``owner`` and, if Qt moved the
    focus off it as it was greyed, puts it on ``cancel`` while the job runs (Space cancels it;
    ``rest`` for a job that cannot be cancelled, such as saving);
    around the job's end it goes back onto the button or, per ``instead``, elsewhere (Start
    session -> the structures table: the button now reads "Restart session (clears labels)").
    A focus the user moved elsewhere meanwhile (the canvas) is left alone.
    """

    def __init__(self, owner: Any, cancel: Any = None, instead: Mapping[Any, Any] | None = None, rest: Any = None) -> None:
        self.owner, self.cancel, self.instead, self.rest = owner, cancel, dict(instead or {}), rest
        self.held: Any = None

    def _focused(self) -> Any:
        return self.owner.window().focusWidget()

    def _ours(self, widget: Any) -> bool:
        """In the owner's dock (its title bar included: where Qt put the focus after Auto)."""
        dock = self.owner
        while dock is not None and not hasattr(dock, "setTitleBarWidget"):
            dock = dock.parentWidget()
        return widget is None or self.owner.isAncestorOf(widget) or (dock is not None and dock.isAncestorOf(widget))

    def around(self, busy: bool, update: Callable[[], Any]) -> None:
        """Run ``update`` (which greys or enables the buttons) for a job starting (``busy``) or
        ending, and place the focus as the class says."""
        if busy:
            w = self._focused()
            self.held = w if w is not None and self.owner.isAncestorOf(w) else None
        update()
        held, focused = self.held, self._focused()
        if held is None:
            return
        if busy:
            wait_on = self.cancel if self.cancel is not None and self.cancel.isEnabled() else self.rest
            if not held.isEnabled() and self._ours(focused) and wait_on is not None and wait_on.isEnabled():
                wait_on.setFocus(Qt.FocusReason.OtherFocusReason)
            return
        self.held = None
        target = self.instead.get(held, held)
        if focused is not target and self._ours(focused) and target.isEnabled() and target.isVisible():
            target.setFocus(Qt.FocusReason.OtherFocusReason)


def add_undo_shortcuts(widget: Any, undo: Callable[[], Any], redo: Callable[[], Any]) -> list[Any]:
    """``Ctrl+Z`` undo, ``Ctrl+Shift+Z`` and ``Ctrl+Y`` redo anywhere in ``widget`` (a text field
    keeps its own undo); the viewer's bindings cover the canvas."""
    from qtpy.QtWidgets import QShortcut

    out = []
    for keys, fn in (("Ctrl+Z", undo), ("Ctrl+Shift+Z", redo), ("Ctrl+Y", redo)):
        sc = QShortcut(QKeySequence(keys), widget)
        sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        sc.activated.connect(lambda f=fn: f())
        out.append(sc)
    return out
