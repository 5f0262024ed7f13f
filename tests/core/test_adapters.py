"""LoRA adapters: folder format, base-hash check, attach / switch / merge, bad files."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from medseg.adapters import apply_lora, attach_adapter, list_adapters, lora_config, merge_adapter, save_adapter, switch_adapter, unload_adapters
from medseg.errors import CheckpointError
from medseg.models import load_model
from medseg.predictor import SlicePredictor
from medseg.types import Box


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory):
    base = load_model("default")
    peft_model = apply_lora(copy.deepcopy(base.model), lora_config(rank=4))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # a visible change (LoRA B starts at zero)
    out = tmp_path_factory.mktemp("ad") / "my-adapter"
    save_adapter(peft_model, out, {"base_model_id": "default", "base_model_sha256": base.sha256, "modality": "MR", "label_map": {"lv": 1}}, "# card\n")
    return out


def _predict(loaded, img, box):
    p = SlicePredictor(loaded)
    p.set_image(img)
    return p.predict(box=box, structure="lv")


def test_folder_format_and_size(adapter_dir):
    names = sorted(p.name for p in adapter_dir.iterdir())
    assert names == ["README.md", "adapter_config.json", "adapter_model.safetensors", "medseg.json"]
    assert (adapter_dir / "adapter_model.safetensors").stat().st_size < 5e6
    assert json.loads((adapter_dir / "adapter_config.json").read_text())["r"] == 4


def test_attach_switch_merge(adapter_dir, phantom):
    from medseg.preprocess import normalize_intensity

    img = normalize_intensity(phantom.image.array, "MR")[0, 2]
    box = Box.from_mask(phantom.labels[0, 2] == 1)
    base = load_model("default")
    ref = _predict(base, img, box)
    loaded = attach_adapter(load_model("default"), str(adapter_dir))
    assert loaded.adapter_id == "my-adapter" and len(loaded.adapter_sha256) == 64
    with_adapter = _predict(loaded, img, box)
    assert not np.allclose(with_adapter.logits, ref.logits, atol=1e-3)
    sha = loaded.adapter_sha256
    switch_adapter(loaded, None)  # bare base again, adapter still attached
    assert np.allclose(_predict(loaded, img, box).logits, ref.logits, atol=1e-4)
    assert loaded.provenance()["adapter_sha256"] is None
    switch_adapter(loaded, "my-adapter")
    assert loaded.provenance()["adapter_sha256"] == sha  # provenance names the file after a switch back
    assert np.allclose(_predict(loaded, img, box).logits, with_adapter.logits, atol=1e-4)
    merged = merge_adapter(loaded)
    assert np.allclose(_predict(merged, img, box).logits, with_adapter.logits, atol=1e-3)
    with pytest.raises(CheckpointError):
        switch_adapter(unload_adapters(load_model("default")), "nope")


def test_foreign_base_is_refused_naming_both_hashes(adapter_dir, tmp_path):
    bad = tmp_path / "other"
    bad.mkdir()
    for f in adapter_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    meta = json.loads((bad / "medseg.json").read_text())
    meta["base_model_sha256"] = "f" * 64
    (bad / "medseg.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="ffffffffffffffff.*a5de|ffffffffffffffff") as e:
        attach_adapter(load_model("default"), str(bad))
    assert load_model("default").sha256[:16] in str(e.value)


@pytest.mark.parametrize("damage", ["corrupt", "foreign", "missing"])
def test_bad_adapter_files(adapter_dir, tmp_path, damage):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in adapter_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    st = bad / "adapter_model.safetensors"
    if damage == "corrupt":
        st.write_bytes(st.read_bytes()[:100])
    elif damage == "foreign":
        from safetensors.torch import save_file

        save_file({"weight": torch.zeros(3)}, str(st))
    else:
        st.unlink()
    with pytest.raises(CheckpointError):
        attach_adapter(load_model("default"), str(bad))


def test_unknown_adapter_name():
    with pytest.raises(CheckpointError, match="not found"):
        attach_adapter(load_model("default"), "no-such-adapter")


def test_list_adapters_includes_user_dir(adapter_dir, monkeypatch):
    monkeypatch.setenv("MEDSEG_HOME", str(adapter_dir.parent.parent))
    (adapter_dir.parent.parent / "adapters").mkdir(exist_ok=True)
    target = adapter_dir.parent.parent / "adapters" / "mine"
    if not target.exists():
        target.symlink_to(adapter_dir)
    names = {r["name"] for r in list_adapters()}
    assert "mine" in names
