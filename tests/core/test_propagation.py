"""Stop rules of slice propagation (medseg.propagation), without the model: the walker is fed
prepared predictions so each rule is tested on its own."""

from __future__ import annotations

import numpy as np
import pytest

import medseg.propagation as prop
from medseg.types import Prediction


def _square(side: int, shape: tuple[int, int] = (64, 64)) -> np.ndarray:
    m = np.zeros(shape, bool)
    c = shape[0] // 2
    m[c - side // 2 : c - side // 2 + side, c - side // 2 : c - side // 2 + side] = True
    return m


def _walk_areas(monkeypatch, sides: list[int], scores: list[float] | None = None, seed_side: int = 10, pixel_mm: float = 5.0) -> list[int]:
    """Feed predictions of squares with the given sides to the walker; return the slices it kept.
    ``pixel_mm``: in-plane pixel size (5 mm: LEAK_FLOOR_MM2 is 24 px, under the masks here)."""
    preds = {z: Prediction(_square(s), (scores or [0.9] * len(sides))[z - 1]) for z, s in enumerate(sides, start=1)}
    monkeypatch.setattr(prop, "step_from", lambda session, structure, t, z, prev: preds[z])
    steps = ((0, z) for z in range(1, len(sides) + 1))
    return [z for _, z, _ in prop._walk(_NoBlank(pixel_mm), "lv", steps, _square(seed_side), check_end=True)]


class _NoBlank:
    """A session stand-in for the walker: every slice has signal."""

    def __init__(self, pixel_mm: float = 5.0):
        self.volume = type("V", (), {"spacing": (10.0, pixel_mm, pixel_mm)})()
        self.results = {}  # no slice prompted by the user

    def blank(self, t: int, z: int) -> bool:
        return False

    def spare_threads(self) -> int:
        return 1

    def parallel_map(self, fn, items, workers=None, done=None):
        return [fn(x) for x in items]


@pytest.mark.parametrize(
    ("sides", "kept"),
    [
        ([10, 9, 8], [1, 2, 3]),  # a structure that narrows slowly is followed
        ([10, 2, 8], [1]),  # area collapse (4 / 100 < MIN_AREA_RATIO) ends it
        ([10, 18, 10], [1]),  # a leak: 324 px after 100 px is more than MAX_AREA_RATIO x
        ([10, 16, 18], [1, 2, 3]),  # 2.56x and 1.27x growth are still a structure
    ],
)
def test_walker_stops_at_collapse_and_leak(monkeypatch, sides, kept):
    assert _walk_areas(monkeypatch, sides) == kept


def test_walker_stops_on_low_predicted_iou(monkeypatch):
    assert _walk_areas(monkeypatch, [10, 10, 10], scores=[0.9, prop.MIN_SCORE - 0.01, 0.9]) == [1]


def test_leak_rule_has_a_floor_for_tiny_masks():
    tiny = _square(2)  # 4 px: a growth to 3 x 24 px is allowed near the apex
    assert not prop._leaks(3 * 4 * prop.MIN_PIXELS, tiny, pixel_mm2=25.0)
    assert prop._leaks(3 * 4 * prop.MIN_PIXELS + 1, tiny, pixel_mm2=25.0)
    # in millimetres: at 1.5 mm pixels the previous area counts as at least 600 mm^2 (266.7 px)
    floor_px = prop.LEAK_FLOOR_MM2 / 2.25
    assert not prop._leaks(int(prop.MAX_AREA_RATIO * floor_px), tiny, pixel_mm2=2.25)
    assert prop._leaks(int(prop.MAX_AREA_RATIO * floor_px) + 1, tiny, pixel_mm2=2.25)


@pytest.mark.parametrize(
    ("sides", "kept"),
    [
        ([6, 15, 19], [1, 2, 3]),  # 36 px (81 mm^2) -> 225 -> 361 px: a slit-like ES cavity widening towards the base
        ([10, 30], [1]),  # 100 -> 900 px (2,025 mm^2): a leak even for a small structure
        ([20, 40], [1]),  # above the floor the ratio rule is unchanged: 400 -> 1,600 px
    ],
)
def test_small_structures_may_grow_past_the_ratio(monkeypatch, sides, kept):
    # ACDC patient022 at end-systole (hypertrophic LV): 72 -> 232 px between two slices; the
    # ratio rule alone stopped the LV there and the LVEF read 96 % instead of 65 %
    assert _walk_areas(monkeypatch, sides, seed_side=sides[0], pixel_mm=1.5) == kept


def test_shipped_rv_end_check_matches_its_fit_for_the_shipped_model():
    """The RV end check ships weights exactly when its last fit (docs/bench/end_check_fit.json,
    made for the shipped default) gained out-of-fold RV Dice; shipped weights match the features
    and say what a basal slice above the valve looks like."""
    import json
    from pathlib import Path

    from medseg import end_check
    from medseg.models.registry import shipped_sha256

    report = json.loads((Path(__file__).resolve().parents[2] / "docs" / "bench" / "end_check_fit.json").read_text())
    assert report["weights"]["model_sha256"] == shipped_sha256()  # re-fit it when the default changes
    gain = report["out_of_fold_rv_dice"]["after"] - report["out_of_fold_rv_dice"]["before"]
    w = end_check.weights()
    assert report["shipped"] == (gain >= report["min_gain"]) == (w is not None)
    if w is None:
        return
    assert w["structure"] == "rv" and tuple(w["features"]) == end_check.FEATURES and w["model_sha256"] == shipped_sha256()
    for end in ("base", "apex"):
        assert len(w["ends"][end]["w"]) == len(end_check.FEATURES)
    # a basal slice with a large RV but little LV and myocardium (above the valve) is judged
    # not RV; a mid-ventricular-like one with both around is kept
    above_valve = [0.9, 0.0, 0.8, 0.8, 0.2, 0.1]
    mid = [0.9, 0.0, 0.9, 0.95, 0.9, 0.9]
    assert end_check.probability(w, "base", above_valve) > w["threshold"] > end_check.probability(w, "base", mid)


def _at(y: int, x: int, side: int = 8, shape: tuple[int, int] = (64, 64)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y : y + side, x : x + side] = True
    return m


def test_zero_click_rv_findings_away_from_the_heart_are_dropped():
    """A zero-click RV finding must come within ADJACENT_PX of the myocardium found on the
    same slice (the RV lies against the septum): a stomach on the far side is not the RV."""
    myo = _at(20, 20, side=12)
    found = {
        "myo": {0: Prediction(myo, 0.9), 1: Prediction(myo, 0.9), 2: Prediction(myo, 0.9)},
        "lv": {0: Prediction(_at(24, 24, side=4), 0.9), 4: Prediction(_at(24, 24, side=4), 0.9)},
        "rv": {
            0: Prediction(_at(20, 31 + prop.ADJACENT_PX), 0.5),  # ADJACENT_PX from the myocardium (centre to centre)
            1: Prediction(_at(20, 32 + prop.ADJACENT_PX), 0.6),  # one pixel further: detached
            2: Prediction(_at(40, 50), 0.7),  # far away (the stomach)
            3: Prediction(_at(40, 50), 0.7),  # nothing else found on this slice: left alone
            4: Prediction(_at(20, 36), 0.7),  # only the LV cavity found: a septum's width away is fine
        },
    }
    prop._drop_detached(found)
    assert sorted(found["rv"]) == [0, 3, 4]
    assert sorted(found["myo"]) == [0, 1, 2] and sorted(found["lv"]) == [0, 4]  # the neighbours are not touched


class _Stack(_NoBlank):
    def __init__(self, n_slices: int, pixel_mm: float = 1.5):
        super().__init__(pixel_mm)
        self.volume.n_slices = n_slices


@pytest.mark.parametrize(
    ("apex_side", "base_side", "kept"),
    [
        (12, 14, [0, 1, 2, 3, 4]),  # 144 px past a 25 px apical tip: not the ventricle (under the leak floor)
        (6, 14, [0, 1, 2, 3, 4, 5]),  # 36 px: still narrowing towards the tip, kept
        (6, 18, [0, 1, 2, 3, 4, 5]),  # at the widening (basal) end a larger finding is kept: 324 px after 144
    ],
)
def test_zero_click_findings_do_not_regrow_past_a_tapering_end(monkeypatch, apex_side, base_side, kept):
    # ACDC patient098 at end-systole: the LV walk ended at 126 px on the apical slice, and the
    # zero-click finding beyond it (792 px, under the 600 mm^2 leak floor) was kept as LV
    sides = {1: 12, 2: 11, 3: 10, 4: 5}  # the propagated stack: widest at slice 1 (base), tip at 4
    walked = {z: Prediction(_square(s), 0.9) for z, s in sides.items()}
    monkeypatch.setattr(prop, "propagate_slices", lambda session, s, t, key, seed_mask=None: ((t, z, p) for z, p in walked.items() if z != key))
    per_slice = {2: walked[2], 0: Prediction(_square(base_side), 0.8), 5: Prediction(_square(apex_side), 0.8)}
    out = [z for _, z, _ in prop._auto_stack(_Stack(6), "lv", 0, per_slice)]
    assert out == kept


@pytest.mark.parametrize(("structure", "kept"), [("lv", [0, 1, 2, 3, 4]), ("rv", [1, 2, 3])])
def test_zero_click_rv_extent_is_its_walk(monkeypatch, structure, kept):
    # A basal per-slice finding beyond the walk, touching its end slice and no leak, is kept
    # for the LV; for the RV (WALK_ONLY) such a finding is mostly the right atrium: dropped,
    # at either end
    walked = {z: Prediction(_square(s), 0.9) for z, s in {1: 12, 2: 11, 3: 9}.items()}
    monkeypatch.setattr(prop, "propagate_slices", lambda session, s, t, key, seed_mask=None: ((t, z, p) for z, p in walked.items() if z != key))
    per_slice = {2: walked[2], 0: Prediction(_square(12), 0.9), 4: Prediction(_square(7), 0.9)}
    assert [z for _, z, _ in prop._auto_stack(_Stack(5), structure, 0, per_slice)] == kept


class _Clicks(_Stack):
    """A session stand-in for probe_beside: its predictor answers every click with the mask
    ``answer(i)`` of the i-th click (score 0.9)."""

    def __init__(self, answer, shape=(64, 64)):
        super().__init__(1)
        self.volume.array = np.zeros((1, 1, *shape), np.float32)
        clicks = []

        def predict(points=(), structure=None):
            clicks.append(points[0])
            return Prediction(answer(len(clicks) - 1), 0.9)

        self.predictor = type("P", (), {"predict": staticmethod(predict)})()
        self.clicks = clicks

    def _set_slice(self, t, z):
        pass


def _ring(shape=(64, 64), c=(32, 32), r0=6, r1=10) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d = np.hypot(yy - c[0], xx - c[1])
    return (d >= r0) & (d <= r1)


def test_probe_beside_clicks_around_the_neighbour_and_needs_agreement_and_free_ground():
    """The RV probe clicks PROBE_DIRECTIONS points around the myocardium; a finding touching it,
    outside it, its cavity and the other structures' findings, found by two clicks, is kept."""
    myo = {0: Prediction(_ring(), 0.9)}
    rv = _at(26, 43, side=12)  # beside the ring's right side, touching it
    s = _Clicks(lambda i: rv)
    out = prop.probe_beside(s, "rv", 0, myo)
    assert list(out) == [0] and out[0].mask is rv
    assert len(s.clicks) == prop.PROBE_DIRECTIONS
    radius = [np.hypot(p.y - 32, p.x - 32) for p in s.clicks]  # the ring's centre; extent 21 px
    assert np.allclose(radius, prop.PROBE_DIST * 21, atol=0.5)
    # where another structure was found (an atrium in a long-axis view) there is no RV
    assert prop.probe_beside(_Clicks(lambda i: rv), "rv", 0, myo, [{0: Prediction(rv, 0.9)}]) == {}
    # the cavity the myocardium encloses is not the RV
    assert prop.probe_beside(_Clicks(lambda i: _at(28, 28, side=8)), "rv", 0, myo) == {}
    # a finding no other click agrees with is dropped (each click finds something else)
    assert prop.probe_beside(_Clicks(lambda i: _at(2 + 7 * i, 43, side=6) | rv if i == 0 else _at(2 + 7 * i, 55, side=4)), "rv", 0, myo) == {}
    # nor one apart from the myocardium
    assert prop.probe_beside(_Clicks(lambda i: _at(2, 50, side=6)), "rv", 0, myo) == {}
