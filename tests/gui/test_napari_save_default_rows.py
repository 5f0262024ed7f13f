"""The segment panel's default rows are lv, myo, rv, la, ra with medseg's values; a save kept them
all (only medseg's whole lv ... pa map was cut), so ``medseg measure`` of an LV-only session's file
flagged LA and RA absent, structures nobody segmented. The panel now marks its label layer's map
as its untouched default rows (``META_DEFAULT_ROWS``), and a save cuts a marked map to lv, myo,
rv and what was segmented or prompted. Values alone cannot tell those rows from a map of the
user's own (lv=1,myo=2,rv=3,la=4 is both): an unmarked map, or one whose rows the user changed,
is written as it is."""

from __future__ import annotations

import json

import numpy as np
import pytest
from napari_helpers import gui_ready, start_widget

T_OUT = 60_000  # ms
needs_gui = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
LV_BOX = {"op": "prompt", "prompt": {"structure": "lv", "frame": 0, "slice": 1, "box": [2, 2, 5, 5]}}


def _absent(label_file, tmp_path) -> set[str]:
    """The structures ``medseg measure`` of ``label_file`` flags absent."""
    from medseg.cli import run_cli

    report = tmp_path / f"{label_file.name}.report.json"
    assert run_cli(["measure", str(label_file), "-o", str(report)]) == 0
    return {f.get("structure") for f in json.loads(report.read_text())["flags"] if f["code"] == "absent_structure"}


def test_the_writer_cuts_marked_default_rows_and_writes_any_other_map_as_it_is(tmp_path):
    from medseg_napari._controller import default_structures, structures_label_map
    from medseg_napari._layers import META_LABEL_MAP, META_PROVENANCE, has_default_rows, mark_default_rows
    from medseg_napari._writer import saved_label_map, write_label_layer

    from medseg.phantoms import cine_sax_phantom

    rows = structures_label_map(default_structures())
    assert rows.values == {"lv": 1, "myo": 2, "rv": 3, "la": 4, "ra": 5}
    ph = cine_sax_phantom(n_frames=1, n_slices=4, shape=(48, 48), seed=0)
    lv_only = np.where(ph.labels == 1, 1, 0).astype(np.uint8)
    meta = {"medseg_volume": ph.image, META_LABEL_MAP: rows.to_dict(), META_PROVENANCE: {"actions": [LV_BOX]}}
    mark_default_rows(meta, rows)
    assert has_default_rows(meta)
    out = write_label_layer(tmp_path / "marked.nii.gz", lv_only, {"metadata": meta})
    assert json.loads(out[1].read_text())["label_map"] == {"lv": 1, "myo": 2, "rv": 3}
    assert not {"la", "ra"} & _absent(out[0], tmp_path)
    # a structure prompted and not found stays, as in segment's map of the structures asked for
    la_prompt = [LV_BOX, {"op": "prompt", "prompt": {"structure": "la", "frame": 0, "slice": 1}}]
    assert saved_label_map(rows, lv_only, la_prompt, default_rows=True).values == {"lv": 1, "myo": 2, "rv": 3, "la": 4}

    # the same values unmarked (a file's map, the user's own): as they are, la and ra flagged
    mark_default_rows(meta, None)
    out = write_label_layer(tmp_path / "unmarked.nii.gz", lv_only, {"metadata": meta})
    assert json.loads(out[1].read_text())["label_map"] == rows.values
    assert {"la", "ra"} <= _absent(out[0], tmp_path)
    own = {"lv": 1, "myo": 2, "rv": 3, "la": 4}
    out = write_label_layer(tmp_path / "own.nii.gz", lv_only, {"metadata": {**meta, META_LABEL_MAP: own}})
    assert json.loads(out[1].read_text())["label_map"] == own
    # a mark naming another map than the layer's (its rows changed since): not the default rows
    stale = {**meta, META_LABEL_MAP: own}
    mark_default_rows(stale, rows)
    assert not has_default_rows(stale)
    assert json.loads(write_label_layer(tmp_path / "stale.nii.gz", lv_only, {"metadata": stale})[1].read_text())["label_map"] == own


@needs_gui
def test_an_lv_only_panel_session_saves_no_absent_la_or_ra_and_edited_rows_are_saved_as_they_are(
        make_napari_viewer, qtbot, model_provider, small_cine, tmp_path):
    from medseg_napari._layers import META_DEFAULT_ROWS, image_layer_kwargs

    from medseg.types import Box

    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    viewer.add_image(vol.array, **image_layer_kwargs(vol, "cine"))
    w = start_widget(viewer, qtbot, model_provider, "cine", T_OUT)
    b = w.binding
    assert b.labels.metadata[META_DEFAULT_ROWS] == {"lv": 1, "myo": 2, "rv": 3, "la": 4, "ra": 5}
    w.controller.prompt("lv", 0, 3, box=Box.from_mask(truth[0, 3] == 1))
    w._after_change()  # as the dock does after a prompt event
    assert set(np.unique(b.labels.data)) == {0, 1}

    # Save labels… (the controller) and File > Save Selected Layer(s) (the medseg writer): lv, myo, rv
    files = w.save(tmp_path / "lv.nii.gz")
    assert json.loads(files[1].read_text())["label_map"] == {"lv": 1, "myo": 2, "rv": 3}
    assert not {"la", "ra"} & _absent(files[0], tmp_path)
    b.labels.save(str(tmp_path / "lv_layer.nii.gz"), plugin="medseg")
    assert json.loads((tmp_path / "lv_layer.json").read_text())["label_map"] == {"lv": 1, "myo": 2, "rv": 3}
    # measured in napari (the Measure panel's and the scripting function's map): no absent LA or RA either
    from medseg_napari._scripting import measure_layer

    flagged = {f.get("structure") for f in measure_layer(b.labels)["flags"] if f["code"] == "absent_structure"}
    assert not {"la", "ra"} & flagged

    # a row added in the session: the rows are the user's now, every one saved
    w.ui.custom_name.setText("scar")
    w.ui.add_structure.click()
    assert META_DEFAULT_ROWS not in b.labels.metadata
    added = json.loads(w.save(tmp_path / "scar.nii.gz")[1].read_text())["label_map"]
    assert added == {"lv": 1, "myo": 2, "rv": 3, "la": 4, "ra": 5, "scar": 6}

    # the saved session loaded (the file's map: lv, myo, rv), then LA added with medseg's value 4 by
    # the user: the same values as default rows cut to an LA prompt, but the user's own rows: as they are
    w.load_session(files[1])
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    assert list(w.controller.structures) == ["lv", "myo", "rv"] and META_DEFAULT_ROWS not in b.labels.metadata
    w.ui.custom_name.setText("la")
    w.ui.custom_value.setValue(4)
    w.ui.add_structure.click()
    assert w.controller.label_map.values == {"lv": 1, "myo": 2, "rv": 3, "la": 4}
    files = w.save(tmp_path / "own.nii.gz")
    assert json.loads(files[1].read_text())["label_map"] == {"lv": 1, "myo": 2, "rv": 3, "la": 4}
    assert "la" in _absent(files[0], tmp_path)  # a row the user added: they asked for it
    b.labels.save(str(tmp_path / "own_layer.nii.gz"), plugin="medseg")
    assert json.loads((tmp_path / "own_layer.json").read_text())["label_map"] == {"lv": 1, "myo": 2, "rv": 3, "la": 4}


@needs_gui
def test_rows_added_before_the_session_are_saved_as_they_are(make_napari_viewer, qtbot, model_provider, small_cine, tmp_path):
    """A row added in the panel (here before Start session, with a value of the user's choosing):
    the user's own rows, every one saved, on a restart too."""
    from medseg_napari._layers import META_DEFAULT_ROWS, image_layer_kwargs
    from medseg_napari._qt.segment_widget import SegmentWidget

    from medseg.types import Box

    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    viewer.add_image(vol.array, **image_layer_kwargs(vol, "cine"))
    w = SegmentWidget(viewer, models=model_provider)
    viewer.window.add_dock_widget(w, name="medseg: segmentation")
    w.ui.custom_name.setText("scar")
    w.ui.custom_value.setValue(9)
    w.ui.add_structure.click()
    w.ui.image.setCurrentText("cine")
    for _ in range(2):  # Start session, then Restart session: the rows stay the user's
        w.start_session()
        qtbot.waitUntil(lambda: w.controller is not None and not w.busy, timeout=T_OUT)
        assert META_DEFAULT_ROWS not in w.binding.labels.metadata and not w.controller.default_rows
    w.controller.prompt("lv", 0, 3, box=Box.from_mask(truth[0, 3] == 1))
    files = w.save(tmp_path / "scar.nii.gz")
    assert json.loads(files[1].read_text())["label_map"] == {"lv": 1, "myo": 2, "rv": 3, "la": 4, "ra": 5, "scar": 9}


def test_the_measure_panel_measures_the_map_a_save_writes():
    """The Measure panel (``in_use`` with the layer's metadata) cut marked default rows to the
    values present, while a save also kept a structure prompted and not found: `medseg measure` of
    the file flagged the LA absent, the panel said nothing."""
    from medseg_napari._controller import default_structures, structures_label_map
    from medseg_napari._layers import META_LABEL_MAP, META_PROVENANCE, mark_default_rows
    from medseg_napari._measure import in_use
    from medseg_napari._writer import saved_label_map

    rows = structures_label_map(default_structures())
    labels = np.zeros((1, 2, 8, 8), np.uint8)
    labels[0, 0, 2:4, 2:4] = 1
    acts = [LV_BOX, {"op": "prompt", "prompt": {"structure": "la", "frame": 0, "slice": 1}}]
    meta = {META_LABEL_MAP: rows.to_dict(), META_PROVENANCE: {"actions": acts}}
    mark_default_rows(meta, rows)
    saved = saved_label_map(rows, labels, acts, default_rows=True)
    assert saved.values == {"lv": 1, "myo": 2, "rv": 3, "la": 4}
    assert in_use(rows, np.unique(labels), meta).values == saved.values
    mark_default_rows(meta, None)  # unmarked: the rows as they are, in both
    assert in_use(rows, np.unique(labels), meta) is rows is saved_label_map(rows, labels, acts)
