"""Every provenance time is UTC with its zone: a napari save's edit action too."""

from __future__ import annotations

import time

import numpy as np


def test_napari_edit_action_time_is_utc(tmp_path, monkeypatch):
    """The edit action napari appends when it saves over a label file had local time, no zone,
    beside the sidecar's `created` in UTC."""
    from medseg.io import write_labels
    from medseg.phantoms import cine_sax_phantom
    from napari_plugin._writer import edited_file_provenance

    ph = cine_sax_phantom(n_frames=1, n_slices=3, shape=(32, 32), spacing=(8.0, 1.5, 1.5), seed=3)
    path = tmp_path / "labels.nii.gz"
    write_labels(ph.labels, ph.image, path, ph.label_map, provenance={"command": "segment"})
    edited = np.array(ph.labels)
    edited[0, 1] = 0
    monkeypatch.setenv("TZ", "Etc/GMT-14")
    time.tzset()
    try:
        prov = edited_file_provenance(path, edited)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    stamp = prov["actions"][-1]["time"]
    assert stamp.endswith("Z")
    assert abs(time.time() - time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) + time.timezone) < 120
