"""`medseg batch --resume`: an output whose sidecar JSON is truncated, or names no valid label
map (which its measurement and every later reader rely on), is not complete: it is redone."""

from __future__ import annotations

import json

import numpy as np
import pytest
from batch_data import MAP, write_case


@pytest.mark.parametrize("label_map", [{"lv": -1, "myo": 2}, {"lv": "1"}, {}, None, "absent"])
def test_resume_redoes_an_output_whose_sidecar_names_no_valid_label_map(label_map, tmp_path):
    from medseg._files import sha256_file
    from medseg.batch import BatchOptions, CaseSpec, output_problem
    from medseg.io import read_volume, sidecar_path, write_labels
    from medseg.models.registry import shipped_checkpoint

    image, _ = write_case(tmp_path / "in", "c1", seed=10, shape=(32, 32), n_slices=2)
    opts = BatchOptions(out_dir=str(tmp_path / "out"), auto=True, resume=True)
    case = CaseSpec("c1", str(image))
    vol = read_volume(image)
    prov = {"command": "batch", "input_sha256": sha256_file(image), "input_shape": list(vol.shape), "batch_signature": opts.signature(),
            "model_sha256": sha256_file(shipped_checkpoint()), "adapter_sha256": None}
    out = write_labels(np.zeros(vol.shape, np.uint8), vol, tmp_path / "out" / "c1.nii.gz", MAP, provenance=prov)[0]
    assert output_problem(case, opts) is None  # complete, as written
    side = json.loads(sidecar_path(out).read_text())
    if label_map == "absent":
        del side["label_map"]
    else:
        side["label_map"] = label_map
    sidecar_path(out).write_text(json.dumps(side))
    assert output_problem(case, opts) == "sidecar unreadable"
    text = json.dumps({**side, "label_map": {"lv": 1, "myo": 2, "rv": 3}})
    sidecar_path(out).write_text(text[: len(text) // 2])  # truncated: as before
    assert output_problem(case, opts) == "sidecar unreadable"


@pytest.mark.parametrize("field", [{"confidence": {"volume": {"lv": "high"}}}, {"confidence": "0.9"},
                                   {"review": {"flags": [1, 2]}}, {"handed_over": 7}])
def test_resume_redoes_an_output_whose_review_fields_are_malformed(field, tmp_path):
    """A sidecar whose confidence or review flags cannot be read was skipped as complete, with
    the summary reason "unexpected AttributeError" and exit code 0; it is redone instead."""
    from medseg._files import sha256_file
    from medseg.batch import BatchOptions, CaseSpec, output_problem, run_case
    from medseg.io import read_volume, sidecar_path, write_labels
    from medseg.models.registry import shipped_checkpoint

    image, _ = write_case(tmp_path / "in", "c1", seed=10, shape=(32, 32), n_slices=2)
    opts = BatchOptions(out_dir=str(tmp_path / "out"), auto=True, resume=True)
    case = CaseSpec("c1", str(image))
    vol = read_volume(image)
    prov = {"command": "batch", "input_sha256": sha256_file(image), "input_shape": list(vol.shape), "batch_signature": opts.signature(),
            "model_sha256": sha256_file(shipped_checkpoint()), "adapter_sha256": None, "confidence": {"volume": {"lv": 0.9}}}
    out = write_labels(np.zeros(vol.shape, np.uint8), vol, tmp_path / "out" / "c1.nii.gz", MAP, provenance=prov)[0]
    assert output_problem(case, opts) is None
    assert run_case(case, opts)["status"] == "skipped"
    side = json.loads(sidecar_path(out).read_text())
    side["provenance"].update(field)
    sidecar_path(out).write_text(json.dumps(side))
    assert output_problem(case, opts) == "sidecar unreadable"
