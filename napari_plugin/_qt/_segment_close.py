"""The status line of a study's session closed (its image or labels layer removed; the session's
other layers go with it): a plain line, or a warning (red, and a napari notification) only when
labels the session holds would be lost unsaved, naming them and what keeps an earlier version.
A study closed while its save runs says its labels are being saved; should that save fail, the
warning follows then (:func:`save_failed_line`), naming the file it meant to write.

A session knows its saves by the digest of the labels written (or replayed from a session file),
:attr:`medseg_napari._controller.SegmentController.saved_digest`
(:func:`medseg_napari._controller.labels_digest`): labels equal to it are saved.
"""

from __future__ import annotations

import weakref
from typing import Any

from .._controller import labels_digest
from .._messages import error_line

SAVE_HINT = "Save labels before closing a study to keep them"
#: label layers removed by a restart of their session (Start session on its image again) -> the image's name
_RESTARTED: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def restarting(binding: Any) -> tuple[Any, Any, Any]:
    """The layers of ``binding``'s session, about to be removed because it restarts; its labels
    layer is known as restarted (:func:`restarted_image`): a measurement of it running says so."""
    _RESTARTED[binding.labels] = binding.image.name
    return binding.labels, binding.points, binding.shapes


def restarted_image(layer: Any) -> str | None:
    """The name of the image whose session's restart removed the label ``layer``, else None."""
    try:
        return _RESTARTED.get(layer)
    except TypeError:  # not weakly referenceable: not a session's layer
        return None


def unsaved_structures(controller: Any) -> list[str] | None:
    """The structures (upper case) of the session's labels when they differ from its last save
    (or it never saved any), else None: no labels at all, or the labels as saved."""
    labels = controller.labels
    if not labels.any():
        return None
    if controller.saved_digest is not None and labels_digest(labels) == controller.saved_digest:
        return None
    return [s.name.upper() for s in controller.structures.values() if (labels == s.value).any()]


def close_line(binding: Any, removed: Any) -> tuple[str, bool]:
    """``(status line, warn)`` for the session of ``binding`` closed because ``removed`` (its
    image or its labels layer) left the viewer."""
    name, c = binding.image.name, binding.controller
    how = "its labels layer was removed" if removed is binding.labels else "its labels layer went with it"
    lost = unsaved_structures(c)
    if lost is not None and c.saving:  # the save's own line follows when it is written (or fails)
        return f"Session on {name} closed: {how}; its labels are being saved.", False
    if lost is None:
        return (f"Session on {name} closed." if removed is binding.image else f"Session on {name} closed: {how}."), False
    of = f" of {', '.join(lost)}" if lost else ""
    if c.saved_digest is None:
        return f"Session on {name} closed with unsaved labels{of}: {how}; they were never saved ({SAVE_HINT}).", True
    return (f"Session on {name} closed with unsaved labels{of}: {how}; the changes since {c.saved_to} are lost "
            f"({c.saved_to} keeps the labels as they were then)."), True


def save_failed_line(binding: Any, path: Any, error: BaseException) -> str:
    """The warning of a save of ``binding``'s labels to ``path`` that failed with ``error`` after
    its study was closed (the close said its labels were being saved): what is lost with it, as
    :func:`close_line` says it (the session's last save is the one before this)."""
    import os

    from medseg._files import shown

    name, c = binding.image.name, binding.controller
    head = f"Session on {name} closed, and saving its labels to {shown(os.fspath(path))} failed ({error_line(error)})"
    lost = unsaved_structures(c)
    if lost is None:
        keeps = f"{c.saved_to} keeps its labels as they are" if c.saved_digest is not None else "it held no labels"
        return f"{head}; nothing is lost: {keeps}."
    of = f" of {', '.join(lost)}" if lost else ""
    if c.saved_digest is None:
        return f"{head}: its labels{of} are lost, never saved ({SAVE_HINT})."
    return f"{head}: the changes to its labels{of} since {c.saved_to} are lost ({c.saved_to} keeps the labels as they were then)."
