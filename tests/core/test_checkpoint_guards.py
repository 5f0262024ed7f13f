"""Checkpoints that fuzzing found loading wrongly: a tensor of a dtype the model cannot hold
(loaded, cast silently), a header whose input convention the encoder cannot take, a small file
whose header asks for a network of gigabytes (allocated before any shape was compared), and a
``.pth`` whose patch-embedding weight is not a tensor. Each is refused in one line, naming the
bad value; the shipped checkpoint loads exactly as before."""

from __future__ import annotations

import json

import pytest
import torch

from medseg.cli._app import run_cli
from medseg.errors import CheckpointError
from medseg.models import checkpoints, load_model
from medseg.models.checkpoints import load_checkpoint, load_state_strict, save_checkpoint
from medseg.models.network import ModelConfig, build_network, build_skeleton, sam_config
from medseg.models.registry import shipped_checkpoint

TINY = ModelConfig(name="tiny", img_size=64, embed_dim=32, depth=1, num_heads=2, prompt_dim=32, decoder_mlp_dim=64, decoder_heads=2)
QKV = "image_encoder.blocks.0.attn.qkv.weight"


def _one_line(text: str) -> str:
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def _shipped_with(tmp_path, config: dict | None = None, change=None, name: str = "mutated.safetensors"):
    """A copy of the shipped checkpoint with header ``config`` fields replaced and/or its
    tensors passed through ``change`` (a function of the state dict)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    src = shipped_checkpoint()
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    if config:
        meta["config"] = json.dumps({**json.loads(meta["config"]), **config})
    state = load_file(str(src))
    if change is not None:
        state = change(state)
    save_file(state, str(tmp_path / name), metadata=meta)
    return tmp_path / name


def _retyped(dtype):
    def change(state):
        return {**state, QKV: state[QKV].round().to(dtype)}

    return change


@pytest.fixture()
def image(tmp_path):
    import nibabel as nib
    import numpy as np

    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=1, n_slices=2, shape=(64, 64), seed=1)
    nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 3), ph.image.affine), str(tmp_path / "img.nii.gz"))
    return tmp_path / "img.nii.gz"


# -- dtypes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.int32, torch.bool, torch.int64, torch.complex64])
def test_a_checkpoint_tensor_of_a_dtype_the_model_cannot_hold_is_refused_naming_it(tmp_path, dtype):
    """One int32 or bool tensor in the shipped checkpoint loaded (cast to float silently)."""
    path = _shipped_with(tmp_path, change=_retyped(dtype))
    with pytest.raises(CheckpointError) as e:
        load_model(str(path))
    name = str(dtype).removeprefix("torch.")
    assert _one_line(str(e.value)) == (f"{path}: weights do not fit the medseg-default architecture: "
                                       f"dtype mismatch at {QKV} ({name} in file, allowed: floating-point) and 0 more")


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_floating_point_weights_of_another_precision_still_load(tmp_path, dtype):
    path = save_checkpoint(build_network(TINY), tmp_path / "m.safetensors")
    from safetensors.torch import load_file, save_file

    state = {k: v.to(dtype) for k, v in load_file(str(path)).items()}
    save_file(state, str(path), metadata={"format": "medseg-checkpoint/1", "config": json.dumps(TINY.to_dict())})
    model = load_checkpoint(path)[0]
    assert model.state_dict()[QKV].dtype == torch.float32 and torch.equal(model.state_dict()[QKV], state[QKV].float())


def test_float64_weights_beyond_the_float32_range_are_refused(tmp_path):
    """float64 is a floating-point dtype, but 1e300 would load into the float32 model as Inf."""
    from safetensors.torch import save_file

    state = {k: v.double() for k, v in build_network(TINY).state_dict().items()}
    state[QKV].view(-1)[3] = 1e300
    save_file(state, str(tmp_path / "d.safetensors"), metadata={"format": "medseg-checkpoint/1", "config": json.dumps(TINY.to_dict())})
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / "d.safetensors")
    assert _one_line(str(e.value)) == (f"{tmp_path / 'd.safetensors'}: weight '{QKV}' holds float64 values beyond the float32 range "
                                       "the model holds (|x| <= 3.4e+38)")


def test_load_state_strict_refuses_an_integer_tensor_for_a_float_weight():
    """The same check guards official SAM state dicts (``load_official_sam``)."""
    net = build_network(TINY)
    state = {**net.state_dict(), QKV: torch.ones(net.state_dict()[QKV].shape, dtype=torch.int32)}
    with pytest.raises(CheckpointError, match=f"dtype mismatch at {QKV} \\(int32 in file, allowed: floating-point\\)"):
        load_state_strict(net, state, "sam.pth")


# -- header fields -----------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    ({"input_norm": "sam"}, "input_norm 'sam' feeds the encoder 3 channels: in_chans must be 3, got 1"),
    ({"input_norm": "medsam"}, "input_norm 'medsam' feeds the encoder 3 channels: in_chans must be 3, got 1"),
    ({"structures": ["lv"] * 7}, "structures must name each structure once, got 'lv' more than once"),
    ({"roi_margin": True}, "roi_margin must be a number in 0..4, got True"),
    ({"img_size": 4096, "patch_size": 1}, "a network of ~2.7 billion weights (img_size 4096, patch_size 1, embed_dim 160, depth 8); "
                                          "at most 1 billion are allowed"),
    ({"img_size": 4096}, "attention over 256x256 tokens in 4 heads needs 69 GB per image (img_size 4096, patch_size 16, window_size 0); "
                         "at most 4 GB are allowed"),
])
def test_a_shipped_checkpoint_with_a_bad_header_is_refused_in_one_line_by_the_cli(tmp_path, image, capsys, change, message):
    """``input_norm`` sam / medsam on a one-channel encoder failed in the first convolution; a
    header of 4096 px in 1 px patches allocated a 10.7 GB position table before any check; one of
    4096 px in 16 px patches (30 million weights) asked for 69 GB of attention scores per image."""
    path = _shipped_with(tmp_path, change)
    out = tmp_path / "out.nii.gz"
    rc = run_cli(["segment", str(image), "--auto", "--model", str(path), "-o", str(out)])
    cap = capsys.readouterr()
    assert rc == 1 and not out.exists()
    assert _one_line(cap.err) == f"error: {path}: its model config is not one medseg can build ({message})"


def test_three_channel_conventions_still_build():
    for norm in ("sam", "medsam"):
        assert ModelConfig(input_norm=norm, in_chans=3).in_chans == 3


def test_sam_vit_h_attention_is_within_the_bound():
    """SAM ViT-H (1024 px in 16 px patches, 14-token windows, four global blocks of 16 heads)
    needs 1.07 GB of attention scores per image in a global block: allowed."""
    from medseg.models.network import sam_config

    cfg = sam_config("vit_h", "sam-vit-h", "sam")
    assert (cfg.embed_size, cfg.num_heads, cfg.window_size) == (64, 16, 14) and len(cfg.global_attn_indexes) == 4
    assert ModelConfig(in_chans=3).input_norm == "unit"  # unit repeats the channel: any count


def test_a_sam_normalised_checkpoint_loads_with_its_pixel_statistics(tmp_path):
    """The meta-device build leaves the buffers no file holds (SAM's pixel mean / std) to be
    made again on loading."""
    config = ModelConfig(**{**TINY.to_dict(), "in_chans": 3, "input_norm": "sam", "global_attn_indexes": (), "structures": ()})
    net = build_network(config)
    model = load_checkpoint(save_checkpoint(net, tmp_path / "sam.safetensors"))[0]
    assert torch.equal(model.pixel_mean, net.pixel_mean) and torch.equal(model.pixel_std, net.pixel_std)
    x = torch.rand(1, 1, 64, 64)
    assert torch.equal(model.preprocess(x), net.preprocess(x))


@pytest.mark.parametrize("config", [
    ModelConfig(),
    TINY,
    sam_config("vit_b", "b"),
    sam_config("vit_h", "h"),
    ModelConfig(name="odd", img_size=48, patch_size=8, in_chans=2, embed_dim=24, depth=3, num_heads=3, mlp_ratio=2.7, use_rel_pos=True,
                window_size=5, global_attn_indexes=(1,), prompt_dim=36, decoder_depth=3, decoder_mlp_dim=10, decoder_heads=2, structures=("a",)),
])
def test_the_config_counts_every_weight_of_its_network(config):
    """The size bound counts what the network holds: position table, rel-pos tables, all."""
    assert config.n_weights() == sum(t.numel() for t in build_skeleton(config).state_dict().values())


def test_file_shapes_are_compared_with_the_header_before_any_weight_is_read_or_layer_allocated(tmp_path, monkeypatch):
    """A header of 512 px (in bounds) over the 256 px weights: refused from the file's header
    alone, before the weights are read or the network allocated."""
    path = _shipped_with(tmp_path, {"img_size": 512})

    def forbidden(*a, **k):
        raise AssertionError("weights were read or the network allocated before the shapes were compared")

    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "load_file", forbidden)
    monkeypatch.setattr(checkpoints, "materialize", forbidden)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert "shape mismatch at image_encoder.pos_embed ((1, 16, 16, 160) in file vs (1, 32, 32, 160) in model)" in _one_line(str(e.value))


def test_the_shipped_checkpoint_loads_exactly_the_file_s_weights():
    from safetensors.torch import load_file

    lm = load_model("default")
    state = load_file(str(shipped_checkpoint()))
    own = lm.model.state_dict()
    assert set(own) == set(state) and not lm.model.training
    for k, v in state.items():
        assert own[k].dtype == torch.float32 and own[k].device.type == "cpu" and torch.equal(own[k], v.float()), k
    assert all(p.requires_grad for p in lm.model.parameters())


# -- .pth patch embedding ------------------------------------------------------------------------
KEY = "image_encoder.patch_embed.proj.weight"


@pytest.mark.parametrize("state, found", [
    ({KEY: torch.tensor(768.0)}, "a 0-d tensor of shape ()"),
    ({KEY: 768}, "a value of type int"),
    ({KEY: [1, 2]}, "a value of type list"),
    ({KEY: torch.zeros(768, 3)}, "a 2-d tensor of shape (768, 3)"),
    ({KEY: torch.zeros(512, 3, 16, 16)}, "a 4-d tensor of shape (512, 3, 16, 16)"),
    ({"model": {KEY: "x"}}, "a value of type str"),
    ({"a": torch.zeros(1)}, "none"),
])
def test_a_pth_whose_patch_embedding_is_not_a_sam_tensor_is_refused(tmp_path, state, found):
    path = tmp_path / "weird.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as e:
        load_model(str(path))
    assert _one_line(str(e.value)) == (f"{path}: not a SAM state dict ({KEY} must be a 4-d tensor of width 768, 1024 or 1280 (ViT-B/L/H), "
                                       f"found {found})")
