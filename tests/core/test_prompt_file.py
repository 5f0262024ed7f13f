"""Prompts files and label maps: what is malformed is refused in one line, before any model work."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseg.errors import LabelMapError, PromptError
from medseg.labels import LabelMap
from medseg.prompt_file import check_prompts_file, load_prompts_file, study_prompts

BOX = [38, 45, 68, 72]


def _file(tmp_path, obj, name="p.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


@pytest.mark.parametrize("prompt, message", [
    ({"structure": "lv", "frame": 0.5, "slice": 2, "box": BOX}, "'frame' must be a whole number >= 0, got 0.5"),
    ({"structure": "lv", "slice": -1, "box": BOX}, "'slice' must be a whole number >= 0, got -1"),
    ({"structure": "lv", "slice": "2", "box": BOX}, "'slice' must be a whole number >= 0, got '2'"),
    ({"structure": "lv", "slice": True, "box": BOX}, "'slice' must be a whole number >= 0, got True"),
    ({"structure": "lv", "slice": 2, "box": BOX, "propagate": "no"}, "'propagate' must be true or false, got 'no'"),
])
def test_prompt_fields_are_checked_not_truncated(tmp_path, prompt, message):
    with pytest.raises(PromptError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_prompts_file(_file(tmp_path, {"prompts": [prompt]}))


def test_non_finite_frame_is_refused(tmp_path):
    path = _file(tmp_path, '{"prompts": [{"structure": "lv", "frame": Infinity, "slice": 2, "box": [38, 45, 68, 72]}]}')
    with pytest.raises(PromptError, match="'frame' must be a whole number >= 0, got inf"):
        load_prompts_file(path)


def test_whole_numbers_written_as_floats_are_read():
    from medseg.types import prompt_from_json

    sp = prompt_from_json({"structure": "lv", "frame": 1.0, "slice": 3, "box": BOX})
    assert (sp.frame, sp.slice) == (1, 3)


@pytest.mark.parametrize("content, message", [
    ({"cases": ["img"]}, "'cases' must be an object of case id"),
    ({"cases": None}, "'cases' must be an object of case id"),
    ({"cases": {}}, "'cases' is empty"),
    ({"cases": {"a": {"prompts": [{"structure": "lv", "slice": 0, "box": BOX}]}, "b": {"prompts": []}}}, "the prompts list is empty"),
    ("[" * 100000 + "]" * 100000, "JSON nested too deep"),
    ("{not json", "not valid JSON"),
])
def test_a_batch_prompts_file_is_checked_whole_before_the_batch(tmp_path, content, message):
    with pytest.raises(PromptError, match=message):
        check_prompts_file(_file(tmp_path, content))


def test_a_multi_case_file_given_for_one_study_says_what_to_give(tmp_path):
    path = _file(tmp_path, {"cases": {"a": {"prompts": [{"structure": "lv", "slice": 0, "box": BOX}]}}})
    check_prompts_file(path)
    with pytest.raises(PromptError, match="holds several cases .*for one study give a file with its own 'prompts' list"):
        load_prompts_file(path)
    assert load_prompts_file(path, case="a").prompts[0].structure == "lv"


def test_label_values_past_uint16_are_refused(tmp_path):
    with pytest.raises(LabelMapError, match="at most 65535"):
        LabelMap.parse("lv=70000")
    assert LabelMap.parse("lv=65535")["lv"] == 65535
    # a prompts file's map too (it passed, and the labels overflowed uint16 after segmenting)
    with pytest.raises(LabelMapError, match="at most 65535"):
        LabelMap.parse({"lv": 70000})
    with pytest.raises(LabelMapError, match="at most 65535"):
        load_prompts_file(_file(tmp_path, {"label_map": {"lv": 70000}, "prompts": [{"structure": "lv", "slice": 0, "box": BOX}]}))


def test_prompts_that_would_exhaust_memory_or_overflow_are_refused(tmp_path):
    """8000 clicks in one prompt (the decoder's attention asked for 2 GB), a box corner of
    1e308 (an OverflowError after segmenting), an integer of 5000 digits (a ValueError): one
    line each, before the model runs."""
    from medseg.types import MAX_POINTS

    many = {"prompts": [{"structure": "lv", "slice": 0, "points": [[40, 50]] * (MAX_POINTS + 1)}]}
    with pytest.raises(PromptError, match=f"has {MAX_POINTS + 1} clicks; at most {MAX_POINTS}"):
        load_prompts_file(_file(tmp_path, many))
    assert len(load_prompts_file(_file(tmp_path, {"prompts": [{"structure": "lv", "slice": 0, "points": [[40, 50]] * MAX_POINTS}]})).prompts[0].points) == MAX_POINTS
    far = load_prompts_file(_file(tmp_path, {"prompts": [{"structure": "lv", "slice": 0, "box": [30, 30, 1e308, 60]}]})).prompts[0]
    with pytest.raises(PromptError, match="reaches far beyond the 96x96 image"):
        far.check_inside((1, 2, 96, 96))
    past = load_prompts_file(_file(tmp_path, {"prompts": [{"structure": "lv", "slice": 0, "box": [-5, 30, 110, 60]}]})).prompts[0]
    past.check_inside((1, 2, 96, 96))  # dragged a little past the edge: fine
    with pytest.raises(PromptError, match="not a prompts file"):
        load_prompts_file(_file(tmp_path, '{"prompts": [{"structure": "lv", "slice": ' + "9" * 5000 + ', "box": [1, 2, 3, 4]}]}'))


def test_prompts_from_refuses_a_map_that_does_not_fit_the_reference(tmp_path, phantom):
    from medseg.io import write_labels

    vol = phantom.image.with_array(phantom.image.array[:1], frame_times_s=None)
    write_labels(phantom.labels[:1], vol, tmp_path / "gt.nii.gz", phantom.label_map.subset(["lv", "myo", "rv"]))
    ref = tmp_path / "gt.nii.gz"
    with pytest.raises(LabelMapError, match=r"names la=4, but the reference labels gt.nii.gz hold no such value; they hold 1, 2, 3"):
        study_prompts(vol, None, ref, LabelMap.parse("lv=1,myo=2,rv=3,la=4"), key_slice=True)
    with pytest.raises(LabelMapError, match="of which 3 no structure of the map names"):
        study_prompts(vol, None, ref, LabelMap.parse("lv=1,myo=2,rv=4"), key_slice=True)
    subset = study_prompts(vol, None, ref, LabelMap.parse("lv=1,myo=2"), key_slice=True)  # fewer structures: those only
    assert {p.structure for p in subset.prompts} == {"lv", "myo"}
    assert np.isin([1, 2, 3], np.unique(phantom.labels[0])).all()


def test_segment_volume_takes_a_label_map_as_text_and_refuses_a_list_of_prompts(model, phantom):
    from medseg.prompt_file import prompts_from_labels
    from medseg.segment import segment_volume
    from medseg.types import Box, SlicePrompt

    vol = phantom.image.with_array(phantom.image.array[:1], frame_times_s=None)
    ps = prompts_from_labels(phantom.labels[:1], phantom.label_map.subset(["lv"]), key_slice=False)
    res = segment_volume(vol, model, ps, label_map="lv=7")  # as text, as Session and write_labels take it
    assert res.label_map.to_dict() == {"lv": 7} and (res.labels == 7).any()
    with pytest.raises(PromptError, match="prompts must be a PromptSet"):
        segment_volume(vol, model, [SlicePrompt("lv", 0, 2, box=Box(30, 30, 60, 60))])
