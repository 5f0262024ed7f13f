"""A user's walk through the day's features (zip input, METHODS.md, napari's other views):
the methods section of labels saved from napari.

napari saves the panel's whole map (lv, myo, rv, la, ra) and a sidecar with ``"tool":
"medseg-napari"`` and no ``command``: one LV click became "The LV, myocardium, RV, LA and RA
were segmented with medseg 0.1.0 (`medseg segment`, ...)".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PANEL_MAP = {"lv": 1, "myo": 2, "rv": 3, "la": 4, "ra": 5}


def _sidecar(tmp_path: Path, actions: list[dict], **prov: object) -> Path:
    side = {"labels": ["x.nii.gz"], "label_map": PANEL_MAP,
            "provenance": {"medseg_version": "0.1.0", "device": "cpu", "model_id": "default", "model_sha256": "ab" * 32,
                           "adapter_id": None, "adapter_sha256": None, "label_map": PANEL_MAP, "actions": actions,
                           "created": "2026-12-07T16:27:53Z", "review": {"needs_review": False, "flags": []}, **prov}}
    path = tmp_path / "x.json"
    path.write_text(json.dumps(side), encoding="utf-8")
    return path


def _segmentation_paragraph(path: Path) -> str:
    from medseg.methods import methods_text

    return methods_text(path).split("\n\n")[2]


LV_CLICK = {"op": "prompt", "prompt": {"structure": "lv", "frame": 1, "slice": 5, "points": [[120.0, 131.0]]}, "multimask": False}


def test_napari_labels_name_the_plugin_and_only_the_structures_prompted(tmp_path):
    from medseg.methods import methods_text

    path = _sidecar(tmp_path, [LV_CLICK], tool="medseg-napari", source="/data/study.zip")
    para = _segmentation_paragraph(path)
    assert para.startswith("The LV was segmented with medseg 0.1.0 (medseg's napari plugin, on cpu).")
    assert "medseg segment" not in methods_text(path)
    assert "Tool: medseg's napari plugin; made 2026-12-07T16:27:53Z" in methods_text(path)
    for absent in ("myocardium", "RV", "LA", "RA"):
        assert absent not in para


@pytest.mark.parametrize(("actions", "first"), [
    ([{"op": "auto", "structures": ["lv", "myo"], "frames": None}], "The LV and myocardium were segmented"),
    ([LV_CLICK, {"op": "propagate", "structure": "rv", "frame": 0, "slice": 3, "through": "z"}], "The LV and RV were segmented"),
    ([{"op": "edit", "slices": []}], "The LV, myocardium, RV, LA and RA were segmented"),  # nothing the model was asked: the map
])
def test_segment_output_names_the_structures_its_log_names(tmp_path, actions, first):
    para = _segmentation_paragraph(_sidecar(tmp_path, actions, command="segment"))
    assert para.startswith(first) and "(`medseg segment`" in para


def test_lv_rule_is_not_claimed_when_only_the_lv_was_zero_clicked(tmp_path):
    para = _segmentation_paragraph(_sidecar(tmp_path, [{"op": "auto", "structures": ["lv"], "frames": None}], command="segment"))
    assert "not enclosed by myocardium" not in para and "RV slices" not in para


def _side_view(ndisplay: int = 2):
    from types import SimpleNamespace

    dims = SimpleNamespace(ndim=4, displayed=(1, 3) if ndisplay == 2 else (1, 2, 3), ndisplay=ndisplay)
    return SimpleNamespace(dims=dims), SimpleNamespace(ndim=4)


def test_side_view_status_lines_read_as_sentences():
    """Rolled to a (slice, x) view the status line read "...; boxes and Propagate need a slice
    shown: go back to the slice plane (y and x shown): right-click napari's roll button, by the
    2D/3D button, and drag ...": three colons in one sentence, the way back lost in it."""
    pytest.importorskip("medseg_napari")
    from medseg_napari import _view_axes as vx

    viewer, image = _side_view()
    lines = [vx.view_note(viewer, image), vx.box_refusal(viewer, image), vx.slider_refusal(viewer, image, "Propagate")]
    for line in lines:
        assert line and "slice × x view" in line and "roll button" in line
        assert "To go back to the slice plane (y and x shown), right-click napari's roll button" in line
        for sentence in line.split(". "):
            assert sentence.count(":") <= 1, sentence


def test_a_failed_case_is_named_by_its_file_not_its_local_path(tmp_path):
    """METHODS.md quoted a failed zip's reason whole: "1 study failed (/home/me/in/p017.zip:
    holds 2 image files ...)", a local path in a paper's text."""
    from medseg.methods import methods_text

    src = str(tmp_path / "in" / "patient017_both.zip")
    reason = f"{src}: holds 2 image files (a.nii.gz, b.nii.gz): medseg reads one image (or one DICOM study) from a zip"
    (tmp_path / "summary.json").write_text(json.dumps({
        "n_cases": 1, "n_ok": 0, "n_failed": 1, "settings": {"auto": True}, "software": {"medseg_version": "0.1.0"},
        "cases": [{"case": "patient017_both", "status": "failed", "reason": reason, "output": "", "input": src}]}), encoding="utf-8")
    text = methods_text(tmp_path)
    assert str(tmp_path) not in text
    assert "1 case failed (patient017_both.zip: holds 2 image files (a.nii.gz, b.nii.gz)" in text


def test_a_click_on_one_slice_is_not_said_to_be_on_every_slice(tmp_path):
    """A single napari click read "Prompts: a click on every slice that holds the structure":
    only boxes simulated from reference labels are on every slice."""
    para = _segmentation_paragraph(_sidecar(tmp_path, [LV_CLICK], tool="medseg-napari"))
    assert "every slice" not in para and "click prompts on the slices chosen by the user, without propagation" in para
    ref = _sidecar(tmp_path, [{"op": "prompt", "prompt": {"structure": "lv", "frame": 0, "slice": z, "box": [10, 10, 30, 30]}} for z in range(3)],
                   command="segment", reference="/data/gt.nii.gz")
    assert "a bounding box from the reference labels on every slice that holds the structure" in _segmentation_paragraph(ref)
