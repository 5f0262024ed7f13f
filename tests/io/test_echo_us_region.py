"""Zero-click on a full-screen echo DICOM looks only at the ultrasound image region.

Echo machines export a clip as the whole screen: the 2-D sector inside a larger frame, an ECG
trace below it. DICOM's SequenceOfUltrasoundRegions says where the sector is; zero-click ran on
the whole screen: on a synthetic 300 x 400 screen ED and ES were picked wrong (frames 6 and 0
for 2 and 8) and the single-plane EF came out 14 % for the phantom's 50.6 %, with LV, LA and
myocardium labelled outside the sector. The reader now records the region's box
(``meta["us_region"]``, :mod:`medseg.io.us_region`) and zero-click looks only inside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from io_synth import us_region, write_us_screen
from pydicom.dataset import Dataset

from medseg.errors import PromptError
from medseg.io import read_volume

ROWS, COLS, TOP, LEFT, SIDE = 300, 400, 20, 60, 224  # the screen, the sector's place and size on it
REGION = [TOP, LEFT, TOP + SIDE - 1, LEFT + SIDE - 1]  # [row0, col0, row1, col1], inclusive


def _region(box_xyxy, fmt: int = 1, units=(3, 3), delta=(0.07, 0.07)) -> Dataset:
    c0, r0, c1, r1 = box_xyxy
    return us_region((r0, c0, r1, c1), fmt=fmt, units=units, delta_cm=delta)


def _sector_region(box=None) -> Dataset:
    return us_region(tuple(REGION if box is None else box))


ECG = _region((0, 250, COLS - 1, ROWS - 1), fmt=4, units=(4, 0), delta=(0.01, 1.0))


@pytest.fixture(scope="module")
def screen() -> np.ndarray:
    """(T, ROWS, COLS) uint8: an apical 4-chamber phantom (0.7 mm pixels) in the sector, an ECG trace below."""
    from medseg.phantoms import echo_apical_phantom

    ph = echo_apical_phantom(view="a4c", n_frames=3, shape=(SIDE, SIDE), spacing=0.7, seed=3)
    out = np.zeros((3, ROWS, COLS), np.uint8)
    out[:, TOP:TOP + SIDE, LEFT:LEFT + SIDE] = np.clip(ph.image.array[:, 0], 0, 255).astype(np.uint8)
    xs = np.arange(COLS)
    out[:, (270 + 12 * np.sin(xs / 9.0)).astype(int), xs] = 150  # the green trace's luminance
    return out


def _write(path: Path, pixels: np.ndarray, regions: list[Dataset] | None) -> Path:
    return write_us_screen(path, pixels, regions)


def test_the_2d_region_is_read_into_meta_and_gives_the_pixel_size(tmp_path, screen):
    """The first cm-calibrated 2-D region (after the ECG strip's) is the box, inclusive
    [row0, col0, row1, col1]; the array stays the whole screen."""
    vol = read_volume(_write(tmp_path / "a.dcm", screen, [ECG, _sector_region()]))
    assert vol.meta["us_region"] == REGION
    assert "us_region_note" not in vol.meta
    assert vol.shape == (3, 1, ROWS, COLS)
    assert vol.spacing[1:] == pytest.approx((0.7, 0.7))


def test_a_calibrated_region_of_another_kind_gives_neither_box_nor_pixel_size(tmp_path, screen):
    """An M-mode region calibrated in cm on both axes listed before the 2-D one: the box and the
    pixel size both come from the 2-D region (the pixel size came from the M-mode one before)."""
    m_mode = _region((0, 0, COLS - 1, 49), fmt=2, delta=(0.2, 0.2))
    vol = read_volume(_write(tmp_path / "m.dcm", screen, [m_mode, _sector_region()]))
    assert vol.meta["us_region"] == REGION
    assert vol.spacing[1:] == pytest.approx((0.7, 0.7))


@pytest.mark.parametrize(("box", "expect", "says"), [
    ([200, 350, 320, 450], [200, 350, 299, 399], "clipped to rows 200-299, columns 350-399"),  # partly outside: clipped
    ([200, 60, 100, 283], None, "reversed"),
    ([310, 60, 400, 283], None, "outside the 300x400 image"),
    ([0, 0, 0, 0], None, "under 16 pixels"),  # a placeholder region
])
def test_a_bad_region_box_is_clipped_or_ignored(tmp_path, screen, box, expect, says):
    vol = read_volume(_write(tmp_path / "b.dcm", screen, [ECG, _sector_region(box)]))
    assert vol.meta.get("us_region") == expect
    assert says in vol.meta["us_region_note"]
    assert vol.shape == (3, 1, ROWS, COLS) and vol.spacing[1:] == pytest.approx((0.7, 0.7))  # the calibration still holds


def _outside(labels: np.ndarray, box) -> int:
    inside = np.zeros(labels.shape[-2:], bool)
    inside[box[0]:box[2] + 1, box[1]:box[3] + 1] = True
    return int(((labels > 0) & ~inside).sum())


def test_zero_click_labels_nothing_outside_the_region(tmp_path, screen, model):
    """On the full screen zero-click labelled the LV, LA and myocardium outside the sector; now
    nothing outside it, the provenance says where it looked, and a box a user gives outside the
    region is answered as before (prompts are not restricted)."""
    from medseg.frame_pick import pick_ed_es
    from medseg.session import Session
    from medseg.types import Box, SlicePrompt

    vol = read_volume(_write(tmp_path / "a.dcm", screen, [ECG, _sector_region()]))
    s = Session(vol, model, "lv=1,myo=2,la=3", undo=False)
    s.auto(frames=[0])
    assert s.labels[0].any() and _outside(s.labels, REGION) == 0
    assert s.log[-1]["us_region"] == REGION
    assert s.provenance()["zero_click_region"]["us_region"] == REGION
    picked = pick_ed_es(s)
    assert picked["us_region"] == REGION and picked["method"] == "zero-click LV area on the view's one slice"  # not "mid-ventricular slices"

    box = SlicePrompt("lv", 1, 0, box=Box(200, 20, 290, 120))  # across the sector's lower-left edge, over the ECG strip
    plain = Session(read_volume(_write(tmp_path / "n.dcm", screen, None)), model, "lv=1,myo=2,la=3", undo=False)
    assert np.array_equal(s.predict(box).mask, plain.predict(box).mask)


def test_every_write_of_the_automatic_pass_stays_in_the_region(tmp_path, screen, model, monkeypatch):
    """Not only the zero-click prompt: what the pass writes (its walks, probes and rules answer
    prompts on the whole slice) is cut to the region. Here the prompt's answer is made to cover
    the screen's lower half, across the sector's edge."""
    from medseg.predictor import SlicePredictor
    from medseg.session import Session
    from medseg.types import Prediction

    def everywhere(self, structure):
        mask = np.zeros(self._shape, bool)
        mask[150:, :] = True
        return Prediction(mask, 0.99)

    monkeypatch.setattr(SlicePredictor, "predict_auto", everywhere)
    s = Session(read_volume(_write(tmp_path / "a.dcm", screen, [ECG, _sector_region()])), model, "lv=1,myo=2,la=3", undo=False)
    s.auto(["lv"], frames=[0])
    assert int((s.labels[0, 0] == 1).sum()) == (REGION[2] - 150 + 1) * SIDE and _outside(s.labels, REGION) == 0


def test_two_regions_of_the_same_pixels_share_no_zero_click_embedding(tmp_path, screen, model):
    """Two clips of the same screen, the second's region the sector's left half: with one
    embedding cache, each zero-click looks in its own region (as with a cache of its own)."""
    from medseg.embeddings import EmbeddingCache
    from medseg.session import Session

    half = [TOP, LEFT, TOP + SIDE - 1, LEFT + SIDE // 2]
    whole = read_volume(_write(tmp_path / "a.dcm", screen, [_sector_region()]))
    left = read_volume(_write(tmp_path / "h.dcm", screen, [_sector_region(half)]))
    cache = EmbeddingCache()
    a = Session(whole, model, "lv=1,myo=2,la=3", cache=cache)
    a._set_slice(0, 0)
    a.predictor.predict_auto("lv")
    b = Session(left, model, "lv=1,myo=2,la=3", cache=cache)
    b._set_slice(0, 0)
    shared = b.predictor.predict_auto("lv")
    own = Session(left, model, "lv=1,myo=2,la=3")
    own._set_slice(0, 0)
    alone = own.predictor.predict_auto("lv")
    assert _outside(shared.mask, half) == 0
    assert np.array_equal(shared.mask, alone.mask) and shared.score == alone.score


def test_a_clip_without_a_region_is_segmented_as_before(tmp_path, screen, model):
    """No region: no box in meta, and the session's zero-click is the predictor's plain
    whole-slice pass (no region reaches it; the helper that made the change also compared label
    hashes with the release before it on CAMUS, ACDC and Sunnybrook images: identical); the same
    screen with its region gives another answer."""
    from medseg.predictor import SlicePredictor
    from medseg.session import Session

    vol = read_volume(_write(tmp_path / "n.dcm", screen, None))
    assert "us_region" not in vol.meta and "us_region_note" not in vol.meta
    s = Session(vol, model, "lv=1,myo=2,la=3")
    s._set_slice(0, 0)
    assert s.predictor.region is None
    got = s.predictor.predict_auto("la")
    p = SlicePredictor(model, modality="US")
    p.set_image(s._norm[0, 0])
    ref = p.predict_auto("la")
    assert np.array_equal(got.mask, ref.mask) and got.score == ref.score

    r = Session(read_volume(_write(tmp_path / "a.dcm", screen, [_sector_region()])), model, "lv=1,myo=2,la=3")
    r._set_slice(0, 0)
    restricted = r.predictor.predict_auto("la")
    assert _outside(got.mask, REGION) > 0 and _outside(restricted.mask, REGION) == 0


@pytest.mark.parametrize("region", [(0, 0, 300, 10), (5, 5, 2, 9), (0, 0, 10), (0.5, 0, 10, 10), "top", (0, 0, float("inf"), 10)])
def test_a_region_outside_the_slice_is_refused_by_the_predictor(model, region):
    from medseg.predictor import SlicePredictor

    p = SlicePredictor(model)
    with pytest.raises(PromptError, match="region must be"):
        p.set_image(np.zeros((100, 120), np.float32), region=region)


@pytest.mark.parametrize("raw", [[0, 0, float("inf"), 50], [0, 0, 10**400, 50], [0.9, 0, 50.9, 50], "top", 5, [0, 0, 50]])
def test_a_region_in_meta_that_is_no_box_of_whole_pixels_is_passed_over(raw):
    """meta["us_region"] set by hand or by another reader: inf raised OverflowError (a
    traceback from the Session), fractions were cut to whole pixels without a word."""
    from medseg.io.us_region import volume_region

    assert volume_region({"us_region": raw}, (100, 120)) is None
    assert volume_region({"us_region": [0, 0, 50, 50]}, (100, 120)) == (0, 0, 50, 50)


def test_a_log_recorded_before_regions_replays_on_the_whole_screen(tmp_path, screen, model):
    """An ``auto`` action recorded by a release that did not know ultrasound regions carries no
    ``us_region``: replayed on the same DICOM screen it was cut to the region (24,000 of 34,000
    labelled pixels differed in the review's check). It replays on the whole screen, as made; a
    log that records the region replays in it; a recorded region that is no box is refused."""
    from medseg.session import Session

    vol = read_volume(_write(tmp_path / "a.dcm", screen, [ECG, _sector_region()]))
    old = Session(vol, model, "lv=1,myo=2,la=3", undo=False)
    with old.zero_click_region(None):  # what the earlier release did
        old.auto(["lv", "la"], frames=[0])
    assert "us_region" not in old.log[-1] and _outside(old.labels, REGION) > 0
    again = Session(vol, model, "lv=1,myo=2,la=3", undo=False)
    again.replay(list(old.log))
    assert np.array_equal(again.labels, old.labels)
    assert "zero_click_region" not in again.provenance()  # it says what the replay did, not what the file's region is

    new = Session(vol, model, "lv=1,myo=2,la=3", undo=False)
    new.auto(["lv", "la"], frames=[0])
    assert new.log[-1]["us_region"] == REGION
    twice = Session(vol, model, "lv=1,myo=2,la=3", undo=False)
    twice.replay(list(new.log))
    assert np.array_equal(twice.labels, new.labels) and _outside(twice.labels, REGION) == 0

    no_region = Session(read_volume(_write(tmp_path / "n.dcm", screen, None)), model, "lv=1,myo=2,la=3", undo=False)
    no_region.replay(list(new.log))  # the same clip exported without its region: the recorded box, and the sidecar says so
    assert np.array_equal(no_region.labels, new.labels) and no_region.provenance()["zero_click_region"]["us_region"] == REGION
    with twice.zero_click_region(None):  # a later pass on the whole screen: its labels are the ones kept, and the note says so
        twice.auto(["lv"], frames=[0])
    assert "1 other automatic pass (the last one) ran on the whole image" in twice.provenance()["zero_click_region"]["note"]

    from medseg._session_replay import check_log

    for box in ([0, 0, 999, 999], [0, 0, float("nan"), 5], [0, 0, True, 5], "top"):  # refused before any action runs (before the model loads)
        with pytest.raises(PromptError, match="us_region"):
            check_log([{**new.log[-1], "us_region": box}], vol.shape, new.structures, 255)


def test_the_console_says_an_apical_clips_ed_es_came_from_its_one_slice():
    """`segment --auto --frames ed,es` on an apical clip said "on slices 0 of every frame" (and the
    record "mid-ventricular slices"): a clip has one slice."""
    from medseg.cli.segment_cmd import frames_line
    from medseg.frame_pick import METHOD, METHOD_ONE_SLICE

    pick = {"ed": 2, "es": 8, "slices": [0], "seconds": 2.5}
    one = frames_line({"settings": {"frames": [2, 8]}, "frame_pick": {**pick, "method": METHOD_ONE_SLICE}}, 16)
    assert "by zero-click LV area on its one slice of every frame" in one
    stack = frames_line({"settings": {"frames": [2, 8]}, "frame_pick": {**pick, "slices": [4, 5, 6], "method": METHOD}}, 16)
    assert "by zero-click LV area on slices 4-6 of every frame" in stack
