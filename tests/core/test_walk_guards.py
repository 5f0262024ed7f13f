"""Walk stop rules, re-propagation over earlier walks and the LV enclosure rules
(medseg.propagation, medseg.enclosure) on prepared predictions: a Session over a noise image
whose predictor answers each (structure, slice) with a mask from a table, so no model runs."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import medseg.propagation as prop
from medseg import enclosure
from medseg.io.volume import Volume
from medseg.session import Session
from medseg.types import Box, Prediction, SlicePrompt

SHAPE = (64, 64)
PIXEL_MM = 2.0  # 4 mm^2 pixels: LEAK_FLOOR_MM2 is 150 px


def _disc(r: float, c: tuple[int, int] = (32, 32)) -> np.ndarray:
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return np.hypot(yy - c[0], xx - c[1]) <= r


def _ring(r0: float, r1: float, c: tuple[int, int] = (32, 32)) -> np.ndarray:
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    d = np.hypot(yy - c[0], xx - c[1])
    return (d >= r0) & (d <= r1)


def _square(side: int, y0: int | None = None, x0: int | None = None) -> np.ndarray:
    m = np.zeros(SHAPE, bool)
    c = SHAPE[0] // 2 - side // 2
    y0, x0 = c if y0 is None else y0, c if x0 is None else x0
    m[y0 : y0 + side, x0 : x0 + side] = True
    return m


class _TablePredictor:
    """Stands in for the SlicePredictor: answers (structure, slice of the image set last) with
    ``table[(structure, z)]`` (an empty mask when absent), score ``scores.get(...)`` or 0.9."""

    def __init__(self):
        self.key = None
        self.table: dict[tuple[str, int], np.ndarray] = {}
        self.scores: dict[tuple[str, int], float] = {}
        self.calls: list[tuple[str, int]] = []

    def set_image(self, image01, key=None):
        self.key = key

    def predict(self, box=None, points=(), structure=None, mask_prompt=None, **kw):
        z = self.key[2]
        self.calls.append((structure, z))
        mask = self.table.get((structure, z), np.zeros(SHAPE, bool))
        # logits and roi as the model gives them, so the session keeps the slice's result
        return Prediction(mask.copy(), self.scores.get((structure, z), 0.9), logits=np.where(mask[::4, ::4], 5.0, -5.0).astype(np.float32), roi=(0, 0, *SHAPE))


def _session(n_slices: int = 6, label_map: str = "lv=1,myo=2") -> Session:
    """A Session on a noise image (every slice has signal) with a table predictor (``.answers``)."""
    arr = np.random.default_rng(0).normal(100.0, 20.0, size=(1, n_slices, *SHAPE)).astype(np.float32)
    vol = Volume(array=arr, affine=np.diag([PIXEL_MM, PIXEL_MM, 10.0, 1.0]), modality="MR")
    config = SimpleNamespace(structures=("lv", "myo", "rv"))
    model = SimpleNamespace(config=config, device="cpu", sha256="no-such-model", model=SimpleNamespace(config=config))
    s = Session(vol, model, label_map)
    s._predictor = s.answers = _TablePredictor()
    s.spare_threads = lambda: 1  # walks one after the other, on this thread's (table) predictor
    return s


def _slices(s: Session, name: str, t: int = 0) -> list[int]:
    v = s.structure(name).value
    return [z for z in range(s.volume.n_slices) if (s.labels[t, z] == v).any()]


# -- stop rules of a slice walk -------------------------------------------------------------
class _NoBlank:
    """A session stand-in for the walker: every slice has signal, no slice prompted by the user."""

    def __init__(self):
        self.volume = SimpleNamespace(spacing=(10.0, 5.0, 5.0))  # 25 mm^2 pixels: leak floor 24 px
        self.results = {}

    def blank(self, t, z):
        return False


def _walk(monkeypatch, seed: np.ndarray, masks: list[np.ndarray]) -> list[int]:
    """Slices 1..len(masks) a walk from ``seed`` keeps when slice z's prediction is masks[z - 1]."""
    preds = {z: Prediction(m, 0.9) for z, m in enumerate(masks, start=1)}
    monkeypatch.setattr(prop, "step_from", lambda session, structure, t, z, prev: preds[z])
    steps = ((0, z) for z in range(1, len(masks) + 1))
    return [z for _, z, _ in prop._walk(_NoBlank(), "lv", steps, seed, check_end=True)]


@pytest.mark.parametrize(
    ("side", "kept"),
    [
        (6, []),  # 36 px after 400: above MIN_PIXELS, below MIN_AREA_RATIO (48 px): the structure has ended
        (7, [1, 2]),  # 49 px: just above the ratio, still followed
    ],
)
def test_walk_stops_where_the_area_collapses_below_the_ratio(monkeypatch, side, kept):
    """Past the apex the model returns a sliver of the previous slice's area: the walk stops
    there (MIN_AREA_RATIO), or the LV/RV volume gains slices of noise beyond the ventricle."""
    assert side * side > prop.MIN_PIXELS  # the ratio rule, not the pixel floor, decides
    assert _walk(monkeypatch, _square(20), [_square(side), _square(side)]) == kept


def test_walk_stops_where_the_prediction_leaves_the_previous_mask(monkeypatch):
    """A prediction that does not overlap the previous slice's mask is something else (the
    other ventricle, the stomach): the walk stops rather than following it up the stack."""
    elsewhere = _square(10, y0=2, x0=2)  # same size, 20 px away from the centred seed
    assert not (elsewhere & _square(10)).any()
    assert _walk(monkeypatch, _square(10), [elsewhere, elsewhere]) == []
    touching = _square(10, y0=_square(10).nonzero()[0].max(), x0=27)  # shares one row with the seed
    assert _walk(monkeypatch, _square(10), [touching]) == [1]


# -- re-propagation after a correction --------------------------------------------------------
def test_repropagation_after_a_correction_overwrites_the_earlier_walk_but_not_user_slices():
    """After the user corrects one slice and propagates again, the slices the earlier walk
    wrote are redrawn from the correction (their provenance names the new key slice); only
    slices the user prompted are kept. Treating walk-written slices as the user's kept the
    stale masks next to the correction."""
    s = _session()
    old, new = _disc(8), _disc(10)
    s.answers.table = {("lv", z): old for z in range(6)}
    s.apply_prompt(SlicePrompt("lv", 0, 2, box=Box.from_mask(old)))
    s.propagate("lv", 0, 2)
    assert all(s.results[("lv", 0, z)].prompt["propagated_from"] == [0, 2] for z in (0, 1, 3, 4, 5))
    s.answers.table = {("lv", z): new for z in range(6)}  # the corrected shape
    s.apply_prompt(SlicePrompt("lv", 0, 4, box=Box.from_mask(new)))  # the correction
    s.answers.calls.clear()
    s.propagate("lv", 0, 4)
    for z in (0, 1, 3, 5):  # redrawn from the correction
        assert s.results[("lv", 0, z)].prompt["propagated_from"] == [0, 4], z
        assert np.array_equal(s.labels[0, z] == 1, new), z
        assert ("lv", z) in s.answers.calls
    assert ("lv", 2) not in s.answers.calls  # the user's own slice is not predicted again ...
    assert "propagated_from" not in s.results[("lv", 0, 2)].prompt and np.array_equal(s.labels[0, 2] == 1, old)  # ... nor changed
    assert "propagated_from" not in s.results[("lv", 0, 4)].prompt


# -- the enclosure rules -------------------------------------------------------------------------
def test_enclosing_step_keeps_the_myocardium_only_where_it_surrounds_the_lv():
    """The myocardium propagated onto an LV slice beyond its range is kept only when it closes
    around the LV (ray coverage >= MIN_ENCLOSURE): a half ring means the LV walk went too far
    (past the apex or into the atrium), and writing it would hide that LV slice from the trim."""
    s = _session()
    s.labels[0, 2][_ring(9, 13)] = 2  # the myocardium on the slice before
    s.labels[0, 3][_disc(8)] = 1  # the LV on the slice beyond the myocardium
    closed = _ring(9, 13)
    s.answers.table[("myo", 3)] = closed
    pred = enclosure.enclosing_step(s, "myo", "lv", 0, 3, 2)
    assert pred is not None and np.array_equal(pred.mask, closed)
    half = closed & (np.mgrid[: SHAPE[0], : SHAPE[1]][1] >= 32)  # only the right half of the ring
    s.answers.table[("myo", 3)] = half
    assert enclosure.enclosing_step(s, "myo", "lv", 0, 3, 2) is None


@pytest.mark.parametrize(
    ("case", "pred", "ring", "score", "kept"),
    [
        ("enclosed", _disc(6), _ring(7, 10), 0.9, True),
        ("leak", _disc(14), _ring(15, 18), 0.9, False),  # ~615 px after ~80 px (floor 150 px): out of the cavity
        ("low predicted IoU", _disc(6), _ring(7, 10), prop.MIN_SCORE - 0.1, False),
        ("no overlap", _disc(5, c=(12, 12)), _ring(6, 9, c=(12, 12)), 0.9, False),
    ],
)
def test_cavity_step_checks_the_lv_like_a_propagated_slice(case, pred, ring, score, kept):
    """An LV found by a box in a basal myocardium ring is written only when it passes the
    propagation checks (predicted IoU, area ratio, leak, overlap with the LV below), not merely
    because the ring surrounds it: a leak filling the whole ring would inflate the LV volume."""
    s = _session()
    s.labels[0, 2][_disc(5)] = 1  # the LV's basal end slice
    s.labels[0, 1][ring] = 2  # the myocardium ring beyond it
    s.answers.table[("lv", 1)] = pred
    s.answers.scores[("lv", 1)] = score
    out = enclosure.cavity_step(s, "lv", "myo", 0, 1, 2)
    assert (out is not None) == kept, case
    if kept:
        assert np.array_equal(out.mask, pred)


def test_every_lv_slice_beyond_the_myocardium_is_trimmed_not_only_the_first():
    """An LV walk that ran two or more slices past the myocardium (which does not surround it
    there) loses all of them, not just the first: otherwise an LV slice beyond a gap stays,
    outside the heart, and adds to the LV volume."""
    s = _session()
    ring, lv = _ring(9, 13), _disc(8)
    s.answers.table = {**{("myo", z): ring for z in (1, 2, 3)}, **{("lv", z): lv for z in range(6)}}
    s.apply_prompt(SlicePrompt("myo", 0, 2, box=Box.from_mask(ring)))
    s.propagate("myo", 0, 2)  # the myocardium ends at slices 1 and 3 (empty predictions beyond)
    assert _slices(s, "myo") == [1, 2, 3]
    s.apply_prompt(SlicePrompt("lv", 0, 2, box=Box.from_mask(lv)))
    change = s.propagate("lv", 0, 2)  # the LV walk runs on to slices 0, 4 and 5
    assert _slices(s, "lv") == [1, 2, 3]
    assert sorted(r["slice"] for r in change.removed if r["rule"] == "lv_outside_myo") == [0, 4, 5]
