"""An adapter folder is untrusted input: ``adapter_config.json`` is checked against what medseg's
own adapters use and the weights against what that config implies, before peft builds anything.
A fuzzing review found configs that failed inside peft ("unexpected AttributeError"), rank and
alpha patterns that bypassed the rank limit, settings that broke the model (the error then
blamed the image), and weights that were silently not loaded (peft's two-line warning, exit 0,
and `medseg models` called the folder healthy). Every mutated adapter here is a copy of the
shipped ``cmr-lge``."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from medseg._files import sha256_file
from medseg.adapters import attach_adapter, check_adapter_file, find_adapter, list_adapters
from medseg.cli._app import run_cli
from medseg.errors import CheckpointError, MedsegError
from medseg.models import load_model

DELETE = object()
QKV_A = "base_model.model.image_encoder.blocks.0.attn.qkv.lora_A.weight"
QKV_B = "base_model.model.image_encoder.blocks.0.attn.qkv.lora_B.weight"
EMBED = "base_model.model.structure_embed.weight"
MAX_ADAPTER_WEIGHT = 1e4  # medseg.adapter_checks.MAX_ADAPTER_WEIGHT


def _copy(tmp_path, name="bad"):
    """A copy of the shipped adapter in $MEDSEG_HOME/adapters/NAME (tmp_path is the home)."""
    out = tmp_path / "adapters" / name
    shutil.copytree(find_adapter("cmr-lge"), out)
    return out


def _config(folder, **changes):
    path = folder / "adapter_config.json"
    cfg = json.loads(path.read_text())
    for k, v in changes.items():
        if v is DELETE:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    path.write_text(json.dumps(cfg))


def _weights(folder, change):
    from safetensors.torch import load_file, save_file

    path = folder / "adapter_model.safetensors"
    state = change(load_file(str(path)))
    save_file(state, str(path), metadata={"format": "pt"})
    meta = json.loads((folder / "medseg.json").read_text())  # an adapter made with these weights: its card records their sha256
    (folder / "medseg.json").write_text(json.dumps({**meta, "adapter_sha256": sha256_file(path)}))


def _one_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in text and "Warning" not in text, text
    return lines[0]


CONFIGS = {  # adapter_config.json change -> what the one-line error says
    "target_modules_ints": ({"target_modules": [1, 2]}, "target_modules must be a list of module names among qkv"),
    "target_modules_regex": ({"target_modules": ".*"}, "target_modules must be a list"),
    "target_modules_other": ({"target_modules": ["qkv", "fc1"]}, 'got ["qkv", "fc1"]'),
    "rank_pattern_text": ({"rank_pattern": "abc"}, 'rank_pattern must be an object {module: rank}'),
    "rank_pattern_list": ({"rank_pattern": [1]}, "rank_pattern must be an object"),
    "rank_pattern_bomb": ({"rank_pattern": {"qkv": 2000000}}, "ranks 1..256, got {\"qkv\": 2000000}"),
    "rank_pattern_untargeted": ({"rank_pattern": {"qkv": 4}, "target_modules": ["q_proj", "k_proj", "v_proj", "out_proj"]},
                                "rank_pattern names 'qkv', which target_modules"),
    "rank_pattern_other_rank": ({"rank_pattern": {"qkv": 4}}, "LoRA weights of another rank than its config's r = 4"),
    "alpha_pattern_text": ({"alpha_pattern": "abc"}, "alpha_pattern must be an object"),
    "alpha_pattern_huge": ({"alpha_pattern": {"qkv": 1e300}}, "alphas in (0, 4096], got {\"qkv\": 1e+300}"),
    "lora_alpha_nan": ({"lora_alpha": float("nan")}, "lora_alpha must be a number in (0, 4096], got NaN"),
    "task_type": ({"task_type": "CAUSAL_LM"}, 'task_type must be null (medseg\'s adapters do not use it), got "CAUSAL_LM"'),
    "megatron": ({"megatron_config": {"a": 1}}, "megatron_config must be null"),
    "pissa": ({"init_lora_weights": "pissa"}, 'init_lora_weights must be true, false or "gaussian"'),
    "dora": ({"use_dora": True}, "use_dora must be false"),
    "lora_bias": ({"lora_bias": True}, "lora_bias must be false"),
    "rslora": ({"use_rslora": True}, "use_rslora must be false"),
    "bias_all": ({"bias": "all"}, 'bias must be "none"'),
    "layers": ({"layers_to_transform": [99]}, "layers_to_transform must be null"),
    "unknown_key": ({"foo_unknown": 1}, 'unknown setting "foo_unknown"'),
    "no_r": ({"r": DELETE}, "rank r must be a whole number in 1..256, got nothing"),
    # the file's structure tokens would be ignored: modules_to_save [] or left out
    "save_nothing": ({"modules_to_save": []}, 'modules_to_save must be null or ["structure_embed"]'),
    "save_deleted": ({"modules_to_save": DELETE}, 'unexpected weight "base_model.model.structure_embed.weight"'),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_a_config_outside_what_medseg_uses_is_refused_in_one_line(case, tmp_path, monkeypatch):
    change, want = CONFIGS[case]
    bad = _copy(tmp_path)
    _config(bad, **change)
    with pytest.raises(CheckpointError) as err:
        check_adapter_file(bad)
    msg = _one_line(str(err.value))
    assert want in msg and str(bad) in msg
    # `medseg models` lists it as broken with the reason, and the shipped one as fine
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path))
    rows = {r["name"]: r for r in list_adapters()}
    assert rows["bad"]["source"] == f"broken: {msg}" and "sha256" not in rows["bad"]
    assert "sha256" in rows["cmr-lge"] and not rows["cmr-lge"]["source"].startswith("broken")


@pytest.mark.parametrize("case", ["target_modules_ints", "rank_pattern_text", "task_type", "megatron", "pissa", "alpha_pattern_huge"])
def test_load_refuses_them_before_peft_builds_anything(case, tmp_path):
    change, want = CONFIGS[case]
    bad = _copy(tmp_path)
    _config(bad, **change)
    with pytest.raises(CheckpointError, match="adapter_config.json: ") as err:
        load_model("default", adapter=str(bad))
    assert want in str(err.value)


def _rename(old, new):
    return lambda s: {(new if k == old else k): v for k, v in s.items()}


WEIGHTS = {  # adapter_model.safetensors change -> what the one-line error says
    "renamed_A": (_rename(QKV_A, QKV_A.replace("lora_A", "lora_X")), "unexpected weight"),
    "missing_B": (lambda s: {k: v for k, v in s.items() if k != QKV_B}, "image_encoder.blocks.0.attn.qkv has lora_A but not lora_B"),
    "unknown_module": (lambda s: {**s, "base_model.model.nonexistent.lora_A.weight": s[QKV_A].clone()}, "unexpected weight"),
    "no_structure_embed": (lambda s: {k: v for k, v in s.items() if k != EMBED}, "holds no weights of 'structure_embed'"),
    "bool_B": (lambda s: {**s, QKV_B: s[QKV_B] > 0}, "is BOOL (adapter weights are floating point"),
    "int_A": (lambda s: {**s, QKV_A: s[QKV_A].to(torch.int32)}, "is I32"),
    "huge": (lambda s: {**s, QKV_B: s[QKV_B] + 1e30}, "holds values up to 1e+30"),
    "just_too_big": (lambda s: {**s, QKV_A: s[QKV_A] * 0 + 2 * MAX_ADAPTER_WEIGHT}, "holds values up to 2e+04"),
}


@pytest.mark.parametrize("case", list(WEIGHTS))
def test_weights_other_than_the_config_implies_are_refused(case, tmp_path, monkeypatch):
    change, want = WEIGHTS[case]
    bad = _copy(tmp_path)
    _weights(bad, change)
    with pytest.raises(CheckpointError) as err:
        check_adapter_file(bad)
    msg = _one_line(str(err.value))
    assert want in msg and str(bad) in msg
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path))
    assert {r["name"]: r for r in list_adapters()}["bad"]["source"] == f"broken: {msg}"


def test_the_shipped_adapter_passes_and_its_weights_are_far_below_the_bound():
    from safetensors.torch import load_file

    from medseg.adapter_checks import MAX_ADAPTER_WEIGHT as bound

    folder = find_adapter("cmr-lge")
    check_adapter_file(folder)
    assert bound == MAX_ADAPTER_WEIGHT
    top = max(float(t.abs().max()) for t in load_file(str(folder / "adapter_model.safetensors")).values())
    assert top < MAX_ADAPTER_WEIGHT / 1000


@pytest.mark.parametrize("case", ["module_left_out", "module_not_in_model"])
def test_weights_the_model_does_not_match_are_refused_at_load_without_peft_warnings(case, tmp_path, recwarn):
    """Complete A/B pairs of a targeted module name pass the folder check: only the model knows
    which modules exist. peft loaded what matched and warned; now the keys must be exactly the
    model's."""
    bad = _copy(tmp_path)
    if case == "module_left_out":
        _weights(bad, lambda s: {k: v for k, v in s.items() if ".blocks.0.attn.qkv." not in k})
        want = "lacks 2 weight(s) this model's LoRA needs"
    else:
        _weights(bad, lambda s: {**s, **{k.replace("blocks.0.", "blocks.99."): v.clone() for k, v in s.items() if ".blocks.0.attn.qkv." in k}})
        want = "holds 2 weight(s) this model has no place for (first 'base_model.model.image_encoder.blocks.99.attn.qkv.lora_A.weight')"
    check_adapter_file(bad)
    with pytest.raises(CheckpointError) as err:
        load_model("default", adapter=str(bad))
    assert want in _one_line(str(err.value)) and str(bad) in str(err.value)
    assert not [w for w in recwarn if "adapter keys" in str(w.message)]


def test_a_refused_second_adapter_leaves_the_first_attached(tmp_path, recwarn):
    bad = _copy(tmp_path, "second")
    _weights(bad, lambda s: {k: v for k, v in s.items() if ".blocks.0.attn.qkv." not in k})
    loaded = load_model("default", adapter="cmr-lge")
    with pytest.raises(CheckpointError, match="lacks 2 weight"):
        attach_adapter(loaded, str(bad))
    assert set(loaded.model.peft_config) == {"cmr-lge"} and loaded.model.active_adapter == "cmr-lge" and loaded.adapter_id == "cmr-lge"
    assert not [w for w in recwarn if "peft" in w.filename]


def test_an_adapter_folder_named_with_a_dot_attaches_and_switches(tmp_path):
    """peft's module dicts cannot key a name with a dot: ``lge.v2`` was refused as "does not fit
    this model". medseg names it as given; peft holds it as ``lge_dot_v2``."""
    from medseg.adapters import switch_adapter

    dotted = _copy(tmp_path, "lge.v2")
    loaded = load_model("default", adapter="cmr-lge")
    attach_adapter(loaded, str(dotted))
    assert loaded.adapter_id == "lge.v2" and loaded.provenance()["adapter_id"] == "lge.v2"
    assert switch_adapter(loaded, "cmr-lge").adapter_id == "cmr-lge"
    assert switch_adapter(loaded, "lge.v2").adapter_sha256 == loaded.info["adapter_sha256s"]["lge.v2"]
    with pytest.raises(CheckpointError, match=r"'lge\.v3' is not attached \(attached: cmr-lge, lge\.v2\)"):
        switch_adapter(loaded, "lge.v3")


@pytest.fixture()
def image(tmp_path):
    import nibabel as nib
    import numpy as np

    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=1, n_slices=3, shape=(64, 64), seed=1)
    nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 3), ph.image.affine), str(tmp_path / "img.nii.gz"))
    return tmp_path / "img.nii.gz"


@pytest.mark.parametrize("case", ["config", "weights", "module_left_out"])
def test_segment_with_a_broken_adapter_is_one_line_and_exit_1(case, tmp_path, image, capfd):
    bad = _copy(tmp_path)
    if case == "config":
        _config(bad, megatron_config={"a": 1})
    elif case == "weights":
        _weights(bad, WEIGHTS["missing_B"][0])
    else:
        _weights(bad, lambda s: {k: v for k, v in s.items() if ".blocks.0.attn.qkv." not in k})
    out = tmp_path / "out.nii.gz"
    rc = run_cli(["segment", str(image), "--auto", "--adapter", str(bad), "-o", str(out)])
    cap = capfd.readouterr()
    line = _one_line(cap.err)
    assert rc == 1 and line.startswith("error: ") and not line.startswith("error: unexpected") and str(bad) in " ".join(cap.err.split())
    assert "Found missing adapter keys" not in cap.out + cap.err and not out.exists()


def test_models_lists_a_broken_adapter_with_its_reason_and_escapes_descriptions(tmp_path, monkeypatch, capsys):
    odd = _copy(tmp_path, "odd")
    meta = json.loads((odd / "medseg.json").read_text())
    (odd / "medseg.json").write_text(json.dumps({**meta, "description": "line1\nline2\x1b[31mred\tend"}))
    bad = _copy(tmp_path, "dora")
    _config(bad, use_dora=True)
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "400")
    assert run_cli(["models"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\t" not in out
    row = next(ln for ln in out.splitlines() if "odd" in ln)
    assert "line1\\nline2\\x1b[31mred\\tend" in row  # one row, the control characters shown escaped
    row = next(ln for ln in out.splitlines() if "dora" in ln)
    assert "broken:" in row and "use_dora must be false" in row
    assert run_cli(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["dora"]["source"].startswith("broken: ") and "use_dora must be false" in rows["dora"]["source"]
    assert rows["odd"]["description"] == "line1\nline2\x1b[31mred\tend" and "sha256" in rows["cmr-lge"]


@pytest.mark.parametrize("case", ["task_type", "rank_pattern_text", "lora_alpha"])
def test_adapt_init_from_refuses_a_broken_or_foreign_lora(case, tmp_path):
    from medseg.adapt import AdaptConfig, check_init_adapter

    start = _copy(tmp_path, "start")
    change = {"task_type": {"task_type": "CAUSAL_LM"}, "rank_pattern_text": {"rank_pattern": "abc"},
              "lora_alpha": {"lora_alpha": 64}}[case]  # its weights would be scaled by 16 / 8 instead of 64 / 8
    _config(start, **change)
    with pytest.raises(MedsegError) as err:
        check_init_adapter(AdaptConfig(out=str(tmp_path / "new"), rank=8, init_from=str(start)))
    msg = _one_line(str(err.value))
    assert "adapter_config.json: " in msg and (case != "lora_alpha" or "lora_alpha must be 2 x r = 16" in msg and "got 64" in msg)
    check_init_adapter(AdaptConfig(out=str(tmp_path / "new"), rank=8, init_from="cmr-lge"))  # the shipped one is a fine start
