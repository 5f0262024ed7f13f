"""Why the measurement dock dropped the measurement it was running, in one status line.

A measurement runs in a worker on copies of the label layers chosen; a change of what it
measures drops it (its numbers would be of what is no longer chosen): another label or ES layer
chosen, the basal rule turned on or off, the pixel size edited, a layer it measured closed (or
cleared by a restart of its segmentation session), or a new medseg label layer chosen in its
place when the layers changed. Each says which it was: they all read "The labels chosen
changed while measuring".
"""

from __future__ import annotations

from typing import Any

LABELS, ES, BASAL_RULE, PIXEL_SIZE, LAYERS = "labels", "es", "basal rule", "pixel size", "layers"
DROPPED = "that measurement was dropped"


def dropped_line(widget: Any, cause: str | None, picked: str | None = None, opened: bool = False) -> str:
    """The status line of the running measurement of ``widget`` (a MeasureWidget) dropped for
    ``cause`` (None: its panel cleared from code). ``picked``: the label layer the panel chose in
    its place when the layers changed (``opened``: that layer was just opened)."""
    from ._segment_close import restarted_image

    running = widget._next_measured
    layers = list(widget.viewer.layers)
    measured = list(running.keys.values()) if running is not None else []
    gone = [ly for ly in measured if not any(ly is x for x in layers)]
    if gone:
        image = restarted_image(gone[0])
        if image is not None:
            return (f"The session on {image!r} was restarted (its labels cleared) while {gone[0].name!r} was measured: "
                    f"{DROPPED}.")
        return f"The label layer {gone[0].name!r} was closed while it was measured: {DROPPED}."
    again = f"{DROPPED}; Measure again."
    if cause == LABELS:
        return f"The labels chosen changed while measuring: {again}"
    if cause == ES:
        return f"The ES labels chosen changed while measuring: {again}"
    if cause == BASAL_RULE:
        return f"The basal rule was turned {'on' if widget.basal_rule.isChecked() else 'off'} while measuring: {again}"
    if cause == PIXEL_SIZE:
        return f"The pixel size was edited while measuring: {again}"
    was = f"{measured[0].name!r}" if measured else "the labels chosen"
    if cause == LAYERS and picked:
        how = f"A new label layer {picked!r} was opened" if opened else f"The layers changed: the label layer {picked!r} was"
        return f"{how} and chosen under Labels while {was} was measured: {DROPPED}; Measure again, or choose {was} under Labels."
    if cause == LAYERS:
        return f"The layers changed while {was} was measured: {again}"
    return f"The panel was cleared while {was} was measured: {again}"


def cleared_line(widget: Any, cause: str | None, picked: str | None = None, opened: bool = False) -> str:
    """The status line of the report ``widget`` showed, cleared for ``cause`` (no measurement
    running): the table is empty because ... ("" for a panel cleared from code)."""
    from ._segment_close import restarted_image

    shown = getattr(widget, "_measured", None)
    layers = list(widget.viewer.layers)
    measured = list(shown.keys.values()) if shown is not None else []
    gone = [ly for ly in measured if not any(ly is x for x in layers)]
    again = "its numbers were cleared; Measure again."
    if gone:
        image = restarted_image(gone[0])
        if image is not None:
            return f"The session on {image!r} was restarted (its labels cleared): the numbers of {gone[0].name!r} were cleared."
        now = widget.labels_combo.currentText()
        chosen = f" {now!r} is chosen under Labels: Measure it." if now in widget.viewer.layers else ""
        return f"The label layer {gone[0].name!r} measured was closed: its numbers were cleared.{chosen}"
    if cause == LABELS:
        return "Other labels chosen: the numbers of the labels before were cleared; Measure them."
    if cause == ES:
        return "Other ES labels chosen: the numbers of the labels before were cleared; Measure again."
    if cause == BASAL_RULE:
        return f"The basal rule was turned {'on' if widget.basal_rule.isChecked() else 'off'}: {again}"
    if cause == PIXEL_SIZE:
        return f"The pixel size was edited: {again}"
    if cause == LAYERS and picked:
        how = f"A new label layer {picked!r} was opened and" if opened else f"The layers changed: the label layer {picked!r} was"
        return f"{how} chosen under Labels: the numbers shown before were cleared; Measure it."
    if cause == LAYERS:
        return f"The layers changed: {again}"
    return ""
