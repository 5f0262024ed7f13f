"""`missing_frame` judges only the frames that were segmented.

A batch review found a 3-frame echo clip segmented with `--frames ed,es` (frames 0 and 1) flagged
"LV missing on 1 of 3 frames (2)" for LV, MYO and LA: the frame left empty by request was read
as one the propagation lost. The frames segmented (`settings.frames`) are now the ones judged."""

from __future__ import annotations

import numpy as np

from medseg.labels import LabelMap
from medseg.review import frame_flags

LMAP = LabelMap.parse("lv=1,myo=2")


def _labels(on: list[int], n: int) -> np.ndarray:
    lab = np.zeros((n, 1, 8, 8), np.uint8)
    for t in on:
        lab[t, 0, 2:5, 2:5] = 1
        lab[t, 0, 5:7, 2:5] = 2
    return lab


def test_frames_left_empty_by_request_are_not_missing():
    lab = _labels([0, 1], 3)
    assert [f["structure"] for f in frame_flags(lab, LMAP)] == ["lv", "myo"]  # all frames judged: frame 2 is missing
    assert frame_flags(lab, LMAP, frames=[0, 1]) == []  # ED and ES only: nothing to miss


def test_a_frame_lost_among_the_chosen_ones_is_still_flagged():
    lab = _labels([0, 2], 6)
    flags = frame_flags(lab, LMAP, frames=[0, 2, 4])
    assert [(f["structure"], f["frames"]) for f in flags] == [("lv", [4]), ("myo", [4])]
    assert flags[0]["message"] == "LV missing on 1 of 3 frames (4), found on the others"


def test_segment_volume_with_chosen_frames_does_not_flag_the_others(model):
    from medseg.phantoms import echo_apical_phantom
    from medseg.segment import segment_volume

    ph = echo_apical_phantom("a4c", n_frames=3, seed=1)
    res = segment_volume(ph.image, model, auto=True, auto_structures=("lv", "myo", "la"), frames=[0, 1])
    assert res.provenance["settings"]["frames"] == [0, 1]
    assert not [f for f in res.provenance["review"]["flags"] if f["code"] == "missing_frame"]
