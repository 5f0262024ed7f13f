"""Which propagation directions a study offers (Qt-free; the segmentation widget greys the others).

A 3-D study (one frame: ACDC's ED or ES volume) has no frames to propagate to, a long-axis
or echo cine (one slice) no slices: propagating that way ran and said "0 slices changed".
"""

from __future__ import annotations

from ._controller import THROUGH


def propagation_choices(n_frames: int, n_slices: int) -> list[str]:
    """The widget's "through" choices (keys of :data:`THROUGH`) that reach another image of a
    study of ``n_frames`` frames x ``n_slices`` slices, in the widget's order; empty for one
    2-D image."""
    reach = {"slices": n_slices > 1, "frames": n_frames > 1, "slices + frames": n_slices > 1 and n_frames > 1}
    return [name for name in THROUGH if reach[name]]


def choice_after(current: str, allowed: list[str]) -> str | None:
    """The choice to show: ``current`` when allowed, else the first allowed one (None: none)."""
    return current if current in allowed else (allowed[0] if allowed else None)
