"""Prompts files: a box of one pixel's width or height, and a batch case the file has no entry for.

A review gave `[40, 40, 40, 40]`: the model ran and said "no structure found (lv) ... is the
heart in this image?"; a multi-case file whose only case was misnamed failed each case with "no
prompts for case 'p1'", never naming what the file holds."""

from __future__ import annotations

import json

import pytest

from medseg.errors import PromptError
from medseg.prompt_file import load_prompts_file, parse_prompts


@pytest.mark.parametrize("box", [[40, 40, 40, 40], [40, 40, 40, 60], [40, 40, 90, 40]])
def test_a_box_without_area_is_refused_naming_it(box):
    with pytest.raises(PromptError, match=r"prompt #0: the box \[40, 40, \d+, \d+\] is \d+ x \d+ pixels: draw it around"):
        parse_prompts({"prompts": [{"structure": "lv", "slice": 0, "box": box}]}, "p.json")


def test_a_small_real_box_and_a_click_are_taken():
    got = parse_prompts({"prompts": [{"structure": "lv", "slice": 0, "box": [40, 40, 41, 41]},
                                     {"structure": "rv", "slice": 0, "points": [[40, 40]]}]})
    assert got.prompts[0].box.height == 2 and got.prompts[1].points[0].y == 40


def test_a_case_without_an_entry_names_the_files_cases(tmp_path):
    path = tmp_path / "prompts.json"
    cases = {f"nosuch{i}": {"prompts": [{"structure": "lv", "slice": 0, "points": [[5, 5]]}]} for i in range(7)}
    path.write_text(json.dumps({"cases": cases}))
    with pytest.raises(PromptError) as e:
        load_prompts_file(path, case="p1")
    msg = str(e.value)
    assert "no prompts for case 'p1' (the file's cases: 'nosuch0', 'nosuch1', 'nosuch2', 'nosuch3', 'nosuch4' and 2 more;" in msg
    assert "\n" not in msg
