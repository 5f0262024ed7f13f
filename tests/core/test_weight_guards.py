"""Checkpoints, adapters and resume states whose weights hold NaN or Inf (a diverged or damaged
training run) are refused when they are loaded, naming the file and the first bad tensor: they
loaded silently, and the error came later, blaming the image (or every mask came out empty)."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from medseg.cli._app import run_cli
from medseg.errors import CheckpointError
from medseg.models.checkpoints import load_checkpoint, load_official_sam, save_checkpoint
from medseg.models.network import ModelConfig, build_network

TINY = ModelConfig(name="tiny", img_size=64, embed_dim=32, depth=1, num_heads=2, prompt_dim=32, decoder_mlp_dim=64, decoder_heads=2)
BAD = "image_encoder.blocks.0.attn.qkv.weight"


def _one_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return " ".join(lines[0].split())


def _damaged_checkpoint(tmp_path, value=float("nan"), half=False):
    net = build_network(TINY)
    with torch.no_grad():
        dict(net.named_parameters())[BAD].view(-1)[5] = value
    return save_checkpoint(net, tmp_path / "diverged.safetensors", half=half)


@pytest.fixture()
def image(tmp_path):
    """A small short-axis phantom as a NIfTI file (the CLI reads an image before or after the model)."""
    import nibabel as nib
    import numpy as np

    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=1, n_slices=3, shape=(64, 64), seed=1)
    nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 3), ph.image.affine), str(tmp_path / "img.nii.gz"))
    return tmp_path / "img.nii.gz"


@pytest.mark.parametrize("value,half", [(float("nan"), False), (float("inf"), True), (-float("inf"), False)])
def test_a_checkpoint_with_nan_or_inf_weights_is_refused_naming_the_file_and_tensor(tmp_path, value, half):
    path = _damaged_checkpoint(tmp_path, value, half)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    msg = _one_line(str(err.value))
    assert msg == (f"checkpoint {path}: weight '{BAD}' holds NaN or Inf values (a diverged or damaged training run); "
                   "re-export or train it again")
    from medseg.models import load_model

    with pytest.raises(CheckpointError, match="holds NaN or Inf"):
        load_model(str(path))
    good = save_checkpoint(build_network(TINY), tmp_path / "fine.safetensors", half=half)
    assert load_checkpoint(good)[0] is not None  # finite weights load as before


def test_segment_with_a_nan_checkpoint_is_one_line_and_exit_1(tmp_path, image, capsys):
    path = _damaged_checkpoint(tmp_path)
    rc = run_cli(["segment", str(image), "--auto", "--model", str(path), "-o", str(tmp_path / "out.nii.gz")])
    cap = capsys.readouterr()
    assert rc == 1 and "Traceback" not in cap.out + cap.err
    assert _one_line(cap.err) == f"error: checkpoint {path}: weight '{BAD}' holds NaN or Inf values (a diverged or damaged training run); re-export or train it again"
    assert not (tmp_path / "out.nii.gz").exists()


def test_an_official_sam_state_dict_with_nan_is_refused_before_the_network_is_built(tmp_path):
    state = build_network(TINY).state_dict()
    state[BAD] = state[BAD].clone()
    state[BAD].view(-1)[0] = float("nan")
    torch.save(state, tmp_path / "sam.pth")
    with pytest.raises(CheckpointError, match=f"checkpoint {tmp_path / 'sam.pth'}: weight '{BAD}' holds NaN or Inf"):
        load_official_sam(tmp_path / "sam.pth", "vit_b", "sam_vit_b", "sam")


# -- adapters ---------------------------------------------------------------------------------
@pytest.fixture()
def tiny_base_and_adapter(tmp_path):
    """A tiny base checkpoint and a LoRA adapter made for it (fast: no shipped model)."""
    from medseg.adapters import apply_lora, lora_config, save_adapter
    from medseg.models import load_model

    ckpt = save_checkpoint(build_network(TINY), tmp_path / "tiny.safetensors")
    base = load_model(str(ckpt))
    peft_model = apply_lora(copy.deepcopy(base.model), lora_config(rank=2))
    out = save_adapter(peft_model, tmp_path / "home" / "adapters" / "tiny-adapter",
                       {"base_model_id": base.model_id, "base_model_sha256": base.sha256, "modality": "MR", "label_map": {"lv": 1}}, "# card\n")
    return ckpt, out


def _poison_adapter(folder, value=float("inf")):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    f = folder / "adapter_model.safetensors"
    with safe_open(str(f), framework="pt") as h:
        meta = h.metadata()
    state = load_file(str(f))
    name = sorted(k for k in state if "lora_B" in k)[0]
    state[name] = state[name].clone()
    state[name].view(-1)[0] = value
    save_file(state, str(f), metadata=meta)
    return f, name


def test_an_adapter_with_inf_weights_is_refused_and_listed_as_broken(tiny_base_and_adapter, tmp_path, image, capsys, monkeypatch):
    from medseg.adapters import attach_adapter, list_adapters
    from medseg.models import load_model

    ckpt, folder = tiny_base_and_adapter
    attach_adapter(load_model(str(ckpt)), str(folder))  # the adapter as saved loads
    weights, name = _poison_adapter(folder)
    want = f"adapter {weights}: weight '{name}' holds NaN or Inf values (a diverged or damaged training run); re-export or train it again"
    with pytest.raises(CheckpointError) as err:
        attach_adapter(load_model(str(ckpt)), str(folder))
    assert _one_line(str(err.value)) == want
    rc = run_cli(["segment", str(image), "--auto", "--model", str(ckpt), "--adapter", str(folder), "-o", str(tmp_path / "out.nii.gz")])
    cap = capsys.readouterr()
    assert rc == 1 and _one_line(cap.err) == f"error: {want}"
    # `medseg models` lists it as broken (it reads the adapter's weights: an adapter is small)
    monkeypatch.setenv("MEDSEG_HOME", str(folder.parent.parent))
    rows = {r["name"]: r for r in list_adapters()}
    assert rows["tiny-adapter"]["source"].startswith("broken: adapter ") and "holds NaN or Inf" in rows["tiny-adapter"]["source"]
    assert run_cli(["models", "--json"]) == 0
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["tiny-adapter"]["source"].startswith("broken:")


# -- resume states ----------------------------------------------------------------------------
def test_adapt_resume_refuses_a_state_with_nan(tmp_path):
    """`medseg adapt --resume` from a state saved after the run diverged: every later step is
    NaN too; said at once instead."""
    from medseg.adapt import AdaptConfig, _resume

    state_dir = tmp_path / "ad.state"
    state_dir.mkdir()
    bad = {"base_model.model.x.lora_A.default.weight": torch.tensor([1.0, float("nan")])}
    torch.save({"adapter": bad, "best_state": {}, "opt": {"state": {}, "param_groups": []}, "step": 4, "best": 0.5, "bad": 0,
                "history": "[]", "signature": "same", "seconds": 1.0}, state_dir / "state.pt")
    cfg = AdaptConfig(out=str(tmp_path / "ad"), resume=True)
    with pytest.raises(CheckpointError) as err:
        _resume(cfg, state_dir, object(), object(), "same")
    assert _one_line(str(err.value)) == (f"resume state {state_dir / 'state.pt'}: weight 'adapter.base_model.model.x.lora_A.default.weight' "
                                         "holds NaN or Inf values (a diverged or damaged training run); run without --resume to start over")
    # an optimizer moment with Inf is found as well
    torch.save({"adapter": {}, "best_state": {}, "opt": {"state": {0: {"step": torch.tensor(3.0), "exp_avg_sq": torch.tensor([float("inf")])}},
                                                        "param_groups": []},
                "step": 4, "best": -float("inf"), "bad": 0, "history": "[]", "signature": "same", "seconds": 1.0}, state_dir / "state.pt")
    with pytest.raises(CheckpointError, match="weight 'opt.state.0.exp_avg_sq' holds NaN or Inf"):
        _resume(cfg, state_dir, object(), object(), "same")


def test_train_resume_refuses_a_state_with_nan(tmp_path, monkeypatch):
    import medseg.training.loop as loop

    class Bank:  # the data are not needed: the state is checked before any step
        source = None  # not a pack of a lab's own pairs

        def weights(self, split):
            return None

    monkeypatch.setattr(loop, "bank_from_pack", lambda *a, **k: Bank())
    out = tmp_path / "run"
    out.mkdir()
    state = build_network(TINY).state_dict()
    state[BAD] = state[BAD].clone()
    state[BAD].view(-1)[1] = float("nan")
    torch.save({"model": state, "opt": {"state": {}, "param_groups": []}, "step": 3, "elapsed": 1.0, "best": 0.1}, out / "state.pt")
    cfg = loop.TrainConfig(out=str(out), resume=True, n_phantoms=1, model=TINY.to_dict(), max_steps=1)
    with pytest.raises(CheckpointError) as err:
        loop.train(cfg)
    assert _one_line(str(err.value)) == (f"resume state {out / 'state.pt'}: weight 'model.{BAD}' holds NaN or Inf values "
                                         "(a diverged or damaged training run); run without --resume to start over")
