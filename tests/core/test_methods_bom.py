"""`medseg info --methods` reads a sidecar or summary.json saved again with a byte-order mark, and
names what is wrong with an empty one."""

from __future__ import annotations

import numpy as np

from medseg.cli._app import run_cli


def test_methods_reads_a_sidecar_with_a_byte_order_mark(tmp_path, capsys):
    from medseg.io import write_labels
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=1, n_slices=2, shape=(32, 32), seed=1)
    write_labels(np.zeros(ph.image.shape, np.uint8), ph.image, tmp_path / "seg.nii.gz", "lv=1",
                       provenance={"command": "segment", "model_sha256": "ab" * 32, "model_id": "default"})[0]
    side = tmp_path / "seg.json"
    side.write_bytes(b"\xef\xbb\xbf" + side.read_bytes())
    assert run_cli(["info", "--methods", str(side)]) == 0
    capsys.readouterr()
    (tmp_path / "summary.json").write_text("")
    assert run_cli(["info", "--methods", str(tmp_path)]) == 1
    assert f"{tmp_path / 'summary.json'} is empty" in capsys.readouterr().err
