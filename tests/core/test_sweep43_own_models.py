"""A lab's own models (`medseg train` output folders): the model id their labels record, finding
them by name in $MEDSEG_HOME/models (as adapters in $MEDSEG_HOME/adapters), `medseg models`
listing them and `medseg info` describing a checkpoint from its header."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medseg._files import sha256_file
from medseg.cli._app import run_cli
from medseg.errors import CheckpointError
from medseg.labels import LabelMap
from medseg.models import load_model
from medseg.models.checkpoints import save_checkpoint
from medseg.models.network import ModelConfig, build_network
from medseg.replay_sidecar import RecordedSession, model_choice

TINY = ModelConfig(name="tiny", img_size=64, embed_dim=32, depth=1, num_heads=2, prompt_dim=32, decoder_mlp_dim=64, decoder_heads=2)
INIT_SHA = "ab" * 32
#: what `medseg train --pairs ... --val ... --init-from X` records in a checkpoint's header (medseg/training/loop.py)
INFO = {"training": {"steps": 120, "samples": 1920, "elapsed_s": 60.0, "device": "cpu", "seed": 0},
        "validation": {"step": 100, "score": 0.8123, "box/own/lv": 0.9, "auto/own/lv": 0.7},
        "data": {"pack": "pack.npz", "phantoms": 0, "init_from": {"path": "/x/default.safetensors", "sha256": INIT_SHA},
                 "pairs": {"kind": "pairs", "pairs": ["s0", "s1"], "val_pairs": ["v0"], "label_map": {"lv": 1, "myo": 2, "rv": 3},
                           "modality": "MR", "n_slices": {"train": 8, "val": 4}}}}


def _run(folder, info=INFO, files=("best", "last")):
    """A `medseg train` output folder of tiny checkpoints (distinct weights per file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, stem in enumerate(files):
        net = build_network(TINY)
        next(net.parameters()).data += i  # best and last differ
        save_checkpoint(net, folder / f"{stem}.safetensors", info)
    return folder


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "models").mkdir(parents=True)
    return tmp_path / "home"


def test_a_checkpoint_path_is_recorded_by_folder_and_stem(tmp_path):
    """Every train run writes best.safetensors: sidecars said model_id "best" for each lab's."""
    a = load_model(str(_run(tmp_path / "labA_run1") / "best.safetensors"))
    b = load_model(str(_run(tmp_path / "labB") / "best.safetensors"))
    assert a.model_id == "labA_run1/best" and b.model_id == "labB/best"
    assert a.provenance()["model_id"] == "labA_run1/best" and a.provenance()["model_sha256"] == sha256_file(tmp_path / "labA_run1" / "best.safetensors")
    assert load_model("default").model_id == "default"  # the shipped one keeps its name


def test_a_train_folder_given_as_model_loads_its_best(tmp_path, monkeypatch):
    run = _run(tmp_path / "labA_run1")
    monkeypatch.chdir(tmp_path)
    loaded = load_model("labA_run1")  # was: "--model labA_run1: not a regular file"
    assert loaded.model_id == "labA_run1/best" and loaded.sha256 == sha256_file(run / "best.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a regular file .nor a medseg train folder"):
        load_model("empty")


def test_own_models_load_by_name_from_medseg_home(home, tmp_path, monkeypatch):
    run = _run(home / "models" / "labA")
    monkeypatch.chdir(tmp_path)
    by_name = load_model("labA")
    assert by_name.model_id == "labA/best" and by_name.sha256 == sha256_file(run / "best.safetensors")
    by_path = load_model(str(run / "best.safetensors"))
    assert by_path.model_id == by_name.model_id  # the same file has one id, however it was named
    assert load_model("labA/last").sha256 == sha256_file(run / "last.safetensors")
    with pytest.raises(CheckpointError, match=r"labA has no other.safetensors \(it holds best.safetensors, last.safetensors"):
        load_model("labA/other")
    with pytest.raises(CheckpointError, match=r"unknown model 'labB'.*\$MEDSEG_HOME/models"):
        load_model("labB")
    with pytest.raises(CheckpointError, match="unknown model"):
        load_model("../home/models/labA/x")  # no way out of the folder


def _session(model_id, sha):
    return RecordedSession(path=Path("s.json"), sha256="0", label_map=LabelMap({"lv": 1}), actions=[],
                           provenance={"model_id": model_id, "model_sha256": sha})


def test_replay_finds_a_recorded_own_model_by_its_id_and_sha256(home, tmp_path):
    run = _run(home / "models" / "labA")
    sha = sha256_file(run / "best.safetensors")
    assert model_choice(_session("labA/best", sha), None, None)[0] == str(run / "best.safetensors")
    with pytest.raises(CheckpointError, match=r"does not find by name.*\$MEDSEG_HOME/models"):
        model_choice(_session("labA/best", "0" * 64), None, None)  # another file of that name: not taken
    from medseg.models.registry import shipped_checkpoint, shipped_sha256

    for rec in ("checkpoints/medseg_default", "medseg_default"):  # the shipped file given by path, now and before
        assert model_choice(_session(rec, shipped_sha256()), None, None)[0] == str(shipped_checkpoint())


def test_models_lists_own_checkpoints_with_what_they_were_trained_on(home, capsys):
    run = _run(home / "models" / "labA")
    _run(home / "models" / "only_last", files=("last",))
    _run(home / "models" / "default")
    capsys.readouterr()
    assert run_cli(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in listed if r.get("source") != "shipped"}
    a = rows["labA"]
    assert a["kind"] == "model" and a["sha256"] == sha256_file(run / "best.safetensors") and a["path"] == str(run / "best.safetensors")
    assert a["model_id"] == "labA/best" and a["steps"] == 120 and "2 of your own volumes" in a["trained_on"] and "s0, s1" in a["trained_on"]
    assert a["validation_score"].startswith("0.8123 at step 100") and a["started_from"] == f"sha256 {INIT_SHA}"
    assert "--model labA" in a["description"]
    assert rows["only_last"]["source"].startswith("broken:") and "--model only_last/last" in rows["only_last"]["source"]
    named_default = [r["source"] for r in listed if r["name"] == "default"]
    assert named_default[0] == "shipped" and "named as the built-in model 'default'" in named_default[1]  # the shipped one stays first
    assert run_cli(["models"]) == 0
    assert "labA" in capsys.readouterr().out
    from medseg.models.own import own_model_names

    assert own_model_names() == ["labA"]  # the napari plugin's model box


def test_info_describes_a_checkpoint_from_its_header(tmp_path, capsys):
    run = _run(tmp_path / "labA_run1")
    capsys.readouterr()
    assert run_cli(["info", str(run / "best.safetensors"), "--json"]) == 0  # was: unsupported file type '.safetensors'
    d = json.loads(capsys.readouterr().out)
    assert d["model_id"] == "labA_run1/best" and d["sha256"] == sha256_file(run / "best.safetensors") and d["steps"] == 120
    assert d["trained_on"].startswith("2 of your own volumes") and d["validated_on"].startswith("1 volumes") and "`" not in d["trained_on"]
    assert d["started_from"] == f"sha256 {INIT_SHA}" and d["architecture"].startswith("tiny (64 px")
    assert run_cli(["info", str(run), "--json"]) == 0  # the train folder: its best
    assert json.loads(capsys.readouterr().out)["path"] == str(run / "best.safetensors")
    assert run_cli(["info", str(run / "last.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "medseg model checkpoint" in out and "120" in out and sha256_file(run / "last.safetensors") in out.replace("\n", "").replace("│", "").replace(" ", "")
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    assert run_cli(["info", str(tmp_path / "other.safetensors")]) == 1
    err = capsys.readouterr().err
    assert "not a medseg checkpoint" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_info_of_an_unscored_run_says_so(tmp_path, capsys):
    info = {**INFO, "validation": {"step": 1, "score": 0.0}, "data": {**INFO["data"], "init_from": None}}
    run = _run(tmp_path / "r", info=info, files=("best",))
    capsys.readouterr()
    assert run_cli(["info", str(run / "best.safetensors"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["validation_score"].startswith("none (no validation slices") and d["started_from"] == "from scratch"


def test_batch_resume_hashes_the_file_a_name_or_folder_loads(home, tmp_path, monkeypatch):
    """batch --resume compares each case's recorded model_sha256 with the weights --model names
    now: a name (or a train folder) was hashed as no file, so every case was redone as "model changed"."""
    from medseg.batch.weights import weights_sha256

    run = _run(home / "models" / "labA")
    monkeypatch.chdir(home / "models")
    sha = sha256_file(run / "best.safetensors")
    assert weights_sha256("labA") == (sha, None)  # the folder here, then by name from elsewhere
    monkeypatch.chdir(tmp_path)
    assert weights_sha256("labA") == (sha, None) and weights_sha256("labA/last")[0] == sha256_file(run / "last.safetensors")
    assert weights_sha256("nothing") == (None, None)


def test_evaluate_notes_cases_the_own_model_was_trained_on(tmp_path, capsys):
    """An adapter's training cases were noted by evaluate; a lab's own model's (its header names
    them, with each image's sha256) were scored as if they were validation."""
    import nibabel as nib
    import numpy as np

    from medseg._files import sha256_path
    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    rows = []
    for i in range(3):
        ph = cine_sax_phantom(n_frames=1, n_slices=3, shape=(64, 64), spacing=(8.0, 1.5, 1.5), seed=50 + i)
        img, lab = tmp_path / f"s{i}.nii.gz", tmp_path / f"s{i}_gt.nii.gz"
        nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 3), ph.image.affine), str(img))
        write_labels(ph.labels, ph.image, lab, ph.label_map.subset(["lv", "myo", "rv"]))
        rows.append((img, lab))
    (tmp_path / "pairs.csv").write_text("image,label\n" + "".join(f"{a},{b}\n" for a, b in rows))
    own = {**INFO["data"]["pairs"], "pairs": ["s0", "x9"], "data_sha256": [{"case": "x9", "image_sha256": sha256_path(rows[1][0])}]}
    run = _run(tmp_path / "labA", info={**INFO, "data": {**INFO["data"], "pairs": own}}, files=("best",))
    capsys.readouterr()
    args = ["evaluate", "--pairs", str(tmp_path / "pairs.csv"), "--label-map", "lv=1,myo=2,rv=3", "-o", str(tmp_path / "r.json"), "--model", str(run)]
    assert run_cli(args) == 0
    said = "".join(capsys.readouterr())
    assert "2 of the 3 cases are volumes the model labA/best was trained on (s0, s1)" in " ".join(said.split())
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["model_trained_on"] == ["s0", "s1"]  # s1: a renamed copy, by sha256


def test_the_model_card_says_how_to_use_it_by_name():
    from medseg.training.card import card_text

    summary = {"steps": 1, "samples": 16, "elapsed_s": 4.0, "config": {"out": "/x/labA_run1", "device": "cpu", "seed": 0}, "data": INFO["data"]}
    text = " ".join(card_text(summary, []).split())
    assert "--model labA_run1/best.safetensors" in text and "$MEDSEG_HOME/models/NAME`, `--model NAME`" in text
    assert "`model_id` as its folder and stem (`labA_run1/best`" in text
