"""`medseg train --pairs`: a lab trains a full base model (or fully fine-tunes the shipped one)
on its own labelled volumes, packed as the shared data are."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseg.cli._app import run_cli


def _write_pairs(tmp_path, n=2, seed=40, name="s", hu=False):
    """Small phantom studies as NIfTI image / label files (labels lv=1, myo=2, rv=3)."""
    import nibabel as nib

    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    rows = []
    for i in range(n):
        ph = cine_sax_phantom(n_frames=1, n_slices=4, shape=(64, 64), spacing=(8.0, 1.5, 1.5), seed=seed + i)
        img, lab = tmp_path / f"{name}{i}.nii.gz", tmp_path / f"{name}{i}_gt.nii.gz"
        a = ph.image.array.astype(np.float32)
        if hu:  # Hounsfield-like: air at -800, the heart up to +500 (read as CT)
            a = (a - a.min()) / (a.max() - a.min()) * 1300 - 800
        nib.save(nib.Nifti1Image(medseg_to_nifti(a, 3), ph.image.affine), str(img))
        write_labels(ph.labels, ph.image, lab, ph.label_map.subset(["lv", "myo", "rv"]))
        rows.append((img, lab))
    return rows


def _csv(path, rows):
    path.write_text("image,label\n" + "".join(f"{i},{la}\n" for i, la in rows))
    return path


def test_data_that_is_not_the_shared_folder_is_one_line_pointing_to_pairs(tmp_path, capsys):
    """`--data MY_FOLDER` packed nothing from the ACDC/CAMUS readers, then failed with
    'unexpected FileNotFoundError: .../mnms2/001/001_LA_ED.nii.gz', leaving an empty OUT."""
    (tmp_path / "mine").mkdir()
    _write_pairs(tmp_path / "mine")
    out = tmp_path / "run"
    assert run_cli(["train", "--data", str(tmp_path / "mine"), "-o", str(out), "--phantoms", "0"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and "not the shared data folder" in err and "--pairs" in err and "unexpected" not in err
    assert not out.exists()


def test_pack_pairs_makes_the_shared_pack_format(tmp_path):
    """Own pairs go through the shared pack's Packer: same record format (the training code
    reads it unchanged), medseg's label values, split 0/1, dataset 'own' with a sampling share."""
    from medseg.labels import LabelMap
    from medseg.pairs import read_pairs
    from medseg.training.data import bank_from_pack
    from medseg.training.pack import STRUCT_BITS, load_pack
    from medseg.training.pairs_pack import kept_slices, pack_pairs

    rows = _write_pairs(tmp_path)
    train = read_pairs(_csv(tmp_path / "t.csv", rows[:1]))
    val = read_pairs(_csv(tmp_path / "v.csv", rows[1:]))
    packer = pack_pairs(train, val, LabelMap.parse("lv=1,myo=2,rv=3"))
    packer.save(tmp_path / "pack.npz")
    d = load_pack(tmp_path / "pack.npz")
    assert d["meta"]["format"] == "medseg-pack/1" and d["images"].shape[1:] == (256, 256) and d["images"].dtype == np.uint8
    assert set(np.unique(d["labels"])) <= {0, 1, 2, 3}  # medseg's default map: lv=1, myo=2, rv=3
    assert set(d["split"].tolist()) == {0, 1} and all(v.startswith("own/") for v in d["meta"]["volumes"])
    assert set(d["labelled"].tolist()) == {STRUCT_BITS["lv"] | STRUCT_BITS["myo"] | STRUCT_BITS["rv"]}
    src = d["meta"]["source"]
    assert src["pairs"] == ["s0"] and src["val_pairs"] == ["s1"] and src["label_map"] == {"lv": 1, "myo": 2, "rv": 3}
    assert len(src["data_sha256"]) == 2
    bank = bank_from_pack(tmp_path / "pack.npz", 0, 0, "cpu")
    assert float(bank.weights(0).sum()) == pytest.approx(1.0) and bank.source["pairs"] == ["s0"]
    lab = np.zeros((8, 4, 4), np.uint8)
    lab[[2, 3, 5]] = 1
    assert kept_slices(lab) == [1, 2, 3, 5, 6]  # the labelled slices and one empty beyond each end


def test_train_on_own_pairs_from_the_shipped_model_loads_segments_and_is_carded(tmp_path, capsys):
    from medseg.models import load_model
    from medseg.models.checkpoints import read_checkpoint_header

    rows = _write_pairs(tmp_path)
    out = tmp_path / "run"
    assert run_cli(["train", "--pairs", str(_csv(tmp_path / "t.csv", rows[:1])), "--val", str(_csv(tmp_path / "v.csv", rows[1:])),
                    "--label-map", "lv=1,myo=2,rv=3", "--phantoms", "0", "--max-steps", "1", "--batch-size", "2",
                    "--init-from", "default", "-o", str(out)]) == 0
    capsys.readouterr()
    _, info = read_checkpoint_header(out / "best.safetensors")
    assert info["data"]["pairs"]["pairs"] == ["s0"] and info["data"]["pairs"]["val_pairs"] == ["s1"]
    assert info["data"]["init_from"]["sha256"] == load_model("default").sha256
    assert any(k.startswith("box/own/") for k in info["validation"])
    card = (out / "README.md").read_text()
    assert "1 of your own volumes" in card and "s0" in card and "Validated on: 1 volumes" in card and "| own/lv |" in card
    assert json.loads((out / "summary.json").read_text())["data"]["pairs"]["label_map"] == {"lv": 1, "myo": 2, "rv": 3}
    img, lab = rows[1]
    seg = tmp_path / "seg.nii.gz"
    assert run_cli(["segment", str(img), "-o", str(seg), "--model", str(out / "best.safetensors"), "--prompts-from", str(lab),
                    "--label-map", "lv=1,myo=2,rv=3"]) == 0
    assert seg.is_file()


def test_without_validation_best_is_the_last_step(tmp_path):
    """No validation slices (phantoms only, or --pairs without --val): every score is 0, and
    best.safetensors stayed the first validated step however long it trained."""
    from medseg.models.checkpoints import read_checkpoint_header

    out = tmp_path / "run"
    assert run_cli(["train", "--phantoms", "4", "--max-steps", "2", "--batch-size", "1", "--val-every", "0.001", "-o", str(out)]) == 0
    assert read_checkpoint_header(out / "best.safetensors")[1]["training"]["steps"] == 2


@pytest.mark.parametrize("case", ["empty_pairs", "other_geometry", "no_structure_of_the_map", "mixed_modalities", "with_data", "with_pack",
                                  "unknown_structure", "val_without_pairs", "val_is_train"])
def test_bad_own_data_is_one_line_and_writes_nothing(case, tmp_path, capsys):
    rows = _write_pairs(tmp_path)
    lmap = "lv=1,myo=2,rv=3"
    extra: list[str] = []
    if case == "empty_pairs":
        rows = []
    elif case == "other_geometry":
        other = _write_pairs(tmp_path, n=1, seed=9, name="o")
        import nibabel as nib

        small = nib.load(str(other[0][1]))
        nib.save(nib.Nifti1Image(np.asarray(small.dataobj)[:32], small.affine), str(tmp_path / "small_gt.nii.gz"))
        rows = [(rows[0][0], tmp_path / "small_gt.nii.gz")]
    elif case == "no_structure_of_the_map":
        lmap = "lv=7,myo=8"
    elif case == "mixed_modalities":
        rows = rows[:1] + _write_pairs(tmp_path, n=1, name="ct", hu=True)
    elif case == "with_data":
        extra = ["--data", str(tmp_path)]
    elif case == "with_pack":
        (tmp_path / "p.npz").write_bytes(b"x")
        extra = ["--pack", str(tmp_path / "p.npz")]
    elif case == "unknown_structure":
        lmap = "lv=1,myo=2,scar=3"
    csv = _csv(tmp_path / "t.csv", rows)
    if case == "val_is_train":  # its validation would pick the checkpoint on what it learnt
        extra = ["--val", str(_csv(tmp_path / "v.csv", rows[:1]))]
    out = tmp_path / "run"
    args = ["--pairs", str(csv), "--label-map", lmap] if case != "val_without_pairs" else ["--val", str(csv)]
    rc = run_cli(["train", *args, *extra, "--phantoms", "0", "--max-steps", "1", "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith("error:") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err and "unexpected" not in err
    assert not out.exists()
    want = {"empty_pairs": "no rows", "other_geometry": "grid", "no_structure_of_the_map": "lv=7", "mixed_modalities": "more than one modality",
            "with_data": "without --data", "with_pack": "without --pack", "unknown_structure": "unknown in the label map: scar",
            "val_without_pairs": "goes with --pairs", "val_is_train": "--val holds images --pairs trains on"}[case]
    assert want in " ".join(err.split()), err
