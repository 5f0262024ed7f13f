"""The echo report's ``fragmented`` QC flag (measurement.md): an LV or LA mask of an apical view in
more than one sizeable piece. Zero-click over a whole screen without an ultrasound region gave an
LV with a 497-pixel piece in the RV (EF 43 % against 51 %), flagged only ``lvef_low``. Stray rims
of resized expert labels (pieces of at most 1.4 % of the largest on CAMUS-224) are not flagged."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.measure.echo import measure_echo, measure_echo_clip

MAP = "lv=1,myo=2,la=3"


def _views():
    from measure_phantoms import echo_view

    return {k: echo_view(w, L, True) for k, (w, L) in {"ed": (22.0, 80.0), "es": (17.0, 70.0)}.items()}


def _frag(report):
    return [f for f in report["flags"] if f["code"] == "fragmented"]


def test_a_sizeable_second_piece_of_lv_is_flagged():
    v = _views()
    ed = v["ed"].copy()
    lv_px = int((ed == 1).sum())
    side = int(np.ceil(np.sqrt(0.15 * lv_px)))  # a piece of about 15 % of the LV, away from it (in the corner)
    ed[2:2 + side, 2:2 + side] = 1
    rep = measure_echo(ed, v["es"], label_map=MAP, spacing_a4c_mm=(0.3, 0.3))
    flags = _frag(rep)
    assert len(flags) == 1 and flags[0]["structure"] == "lv" and flags[0]["view"] == "4-chamber ED"
    assert flags[0]["n_components"] == 2 and flags[0]["sizes_pixels"] == [lv_px, side * side]
    assert flags[0]["severity"] == "warning" and "check the labels" in flags[0]["message"]


def test_stray_rims_and_whole_masks_are_not_flagged():
    v = _views()
    ed = v["ed"].copy()
    lv_px = int((ed == 1).sum())
    assert lv_px * 0.02 > 11
    ed[2:5, 2:6] = 1  # 12 pixels (over the short-axis rule's 10, under 5 % of the LV)
    ed[-5:-2, -6:-2] = 3  # an LA speck
    assert _frag(measure_echo(ed, v["es"], label_map=MAP, spacing_a4c_mm=(0.3, 0.3))) == []
    assert _frag(measure_echo(v["ed"], v["es"], v["ed"], v["es"], label_map=MAP, spacing_a4c_mm=(0.3, 0.3), spacing_a2c_mm=(0.3, 0.3))) == []


@pytest.mark.parametrize("structure", ["lv", "la"])
def test_a_clip_flags_the_piece_on_its_ed_or_es_frame(structure):
    from measure_phantoms import echo_view

    shape = (400, 300)
    clip = np.stack([echo_view(w, 60.0 + w, True, shape=shape) for w in (20.0, 16.0, 19.0)])
    value = {"lv": 1, "la": 3}[structure]
    clip[:, 330:370, 10:50] = value  # 1,600 pixels beside the view, on every frame
    rep = measure_echo_clip(clip, label_map=MAP, spacing_mm=(0.3, 0.3))
    assert {f["structure"] for f in _frag(rep)} == {structure}
    assert {f["view"] for f in _frag(rep)} == {"4-chamber ED", "4-chamber ES"}
