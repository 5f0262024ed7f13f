"""adapt/train: a resume goes on with the run's random draws; a damaged state.pt is said to be
damaged (not "aborted", exit 130); cases lacking a structure, and label values the map does not
name, are left out / said; the card's change column and step count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.errors import MedsegError
from medseg.labels import LabelMap

LMAP = LabelMap.parse("lv=1,myo=2,rv=3")
TINY = {"name": "tiny", "img_size": 64, "embed_dim": 32, "depth": 1, "num_heads": 2, "prompt_dim": 32, "decoder_mlp_dim": 64, "decoder_heads": 2}


def _pairs(tmp_path, edit=None):
    """Two small phantom studies as image/label files; ``edit(i, labels)`` changes study i's labels."""
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
        if edit is None:
            write_labels(ph.labels, ph.image, lab, ph.label_map.subset(["lv", "myo", "rv"]))
        else:  # a plain label file (the writer refuses values its map does not name)
            nib.save(nib.Nifti1Image(medseg_to_nifti(edit(i, ph).astype(np.uint8), 3), ph.image.affine), str(lab))
        pairs.append(Pair(img, lab, f"s{i}"))
    return pairs


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


@pytest.mark.slow  # ~12 s on the shared 2-core CPU
def test_a_resumed_adapt_goes_on_with_the_draws_of_the_run_it_continues(tmp_path, monkeypatch):
    """After a resume at step 2, steps 3-4 drew the batches, augmentations and prompts of steps
    1-2 again (the generator was seeded from --seed each session): 4 steps straight and 2 + a
    resume to 4 gave different adapters. Now they are the same."""
    import medseg.training.loop as loop
    from medseg.adapt import AdaptConfig, run_adapt

    train, _ = _pairs(tmp_path)
    straight = run_adapt([train], [], LMAP, AdaptConfig(out=str(tmp_path / "a"), rank=4, max_steps=4, val_every=2, batch_size=2))
    real_step, calls = loop.train_step, []

    def interrupted(*a, **k):  # Ctrl-C during step 3, after the validation (and state) of step 2
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(*a, **k)

    cfg = AdaptConfig(out=str(tmp_path / "b"), rank=4, max_steps=4, val_every=2, batch_size=2)
    with monkeypatch.context() as m:
        m.setattr(loop, "train_step", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_adapt([train], [], LMAP, cfg)
    assert (tmp_path / "b.state" / "state.pt").is_file()
    cfg.resume = True
    resumed = run_adapt([train], [], LMAP, cfg)
    assert resumed["training"]["steps"] == straight["training"]["steps"] == 4
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_resumed_train_goes_on_with_the_draws_of_the_run_it_continues(tmp_path):
    """medseg train: 4 steps straight == 2 steps, then --resume to 4 (same weights in state.pt)."""
    import medseg.training.loop as loop

    common = dict(n_phantoms=2, model=TINY, batch_size=2, time_budget_s=1e9, val_every_s=1e9, val_max_per_group=2)
    loop.train(loop.TrainConfig(out=str(tmp_path / "a"), max_steps=4, **common))
    loop.train(loop.TrainConfig(out=str(tmp_path / "b"), max_steps=2, **common))
    loop.train(loop.TrainConfig(out=str(tmp_path / "b"), max_steps=4, resume=True, **common))
    a, b = (torch.load(tmp_path / x / "state.pt", weights_only=True)["model"] for x in "ab")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_validation_leaves_the_random_draws_of_training_alone(tmp_path):
    """Validation drew from torch's global generator (the prompts' unused draws), so a train run
    resumed where the first session validated once more at its end went on with other draws."""
    from medseg.adapt import bank_from_pairs
    from medseg.models.network import DEFAULT_CONFIG, ModelConfig, build_network
    from medseg.training.loop import TrainConfig, validate

    s0, s1 = _pairs(tmp_path)
    bank, _ = bank_from_pairs([s0], [s1], LMAP, "cpu", canvas=64)
    model = build_network(ModelConfig.from_dict({**DEFAULT_CONFIG.to_dict(), **TINY}))
    before = torch.get_rng_state()
    assert validate(model, bank, TrainConfig(), max_per_group=2)["score"] >= 0
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut short"], ids=["empty", "cut"])
def test_a_damaged_state_is_refused_in_one_line_by_adapt_and_train(tmp_path, monkeypatch, content):
    import medseg.training.loop as loop
    from medseg.adapt import AdaptConfig, _resume

    state_dir = tmp_path / "ad.state"
    state_dir.mkdir()
    (state_dir / "state.pt").write_bytes(content)
    with pytest.raises(MedsegError, match=r"state.pt is damaged or unreadable \(.*\): run again without --resume, or from a copy"):
        _resume(AdaptConfig(out=str(tmp_path / "ad"), resume=True), state_dir, object(), object(), "same")

    class Bank:  # the data are not needed: the state is read before any step
        source = None

        def weights(self, split):
            return None

    monkeypatch.setattr(loop, "bank_from_pack", lambda *a, **k: Bank())
    out = tmp_path / "run"
    out.mkdir()
    (out / "state.pt").write_bytes(content)
    with pytest.raises(MedsegError, match="state.pt is damaged"):
        loop.train(loop.TrainConfig(out=str(out), resume=True, n_phantoms=1, model=TINY, max_steps=1))


def test_an_eof_error_is_no_ctrl_c_but_ctrl_c_still_is(tmp_path, monkeypatch, capsys):
    """typer turns any EOFError into Abort: an empty state.pt read by torch.load printed "aborted"
    and exit 130, as if the user had cancelled."""
    import medseg.adapt
    from medseg.cli._app import run_cli

    train, _ = _pairs(tmp_path)
    argv = ["adapt", "--pairs", str(tmp_path), "--label-map", "lv=1,myo=2,rv=3", "-o", str(tmp_path / "ad")]
    for raised, code, said in ((EOFError(), 70, "unexpected EOFError: a file ended early"), (KeyboardInterrupt(), 130, "interrupted")):
        def run(*a, _e=raised, **k):
            raise _e

        monkeypatch.setattr(medseg.adapt, "run_adapt", run)
        assert run_cli(argv) == code
        err = " ".join(capsys.readouterr().err.split())
        assert said in err and "aborted" not in err


def _drop_rv_and_add_scar(i, ph):
    arr = np.array(ph.labels)
    if i == 0:
        arr[arr == 3] = 0  # this case has no RV labelled
    else:
        hit = np.argwhere(arr == 2)[:40]
        arr[tuple(hit.T)] = 9  # a reader's extra class (scar) the map does not name
    return arr


def test_a_case_without_a_structure_is_not_taught_it_is_absent_and_unnamed_values_are_said(tmp_path):
    """Every structure of the map was marked labelled on every slice, so zero-click trained an
    empty RV target on a case whose RV was simply not labelled; a value the map does not name
    was trained as background without a word."""
    from medseg.adapt import bank_from_pairs
    from medseg.training.data import STRUCTURES

    s0, s1 = _pairs(tmp_path, _drop_rv_and_add_scar)
    notes: list[str] = []
    bank, _ = bank_from_pairs([s0, s1], [], LMAP, "cpu", canvas=64, note=notes.append)
    rv, lv = STRUCTURES.index("rv"), STRUCTURES.index("lv")
    of_s0 = torch.tensor([v.startswith("s0/") for v in bank.volume])
    assert not bank.labelled[of_s0, rv].any() and bank.labelled[~of_s0, rv].all() and bank.labelled[:, lv].all()
    assert "value 9 (40 voxels) in s1 is not in the label map: taught as background" in notes
    assert any(n.startswith("s0 (rv): a structure of the label map not labelled") for n in notes)


def test_evaluate_with_prompts_says_a_value_the_map_does_not_name(tmp_path):
    from medseg.evaluation import evaluate_pairs
    from medseg.models import load_model

    _, s1 = _pairs(tmp_path, _drop_rv_and_add_scar)
    result = evaluate_pairs([s1], LMAP, "box", load_model("default"))
    assert result["cases"][0]["not_in_label_map"] == {"reference": ["value 9 (40 voxels)"]}


def test_the_card_change_is_that_of_the_numbers_shown_and_one_step_is_singular():
    from medseg.adapt_card import adapter_card

    meta = {"validation_dice": {"base": {"myo": 0.9194}, "adapted": {"myo": 0.91962}}, "base_model_id": "default", "base_model_sha256": "ab",
            "modality": "MR", "view": "sax", "label_map": {"myo": 2},
            "training": {"pairs": ["a"], "n_slices": 3, "val_pairs": ["b"], "steps": 1, "seconds": 29.0, "device": "cpu",
                         "config": {"rank": 4, "decoder": True}}}
    card = adapter_card(meta)
    assert "| myo | 0.919 | 0.920 | +0.001 |" in card and "1 step in 29 s" in card


def test_adapt_says_it_replaces_a_finished_adapter_and_its_help_lists_the_models(tmp_path, monkeypatch, capsys):
    import medseg.adapt
    from medseg.cli._app import run_cli

    _pairs(tmp_path)
    out = tmp_path / "done"
    out.mkdir()
    (out / "medseg.json").write_text("{}")

    def run(*a, progress=None, **k):
        progress({"note": "s0 (rv): a structure of the label map not labelled"})
        raise KeyboardInterrupt

    monkeypatch.setattr(medseg.adapt, "run_adapt", run)
    assert run_cli(["adapt", "--pairs", str(tmp_path), "--label-map", "lv=1,myo=2,rv=3", "-o", str(out)]) == 130
    err = " ".join(capsys.readouterr().err.split())
    assert f"note: {out} holds a finished adapter: it is replaced when this run ends" in err
    assert "note: s0 (rv): a structure of the label map not labelled" in err
    monkeypatch.setenv("COLUMNS", "300")
    assert run_cli(["adapt", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "$MEDSEG_HOME/models" in text and "medseg train folder" in text and "is replaced when training ends" in text
