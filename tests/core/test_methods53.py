"""METHODS.md of a batch with --frames ed,es over one-frame images and cines said "11 cases: ...;
only frames ed,es were segmented" of the one-frame cases (segmented whole) and repeated the clause
for the 7 cines; and "Echocardiographic LV volumes ..." of a CAMUS study without pixel size, which
gives the EF alone."""

from __future__ import annotations

import json

from medseg._methods_facts import measurement_sentences
from medseg._methods_text import segmentation_paragraph
from medseg.methods import Run, methods_text, study_from

LMAP = {"lv": 1, "myo": 2, "rv": 3}
PICK = {"ed": 0, "es": 3, "method": "zero-click LV area on mid-ventricular slices"}


def _prov(frames, asked, pick=None):
    prov = {"model_id": "default", "model_sha256": "ab" * 32, "command": "batch", "labels_sha256": None,
            "actions": [{"op": "auto", "structures": ["lv", "myo", "rv"], "frames": frames}],
            "settings": {"auto": True, "frames": frames, "frames_asked": asked}}
    return {**prov, "frame_pick": pick} if pick else prov


def _run(studies):
    return Run("batch", studies, {"n_cases": len(studies)}, {"frames": "ed,es", "auto": True}, {})


def test_one_frame_cases_are_segmented_whole_and_cines_said_once():
    one = [study_from(f"p{i}_frame01", _prov([0], "ed,es"), LMAP) for i in range(11)]  # one frame: ED and ES never looked for
    cines = [study_from(f"c{i}", _prov([0, 3], "ed,es", PICK), LMAP) for i in range(7)]
    text = segmentation_paragraph(_run(one + cines))
    assert "Prompts: no prompt: zero-click, the model's structure tokens alone." in text and "Prompting differed" not in text
    assert text.lower().count("only frames") == 1  # once, of the cines
    assert ("Only frames ed,es were segmented in 7 of the 18 cases (end-diastole and end-systole found by a zero-click LV pass); "
            "the other 11 one-frame cases were segmented whole.") in text
    assert "Only frames ed,es of each case were segmented (end-diastole" in segmentation_paragraph(_run(cines))
    prompted = study_from("k1", {**_prov([0], None), "settings": {}}, LMAP)  # no --frames: its frames not said
    assert ("Only frames ed,es were segmented in 7 of the 19 cases (end-diastole and end-systole found by a zero-click LV pass); "
            "11 one-frame cases were segmented whole.") in segmentation_paragraph(_run([*one, *cines, prompted]))
    plain = segmentation_paragraph(_run(one))  # every case one frame: nothing about frames
    assert "frames" not in plain and "Prompts: no prompt" in plain


def test_frames_by_number_are_chosen_frames_without_a_pick():
    cines = [study_from("c1", _prov([0, 5], "0,5"), LMAP), study_from("c2", _prov([0, 3], "ed,es", PICK), LMAP),
             study_from("c3", _prov([0, 3], "ed,es", PICK), LMAP)]
    text = segmentation_paragraph(_run(cines))
    assert ("Only frames ed,es were segmented in 2 of the 3 cases (end-diastole and end-systole found by a zero-click LV pass); "
            "frames 0,5 in 1 of the 3 cases.") in text


def test_one_segment_output_says_its_frames(tmp_path):
    side = tmp_path / "cine.json"
    side.write_text(json.dumps({"label_map": LMAP, "provenance": {**_prov([0, 3], "ed,es", PICK), "command": "segment"}}))
    assert "Only frames ed,es of the cine were segmented (end-diastole and end-systole found" in methods_text(side)
    side.write_text(json.dumps({"label_map": LMAP, "provenance": {**_prov([0], "ed,es"), "command": "segment"}}))
    assert "frames" not in methods_text(side).split("## Facts")[0]  # one frame: segmented whole


def _echo_run(rows):
    run = _run([])
    run.cohort = [{"per_study": "TRUE", **r} for r in rows]
    run.settings["measure"] = True
    return run


def test_echo_study_without_pixel_size_gives_the_ef_alone():
    camus = {"case": "patient0451", "method": "single_plane_disks_a4c", "lv.ef_pct": "23.6045", "lv.edv_ml": ""}
    sized = {"case": "p8", "method": "single_plane_disks_a4c", "lv.ef_pct": "55.1", "lv.edv_ml": "120.4"}
    text = " ".join(measurement_sentences(_echo_run([camus])))
    assert "Echocardiographic LVEF, without volumes (the images had no pixel size), used the single-plane method of disks" in text
    assert "LV volumes" not in text and "in 1 study." in text
    both = " ".join(measurement_sentences(_echo_run([camus, sized])))
    assert "Echocardiographic LV volumes used the single-plane method of disks (20 disks" in both and "without volumes" in both


def test_the_shipped_weights_are_one_model_whatever_id_an_older_sidecar_records():
    """A review found METHODS.md saying "not all segmented with the same weights" of cases kept by
    --resume (recorded as checkpoints/medseg_default) beside new ones (default): one sha256."""
    from medseg.methods import study_from
    from medseg.models.registry import shipped_sha256

    sha = shipped_sha256()
    old = study_from("a", {"model_id": "checkpoints/medseg_default", "model_sha256": sha, "actions": []}, {"lv": 1})
    new = study_from("b", {"model_id": "default", "model_sha256": sha, "actions": []}, {"lv": 1})
    other = study_from("c", {"model_id": "sam_vit_b", "model_sha256": "0" * 64, "actions": []}, {"lv": 1})
    assert old.model == new.model and old.model[0] == "default" and other.model[0] == "sam_vit_b"
