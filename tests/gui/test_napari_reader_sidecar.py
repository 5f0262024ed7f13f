"""The reader opens labels whose sidecar JSON is truncated or names an invalid label map as
labels without their structures' names, with a warning naming the sidecar: it never raises
into napari, and a broken sidecar does not hide the labels."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from medseg_napari._layers import META_LABEL_MAP
from medseg_napari._reader import read_image


def _open(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layers = read_image(str(path))
    return layers, [str(w.message) for w in caught]


@pytest.mark.parametrize("broken", ["truncated", "invalid map"])
def test_labels_with_a_broken_sidecar_open_without_names_and_say_why(broken, tmp_path):
    from medseg.io import read_volume, write_labels
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=1, n_slices=3, shape=(48, 48), seed=1)
    lm = ph.label_map.subset(["lv", "myo", "rv"])
    lab = write_labels(ph.labels, ph.image, tmp_path / "case_gt.nii.gz", lm, provenance={"command": "segment"})[0]
    side = tmp_path / "case_gt.json"
    (layers_ok, _) = _open(lab)
    assert layers_ok[0][1]["metadata"][META_LABEL_MAP] == lm.to_dict()  # sound: its names
    text = side.read_text()
    side.write_text(text[: len(text) // 2] if broken == "truncated" else json.dumps({**json.loads(text), "label_map": {"lv": -1}}))
    layers, said = _open(lab)
    assert layers is not None and len(layers) == 1
    arr, kw, kind = layers[0]
    assert kind == "labels" and META_LABEL_MAP not in kw["metadata"]
    assert np.array_equal(arr, read_volume(lab).array.astype(arr.dtype))
    why = "is not valid JSON" if broken == "truncated" else "has an invalid label map"
    assert any(str(side) in s and why in s and "without their structures' names" in s for s in said), said
