"""The small tools in benchmarks/ that decisions about the default model rest on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import compare_results  # noqa: E402
import weight_average  # noqa: E402


def _cases(dice_by_case: dict[tuple[str, str], float], lvef_err: dict[str, float]) -> dict[str, dict]:
    out = {}
    for (case, phase), d in dice_by_case.items():
        out[f"/{case}_{phase}.nii.gz"] = {"case": case, "phase": phase, "image": f"/{case}_{phase}.nii.gz",
                                          "dice": {"lv": d, "myo": d - 0.05, "rv": d - 0.02},
                                          "clinical": {"lvef_pred": 50.0 + lvef_err[case], "lvef_ref": 50.0}}
    return out


def test_compare_results_pairs_cases_and_resamples_patients():
    rng = np.random.default_rng(1)
    keys = [(f"p{i:02d}", ph) for i in range(20) for ph in ("ED", "ES")]
    base = {k: 0.90 + 0.03 * rng.random() for k in keys}
    before = _cases(base, {f"p{i:02d}": 3.0 for i in range(20)})
    better = _cases({k: v + 0.01 for k, v in base.items()}, {f"p{i:02d}": 2.0 for i in range(20)})
    noisy = _cases({k: v + rng.normal(0, 0.01) for k, v in base.items()}, {f"p{i:02d}": 3.0 for i in range(20)})
    rows = {r["measure"]: r for r in compare_results.compare(before, better, boot=500)}
    mean = rows["Dice, mean over structures"]
    assert mean["difference"] == pytest.approx(0.01, abs=1e-9)
    assert mean["ci95"][0] > 0  # a uniform gain is resolved
    assert rows["LVEF error (pts)"]["n"] == 20  # one clinical value per patient, not per volume
    assert rows["LVEF error (pts)"]["difference"] == pytest.approx(-1.0)
    noise = {r["measure"]: r for r in compare_results.compare(before, noisy, boot=500)}["Dice lv"]
    assert noise["ci95"][0] < noise["difference"] < noise["ci95"][1]
    assert noise["ci95"][1] - noise["ci95"][0] > 0.002  # zero-mean noise leaves a wide interval
    for case in ("/p00_ED.nii.gz", "/p00_ES.nii.gz"):  # a patient without clinical numbers is left out of those rows only
        del better[case]["clinical"]
    rows = {r["measure"]: r for r in compare_results.compare(before, better, boot=200)}
    assert rows["LVEF error (pts)"]["n"] == 19 and rows["Dice lv"]["n"] == 40
    with pytest.raises(SystemExit, match="same cases"):
        compare_results.compare(before, dict(list(better.items())[:-1]), boot=10)


def test_compare_results_refuses_a_foreign_file(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"summary": {}}))
    with pytest.raises(SystemExit, match="not a medseg evaluate"):
        compare_results._load(str(p))


def _ckpt(path: Path, enc: float, dec: float) -> str:
    from safetensors.torch import save_file

    save_file({"image_encoder.w": torch.full((2, 2), enc), "mask_decoder.w": torch.full((3,), dec)}, str(path),
              metadata={"info": json.dumps({"training": {}})})
    return str(path)


def test_weight_average_keeps_or_averages_the_encoder(tmp_path):
    from safetensors import safe_open

    a, b = _ckpt(tmp_path / "a.safetensors", 1.0, 0.0), _ckpt(tmp_path / "b.safetensors", 3.0, 2.0)
    with pytest.raises(SystemExit, match="image encoders differ"):
        weight_average.main(str(tmp_path / "o.safetensors"), [a, b])
    for flag, enc in (("encoder_too", 2.0), ("encoder_from_first", 1.0)):
        out = tmp_path / f"{flag}.safetensors"
        weight_average.main(str(out), [a, b], **{flag: True})
        with safe_open(str(out), framework="pt") as f:
            assert torch.all(f.get_tensor("image_encoder.w") == enc)
            assert torch.all(f.get_tensor("mask_decoder.w") == 1.0)
            info = json.loads(f.metadata()["info"])
        assert len(info["weight_average"]["of_sha256"]) == 2
