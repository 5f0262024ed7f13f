"""A DICOM stack with slices missing (an image lost in a PACS export: gaps along the normal of
8, 8, 16, 8 mm), read onto the regular grid of its slice step with a blank slice at each
missing position.

:func:`medseg.io.dicom_stack._slice_grid` places each slice on that grid (refusing gaps that
are no whole multiple of one step); :func:`fill_missing_slices` then widens the decoded array
and the per-image lists of ``meta`` to the whole grid. A missing slice holds the series' lowest
value everywhere (0 for most MR): a slice without signal, which segmentation leaves empty
(``Session.blank``: propagation and zero-click write nothing there, a prompt on it is refused),
so ``medseg measure`` flags it ``missing_slice`` and ``--interpolate-missing`` fills it. Its
entries in ``meta["files"]``, ``["sop_instance_uids"]``, ``["frame_numbers"]`` and
``["trigger_times_ms"]`` are None (no image); ``meta["missing_slices"]`` lists the indices and
``meta["geometry_note"]`` says so in one line (``medseg info``, a label file's sidecar).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Volume.meta lists with one entry per (t, z) image of a DICOM stack (medseg.io.dicom_meta)
PER_IMAGE = ("files", "frame_numbers", "sop_instance_uids", "trigger_times_ms")


def fill_missing_slices(array: np.ndarray, meta: dict[str, Any], at: np.ndarray, step_mm: float) -> tuple[np.ndarray, dict[str, Any]]:
    """``array`` (T, Z, Y, X) and ``meta`` of the slices read, on the grid whose slice ``at[i]``
    each is (:func:`medseg.io.dicom_stack._slice_grid`): unchanged when no position is missing,
    else with a blank slice and None entries (module doc) at each missing one, the indices in
    ``meta["missing_slices"]`` and the note in ``meta["geometry_note"]``."""
    at = np.asarray(at, dtype=int)
    n = int(at[-1]) + 1
    if n == array.shape[1]:
        return array, meta
    missing = sorted(set(range(n)) - {int(z) for z in at})
    full = np.full((array.shape[0], n, *array.shape[2:]), array.min() if array.size else 0, dtype=array.dtype)
    full[:, at] = array
    out = dict(meta)
    for key in PER_IMAGE:
        rows = out.get(key)
        if isinstance(rows, list) and all(isinstance(r, list) and len(r) == len(at) for r in rows):
            widened = []
            for row in rows:
                new: list[Any] = [None] * n
                for z, v in zip(at, row):
                    new[int(z)] = v
                widened.append(new)
            out[key] = widened
    out["missing_slices"] = missing
    note = missing_note(missing, at, n, step_mm)
    out["geometry_note"] = f"{out['geometry_note']}; {note}" if out.get("geometry_note") else note
    return full, out


def missing_note(missing: list[int], at: np.ndarray, n: int, step_mm: float) -> str:
    """The one-line note on the slices ``missing`` from a stack of ``n`` positions ``step_mm`` apart."""
    gaps = [float((b - a) * step_mm) for a, b in zip(at[:-1], at[1:]) if b - a > 1]
    one = len(missing) == 1
    return (f"slice{'' if one else 's'} {', '.join(map(str, missing))} of {n} {'is' if one else 'are'} missing from the series "
            f"(a gap of {', '.join(f'{g:.3g}' for g in gaps)} mm along the normal where the slice step is {step_mm:.3g} mm: "
            f"an image left out of the export?): read as {'a blank slice' if one else 'blank slices'}, on which nothing is "
            f"segmented; medseg measure flags {'it' if one else 'them'} missing_slice (--interpolate-missing fills "
            f"{'it' if one else 'them'})")
