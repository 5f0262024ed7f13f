"""Memory of the heavy measurement paths: the same numbers with less held at once.

``measure_phase`` held a boolean mask of the whole grid per structure of the label map (seven on
a CT: 0.6 GB on a 320 x 512 x 512 grid), a grid-sized papillary-muscle hole mask and a filled
copy of every LV slice. Only lv, myo and rv are read as shapes in the slice plane; the others
are now cut to their own rows and columns, and holes and filled slices are made one slice at a
time (BENCHMARKS.md, "Large inputs").

``segment_volume`` (``segment``, ``batch``, ``evaluate``) never undoes, but its Session kept
a copy of every slice each operation wrote, before and after: it now keeps none, and writes the
same labels.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy import ndimage

from medseg.labels import LabelMap
from medseg.measure import measure_phase
from medseg.measure import report_phase as rp
from medseg.measure.geometry import stack_geometry
from medseg.measure.volumes import slice_areas_mm2
from medseg.phantoms import ct_phantom


@pytest.fixture(scope="module")
def ct():
    """A CT phantom's seven structures on a (64, 128, 128) grid of 2 x 1 x 1 mm (rendered at half
    the resolution and each voxel repeated: fast to make)."""
    ph = ct_phantom(shape=(32, 64, 64), spacing=(4.0, 2.0, 2.0), seed=3)
    aff = ph.image.affine.copy()
    aff[:3, :3] /= 2
    return ph.labels[0].astype(np.uint8).repeat(2, 0).repeat(2, 1).repeat(2, 2), aff, ph.label_map


def _full_grid_masks(arr: np.ndarray, lmap: LabelMap) -> dict[str, np.ndarray]:
    return {name: arr == v for name, v in lmap.values.items()}


def test_ct_report_same_as_with_whole_grid_masks(ct, monkeypatch):
    arr, aff, lmap = ct
    assert all((arr == v).any() for v in lmap.values.values())  # all seven structures on the grid
    now = measure_phase(arr, aff, lmap, basal_rule=False)
    monkeypatch.setattr(rp, "phase_masks", _full_grid_masks)
    assert now == measure_phase(arr, aff, lmap, basal_rule=False)


def test_counted_structures_cut_to_their_box(ct):
    arr, _, lmap = ct
    lmap = LabelMap({**lmap.values, "other": 9})  # named, never labelled
    masks = rp.phase_masks(arr, lmap)
    for name in rp.GEOMETRY_STRUCTURES:
        assert masks[name].shape == arr.shape
    for name in ("la", "ra", "aorta", "pa"):
        m = masks[name]
        assert m.shape[0] == arr.shape[0] and m.shape[1] * m.shape[2] < arr.shape[1] * arr.shape[2]
        assert m.base is None  # its own copy, not a view that keeps the grid's mask
        full = arr == lmap[name]
        assert np.array_equal(slice_areas_mm2(m, _geom(arr)), slice_areas_mm2(full, _geom(arr)))
        assert int(m.sum()) == int(full.sum())
    assert masks["other"].shape == (arr.shape[0], 1, 1) and not masks["other"].any()


def _geom(arr: np.ndarray):
    return stack_geometry(np.diag([1.0, 1.0, 2.0, 1.0]), arr.shape)


def test_measure_phase_peak_allocation(ct):
    """numpy's allocations at the peak, per voxel of the grid: 10.7 bytes with a mask per
    structure (seven) and a grid of papillary holes; 5.8 now (three masks, one structure's mask
    while it is cut, and the two zero grids that stand in for absent structures, which np.zeros
    allocates untouched: counted here, not resident)."""
    arr, aff, lmap = ct
    tracemalloc.start()
    try:
        measure_phase(arr, aff, lmap, basal_rule=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak / arr.size < 8.5


def test_papillary_statement_slice_by_slice():
    """Holes in the LV cavity counted slice by slice give the grid-wide sums: myocardium in one
    hole (papillary muscle), unlabelled voxels in another, on slices of different weights."""
    lv = np.zeros((5, 40, 40), dtype=bool)
    lv[1:4, 8:30, 8:30] = True
    lv[1:3, 12:16, 12:16] = False  # holes
    lv[2:4, 20:25, 20:23] = False
    myo = np.zeros_like(lv)
    myo[1:3, 12:16, 12:16] = True  # papillary muscle labelled myocardium
    myo[:, 4:8, :] = True
    geom = stack_geometry(np.diag([1.3, 1.3, 8.0, 1.0]), lv.shape, [0.0, 8.0, 18.0, 26.0, 30.0])  # uneven slice weights
    got = rp.papillary_statement(lv, myo, geom)
    holes = np.stack([ndimage.binary_fill_holes(s) for s in lv]) & ~lv  # the whole grid's holes, as before
    want_myo = float((slice_areas_mm2(holes & myo, geom) * geom.weights_mm).sum() / 1000.0)
    want_bg = float((slice_areas_mm2(holes & ~myo, geom) * geom.weights_mm).sum() / 1000.0)
    assert want_myo > 0 and want_bg > 0
    assert got["inside_cavity_as_myo_ml"] == round(want_myo, 3)
    assert got["inside_cavity_unlabelled_ml"] == round(want_bg, 3)


# -- segment_volume keeps no undo copies -------------------------------------------------


@pytest.fixture(scope="module")
def cine():
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=1, n_slices=4, shape=(80, 80), spacing=(10.0, 1.5, 1.5), seed=3)
    return ph, ph.label_map.subset(["lv", "myo", "rv"])


def _run(model, cine, monkeypatch, undo: bool | None):
    """segment_volume, key slice + propagation; ``undo`` forces the Session's undo (None:
    as segment_volume makes it). Returns (result, the session it used)."""
    import medseg.session as session_mod
    from medseg.prompt_file import prompts_from_labels
    from medseg.segment import segment_volume

    ph, lm = cine
    made, init = [], session_mod.Session.__init__

    def spy(self, *a, **k):
        if undo is not None:
            k["undo"] = undo
        init(self, *a, **k)
        made.append(self)

    monkeypatch.setattr(session_mod.Session, "__init__", spy)
    res = segment_volume(ph.image, model, prompts_from_labels(ph.labels, lm, key_slice=True), propagate=True,
                         label_map=lm, confidence=False)
    return res, made[0]


def test_segment_volume_keeps_no_undo_copies_and_writes_the_same_labels(model, cine, monkeypatch):
    res, s = _run(model, cine, monkeypatch, None)
    assert s._undo == [] and s._last_after == {} and not s.can_undo
    kept, s_kept = _run(model, cine, monkeypatch, True)
    assert len(s_kept._undo) == 6 and s_kept._last_after  # a prompt and a propagation per structure
    assert res.labels.any() and np.array_equal(res.labels, kept.labels)
    assert res.provenance["actions"] == kept.provenance["actions"]
    assert res.scores == kept.scores


def test_without_undo_an_operation_cut_short_is_still_put_back(model, cine):
    from medseg.session import Session
    from medseg.types import SlicePrompt

    ph, lm = cine
    s = Session(ph.image, model, lm, undo=False)
    rows, cols = np.nonzero(ph.labels[0, 2] == lm["lv"])
    s.apply_prompt(SlicePrompt("lv", 0, 2, box=(int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max()))))
    before = s.labels.copy()
    assert before.any()

    def stop(done, total):
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        s.propagate("lv", 0, 2, progress=stop)
    assert np.array_equal(s.labels, before) and s._undo == []
