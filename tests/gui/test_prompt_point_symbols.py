"""Positive and negative clicks are told apart without colour vision: a disc adds, an x takes
away, on every path a click reaches the clicks layer (a click, Shift+click, the negative toggle,
the redraw after undo/redo). Run under ``xvfb-run -a``."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from napari_helpers import gui_ready

if gui_ready():
    pytest.skip(gui_ready(), allow_module_level=True)

pytestmark = pytest.mark.gui
T_OUT = 60_000  # ms


def _symbols(points) -> list[str]:
    return [s.value for s in points.symbol]


def test_negative_clicks_have_their_own_symbol(make_napari_viewer, qtbot, model_provider, small_cine, tmp_path):
    import nibabel as nib
    from medseg_napari._qt._prompt_layers import NEGATIVE_SYMBOL, POSITIVE_SYMBOL
    from napari_helpers import start_widget

    from medseg.io.geometry import medseg_to_nifti

    vol, truth, _ = small_cine
    path = tmp_path / "cine.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(medseg_to_nifti(vol.array, 4)), vol.affine), str(path))
    viewer = make_napari_viewer()
    (image,) = viewer.open(str(path), plugin="medseg")
    w = start_widget(viewer, qtbot, model_provider, image.name, T_OUT)
    b = w.binding
    viewer.dims.current_step = (0, 3, *viewer.dims.current_step[2:])
    qtbot.waitUntil(lambda: not w.busy and not w.controller.needs_embedding(0, 3), timeout=T_OUT)
    assert POSITIVE_SYMBOL != NEGATIVE_SYMBOL

    ys, xs = np.nonzero(truth[0, 3] == 1)
    cy, cx = ys.mean(), xs.mean()
    w._select_tool("points")
    w._on_point_press(b.points, SimpleNamespace(modifiers=()))  # a click
    b.points.add([0, 3, cy, cx])
    w._on_point_press(b.points, SimpleNamespace(modifiers=("Shift",)))  # Shift+click: negative
    b.points.add([0, 3, ys.min() - 4, xs.min() - 4])
    w.ui.negative.setChecked(True)  # the toggle: every click negative ...
    w._on_point_press(b.points, SimpleNamespace(modifiers=()))
    b.points.add([0, 3, ys.max() + 4, xs.max() + 4])
    w._on_point_press(b.points, SimpleNamespace(modifiers=("Shift",)))  # ... and Shift+click positive
    b.points.add([0, 3, cy + 1, cx + 1])
    want = [POSITIVE_SYMBOL, NEGATIVE_SYMBOL, NEGATIVE_SYMBOL, POSITIVE_SYMBOL]
    assert list(b.points.features["positive"]) == [True, False, False, True]
    assert _symbols(b.points) == want
    assert len({tuple(c) for c in np.round(b.points.face_color[:2], 3)}) == 2  # and two colours

    # the layer redrawn from the session's prompts (undo, then redo) keeps each click's symbol
    # (the session keeps a slice's positive clicks before its negative ones)
    kind = {True: POSITIVE_SYMBOL, False: NEGATIVE_SYMBOL}
    w.ui.undo.click()
    qtbot.waitUntil(lambda: len(b.points.data) == 3, timeout=T_OUT)
    assert _symbols(b.points) == [kind[p] for p in b.points.features["positive"]]
    assert sorted(_symbols(b.points)) == sorted(want[:3])
    w.ui.redo.click()
    qtbot.waitUntil(lambda: len(b.points.data) == 4, timeout=T_OUT)
    assert _symbols(b.points) == [kind[p] for p in b.points.features["positive"]]
    assert sorted(_symbols(b.points)) == sorted(want)
    # a positive click added while a negative one is selected is still a disc
    b.points.selected_data = {int(np.flatnonzero(~b.points.features["positive"].to_numpy())[0])}
    assert b.points.current_symbol.value == NEGATIVE_SYMBOL  # napari's default for the next point
    w.ui.negative.setChecked(False)
    w._on_point_press(b.points, SimpleNamespace(modifiers=()))
    b.points.add([0, 3, cy - 1, cx - 1])
    assert _symbols(b.points) == [kind[p] for p in b.points.features["positive"]]
    assert sorted(_symbols(b.points)) == sorted([*want, POSITIVE_SYMBOL])
