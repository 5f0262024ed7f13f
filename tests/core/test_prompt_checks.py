"""A prompts file's frame/slice of 1e20 is refused in plain words, and its structure names and
frame/slice/box/point ranges are checked against the label map and the image before the model
loads (they were refused only after segmenting), with the message segment_volume gives."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli
from medseg.errors import PromptError
from medseg.prompt_file import parse_prompts

BOX = [20, 20, 40, 40]


@pytest.mark.parametrize("prompt, message", [
    ({"structure": "lv", "frame": 1e20, "box": BOX}, "prompt #0: 'frame' must be a frame index inside the image (a whole number >= 0), got 1e+20"),
    ({"structure": "lv", "frame": -10**20, "box": BOX}, "'frame' must be a frame index inside the image (a whole number >= 0), got -100000000000000000000"),
    ({"structure": "lv", "slice": 10**30, "box": BOX}, "'slice' must be a slice index inside the image (a whole number >= 0), got a 31-digit number"),
    ({"structure": "lv", "box": [0, 0, 10**400, 5]}, "a point or box coordinate is a 401-digit number, beyond any image"),
    ({"structure": "lv", "points": [[3, -10**400]]}, "a point or box coordinate is a 401-digit negative number, beyond any image"),
    ({"structure": "lv", "points": 5}, "'points' must be a list of [y, x] points, got 5"),
])
def test_out_of_range_numbers_are_named_in_plain_words(prompt, message):
    with pytest.raises(PromptError) as e:
        parse_prompts({"prompts": [prompt]}, "p.json")
    assert message in str(e.value) and "ufunc" not in str(e.value) and "malformed" not in str(e.value)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A (1, 3, 64, 64) NIfTI image."""
    path = tmp_path_factory.mktemp("img") / "img.nii.gz"
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.normal(100, 20, (64, 64, 3)).astype(np.float32), np.diag([1.5, 1.5, 8.0, 1.0])), str(path))
    return path


CASES = {
    "unknown structure": ({"label_map": {"lv": 3, "myo": 2, "rv": 1}, "prompts": [{"structure": "bogus", "slice": 1, "box": BOX}]},
                          "prompts name structures not in the label map: bogus (map: lv=3,myo=2,rv=1)"),
    "unknown, default map": ({"prompts": [{"structure": "bogus", "slice": 1, "box": BOX}]},
                             "prompts name structures not in the label map: bogus (map: lv=1,myo=2,rv=3,la=4,ra=5,aorta=6,pa=7)"),
    "frame outside": ({"prompts": [{"structure": "lv", "frame": 2, "slice": 1, "box": BOX}]}, "frame 2 is outside 0..0"),
    "slice outside": ({"prompts": [{"structure": "lv", "slice": 3, "box": BOX}]}, "slice 3 is outside 0..2"),
    "box outside": ({"prompts": [{"structure": "lv", "slice": 1, "box": [70, 70, 90, 90]}]}, "lies outside the 64x64 image"),
    "point outside": ({"prompts": [{"structure": "lv", "slice": 1, "points": [[10, 64]]}]}, "point (y=10.0, x=64.0) is outside the 64x64 image"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_segment_checks_prompts_before_the_model_loads(case, image, tmp_path, capsys, monkeypatch):
    import medseg.models

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the prompts were checked")

    monkeypatch.setattr(medseg.models, "load_model", no_model)
    prompts, message = CASES[case]
    (tmp_path / "p.json").write_text(json.dumps(prompts))
    rc = run_cli(["segment", str(image), "--prompts", str(tmp_path / "p.json"), "-o", str(tmp_path / "seg.nii.gz")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith("error:") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "seg.nii.gz").exists()


def test_segment_volume_gives_the_same_message(image, tmp_path):
    """The library call checks the same, with the same words (and needs no model for it)."""
    from medseg.io import read_volume
    from medseg.segment import check_prompts, segment_volume

    vol = read_volume(image)
    prompts = parse_prompts(CASES["unknown structure"][0])
    for call in (lambda: segment_volume(vol, None, prompts), lambda: check_prompts(vol, prompts)):
        with pytest.raises(PromptError, match=r"^prompts name structures not in the label map: bogus \(map: lv=3,myo=2,rv=1\)$"):
            call()
    assert check_prompts(vol, parse_prompts({"prompts": [{"structure": "rv", "slice": 1, "box": BOX}]}), auto=True).values == {"lv": 1, "myo": 2, "rv": 3}
