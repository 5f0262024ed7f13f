"""Which plane of a study the viewer shows, and what a prompt or an operation may take from it
(no napari or Qt import: it works on the viewer and layers it is given).

Prompts are made on a slice: the study's last two axes (y, x) displayed, frame and slice from
the sliders. napari's transpose button keeps that plane (x, y displayed: still a slice, drawn
turned). Its roll button, the axis order and the 2D/3D button show other planes: a (slice, x)
view is a long-axis look at a short-axis stack. There

* a click is still one voxel (frame, slice, y, x: the axes not shown from their sliders), so it
  prompts the slice it falls on (any 2-D view);
* a box is not a box on a slice (it spans slices, one pixel thick in y or x): refused;
* Propagate starts from the frame and slice on the sliders, Auto on "this frame" from the
  frame: a view that displays one of those axes (3-D displays the slice axis) has no current one;
* in 3-D a click has no depth (napari puts it on a plane through the camera's centre): clicks
  and boxes are refused.

Painting is recorded whichever plane it is made in (the controller compares whole label
buffers), and measurement does not depend on the view.
"""

from __future__ import annotations

from typing import Any

AXIS_NAMES = ("frame", "slice", "y", "x")

#: how to get back to the slice plane, for the status lines (napari's "Home" resets the camera only)
PLANE_HINT = ("to go back to the slice plane (y and x shown), right-click napari's roll button (beside the 2D/3D button) "
              "and drag the axes into the order frame, slice, y, x")
TO_2D_HINT = "press the viewer's 2D/3D button to go back to the 2-D view"


def axis_names(image: Any) -> tuple[str, ...]:
    """The names of ``image``'s data axes: (frame, slice, y, x), fewer for a 3-D or 2-D layer."""
    nd = int(image.ndim)
    return AXIS_NAMES[4 - nd:] if nd <= 4 else tuple(f"axis {i}" for i in range(nd - 4)) + AXIS_NAMES


def displayed_axes(viewer: Any, image: Any) -> tuple[int, ...]:
    """The data axes of ``image`` the viewer displays (in display order)."""
    lead = int(viewer.dims.ndim) - int(image.ndim)
    return tuple(int(d) - lead for d in viewer.dims.displayed if int(d) >= lead)


def shown_plane(viewer: Any, image: Any) -> str | None:
    """None when the viewer shows ``image``'s slice plane (y and x, either way round, in 2-D);
    else a few words for what it shows ("the 3-D view", "a slice × x view")."""
    if int(viewer.dims.ndisplay) != 2:
        return "the 3-D view"
    nd, shown = int(image.ndim), displayed_axes(viewer, image)
    if sorted(shown) == [nd - 2, nd - 1]:
        return None
    names = axis_names(image)
    return f"a {' × '.join(names[a] for a in shown)} view" if shown else "another study's axes"


def box_refusal(viewer: Any, image: Any) -> str | None:
    """The status line refusing a box drawn in this view of ``image`` (None: a slice is shown)."""
    what = shown_plane(viewer, image)
    if what is None:
        return None
    hint = TO_2D_HINT if int(viewer.dims.ndisplay) != 2 else PLANE_HINT
    return f"Boxes are drawn on a slice, and {what} shows none: the box was removed, no prompt applied. {cap(hint)}."


def click_refusal(viewer: Any, image: Any) -> str | None:
    """The status line refusing a click in this view (None: a 2-D view, where a click is a voxel)."""
    if int(viewer.dims.ndisplay) == 2:
        return None
    return f"A click in the 3-D view has no depth: it was removed, no prompt applied. {cap(TO_2D_HINT)}."


def slider_refusal(viewer: Any, image: Any, what: str, axes: tuple[str, ...] = ("frame", "slice")) -> str | None:
    """The status line refusing ``what`` (e.g. "Propagate"), which starts from the ``axes`` on
    the sliders, when this view displays one of them (None: they are on sliders)."""
    names = axis_names(image)
    shown = {names[a] for a in displayed_axes(viewer, image)}
    if not shown & set(axes):
        return None
    if int(viewer.dims.ndisplay) != 2:
        return f"{what} starts from the {' and '.join(axes)} shown, and the 3-D view shows none: {TO_2D_HINT}."
    plane = shown_plane(viewer, image) or "this view"
    return f"{what} starts from the {' and '.join(axes)} shown, and {plane} shows no single one. {cap(PLANE_HINT)}."


def slice_note(viewer: Any, image: Any) -> str | None:
    """A note for the review moving the sliders to a flag's slice in a view that does not show
    that slice (the frame or slice axis displayed), else None."""
    names = axis_names(image)
    if not {names[a] for a in displayed_axes(viewer, image)} & {"frame", "slice"}:
        return None
    what = shown_plane(viewer, image) or "this view"
    return f"{what} does not show that slice alone; {TO_2D_HINT if int(viewer.dims.ndisplay) != 2 else PLANE_HINT}"


def view_note(viewer: Any, image: Any) -> str | None:
    """A status line for a view of ``image`` other than its slice plane (None: the slice plane)."""
    what = shown_plane(viewer, image)
    if what is None:
        return None
    if int(viewer.dims.ndisplay) != 2:
        return ("3-D view: clicks, boxes and Propagate need the 2-D view (painting, Auto, measuring and saving "
                f"work as in 2-D); {TO_2D_HINT}.")
    return f"{cap(what)}: a click prompts the slice it falls on; boxes and Propagate need a slice shown. {cap(PLANE_HINT)}."


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]
