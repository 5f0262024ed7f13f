"""LoRA adapters: folder format, base-hash check, attach / switch / merge, bad files."""

from __future__ import annotations

import copy
import json
import os
import time

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
    umask = os.umask(0)
    os.umask(umask)
    for p in adapter_dir.iterdir():  # safetensors wrote 0600: the folder could not be shared
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask, p.name
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
    one_call = load_model("default", adapter=str(adapter_dir))  # what --model/--adapter do
    assert one_call.provenance() == loaded.provenance() and np.allclose(_predict(one_call, img, box).logits, with_adapter.logits, atol=1e-5)
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


@pytest.mark.parametrize("damage", ["corrupt", "foreign", "missing", "meta_a_list", "rank_bomb", "rank_text", "not_lora", "config_a_list",
                                    "other_rank_weights"])
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
    elif damage == "meta_a_list":  # valid JSON of another shape
        (bad / "medseg.json").write_text("[1]")
    elif damage in ("rank_bomb", "rank_text", "not_lora", "config_a_list", "other_rank_weights"):
        # peft builds whatever adapter_config.json names: "r": 2000000 asked for gigabytes
        cfg = json.loads((bad / "adapter_config.json").read_text())
        change = {"rank_bomb": {"r": 2000000}, "rank_text": {"r": "eight"}, "not_lora": {"peft_type": "PROMPT_TUNING"},
                  "other_rank_weights": {"r": 8, "lora_alpha": 16}}.get(damage, {})
        (bad / "adapter_config.json").write_text("[1]" if damage == "config_a_list" else json.dumps({**cfg, **change}))
    else:
        st.unlink()
    with pytest.raises(CheckpointError) as err:
        attach_adapter(load_model("default"), str(bad))
    want = {"rank_bomb": "rank r must be a whole number in 1..256", "rank_text": "rank r must be", "not_lora": "is not a LoRA adapter's",
            "config_a_list": "is not a LoRA adapter's", "other_rank_weights": "LoRA weights of another rank"}
    assert want.get(damage, "") in str(err.value)
    if damage == "meta_a_list":  # `medseg models` lists it as broken, and the others
        from unittest import mock

        (tmp_path / "adapters").mkdir()
        bad.rename(tmp_path / "adapters" / "bad")
        with mock.patch.dict(os.environ, {"MEDSEG_HOME": str(tmp_path)}):
            rows = {r["name"]: r for r in list_adapters()}
        assert rows["bad"]["source"].startswith("broken:") and "cmr-lge" in rows


def test_an_unreadable_adapter_is_said_to_be_unreadable_and_listed_as_broken(adapter_dir, tmp_path, monkeypatch):
    """Another user's adapter with mode 0600: segment called it "corrupt or not safetensors"
    and `medseg models` (and napari's list) stopped at it, hiding every other adapter."""
    import medseg.adapters as ad

    (tmp_path / "adapters").mkdir()
    (tmp_path / "adapters" / "theirs").symlink_to(adapter_dir)
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path))
    monkeypatch.setattr(ad.os, "access", lambda path, mode: "theirs" not in str(path))
    with pytest.raises(CheckpointError, match="not readable"):
        attach_adapter(load_model("default"), str(tmp_path / "adapters" / "theirs"))
    rows = {r["name"]: r for r in list_adapters()}
    assert rows["theirs"]["source"].startswith("broken:") and "not readable" in rows["theirs"]["source"] and "sha256" in rows["cmr-lge"]
    from medseg_napari._controller import adapter_names

    assert "cmr-lge" in adapter_names() and "theirs" not in adapter_names()  # napari offers what loads
    # an existing adapter folder that cannot be replaced is refused before training, not after it
    from medseg.adapters import check_adapter_out
    from medseg.errors import ImageWriteError

    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "medseg.json").write_text("{}")
    monkeypatch.setattr(ad.os, "access", lambda path, mode: not str(path).endswith("old"))
    with pytest.raises(ImageWriteError, match="cannot be replaced"):
        check_adapter_out(tmp_path / "old")


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


def _adapt_pairs(tmp_path):
    """Two small phantom studies as image/label files: one to train on, one to validate on."""
    import nibabel as nib

    from medseg.evaluation import Pair
    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    pairs = []
    for i in range(2):
        ph = cine_sax_phantom(n_frames=1, n_slices=4, shape=(96, 96), spacing=(8.0, 1.5, 1.5), seed=40 + i)
        img, lab = tmp_path / f"s{i}.nii.gz", tmp_path / f"s{i}_gt.nii.gz"
        nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 3), ph.image.affine), str(img))
        write_labels(ph.labels, ph.image, lab, ph.label_map.subset(["lv", "myo", "rv"]))
        pairs.append(Pair(img, lab, f"s{i}"))
    return pairs


def _lora_weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_adapt_init_from_starts_from_that_adapter_and_keeps_it_when_training_hurts(adapter_dir, tmp_path):
    from medseg.adapt import AdaptConfig, run_adapt
    from medseg.labels import LabelMap

    train, val = _adapt_pairs(tmp_path)
    lmap = LabelMap.parse("lv=1,myo=2,rv=3")
    init = _lora_weights(adapter_dir)
    # no steps, no validation: the adapter written is the one it started from, key for key
    out0 = tmp_path / "zero"
    meta = run_adapt([train], [], lmap, AdaptConfig(out=str(out0), rank=4, max_steps=0, batch_size=2, init_from=str(adapter_dir)))
    got = _lora_weights(out0)
    assert set(got) == set(init) and all(torch.equal(got[k], init[k]) for k in init)
    assert meta["training"]["init_from"]["adapter"] == "my-adapter"
    assert "Started from adapter `my-adapter`" in (out0 / "README.md").read_text()
    # a learning rate that wrecks it: validation keeps step 0, so the start comes back unchanged
    out1 = tmp_path / "wrecked"
    meta = run_adapt([train], [val], lmap, AdaptConfig(out=str(out1), rank=4, max_steps=2, val_every=1, batch_size=2, lr=50.0, init_from=str(adapter_dir)))
    hist = meta["history"]
    assert hist[0]["step"] == 0 and [h["step"] for h in hist[1:]] == [1, 2]

    def score(h):  # what medseg adapt chooses by: mean box Dice + 0.5 x mean zero-click Dice
        return np.mean([h[s] for s in ("lv", "myo", "rv")]) + 0.5 * np.mean([h[f"auto_{s}"] for s in ("lv", "myo", "rv")])

    assert all(score(h) < score(hist[0]) for h in hist[1:])
    got = _lora_weights(out1)
    assert all(torch.equal(got[k], init[k]) for k in init)


def test_adapt_init_from_refuses_another_rank(adapter_dir, tmp_path, capsys):
    from medseg.cli._app import run_cli

    train, _ = _adapt_pairs(tmp_path)
    csv = tmp_path / "train.csv"
    csv.write_text(f"image,label\n{train.image},{train.label}\n")
    out = tmp_path / "out"
    rc = run_cli(["adapt", "--pairs", str(csv), "--label-map", "lv=1,myo=2,rv=3", "-o", str(out), "--steps", "1", "--rank", "8", "--init-from", str(adapter_dir)])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 1 and err.startswith("error: --init-from my-adapter") and "rank 8" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("case", ["data_folder", "a_file", "rank_0", "rank_1000", "steps_0", "negative_lr", "map_misfit", "never_held",
                                  "val_is_train"])
def test_adapt_refuses_outputs_and_settings_before_training(case, tmp_path, capsys):
    """`medseg adapt -o FOLDER` replaces the adapter folder when it is written: an existing
    folder that is not an adapter (the user's data) is refused up front and left as it was;
    settings out of range are one line, not a library traceback after loading."""
    from medseg.cli._app import run_cli

    train, _ = _adapt_pairs(tmp_path)
    csv = tmp_path / "train.csv"
    csv.write_text(f"image,label\n{train.image},{train.label}\n")
    out, extra = tmp_path / "out", []
    if case == "data_folder":
        out.mkdir()
        (out / "study.nii.gz").write_bytes(b"precious")
    elif case == "a_file":
        out.write_bytes(b"precious")
    lmap = {"map_misfit": "lv=7,myo=2,rv=3", "never_held": "lv=1,myo=2,rv=3,la=4"}.get(case, "lv=1,myo=2,rv=3")
    if case in ("rank_0", "rank_1000", "steps_0", "negative_lr"):
        extra = {"rank_0": ["--rank", "0"], "rank_1000": ["--rank", "1000"], "steps_0": ["--steps", "0"], "negative_lr": ["--lr", "-0.1"]}[case]
    if case == "val_is_train":  # its before/after Dice and the step kept would be measured on what it learnt
        extra = ["--val", str(csv)]
    rc = run_cli(["adapt", "--pairs", str(csv), "--label-map", lmap, "-o", str(out), "--steps", "1", *extra])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 1 and err.startswith("error:") and "Traceback" not in err and "unexpected" not in err
    if case == "data_folder":
        assert (out / "study.nii.gz").read_bytes() == b"precious" and "not a medseg adapter folder" in err
    elif case == "a_file":
        assert out.read_bytes() == b"precious"
    elif case in ("map_misfit", "never_held"):  # the RV would be taught as background / a structure with no example
        assert not out.exists() and {"map_misfit": "holds no lv=7 but value(s) 1", "never_held": "names la=4, but no reference holds"}[case] in err
    elif case == "val_is_train":
        assert not out.exists() and "--val holds images --pairs trains on" in err
    else:
        assert not out.exists() and "out of range" in err


def test_adapt_never_writes_over_the_adapter_it_starts_from_or_a_shipped_one(adapter_dir, tmp_path, capsys):
    import hashlib

    from medseg.adapters import find_adapter
    from medseg.cli._app import run_cli

    train, _ = _adapt_pairs(tmp_path)
    csv = tmp_path / "train.csv"
    csv.write_text(f"image,label\n{train.image},{train.label}\n")
    shipped = find_adapter("cmr-lge")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (*adapter_dir.iterdir(), *shipped.iterdir())}
    base = ["adapt", "--pairs", str(csv), "--label-map", "lv=1,myo=2,rv=3", "--steps", "1"]
    for out, extra, message in ((adapter_dir, ["--init-from", str(adapter_dir)], "is the --init-from adapter training starts from"),
                                (shipped, [], "is in the folder of the adapters shipped with medseg"),
                                (shipped.parent / "new-one", [], "is in the folder of the adapters shipped with medseg")):
        assert run_cli([*base, "-o", str(out), *extra]) == 1
        assert message in " ".join(capsys.readouterr().err.split())
    assert before == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in before}
    assert not (shipped.parent / "new-one").exists()


def test_adapt_takes_the_label_map_the_label_files_name(tmp_path, capsys):
    """Labels saved by medseg (a sidecar naming their structures) need no --label-map, as for
    evaluate; labels that name nothing ask for it in one line, before any training."""
    import json

    from medseg.cli._app import run_cli

    train, val = _adapt_pairs(tmp_path)
    csv = tmp_path / "train.csv"
    csv.write_text(f"image,label\n{train.image},{train.label}\n")
    out = tmp_path / "out"
    assert run_cli(["adapt", "--pairs", str(csv), "-o", str(out), "--steps", "1", "--rank", "2", "--batch-size", "2"]) == 0
    meta = json.loads((out / "medseg.json").read_text())
    assert meta["label_map"] == {"lv": 1, "myo": 2, "rv": 3}
    # a NIfTI records no modality: the card says so instead of calling the MR images "OT"
    assert meta["modality"] == "not recorded in the files (--modality)"
    assert "Modality / view: not recorded in the files (--modality) / not given (--view)" in (out / "README.md").read_text()
    capsys.readouterr()
    for p in tmp_path.glob("s*_gt.json"):
        p.unlink()
    rc = run_cli(["adapt", "--pairs", str(csv), "-o", str(tmp_path / "out2"), "--steps", "1"])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 1 and err.startswith("error: give --label-map") and not (tmp_path / "out2").exists()


@pytest.mark.slow  # ~19 s on the shared 2-core CPU
def test_adapt_resumes_only_the_run_it_saved_and_scores_the_last_step_of_a_budget(tmp_path, monkeypatch):
    """An interrupted `adapt` resumed with another rank failed deep in torch, with other pairs or
    another learning rate it went on silently (the card then described a run that never was);
    a time budget that ended between validations kept a step never scored. Now a resume must
    match, its seconds add up, and the last step is scored."""
    import medseg.training.loop as adapt_mod  # run_adapt takes train_step from here when it runs
    from medseg.adapt import AdaptConfig, run_adapt
    from medseg.errors import MedsegError
    from medseg.labels import LabelMap

    train, val = _adapt_pairs(tmp_path)
    lmap = LabelMap.parse("lv=1,myo=2,rv=3")
    real_step, calls = adapt_mod.train_step, []

    def interrupted(*a, **k):  # Ctrl-C during step 3, after the validation of step 2
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(*a, **k)

    cfg = AdaptConfig(out=str(tmp_path / "ad"), rank=4, max_steps=4, val_every=2, batch_size=2)
    with monkeypatch.context() as m:
        m.setattr(adapt_mod, "train_step", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_adapt([train], [val], lmap, cfg)
    assert (tmp_path / "ad.state" / "state.pt").is_file() and not (tmp_path / "ad").exists()
    for other in ({"rank": 8}, {"lr": 0.5}):
        with pytest.raises(MedsegError, match=f"other settings [(].*{next(iter(other))}"):
            run_adapt([train], [val], lmap, AdaptConfig(**{**cfg.__dict__, "resume": True, **other}))
    with pytest.raises(MedsegError, match="other settings [(]pairs"):
        run_adapt([val], [train], lmap, AdaptConfig(**{**cfg.__dict__, "resume": True}))
    meta = run_adapt([train], [val], lmap, AdaptConfig(**{**cfg.__dict__, "resume": True}))
    assert [h["step"] for h in meta["history"]] == [2, 4] and not (tmp_path / "ad.state").exists()
    # a budget that ends between validations: its last step is scored and a candidate
    monkeypatch.setattr(adapt_mod, "train_step", lambda *a, **k: (time.sleep(0.6), real_step(*a, **k))[1])
    meta = run_adapt([train], [val], lmap, AdaptConfig(out=str(tmp_path / "tb"), rank=4, max_steps=100, val_every=50, batch_size=2,
                                                       time_budget_s=1.0))
    assert meta["history"] and meta["history"][-1]["step"] == meta["training"]["steps"] < 50


def test_ctrl_c_during_adapt_says_whether_there_is_a_state_to_resume(tmp_path, capsys, monkeypatch):
    """Ctrl-C in `medseg adapt`: exit 130 and one line on what is left (the generic "a batch goes
    on with --resume" said nothing about OUT.state)."""
    import medseg.adapt
    from medseg.cli._app import run_cli

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(medseg.adapt, "run_adapt", interrupted)
    train, _ = _adapt_pairs(tmp_path)
    (tmp_path / "train.csv").write_text(f"image,label\n{train.image},{train.label}\n")
    argv = ["adapt", "--pairs", str(tmp_path / "train.csv"), "--label-map", "lv=1,myo=2,rv=3", "-o", str(tmp_path / "ad")]
    assert run_cli(argv) == 130
    err = " ".join(capsys.readouterr().err.split())
    assert "interrupted before the first validation" in err and "a batch goes on" not in err
    (tmp_path / "ad.state").mkdir()
    (tmp_path / "ad.state" / "state.pt").write_bytes(b"x")
    assert run_cli([*argv, "--resume"]) == 130
    assert "ad.state holds the last validated step" in " ".join(capsys.readouterr().err.split())
