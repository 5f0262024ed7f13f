"""Memory behaviour large inputs rely on (BENCHMARKS.md, "Large inputs"): normalising makes one
float32 volume and no more, and the session hands freed heap pages back every few slices
without changing a result. Sizes, not speed or RSS: those belong in the benchmarks."""

from __future__ import annotations

import sys
import tracemalloc

import numpy as np
import pytest

import medseg._memory as memory
from medseg.preprocess import normalize_intensity


def _peak_bytes(fn, *args):
    tracemalloc.start()
    try:
        out = fn(*args)
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_normalising_a_ct_makes_one_float32_volume():
    """An int16 CT: the float32 result is the only volume-sized array made (it held three float32
    volumes and a mask of finite values: 0.75 GB more at 320 x 512 x 512), and its values are
    clip((HU + 250) / 1000, 0, 1) computed in float32."""
    hu = np.random.default_rng(0).integers(-2000, 3000, (1, 24, 128, 128)).astype(np.int16)
    keep = hu.copy()
    out, peak = _peak_bytes(normalize_intensity, hu, "CT")
    assert out.dtype == np.float32 and out.shape == hu.shape
    assert peak < 1.1 * out.nbytes, f"normalising allocated {peak / out.nbytes:.2f} times its result"
    ref = np.clip((hu.astype(np.float32) - np.float32(-250)) * np.float32(1.0 / 1000.0), 0.0, 1.0)
    assert out.tobytes() == ref.tobytes()
    assert np.array_equal(hu, keep)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalising_in_place_never_touches_the_callers_array(dtype):
    """A float image is copied once and normalised in place: the caller's array (napari's layer
    data, a Volume) keeps its values, non-finite voxels included, and shares no memory with the
    result; non-finite voxels become 0."""
    rng = np.random.default_rng(1)
    img = rng.gamma(2.0, 300.0, (2, 6, 64, 64)).astype(dtype)
    img[0, 1, 5, 5], img[1, 2, 7, 7] = np.nan, np.inf
    keep = img.copy()
    out = normalize_intensity(img, "MR")
    assert np.array_equal(img, keep, equal_nan=True)
    assert not np.shares_memory(out, img)
    assert out.dtype == np.float32 and out[0, 1, 5, 5] == 0 and out[1, 2, 7, 7] == 0
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_trimmer_trims_every_n_ticks(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "trim_heap", lambda: calls.append(1) or True)
    heap = memory.HeapTrimmer(every=5)
    for _ in range(23):
        heap.tick()
    assert heap.trims == len(calls) == 4


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_trim_heap_runs_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert memory.trim_heap() is True


def test_session_trims_as_it_goes_and_trimming_changes_no_label(model, phantom, monkeypatch):
    """A zero-click + confidence run ticks the session's trimmer (written slices and parallel
    items); trimming after every tick gives the same labels and confidence as never trimming."""
    from medseg.session import Session

    runs = {}
    for every in (1, 10**9):
        calls = []
        real = memory.trim_heap
        monkeypatch.setattr(memory, "trim_heap", lambda real=real, calls=calls: calls.append(1) or real())
        s = Session(phantom.image, model)
        s._heap = memory.HeapTrimmer(every=every)
        s.auto(["lv", "myo"], frames=[0])
        rep = s.confidence()
        runs[every] = (s.labels.copy(), rep.to_json()["volume"], len(calls))
    (lab1, conf1, n1), (lab0, conf0, n0) = runs[1], runs[10**9]
    assert n0 == 0 and n1 > phantom.image.n_slices  # written slices, scanned slices, scored slices
    assert lab1.any() and np.array_equal(lab1, lab0)
    assert conf1 == conf0


def test_consecutive_operations_share_their_undo_copy_of_a_slice(model, phantom):
    """The copy one operation keeps of a slice after it is the next one's copy before it (one
    array, not two), and undo still restores every state exactly."""
    from medseg.session import Session
    from medseg.types import Box, SlicePrompt

    s = Session(phantom.image, model)
    start = s.labels.copy()
    s.apply_prompt(SlicePrompt("lv", 0, 3, box=Box(40, 40, 70, 70)))
    after_lv = s.labels.copy()
    s.apply_prompt(SlicePrompt("rv", 0, 3, box=Box(35, 15, 75, 50)))
    first, second = s._undo[-2], s._undo[-1]
    assert second.slices[(0, 3)] is first.after_slices[(0, 3)]
    s.clear("lv", 0, 3)  # an erase shares it too
    assert s._undo[-1].slices[(0, 3)] is second.after_slices[(0, 3)]
    s.undo()
    s.undo()
    assert np.array_equal(s.labels, after_lv)
    s.undo()
    assert np.array_equal(s.labels, start)
    s.labels[0, 3, 0, 0] = 9  # painted outside the session: the next copy is a new one
    s.apply_prompt(SlicePrompt("lv", 0, 3, box=Box(40, 40, 70, 70)))
    assert s._undo[-1].slices[(0, 3)] is not first.after_slices[(0, 3)] and s._undo[-1].slices[(0, 3)][0, 0] == 9


def test_the_undo_history_keeps_to_its_memory_budget(model, phantom, monkeypatch):
    """A day of operations on one cine kept every step's slice copies (15-25 MB a step propagated
    through a 30-frame cine): past MEDSEG_UNDO_MB the oldest steps go, the latest stays undoable
    and what is kept still restores exactly."""
    from medseg._session_undo import UNDO_BUDGET_MB, undo_budget_bytes
    from medseg.session import Session
    from medseg.types import Box, SlicePrompt

    assert undo_budget_bytes() == UNDO_BUDGET_MB * 2**20
    s = Session(phantom.image, model)
    states = [s.labels.copy()]
    for z in (2, 3, 4):
        s.apply_prompt(SlicePrompt("lv", 0, z, box=Box(40, 40, 70, 70)))
        states.append(s.labels.copy())
    assert len(s._undo) == 3 and not getattr(s, "undo_dropped", 0)  # the default budget keeps them all
    step = s._undo[-1].size
    assert step >= s.labels[0, 4].nbytes  # at least its before copy of the slice
    monkeypatch.setenv("MEDSEG_UNDO_MB", str(2.5 * step / 2**20))  # room for two steps
    s.apply_prompt(SlicePrompt("lv", 0, 5, box=Box(40, 40, 70, 70)))
    states.append(s.labels.copy())
    assert len(s._undo) == 2 and s.undo_dropped == 2
    s.undo()
    assert np.array_equal(s.labels, states[3])
    s.undo()
    assert np.array_equal(s.labels, states[2]) and not s.can_undo
    s.redo()
    s.redo()
    assert np.array_equal(s.labels, states[4])
    monkeypatch.setenv("MEDSEG_UNDO_MB", "0")  # even no budget keeps the latest step
    s.clear("lv", 0, 5)
    assert len(s._undo) == 1
    s.undo()
    assert np.array_equal(s.labels, states[4])


def test_a_replayed_log_keeps_every_undo_step_it_needs(model, phantom, monkeypatch):
    """A log recorded with a larger undo budget replays with a small one: its undos find their steps."""
    from medseg.session import Session
    from medseg.types import Box, SlicePrompt

    s = Session(phantom.image, model)
    for z in (2, 3, 4):
        s.apply_prompt(SlicePrompt("lv", 0, z, box=Box(40, 40, 70, 70)))
    s.undo(), s.undo(), s.undo()
    assert not s.labels.any()
    monkeypatch.setenv("MEDSEG_UNDO_MB", "0")
    r = Session(phantom.image, model)
    r.replay(s.provenance()["actions"])
    assert np.array_equal(r.labels, s.labels) and len(r._undo) == 0 and len(r._redo) == 3
