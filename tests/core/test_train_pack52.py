"""`medseg train --pack FILE` refuses a file that is no medseg pack in one line, before OUT.

A review gave `--pack` an .npz of pickled objects, an .npz of other arrays, a safetensors
checkpoint and random bytes: "unexpected ValueError: This file contains pickled (object) data",
"unexpected KeyError: 'jpeg'" (exit 70) after the training progress line had started, and an
empty OUT folder left behind."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.cli import run_cli


def _not_packs(tmp_path):
    objects = tmp_path / "objects.npz"
    np.savez(objects, a=np.array([{"x": 1}], dtype=object))
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    noise = tmp_path / "noise.npz"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    cut = tmp_path / "cut.npz"
    np.savez(tmp_path / "whole.npz", **{k: np.zeros(2) for k in ("jpeg", "offsets")})
    cut.write_bytes((tmp_path / "whole.npz").read_bytes()[:100])
    from safetensors.numpy import save_file

    ckpt = tmp_path / "model.safetensors"
    save_file({"w": np.zeros(4, np.float32)}, str(ckpt))
    return {"objects": objects, "other": other, "noise": noise, "cut": cut, "checkpoint": ckpt}


def test_a_file_that_is_no_pack_is_refused_in_one_line_before_out(tmp_path, capsys):
    for name, path in _not_packs(tmp_path).items():
        out = tmp_path / f"out_{name}"
        capsys.readouterr()
        assert run_cli(["train", "--pack", str(path), "-o", str(out), "--max-steps", "1", "--phantoms", "0"]) == 1, name
        err = capsys.readouterr().err.strip()
        assert "is not a medseg pack" in err and "unexpected" not in err and "\n" not in err.replace("\n  ", " "), (name, err)
        assert not out.exists(), name


def test_check_pack_reads_a_pack_made_by_the_packer(tmp_path):
    from medseg.training.pack import Packer, SliceRecord, check_pack, load_pack

    rng = np.random.default_rng(1)
    packer = Packer(canvas=64)
    lab = np.zeros((40, 40), np.uint8)
    lab[10:20, 10:20] = 1
    packer.add(SliceRecord(rng.random((40, 40)).astype(np.float32), lab, ("lv",), "MR", "own/c1", 0, 0, 1.5))
    packer.save(tmp_path / "pack.npz")
    assert check_pack(tmp_path / "pack.npz")["canvas"] == 64
    assert load_pack(tmp_path / "pack.npz")["images"].shape == (1, 64, 64)


def test_a_pack_of_another_format_is_refused(tmp_path):
    import json

    from medseg.errors import MedsegError
    from medseg.training.pack import PACK_KEYS, check_pack

    arrays = {k: np.zeros(1) for k in PACK_KEYS}
    arrays["meta"] = np.frombuffer(json.dumps({"canvas": 256, "format": "medseg-pack/2"}).encode(), np.uint8)
    np.savez(tmp_path / "p.npz", **arrays)
    with pytest.raises(MedsegError, match="not a medseg pack of this version"):
        check_pack(tmp_path / "p.npz")
