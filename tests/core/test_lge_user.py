"""The LGE user's adapter workflow: `medseg adapt` (what it prints and records, resume), the
adapter in `evaluate` and `medseg models`, and LGE labels measured with their own label map.

Adapter training here is a few steps on small phantoms (the prompt simulation and the
validation are stubbed where a test is about what adapt reports); the real-data tests read
`../shared/data/mscmr-lge` and skip without it."""

from __future__ import annotations

import copy
import json
import time

import numpy as np
import pytest
import torch

from medseg.cli._app import run_cli
from medseg.errors import CheckpointError

LMAP = "lv=1,myo=2,rv=3"


def _pairs_csv(tmp_path, n: int = 2):
    """Small phantom studies as image/label files and a PAIRS.csv per study (s0.csv, s1.csv)."""
    import nibabel as nib

    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    out = []
    for i in range(n):
        ph = cine_sax_phantom(n_frames=1, n_slices=4, shape=(96, 96), spacing=(8.0, 1.5, 1.5), seed=60 + i)
        img, lab = tmp_path / f"subject{i}_DE.nii.gz", tmp_path / f"subject{i}_DE_manual.nii.gz"
        nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 3), ph.image.affine), str(img))
        write_labels(ph.labels, ph.image, lab, ph.label_map.subset(["lv", "myo", "rv"]))
        csv = tmp_path / f"s{i}.csv"
        csv.write_text(f"image,label\n{img},{lab}\n")
        out.append(csv)
    return out


def _fake_training(monkeypatch, dice: list[dict], on_step=None):
    """Stub the training step (no gradient work) and the validation (scripted Dice, in call order:
    the base, then each validation, then the kept adapter's re-validation)."""
    import medseg.adapt as adapt
    import medseg.training.loop as loop

    calls = iter(dice)
    monkeypatch.setattr(adapt, "_val_dice", lambda *a, **k: dict(next(calls)))
    steps = {"n": 0}

    def step(*a, **k):
        steps["n"] += 1
        if on_step:
            on_step(steps["n"])
        return {"loss": torch.tensor(0.5)}

    monkeypatch.setattr(loop, "train_step", step)


def test_adapt_says_which_step_it_kept_and_what_zero_click_did(tmp_path, monkeypatch, capsys):
    """The summary printed only the box Dice and "(3 steps, ...)": a run whose kept adapter was an
    earlier step, and whose zero-click Dice fell, read as the last step's and as all gain."""
    train, val = _pairs_csv(tmp_path)
    base, best, worse = {"lv": 0.5, "auto_lv": 0.4}, {"lv": 0.8, "auto_lv": 0.3}, {"lv": 0.7, "auto_lv": 0.2}
    _fake_training(monkeypatch, [base, best, worse, worse, best])
    out = tmp_path / "my-lge"
    rc = run_cli(["adapt", "--pairs", str(train), "--val", str(val), "--label-map", LMAP, "-o", str(out), "--steps", "3", "--val-every", "1"])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 0, err
    assert "(step 1 of 3 kept," in err and "box: lv 0.500 -> 0.800; zero-click: lv 0.400 -> 0.300" in err
    meta = json.loads((out / "medseg.json").read_text())
    assert meta["training"]["steps"] == 3 and meta["training"]["kept_step"] == 1
    card = " ".join((out / "README.md").read_text().split())
    assert "3 steps in" in card and "the adapter of step 1 kept" in card
    assert "by its name once the folder is in `$MEDSEG_HOME/adapters/`, where `medseg models` lists it" in card


def test_adapt_kept_step_is_the_first_best_validation():
    from medseg.adapt import kept_step

    hist = [{"step": 0, "elapsed_s": 0.0, "lv": 0.9}, {"step": 5, "elapsed_s": 1.0, "lv": 0.95, "auto_lv": 0.0},
            {"step": 10, "elapsed_s": 2.0, "lv": 0.95, "auto_lv": 0.0}, {"step": 15, "elapsed_s": 3.0, "lv": 0.5, "auto_lv": 0.8}]
    assert kept_step(hist, 15) == 5  # 0.95 > 0.9 and > 0.5 + 0.4; step 10 only equals it
    assert kept_step([{"step": 4, "elapsed_s": 1.0}], 4) == 4  # no --val: the last step


@pytest.mark.slow  # ~10-12 s on the shared 2-core CPU (real data: skipped without it)
def test_adapted_dice_is_what_the_written_adapter_scores(tmp_path, monkeypatch):
    """The card's "adapted" Dice is the kept step's own validation (no extra pass over the
    validation volumes after training): the adapter written scores exactly that."""
    import medseg.adapt as adapt
    from medseg.adapters import base_network
    from medseg.labels import LabelMap
    from medseg.models import load_model
    from medseg.pairs import read_pairs
    from medseg.training.loop import TrainConfig

    train, val = (read_pairs(c) for c in _pairs_csv(tmp_path))
    lmap = LabelMap.parse(LMAP)
    calls = []
    real = adapt._val_dice
    monkeypatch.setattr(adapt, "_val_dice", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = tmp_path / "mine"
    meta = adapt.run_adapt(train, val, lmap, adapt.AdaptConfig(out=str(out), rank=2, max_steps=3, val_every=1, batch_size=2, lr=0.05))
    assert len(calls) == 4  # the base and steps 1-3
    kept = next(h for h in meta["history"] if h["step"] == meta["training"]["kept_step"])
    assert meta["validation_dice"]["adapted"] == {k: v for k, v in kept.items() if k not in ("step", "elapsed_s")}
    bank, _ = adapt.bank_from_pairs(train, val, lmap, "cpu")
    tcfg = TrainConfig(device="cpu", batch_size=2, lr=0.05, correction_prob=0.5, bf16=True)
    again = real(base_network(load_model("default", adapter=str(out)).model), bank, tcfg)
    assert again == pytest.approx(meta["validation_dice"]["adapted"], abs=2e-4)
    assert again != pytest.approx(meta["validation_dice"]["base"], abs=2e-4)  # the adapter changed something


def test_adapt_resume_says_so_and_its_history_clock_goes_on(tmp_path, monkeypatch, capsys):
    """A resumed run started without a word, and its validations' elapsed_s began at 0 again
    (step 2 read as earlier than step 1 in medseg.json's history)."""
    train, val = _pairs_csv(tmp_path)
    d = {"lv": 0.8, "auto_lv": 0.3}

    def interrupt(n):
        if n == 1:
            time.sleep(1.0)  # session 1's step 1 takes a second
        if n == 2:
            raise KeyboardInterrupt

    _fake_training(monkeypatch, [d] * 3, interrupt)
    out = tmp_path / "my-lge"
    args = ["adapt", "--pairs", str(train), "--val", str(val), "--label-map", LMAP, "-o", str(out), "--steps", "3", "--val-every", "1"]
    assert run_cli(args) == 130
    err = " ".join(capsys.readouterr().err.split())
    assert f"interrupted: {out}.state holds the last validated step" in err and not out.exists()
    _fake_training(monkeypatch, [d] * 4)
    assert run_cli([*args, "--resume"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "resuming from step 1 (" in err
    hist = json.loads((out / "medseg.json").read_text())["history"]
    assert [h["step"] for h in hist] == [1, 2, 3]
    assert hist[0]["elapsed_s"] >= 1.0 and hist[0]["elapsed_s"] <= hist[1]["elapsed_s"] <= hist[2]["elapsed_s"]

    # the run is complete and its state gone: --resume again would have trained anew over the adapter
    before = (out / "adapter_model.safetensors").read_bytes()
    assert run_cli([*args, "--resume", "--steps", "5"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"error: --resume: nothing to resume ({out}.state is not there) and {out} is a finished adapter") and "--init-from" in err
    assert (out / "adapter_model.safetensors").read_bytes() == before


@pytest.fixture(scope="module")
def lge_adapter(tmp_path_factory):
    """A small real LoRA adapter whose medseg.json says it trained on subject3 and subject5
    (as the shipped cmr-lge's names its MS-CMRSeg subjects) and validated on subject1."""
    from medseg.adapters import apply_lora, lora_config, save_adapter
    from medseg.models import load_model

    base = load_model("default")
    peft_model = apply_lora(copy.deepcopy(base.model), lora_config(rank=2))
    out = tmp_path_factory.mktemp("lge") / "mine-lge"
    meta = {"base_model_id": "default", "base_model_sha256": base.sha256, "modality": "LGE-MR", "label_map": {"lv": 1, "myo": 2, "rv": 3},
            "training": {"pairs": ["subject0", "subject5"], "val_pairs": ["subject1"]}}
    save_adapter(peft_model, out, meta, "# card\n")
    return out


def test_trained_on_matches_case_names_a_suffix_aside(lge_adapter):
    from medseg.adapters import trained_on

    cases = ["subject0_DE", "subject5", "subject1_DE", "subject50_DE", "subject"]
    assert trained_on(lge_adapter, cases) == ["subject0_DE", "subject5"]


def test_evaluate_notes_cases_the_adapter_was_trained_on(tmp_path, lge_adapter, capsys, monkeypatch):
    """`medseg evaluate --adapter` scored the adapter's own training volumes as any other, and its
    Dice read as a validation of it. Its Dice plot's title did not name the adapter (a run with
    and one without read alike)."""
    import medseg.measure.plots as plots

    titles = []
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: titles.append(fig.axes[0].get_title()) or save(fig, path))
    s0, s1 = _pairs_csv(tmp_path)
    both = tmp_path / "both.csv"
    both.write_text(s0.read_text() + s1.read_text().splitlines()[1] + "\n")
    out = tmp_path / "ev.json"
    rc = run_cli(["evaluate", "--pairs", str(both), "--label-map", LMAP, "--adapter", str(lge_adapter), "-o", str(out), "--plots", str(tmp_path / "pl")])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 0, err
    assert any(t.startswith("2 cases, prompt box, adapter mine-lge: mean Dice ") for t in titles)
    assert "note: 1 of the 2 cases are named as volumes the adapter was trained on (subject0_DE)" in err
    assert json.loads(out.read_text())["summary"]["adapter_trained_on"] == ["subject0_DE"]
    rc = run_cli(["evaluate", "--pairs", str(s1), "--label-map", LMAP, "--adapter", str(lge_adapter), "-o", str(out), "--plots", str(tmp_path / "pl")])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 0 and "trained on" not in err and "adapter_trained_on" not in json.loads(out.read_text())["summary"]
    assert err.startswith("1 volume, prompt=box: Dice ") and any(t.startswith("1 case, prompt box, adapter mine-lge: ") for t in titles)  # not "1 cases"



@pytest.mark.parametrize("settings, words", [
    ({"prompt": "key-slice", "model_id": "default", "adapter_id": None}, "prompt key-slice"),
    ({"prompt": None, "predicted": True, "models": [{"model_id": "default", "adapter_id": "my-lge"}, {"model_id": "default", "adapter_id": None}]},
     "labels made before, adapter my-lge"),
    ({"prompt": None, "predicted": True, "models": []}, "labels made before"),
])
def test_dice_plot_title_says_what_was_scored(settings, words):
    """`evaluate --predicted --plots` titled its Dice plot "prompt None"."""
    from medseg.evaluation_report import _scored_run

    assert _scored_run(settings) == words


@pytest.mark.parametrize("name", ["adapter_model.safetensors", "medseg.json"])
def test_an_adapter_file_instead_of_its_folder_is_one_line(lge_adapter, name):
    """`--adapter FOLDER/adapter_model.safetensors` said "not found (not a folder, and no adapter
    of that name ...)" of a file that is there."""
    from medseg.adapters import find_adapter

    with pytest.raises(CheckpointError, match=f"is a file: an adapter is a folder .*give its folder '{lge_adapter}'"):
        find_adapter(str(lge_adapter / name))


def test_models_says_a_home_adapter_hides_the_shipped_one_of_its_name(lge_adapter, tmp_path, monkeypatch, capsys):
    """An adapter installed as $MEDSEG_HOME/adapters/cmr-lge replaced the shipped one by name, and
    `medseg models` listed one cmr-lge, the user's, without a word about the other."""
    from medseg.adapters import list_adapters

    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path))
    (tmp_path / "adapters").mkdir()
    (tmp_path / "adapters" / "cmr-lge").symlink_to(lge_adapter)
    (tmp_path / "adapters" / "other").symlink_to(lge_adapter)
    rows = {r["name"]: r for r in list_adapters()}
    assert rows["cmr-lge"]["source"] == str(tmp_path / "adapters" / "cmr-lge") and rows["cmr-lge"]["hides"].endswith("adapters/cmr-lge")
    assert "hides" not in rows["other"]
    monkeypatch.setenv("COLUMNS", "400")
    assert run_cli(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    row = next(ln for ln in out if "cmr-lge" in ln)
    assert f"by name it is used instead of {rows['cmr-lge']['hides']} (give that folder to use it)" in row
    assert not any("another base model" in ln for ln in out)


def test_models_shows_the_whole_adapter_path_on_a_narrow_terminal(monkeypatch, capsys):
    """At 80 columns the table cut the shipped adapter's folder to "(/work/main/adapter…"."""
    from medseg.adapters import find_adapter

    monkeypatch.setenv("COLUMNS", "80")
    assert run_cli(["models"]) == 0
    flat = "".join(capsys.readouterr().out.replace("│", "").split())
    assert "…" not in flat and f"({find_adapter('cmr-lge')})" in flat


def test_models_says_which_adapters_need_another_base(lge_adapter, tmp_path, monkeypatch, capsys):
    """An adapter made on an earlier default was listed as any other; segment then refused it."""
    import shutil

    old = tmp_path / "adapters" / "old-lge"
    shutil.copytree(lge_adapter, old)
    meta = json.loads((old / "medseg.json").read_text())
    (old / "medseg.json").write_text(json.dumps({**meta, "base_model_sha256": "06d215ac" + "0" * 56}))
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "400")
    assert run_cli(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "made for another base model (sha256 06d215ac00000000), not the default" in next(ln for ln in out if "old-lge" in ln)
    assert "another base" not in next(ln for ln in out if "cmr-lge" in ln)



def test_adapt_into_home_under_a_shipped_name_says_it_hides_that_one(tmp_path, monkeypatch, capsys):
    """`medseg adapt -o $MEDSEG_HOME/adapters/cmr-lge` took the shipped adapter's name without a
    word: `--adapter cmr-lge` then loaded the user's (a 2-step one read LV Dice 0.07 on an LGE
    study where the shipped adapter reads 0.90)."""
    (train,) = _pairs_csv(tmp_path, 1)
    _fake_training(monkeypatch, [])
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path / "home"))
    for name, noted in (("cmr-lge", True), ("my-lge", False)):
        out = tmp_path / "home" / "adapters" / name
        assert run_cli(["adapt", "--pairs", str(train), "--label-map", LMAP, "-o", str(out), "--steps", "1"]) == 0
        err = " ".join(capsys.readouterr().err.split())
        assert ("note: by the name cmr-lge, --adapter will load this adapter instead of" in err) == noted, err
        assert (out / "medseg.json").is_file()



def test_info_on_an_adapter_folder_points_at_its_card(lge_adapter, capsys):
    """`medseg info ADAPTER_DIR` said "no DICOM images in folder (4 files checked)"."""
    assert run_cli(["info", str(lge_adapter)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert err == (f"error: {lge_adapter} is a medseg adapter folder, not an image: its model card is {lge_adapter / 'README.md'} "
                   "(`medseg models` lists the adapters; use it with --adapter)")


# -- real LGE data (skip without ../shared/data) ---------------------------------------------

def test_lge_expert_labels_measure_with_their_label_map(shared_data, tmp_path, capsys):
    """MS-CMRSeg labels are 1 RV, 2 myocardium, 3 LV: measured with that map, the volumes are
    the voxel counts times the voxel volume (nibabel's header) and the mass 1.05 g/mL of the
    myocardium; medseg's default map (lv=1) is refused in one line, not measured as RV."""
    import nibabel as nib

    lab = shared_data / "mscmr-lge" / "val" / "labels" / "subject1_DE_manual.nii.gz"
    img = nib.load(str(lab))
    arr = np.asarray(img.dataobj)
    voxel_ml = float(np.prod(img.header.get_zooms()[:3])) / 1000
    out = tmp_path / "m.json"
    assert run_cli(["measure", str(lab), "--label-map", "rv=1,myo=2,lv=3", "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    for name, v in (("rv", 1), ("myo", 2), ("lv", 3)):
        assert rep["volumes_ml"][name] == pytest.approx((arr == v).sum() * voxel_ml, rel=1e-5)
    assert rep["lv_mass_g"] == pytest.approx(1.05 * (arr == 2).sum() * voxel_ml, rel=1e-5)
    capsys.readouterr()
    assert run_cli(["measure", str(lab), "--label-map", "lv=1,myo=2,rv=3", "-o", str(tmp_path / "wrong.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err and not (tmp_path / "wrong.json").exists()


def test_shipped_lge_adapter_names_its_training_subjects_as_the_data_files_do(shared_data, tmp_path):
    """The cmr-lge card's subjects (subject3, ...) against a PAIRS.csv of the MS-CMRSeg files
    (cases subject3_DE, ...): the training subjects are found, the validation ones are not."""
    from medseg.adapters import find_adapter, read_adapter_meta, trained_on
    from medseg.pairs import read_pairs

    root = shared_data / "mscmr-lge"
    rows = ["image,label"] + [f"{root}/{s}/images/{c}_DE.nii.gz,{root}/{s}/labels/{c}_DE_manual.nii.gz"
                              for s, c in (("TestSet", "subject3"), ("TestSet", "subject17"), ("val", "subject1"), ("TestSet", "subject10"))]
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    cases = [p.case for p in read_pairs(tmp_path / "p.csv")]
    folder = find_adapter("cmr-lge")
    assert set(read_adapter_meta(folder)["training"]["val_pairs"]) >= {"subject1", "subject17"}
    assert trained_on(folder, cases) == ["subject3_DE", "subject10_DE"]
