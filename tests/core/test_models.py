"""Model registry and safe checkpoint loading."""

from __future__ import annotations

import json

import pytest
import torch

from medseg.errors import CheckpointError
from medseg.models.checkpoints import load_checkpoint, load_official_sam, save_checkpoint
from medseg.models.network import ModelConfig, build_network, sam_config
from medseg.models.registry import load_model

TINY = ModelConfig(name="tiny", img_size=64, embed_dim=32, depth=1, num_heads=2, prompt_dim=32, decoder_mlp_dim=64, decoder_heads=2)


def test_checkpoint_roundtrip_is_exact_and_records_sha(tmp_path):
    torch.manual_seed(0)
    net = build_network(TINY)
    path = save_checkpoint(net, tmp_path / "m.safetensors", {"note": "x"})
    loaded, digest, info = load_checkpoint(path)
    assert info == {"note": "x"} and len(digest) == 64
    for k, v in net.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    lm = load_model(str(path))
    assert lm.sha256 == digest and lm.model.config == TINY


def test_half_checkpoint_loads_as_float32(tmp_path):
    net = build_network(TINY)
    loaded, _, _ = load_checkpoint(save_checkpoint(net, tmp_path / "h.safetensors", half=True))
    w = loaded.image_encoder.patch_embed.proj.weight
    assert w.dtype == torch.float32
    assert torch.allclose(w, net.image_encoder.patch_embed.proj.weight, atol=1e-3)


def test_wrong_sha256_names_both(tmp_path):
    path = save_checkpoint(build_network(TINY), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(path, expected_sha256="0" * 64)


def test_wrong_keys_are_named(tmp_path):
    from safetensors.torch import save_file

    sd = build_network(TINY).state_dict()
    sd["bogus.weight"] = torch.zeros(1)
    del sd["mask_decoder.iou_token.weight"]
    save_file(sd, str(tmp_path / "bad.safetensors"), metadata={"format": "medseg-checkpoint/1", "config": json.dumps(TINY.to_dict())})
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / "bad.safetensors")
    assert "bogus.weight" in str(e.value) and "mask_decoder.iou_token.weight" in str(e.value)


def test_corrupt_safetensors_is_refused(tmp_path):
    p = tmp_path / "c.safetensors"
    p.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError):
        load_checkpoint(p)


@pytest.mark.parametrize("change, message", [
    ({"embed_dim": 8192, "depth": 64}, "embed_dim must be a whole number in 8..2048"),
    ({"depth": "eight"}, "depth must be a whole number"),
    ({"img_size": -256}, "img_size must be a whole number"),
    ({"embed_dim": 2048, "depth": 64, "num_heads": 16}, "billion weights"),
    ({"global_attn_indexes": 3}, "global_attn_indexes must be a list"),
    ({"input_norm": "zscore"}, "input_norm must be"),
    ({"input_norm": "medsam"}, "in_chans must be 3, got 1"),
    ({"structures": ["lv", "myo", "lv"]}, "got 'lv' more than once"),
    ({"roi_margin": False}, "roi_margin must be a number"),
    ({"mlp_ratio": True}, "mlp_ratio must be a number"),
    ({"use_rel_pos": "yes"}, "use_rel_pos must be true or false"),
    ({"decoder_heads": 32}, "prompt_dim of 2 x decoder_heads"),  # segment-anything asserted (prompt_dim / 2) % heads
    ({"prompt_dim": 33, "decoder_heads": 1}, "prompt_dim of 2 x decoder_heads"),  # odd: the Fourier features come out 32 wide
    ({"img_size": 4096, "patch_size": 1, "embed_dim": 64}, "billion weights"),  # a 4.3 GB position table
    (None, "header is not JSON"),
])
def test_a_checkpoint_header_is_checked_before_any_layer_is_built(tmp_path, change, message):
    """A 7 KB checkpoint whose header asks for an 8192-wide, 64-block encoder made medseg
    allocate gigabytes (an out-of-memory kill) before a weight was read; a header field of the
    wrong type or not JSON was an unexpected error. Refused in one line now."""
    from safetensors.torch import save_file

    config = "{not json" if change is None else json.dumps({**TINY.to_dict(), **change})
    save_file({"x": torch.zeros(1)}, str(tmp_path / "c.safetensors"), metadata={"format": "medseg-checkpoint/1", "config": config})
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(tmp_path / "c.safetensors")
    assert "\n" not in str(e.value)
    for variant in ("vit_b", "vit_l", "vit_h"):  # the official SAM architectures stay buildable
        assert sam_config(variant, variant).depth in (12, 24, 32)


@pytest.mark.slow
def test_official_sam_state_dict_loads_strictly(tmp_path):
    """A SAM ViT-B state dict saved by the test (random weights) loads through the registry
    name=path syntax with weights_only loading; a foreign dict is refused."""
    torch.manual_seed(0)
    net = build_network(sam_config("vit_b", "sam_vit_b"))
    torch.save(net.state_dict(), tmp_path / "sam_vit_b.pth")
    lm = load_model(f"sam_vit_b={tmp_path / 'sam_vit_b.pth'}")
    assert lm.model_id == "sam_vit_b" and lm.model.structure_embed is None
    k = "image_encoder.blocks.0.attn.qkv.weight"
    assert torch.equal(lm.model.state_dict()[k], net.state_dict()[k])
    assert load_model(str(tmp_path / "sam_vit_b.pth")).model_id == "sam_vit_b"  # detected from shapes
    torch.save({"a": torch.zeros(2)}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError):
        load_official_sam(tmp_path / "foreign.pth", "vit_b", "sam_vit_b", "sam")


def test_pickled_objects_are_not_loaded(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError):
        load_official_sam(tmp_path / "evil.pth", "vit_b", "sam_vit_b", "sam")


@pytest.mark.parametrize("spec", ["sam_vit_b", "nonexistent_model", "/no/such/file.safetensors"])
def test_bad_model_specs(spec):
    with pytest.raises(CheckpointError):
        load_model(spec)


def test_unknown_device():
    with pytest.raises(CheckpointError, match="device"):
        load_model("default", device="tpu")


def test_loading_the_model_skips_torchvision_and_segment_anything_still_works_in_full():
    """medseg imports segment-anything's model modules without its package __init__ (which
    pulls torchvision and torch._dynamo for its predictor); the package must still work in
    full for code that uses it afterwards, on the same module objects."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from medseg.models import load_model\n"
        "m = load_model('default')\n"
        "assert 'torchvision' not in sys.modules, 'torchvision was imported'\n"
        "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'  # ~1 s of every load (meta-device init)\n"
        "import segment_anything as sa\n"
        "from segment_anything import SamPredictor\n"
        "assert 'vit_b' in sa.sam_model_registry and 'torchvision' in sys.modules\n"
        "assert type(m.model.image_encoder) is sa.modeling.ImageEncoderViT\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
