"""`medseg info LABELS --methods` and :func:`medseg.methods.methods_text` of one study: the
paragraph of a `medseg segment` output from its sidecar, following what that sidecar records."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli

MAP = "lv=1,myo=2,rv=3"


@pytest.fixture(scope="module")
def segmented(tmp_path_factory) -> Path:
    """A `medseg segment --prompts-from --key-slice` output of a small phantom frame."""
    import torch

    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("one")
    ph = cine_sax_phantom(n_frames=1, n_slices=5, shape=(64, 64), seed=7)
    nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 3), ph.image.affine), str(d / "img.nii.gz"))
    write_labels(ph.labels, ph.image, d / "gt.nii.gz", MAP)
    assert run_cli(["segment", str(d / "img.nii.gz"), "-o", str(d / "seg.nii.gz"), "--prompts-from", str(d / "gt.nii.gz"),
                    "--label-map", MAP, "--key-slice"]) == 0
    return d


def test_info_methods_prints_the_paragraph_of_a_segment_output(segmented, capsys):
    from medseg._files import sha256_path
    from medseg.models.registry import shipped_checkpoint

    assert run_cli(["info", str(segmented / "seg.nii.gz"), "--methods"]) == 0
    text = capsys.readouterr().out
    prov = json.loads((segmented / "seg.json").read_text())["provenance"]
    assert "(`medseg segment`" in text and "segmented in 1 study" not in text
    assert "one bounding box per structure on a single slice from the reference labels" in text
    assert f"sha256 {sha256_path(shipped_checkpoint())}" in text and "without an adapter" in text
    assert ("flagged it for review" in text) == bool(prov["review"]["needs_review"])
    assert "No labels had been edited by hand" in text
    assert "Measurements" not in text and "g/mL" not in text  # segment measures nothing
    assert "## Cite" in text and "Kirillov et al. Segment Anything." in text


def test_labels_changed_since_are_said_to_be_edited(segmented, tmp_path):
    from medseg.methods import methods_text

    for name in ("seg.nii.gz", "seg.json"):
        (tmp_path / name).write_bytes((segmented / name).read_bytes())
    img = nib.load(str(tmp_path / "seg.nii.gz"))
    data = np.asarray(img.dataobj).copy()
    data[data == 3] = 0  # the RV erased in another program
    nib.save(nib.Nifti1Image(data, img.affine, img.header), str(tmp_path / "seg.nii.gz"))
    text = methods_text(tmp_path / "seg.nii.gz")
    assert "The labels were edited by hand after medseg wrote them" in text and "No labels had been edited" not in text


def test_the_text_follows_what_the_sidecar_records(segmented, tmp_path):
    """Another way of prompting, rules that removed slices, no fitted threshold: each sentence
    changes with the sidecar (zero-click, an RV probe, a min-confidence, an adapter)."""
    from medseg.methods import methods_text

    side = json.loads((segmented / "seg.json").read_text())
    prov = side["provenance"]
    base = methods_text(segmented / "seg.json")
    assert "Masks were cut at a threshold fitted for this model (LV at logit" in base
    prov.update(mask_thresholds={}, adapter_id="cmr-lge", adapter_sha256="0" * 64, min_confidence=0.5, handed_over=["rv"],
                actions=[{"op": "auto", "structures": ["lv", "myo", "rv"], "frames": None, "probed": [{"structure": "rv", "frame": 0}],
                          "removed": [{"structure": "rv", "frame": 0, "slice": 4, "rule": "rv_beyond_heart"}]}])
    (tmp_path / "s.json").write_text(json.dumps(side))
    text = methods_text(tmp_path / "s.json")
    assert "no prompt: zero-click" in text and "bounding box" not in text and "Propagation to the next slice" not in text
    assert "Masks were cut" not in text
    assert "After zero-click," in text and "were removed (1 slice)" in text
    assert "looked for with clicks around the myocardium (1 finding)" in text
    assert "below 0.5 were left out for manual segmentation" in text
    assert 'with the LoRA adapter "cmr-lge"' in text and "its folder was not found with these weights" in text


def test_info_methods_refuses_files_medseg_did_not_segment(segmented, capsys):
    assert run_cli(["info", str(segmented / "img.nii.gz"), "--methods"]) == 1
    err = capsys.readouterr().err.strip()
    assert "no medseg sidecar" in err and len(err.splitlines()) == 1
    assert run_cli(["info", str(segmented / "gt.nii.gz"), "--methods"]) == 1  # written by write_labels, no model
    err = capsys.readouterr().err.strip()
    assert "records no model or prompts" in err and len(err.splitlines()) == 1


def test_info_methods_json_prints_the_text_in_a_json_object(segmented, capsys):
    """`info LABELS --methods --json` printed the Markdown as if --json had not been given."""
    from medseg.methods import methods_text

    assert run_cli(["info", str(segmented / "seg.nii.gz"), "--methods", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["kind"] == "segment" and obj["path"] == str(segmented / "seg.nii.gz") and obj["unreadable"] == []
    assert obj["methods"] == methods_text(segmented / "seg.nii.gz") and obj["methods"].startswith("# Methods\n")
