"""Adapter folders, as a review of "adapt the model to my own data" found them: an
adapter_config.json edited after training (lora_alpha 16 -> 64) loaded silently with the same
recorded sha256 while ``adapt --init-from`` refused it; medseg.json fields of another kind broke
``medseg models`` and ``evaluate --adapter`` as "unexpected" errors, or loaded silently; an
adapter folder without medseg.json was left out of ``medseg models``; replacing an adapter
deleted the old one before the new one was in place; the wrong-base error gave only sha256
prefixes. Every adapter here is a copy of the shipped ``cmr-lge`` (no training)."""

from __future__ import annotations

import json
import pathlib
import shutil
from types import SimpleNamespace

import pytest

from medseg._files import sha256_file
from medseg.adapters import (
    ADAPTER_FILES,
    attach_adapter,
    check_adapter_file,
    find_adapter,
    list_adapters,
    read_adapter_meta,
    save_adapter,
    trained_on,
)
from medseg.cli._app import run_cli
from medseg.errors import CheckpointError

SHIPPED = find_adapter("cmr-lge")


def _copy(home, name):
    out = home / "adapters" / name
    shutil.copytree(SHIPPED, out)
    return out


def _edit(path, change):
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def _one_line(text: str) -> str:
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def _drop_weights(folder, modules):
    """Weights of the LoRA modules left after ``modules`` are dropped (the card records their sha256)."""
    from safetensors.torch import load_file, save_file

    path = folder / "adapter_model.safetensors"
    state = {k: v for k, v in load_file(str(path)).items() if not any(f".{m}.lora_" in k for m in modules)}
    save_file(state, str(path), metadata={"format": "pt"})
    _edit(folder / "medseg.json", lambda m: m.update(adapter_sha256=sha256_file(path)))


LORAS = {  # adapter_config.json change -> what the one-line refusal says
    "alpha_64": ({"lora_alpha": 64}, "lora_alpha must be 2 x r = 16 (the scaling medseg trains and loads its adapters with), got 64"),
    "alpha_float": ({"lora_alpha": 16.5}, "lora_alpha must be 2 x r = 16"),
    "rank_pattern": ({"rank_pattern": {"qkv": 8}}, 'rank_pattern must be empty (medseg\'s adapters give every module rank r and lora_alpha 2 x r), got {"qkv": 8}'),
    "alpha_pattern": ({"alpha_pattern": {"q_proj": 16}}, 'alpha_pattern must be empty'),
    "targets": ({"target_modules": ["qkv", "q_proj"]}, 'target_modules must be qkv, or qkv and q_proj, k_proj, v_proj, out_proj (what medseg adapt writes), got ["qkv", "q_proj"]'),
}


@pytest.mark.parametrize("case", list(LORAS))
def test_a_lora_other_than_medseg_writes_is_refused_as_init_from_refuses_it(case, tmp_path, monkeypatch):
    """The weights' sha256 does not cover adapter_config.json: these loaded and changed the masks
    with the same recorded adapter_sha256."""
    change, want = LORAS[case]
    bad = _copy(tmp_path, "bad")
    if case == "targets":  # weights that fit the config: only the config is medseg's no more
        _drop_weights(bad, ("k_proj", "v_proj", "out_proj"))
    _edit(bad / "adapter_config.json", lambda c: c.update(change))
    with pytest.raises(CheckpointError) as err:
        check_adapter_file(bad)
    msg = _one_line(str(err.value))
    assert msg.startswith(f"{bad}/adapter_config.json: ") and want in msg
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path))
    rows = {r["name"]: r for r in list_adapters()}
    assert rows["bad"]["source"] == f"broken: {msg}" and "sha256" not in rows["bad"] and "sha256" in rows["cmr-lge"]


def test_loading_refuses_an_edited_lora_alpha_and_the_shipped_one_still_loads(tmp_path):
    from medseg.models import load_model

    bad = _copy(tmp_path, "alpha")
    _edit(bad / "adapter_config.json", lambda c: c.update(lora_alpha=64))
    with pytest.raises(CheckpointError, match=r"lora_alpha must be 2 x r = 16 .* got 64"):
        load_model("default", adapter=str(bad))
    check_adapter_file(SHIPPED)
    cfg = json.loads((SHIPPED / "adapter_config.json").read_text())
    assert cfg["lora_alpha"] == 2 * cfg["r"] and not cfg["rank_pattern"] and not cfg["alpha_pattern"]  # empty patterns pass


METAS = {  # medseg.json change -> the field and what the one-line refusal says is allowed
    "description_int": (lambda m: m.update(description=5), "description must be text or null, got 5"),
    "modality_list": (lambda m: m.update(modality=["MR"]), 'modality must be text or null, got ["MR"]'),
    "training_list": (lambda m: m.update(training=["a"]), 'training must be an object, got ["a"]'),
    "pairs_int": (lambda m: m["training"].update(pairs=5), "training.pairs must be a list of case names (text), got 5"),
    "label_map_text": (lambda m: m.update(label_map="rv=1,myo=2,lv=3"), 'label_map must be an object {structure: value}'),
    "label_map_foo": (lambda m: m.update(label_map={"lv": 1, "foo": 2}), 'structures among lv, myo, rv, la, ra, aorta, pa'),
    "label_map_twice": (lambda m: m.update(label_map={"lv": 1, "rv": 1}), "values 1..65535 each once"),
    "history_text": (lambda m: m.update(history="x"), 'history must be a list of objects (one per validation), got "x"'),
    "validation_dice_text": (lambda m: m.update(validation_dice="x"), 'validation_dice must be an object'),
    "base_not_sha256": (lambda m: m.update(base_model_sha256="abc"), 'base_model_sha256 must be the base model\'s sha256 (64 hex digits), got "abc"'),
}


@pytest.mark.parametrize("case", list(METAS))
def test_medseg_json_fields_of_another_kind_are_refused_in_one_line_naming_the_field(case, tmp_path, monkeypatch, capsys):
    change, want = METAS[case]
    bad = _copy(tmp_path, "bad")
    _edit(bad / "medseg.json", change)
    with pytest.raises(CheckpointError) as err:
        read_adapter_meta(bad)
    msg = _one_line(str(err.value))
    assert msg.startswith(f"{bad}/medseg.json: ") and want in msg
    # `medseg models` ("unexpected TypeError" for a description 5) lists it as broken, the others as before
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "1000")
    assert run_cli(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["bad"]["source"] == f"broken: {msg}" and "sha256" in rows["cmr-lge"]
    assert run_cli(["models"]) == 0
    assert "(broken: " in next(ln for ln in capsys.readouterr().out.splitlines() if "bad" in ln)
    # evaluate's check of the cases the adapter trained on ("unexpected AttributeError" for a training list)
    assert trained_on(bad, ["subject3"]) == []


def test_the_label_map_message_names_medseg_s_structures():
    from medseg.adapter_checks import _META
    from medseg.labels import STRUCTURE_NAMES

    assert f"structures among {', '.join(STRUCTURE_NAMES)}," in _META["label_map"][1]


def test_the_optional_fields_may_be_absent_or_null(tmp_path):
    ok = _copy(tmp_path, "ok")
    _edit(ok / "medseg.json", lambda m: [m.pop(k) for k in ("description", "modality", "view", "label_map", "history", "validation_dice",
                                                            "training", "date", "medseg_version", "format")])
    _edit(ok / "medseg.json", lambda m: m.update(description=None, base_model_id=None))
    read_adapter_meta(ok)
    check_adapter_file(ok)


def test_an_adapter_that_records_no_base_is_refused_and_listed_as_broken(tmp_path, monkeypatch):
    """It said "trained for base sha256 None..." and `medseg models` called it usable."""
    nobase = _copy(tmp_path, "nobase")
    _edit(nobase / "medseg.json", lambda m: m.pop("base_model_sha256"))
    want = f"{nobase}/medseg.json records no base_model_sha256 (the base model the adapter was trained for, which loading checks)"
    with pytest.raises(CheckpointError) as err:
        check_adapter_file(nobase)
    assert want in _one_line(str(err.value))
    loaded = SimpleNamespace(sha256="ab" * 32, model_id="default")  # refused before the model is touched
    with pytest.raises(CheckpointError) as err:
        attach_adapter(loaded, str(nobase))
    assert want in str(err.value) and "None" not in str(err.value)
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path))
    assert want in {r["name"]: r for r in list_adapters()}["nobase"]["source"]


@pytest.mark.parametrize("case", ["missing_meta", "bare_peft", "unreadable_meta_only"])
def test_models_lists_an_adapter_folder_without_medseg_json_as_broken(case, tmp_path, monkeypatch, capsys):
    """`--adapter NAME` finds such a folder (and refuses it); `medseg models` left it out."""
    folder = _copy(tmp_path, "lost")
    if case == "missing_meta":
        (folder / "medseg.json").unlink()
    elif case == "bare_peft":
        for f in ("medseg.json", "README.md"):
            (folder / f).unlink()
    else:
        for f in ("adapter_config.json", "adapter_model.safetensors"):
            (folder / f).unlink()
    saving = tmp_path / "adapters" / ".lost.tmp-1765152000000"  # a killed save's temp folder is no adapter of its own
    shutil.copytree(folder, saving)
    (tmp_path / "adapters" / "notes").mkdir()  # a folder holding none of an adapter's files is none
    (tmp_path / "adapters" / "notes" / "x.txt").write_text("x")
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "1000")
    rows = {r["name"]: r for r in list_adapters()}
    assert rows["lost"]["source"].startswith(f"broken: {folder}: not a medseg adapter folder (missing ")
    assert not {saving.name, "notes"} & set(rows) and "sha256" in rows["cmr-lge"]
    assert run_cli(["models"]) == 0
    row = next(ln for ln in capsys.readouterr().out.splitlines() if "lost" in ln)
    assert "adapter" in row and "(broken: " in row


class _FakePeft:
    """What save_adapter needs of a peft model: save_pretrained writes the shipped adapter's files."""

    def save_pretrained(self, folder, safe_serialization=True):
        shutil.copytree(SHIPPED, folder, ignore=shutil.ignore_patterns("medseg.json", "README.md"))


def test_an_interrupted_save_keeps_the_adapter_it_was_replacing(tmp_path, monkeypatch):
    """save_adapter deleted the old folder, then renamed the new one in: a Ctrl-C between the two
    (whose `finally` deleted the new one) lost both."""
    out = tmp_path / "ad"
    save_adapter(_FakePeft(), out, {"description": "old"}, "# old\n")
    rename = pathlib.Path.rename

    def interrupted(self, target):
        if ".tmp-" in self.name:
            raise KeyboardInterrupt
        return rename(self, target)

    monkeypatch.setattr(pathlib.Path, "rename", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_adapter(_FakePeft(), out, {"description": "new"}, "# new\n")
    assert json.loads((out / "medseg.json").read_text())["description"] == "old"
    assert sorted(p.name for p in out.iterdir()) == sorted([*ADAPTER_FILES, "README.md"])
    assert [p.name for p in tmp_path.iterdir()] == ["ad"]  # neither the new temp nor the old aside left behind
    monkeypatch.setattr(pathlib.Path, "rename", rename)
    save_adapter(_FakePeft(), out, {"description": "new"}, "# new\n")
    assert json.loads((out / "medseg.json").read_text())["description"] == "new" and [p.name for p in tmp_path.iterdir()] == ["ad"]


BASES = {  # medseg.json base_model_id -> what the wrong-base error ends with
    "other": ("mybase/best", "was trained for base model mybase/best (sha256 ffffffffffffffff...) but the loaded model is default "
                             "(sha256 abababababababab...): give --model mybase/best"),
    "spaces": ("my base", "give --model 'my base'"),
    "same_name": ("default", "the model of that name has changed since"),
    "none": (None, "was trained for base sha256 ffffffffffffffff... but the loaded model is default (sha256 abababababababab...): "
                   "load the model it was trained for with --model"),
}


@pytest.mark.parametrize("case", list(BASES))
def test_the_wrong_base_error_names_the_base_model_and_the_model_option(case, tmp_path):
    base_id, want = BASES[case]
    other = _copy(tmp_path, "other")
    _edit(other / "medseg.json", lambda m: m.update(base_model_sha256="f" * 64, base_model_id=base_id))
    loaded = SimpleNamespace(sha256="ab" * 32, model_id="default")
    with pytest.raises(CheckpointError) as err:
        attach_adapter(loaded, str(other))
    assert want in _one_line(str(err.value))
