"""An echo lab adapting the model to its scanner: apical views as PNG image + label PNG pairs
(CAMUS values 1 = LV, 2 = myocardium, 3 = LA; no pixel spacing) in train/ and val/ folders,
then `medseg evaluate`, `medseg models`. Phantom PNGs (medseg.phantoms.echo_apical_phantom);
adapter training is stubbed where a test is about what adapt says before or after it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from medseg.cli._app import run_cli

CAMUS = "lv=1,myo=2,la=3"


def _echo_png(folder, name: str, seed: int, view: str = "a4c", label_values=None):
    """Write NAME.png (8-bit grey) and NAME_gt.png (CAMUS values) from an echo phantom."""
    from PIL import Image

    from medseg.phantoms import echo_apical_phantom

    ph = echo_apical_phantom(view=view, shape=(96, 96), spacing=None, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    img = np.clip(ph.image.array[0, 0], 0, 255).astype(np.uint8)
    lab = np.zeros(img.shape, np.uint8)
    for name_, value in (label_values or {"lv": 1, "myo": 2, "la": 3}).items():
        lab[ph.labels[0, 0] == ph.label_map[name_]] = value
    Image.fromarray(img).save(folder / f"{name}.png")
    Image.fromarray(lab).save(folder / f"{name}_gt.png")
    return folder / f"{name}.png"


def _stub_training(monkeypatch):
    """No gradient work and a fixed validation Dice: the tests are about what adapt reads and says."""
    import medseg.adapt as adapt
    import medseg.training.loop as loop

    monkeypatch.setattr(adapt, "_val_dice", lambda *a, **k: {"lv": 0.5, "auto_lv": 0.4})
    monkeypatch.setattr(loop, "train_step", lambda *a, **k: {"loss": torch.tensor(0.5)})


def test_val_folder_with_a_copy_of_a_training_image_is_refused(tmp_path, capsys):
    """train/ and val/ folders made by copying files: a training image copied into val/ (another
    path, the same bytes) was validated on, so the step kept and the before/after Dice were
    measured on what the adapter learnt. Only the same path was refused."""
    _echo_png(tmp_path / "train", "patient0001_4CH_ED", seed=1)
    _echo_png(tmp_path / "train", "patient0002_4CH_ED", seed=2)
    _echo_png(tmp_path / "val", "patient0003_4CH_ED", seed=3)
    for suffix in ("", "_gt"):  # the lab's mix-up, under another name too
        shutil.copy(tmp_path / "train" / f"patient0002_4CH_ED{suffix}.png", tmp_path / "val" / f"lab_copy_ED{suffix}.png")
    out = tmp_path / "echo-adapter"
    rc = run_cli(["adapt", "--pairs", str(tmp_path / "train"), "--val", str(tmp_path / "val"), "--label-map", CAMUS, "-o", str(out),
                  "--steps", "1", "--val-every", "1", "--batch-size", "1"])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 1 and err.startswith("error:") and err.count("error:") == 1, err
    assert "--val holds images --pairs trains on" in err and "lab_copy_ED" in err and "patient0003" not in err
    assert not out.exists() and not (tmp_path / "echo-adapter.state").exists()


def test_shared_images_compares_bytes_not_names(tmp_path):
    from medseg.pairs import pairs_from_folder, shared_images

    _echo_png(tmp_path / "train", "a_ED", seed=1)
    _echo_png(tmp_path / "val", "a_ED", seed=4)  # the same name, another image: not shared
    _echo_png(tmp_path / "val", "b_ED", seed=5)
    train, val = pairs_from_folder(tmp_path / "train"), pairs_from_folder(tmp_path / "val")
    assert shared_images(train, val) == []
    assert shared_images(train, train) == ["a_ED"]


def test_adapt_says_which_images_of_its_folders_it_left_out(tmp_path, monkeypatch, capsys):
    """An image whose label PNG was forgotten was left out of the training set without a word:
    the adapter trained on fewer images than the lab thought."""
    _stub_training(monkeypatch)
    _echo_png(tmp_path / "train", "patient0001_4CH_ED", seed=1)
    _echo_png(tmp_path / "train", "patient0002_4CH_ED", seed=2).with_name("patient0002_4CH_ED_gt.png").unlink()
    _echo_png(tmp_path / "val", "patient0003_4CH_ED", seed=3)
    out = tmp_path / "echo-adapter"
    rc = run_cli(["adapt", "--pairs", str(tmp_path / "train"), "--val", str(tmp_path / "val"), "--label-map", CAMUS, "-o", str(out),
                  "--steps", "1", "--val-every", "1", "--batch-size", "1"])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 0, err
    assert "note: --pairs: 1 image(s) left out: patient0002_4CH_ED (no labels beside it)" in err
    assert "--val: " not in err  # nothing left out there
    meta = json.loads((out / "medseg.json").read_text())
    assert meta["training"]["pairs"] == ["patient0001_4CH_ED"]  # with its phase: ED and ES of a view were two "patient0001_4CH"


def test_evaluate_refuses_a_0_255_label_png(tmp_path, capsys):
    """A label PNG saved 0/255 by another tool was scored as a case with no structure in it: it
    counted in n_cases, had no Dice, and nothing said so."""
    from PIL import Image

    _echo_png(tmp_path / "val", "patient0001_4CH_ED", seed=1)
    _echo_png(tmp_path / "val", "patient0002_4CH_ED", seed=2)
    gt = tmp_path / "val" / "patient0002_4CH_ED_gt.png"
    Image.fromarray(((np.asarray(Image.open(gt)) == 1) * 255).astype(np.uint8)).save(gt)
    out = tmp_path / "result.json"
    rc = run_cli(["evaluate", "--pairs", str(tmp_path / "val"), "--label-map", CAMUS, "--prompt", "box", "-o", str(out)])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 1 and err.startswith("error:") and err.count("error:") == 1 and "Traceback" not in err, err
    assert "patient0002_4CH_ED_gt.png" in err and "value(s) 255" in err and "0/255" in err
    assert not out.exists()


def test_evaluate_keeps_a_reference_that_only_lacks_a_structure(tmp_path, model):
    """The 0/255 check refuses only a reference holding none of the map's values: one that lacks
    a structure and holds a value the lab does not score (an RV at 9) is scored as before."""
    from medseg.evaluation import _evaluate_pair
    from medseg.labels import LabelMap
    from medseg.pairs import pairs_from_folder

    _echo_png(tmp_path / "val", "p_ED", seed=1, label_values={"lv": 1, "la": 3, "rv": 9})
    row = _evaluate_pair(pairs_from_folder(tmp_path / "val")[0], LabelMap.parse(CAMUS), "box", model)
    assert sorted(row["dice"]) == ["la", "lv"] and row["dice"]["lv"] > 0.5


@pytest.fixture()
def home_with_undescribed_adapter(tmp_path, monkeypatch):
    """$MEDSEG_HOME/adapters/camus-lab: an adapter made without --description (its medseg.json
    has "description": "")."""
    from medseg.models.registry import asset_dirs

    src = next(p for d in asset_dirs("adapters") if d.is_dir() for p in sorted(d.iterdir()) if (p / "medseg.json").is_file())
    dst = tmp_path / "home" / "adapters" / "camus-lab"
    shutil.copytree(src, dst)
    meta = json.loads((dst / "medseg.json").read_text())
    meta.update(description="", label_map={"lv": 1, "myo": 2, "la": 3})
    (dst / "medseg.json").write_text(json.dumps(meta))
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path / "home"))
    return dst


def test_models_names_the_structures_of_an_adapter_without_description(home_with_undescribed_adapter, capsys, monkeypatch):
    """`medseg models` listed the lab's adapter with a blank description beside its folder."""
    monkeypatch.setenv("COLUMNS", "250")
    assert run_cli(["models"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "camus-lab" in ln)
    assert "structures: lv, myo, la" in line


def test_evaluate_adapter_names_a_renamed_copy_of_a_training_image(tmp_path):
    """`evaluate --adapter` matched the adapter's training cases by name only: the lab's
    training image copied under another name into its validation folder was scored as
    validation. Where medseg.json records the training images' sha256, a copy is named too."""
    from medseg._files import sha256_file
    from medseg.adapters import ADAPTER_FILES, trained_on

    img = _echo_png(tmp_path / "train", "patient0001_4CH_ED", seed=1)
    copy = tmp_path / "val" / "lab_a_ED.png"
    copy.parent.mkdir()
    shutil.copy(img, copy)
    other = _echo_png(tmp_path / "val", "patient0009_4CH_ED", seed=9)
    folder = tmp_path / "adapter"
    folder.mkdir()
    for f in ADAPTER_FILES:
        (folder / f).write_text("{}")
    (folder / "medseg.json").write_text(json.dumps({"training": {
        "pairs": ["patient0001_4CH"], "data_sha256": {"train": [{"case": "patient0001_4CH", "image_sha256": sha256_file(img)}]}}}))
    cases = ["lab_a", "patient0009_4CH", "patient0001_4CH"]
    assert trained_on(folder, cases, [copy, other, img]) == ["patient0001_4CH", "lab_a"]
    assert trained_on(folder, cases) == ["patient0001_4CH"]  # without the images: by name, as before


def test_an_adapter_given_as_a_folder_is_named_once():
    """`--adapter /tmp/ad1` printed "adapter /tmp/ad1: /tmp/ad1"."""
    from pathlib import Path

    from medseg.adapters import adapter_origin

    folder = (Path(__file__).resolve().parents[2] / "adapters" / "cmr-lge").resolve()
    assert adapter_origin(str(folder)) == f"adapter: {folder} (shipped)"
    assert adapter_origin("cmr-lge").startswith(f"adapter cmr-lge: {folder}")
