"""Labels saved by hand or by `medseg segment` in a batch's output folder are kept even when their
sidecar was saved again with a byte-order mark or a script added a NaN field to it: it was read as
no sidecar, and --resume segmented the case again over them ("redone: input changed")."""

from __future__ import annotations

import numpy as np
from batch_data import MAP, write_case


def test_labels_whose_sidecar_has_a_byte_order_mark_are_kept(tmp_path):
    from medseg._files import sha256_file
    from medseg.batch import CaseSpec
    from medseg.batch.kept import kept_labels
    from medseg.io import read_volume, sidecar_path, write_labels

    image, _ = write_case(tmp_path / "in", "c1", seed=10, shape=(32, 32), n_slices=2)
    vol = read_volume(image)
    out = write_labels(np.zeros(vol.shape, np.uint8), vol, tmp_path / "out" / "c1.nii.gz", MAP,
                       provenance={"command": "segment", "input_sha256": sha256_file(image)})[0]
    case = CaseSpec("c1", str(image))
    assert kept_labels(case, out).startswith("kept: labels saved by medseg segment")
    side = sidecar_path(out)
    sound = side.read_bytes()
    side.write_bytes(b"\xef\xbb\xbf" + sound)
    assert kept_labels(case, out).startswith("kept: labels saved by medseg segment")
    side.write_bytes(sound.replace(b"{", b'{"qc": NaN, ', 1))  # a field a script added with Python's json.dump
    assert kept_labels(case, out).startswith("kept: labels saved by medseg segment")
