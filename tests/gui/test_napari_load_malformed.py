"""SegmentController.load_session (no viewer) of a hand-edited or truncated session file: a
typed one-line error naming the file (and the action), never AttributeError/OverflowError;
the labels, the session and its undo history stay as they were."""

from __future__ import annotations

import json

import numpy as np
import pytest
from medseg_napari._controller import SegmentController

from medseg.errors import MedsegError
from medseg.types import Box


@pytest.fixture()
def controller(small_cine, loaded_model):
    vol, truth, _ = small_cine
    c = SegmentController(vol, np.zeros(vol.shape, np.uint8), loaded_model, source="phantom")
    c.prompt("lv", 0, 3, box=Box.from_mask(truth[0, 3] == 1))
    return c


def _actions(*actions: str) -> str:
    return '{"provenance": {"actions": [' + ", ".join(actions) + "]}}"


def _edit(frame: str) -> str:
    return '{"op": "edit", "slices": [{"frame": ' + frame + ', "slice": 1, "runs": [[0, 3, 1]]}]}'


@pytest.mark.parametrize("doc, what", [
    ('{"provenance": [1]}', "'provenance' must be an object holding 'actions', got list"),
    ('{"provenance": "x"}', "'provenance' must be an object holding 'actions', got str"),
    ('{"provenance": {"actions": [], "structures": [1]}}', "'structures' must be an object of name -> {value, colour}, got list"),
    (_actions(_edit("1e400")), "action 1 of 1 in the log is malformed: 'frame' must be a whole number >= 0, got inf"),
    (_actions(_edit("0"), '{"op": "lock", "structure": "lv", "locked": "false"}'),
     "action 2 of 2 in the log is malformed: 'lock' needs 'locked' true or false, got 'false'"),
    ('{"provenance": {"actions": [{"op": "edit", "slices": [{"frame": 0, "slice": 1, "runs": [[1e400, 3, 1]]}]}]}}',
     "action 1 of 1 in the log is malformed: an edit run must be"),
    ('{"provenance": {"actions": [{"op": "auto", "structures": ["lv"], "frames": [9]}]}}', "'auto' frame 9 lies outside the image's 4 frame"),
])
def test_a_malformed_session_file_is_refused_and_the_labels_stay(controller, tmp_path, doc, what):
    path = tmp_path / "seg.json"
    path.write_text(doc)
    json.loads(doc)  # JSON a user could write
    labels, session, log = controller.labels.copy(), controller.session, list(controller.session.log)
    with pytest.raises(MedsegError) as e:
        controller.load_session(path)
    msg = str(e.value)
    assert msg.startswith("seg.json: ") and what in msg and "\n" not in msg
    assert np.array_equal(controller.labels, labels) and controller.session is session and session.log == log and session.can_undo


@pytest.mark.parametrize("content", [b"\xff\xfe\x00bin", b"[" * 100_000])
def test_a_session_file_that_is_not_json_text_is_refused(controller, tmp_path, content):
    """A binary file (not UTF-8) or JSON nested past Python's recursion limit: MedsegError."""
    path = tmp_path / "seg.json"
    path.write_bytes(content)
    labels = controller.labels.copy()
    with pytest.raises(MedsegError, match="cannot read session file .*seg.json"):
        controller.load_session(path)
    assert np.array_equal(controller.labels, labels)


def test_a_saved_colour_that_is_no_colour_gives_the_default(controller, tmp_path):
    path = tmp_path / "seg.json"
    path.write_text(json.dumps({"label_map": {"lv": 1, "myo": 2, "rv": 3}, "provenance": {"actions": [], "structures": {
        "lv": {"colour": 5}, "myo": {"colour": "notacolour"}, "rv": {"colour": "#123456"}}}}))
    assert controller.load_session(path) == []
    default = {s.name: s.colour for s in SegmentController(controller.volume, np.zeros_like(controller.labels), controller.model).structures.values()}
    assert {n: s.colour for n, s in controller.structures.items()} == {"lv": default["lv"], "myo": default["myo"], "rv": "#123456"}
