"""`medseg train --pairs`: a case whose labels lack a structure of the map is not taught that
the structure is absent (its slices' labelled bits name only what it holds), as `medseg adapt`
takes it; a note names the case, and label values the map does not name."""

from __future__ import annotations

import numpy as np
from test_sweep43_train_own import _csv, _write_pairs


def test_a_case_without_the_rv_is_packed_without_its_bit(tmp_path):
    import nibabel as nib

    from medseg.labels import LabelMap
    from medseg.pairs import read_pairs
    from medseg.training.pack import STRUCT_BITS
    from medseg.training.pairs_pack import pack_pairs

    rows = _write_pairs(tmp_path, n=2)
    for (_, lab_path), change in zip(rows, ("value 9", "no rv")):
        img = nib.load(str(lab_path))
        lab = np.asarray(img.dataobj).copy()
        if change == "no rv":  # s1 has no RV
            lab[lab == 3] = 0
        else:  # s0: some myocardium with a value the map does not name
            lab[(lab == 2) & (np.indices(lab.shape)[0] % 7 == 0)] = 9
        nib.save(nib.Nifti1Image(lab, img.affine, img.header), str(lab_path))
    notes: list[str] = []
    packer = pack_pairs(read_pairs(_csv(tmp_path / "t.csv", rows)), [], LabelMap.parse("lv=1,myo=2,rv=3"), notes=notes)
    bits = {r["volume"].split("_", 1)[1].split("/")[0]: r["labelled"] for r in packer.records}
    assert bits["s0"] == STRUCT_BITS["lv"] | STRUCT_BITS["myo"] | STRUCT_BITS["rv"]
    assert bits["s1"] == STRUCT_BITS["lv"] | STRUCT_BITS["myo"]
    assert any("s1 (rv): a structure of the label map not labelled" in n for n in notes)
    assert any("value 9" in n and "not in the label map" in n for n in notes)


def test_evaluate_with_a_prompt_says_unnamed_reference_values_are_scored_as_background(tmp_path, capsys):
    """`evaluate --prompt` scores a reference value the map does not name as background; its note
    said "on one side only ... not scored", the words of --predicted."""
    import nibabel as nib

    from medseg.cli import run_cli

    rows = _write_pairs(tmp_path, n=1)
    img = nib.load(str(rows[0][1]))
    lab = np.asarray(img.dataobj).copy()
    lab[(lab == 2) & (np.indices(lab.shape)[0] % 7 == 0)] = 9
    nib.save(nib.Nifti1Image(lab, img.affine, img.header), str(rows[0][1]))
    capsys.readouterr()
    assert run_cli(["evaluate", "--pairs", str(_csv(tmp_path / "p.csv", rows)), "--label-map", "lv=1,myo=2,rv=3", "--prompt", "box",
                    "-o", str(tmp_path / "r.json")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "label values of the reference that the label map does not name, scored as background (`not_in_label_map`): s0" in err


def test_a_pack_of_an_earlier_medseg_is_packed_again_for_a_new_run(tmp_path, monkeypatch):
    """An OUT/pack.npz made from the same pairs before packs knew which case holds which
    structure was used again (same files and map): a new run packs again; --resume keeps it."""
    from medseg.training import pairs_pack

    rows = _write_pairs(tmp_path, n=1)
    csv = _csv(tmp_path / "t.csv", rows)
    from medseg.cli.train_cmd import _pairs_pack

    target = tmp_path / "out" / "pack.npz"
    target.parent.mkdir()
    real = pairs_pack.source_record
    monkeypatch.setattr(pairs_pack, "source_record", lambda *a: {k: v for k, v in real(*a).items() if k != "labelled_per_case"})
    _pairs_pack(csv, None, "lv=1,myo=2,rv=3", target)
    assert "labelled_per_case" not in pairs_pack.pack_source(target)
    monkeypatch.setattr(pairs_pack, "source_record", real)
    state = tmp_path / "out" / "state.pt"
    state.write_bytes(b"x")
    _pairs_pack(csv, None, "lv=1,myo=2,rv=3", target, state)  # --resume of that run: kept
    assert "labelled_per_case" not in pairs_pack.pack_source(target)
    _pairs_pack(csv, None, "lv=1,myo=2,rv=3", target)  # a new run: packed again
    assert pairs_pack.pack_source(target)["labelled_per_case"] is True
