"""Case and file names matched in Unicode NFC: a folder or file named on a Mac is often in the
decomposed form (NFD: ``Mu`` + combining diaeresis), the same name typed in a spreadsheet, an
editor or a shell composed (NFC: ``ü``). They look alike and were no match: ``--prompts-from``
references, labels beside their image, ``evaluate --predicted`` outputs and batch summaries,
PAIRS.csv paths, ``--resume`` outputs, ``compare`` case ids, an adapter's training cases, one
study's ED and ES (or echo views) from two copies. Files are still opened by their names on disk;
two files whose names differ only in that form are an error or kept apart, never merged silently.
Tiny phantom studies (1, 4, 64, 64); no model runs."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import MedsegError

NFC = unicodedata.normalize("NFC", "Müller")
NFD = unicodedata.normalize("NFD", "Müller")
MAP = "lv=1,myo=2,rv=3"


def _write_case(folder: Path, case: str, seed: int, labels_as: str | None = None) -> tuple[Path, Path]:
    """``<case>.nii.gz`` (image) + ``<labels_as or case>_gt.nii.gz`` (labels lv=1,myo=2,rv=3), from the phantom."""
    import nibabel as nib

    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=1, n_slices=4, shape=(64, 64), seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / f"{case}.nii.gz"
    nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 3), ph.image.affine), str(image))
    ref = folder / f"{labels_as or case}_gt.nii.gz"
    write_labels(ph.labels, ph.image, ref, MAP)
    return image, ref


def test_the_two_forms_are_different_names_here():
    assert NFC != NFD and unicodedata.normalize("NFC", NFD) == NFC


def test_prompts_from_folder_finds_the_typed_reference_of_an_image_named_on_a_mac(tmp_path):
    from medseg.batch import discover_cases

    _, gt = _write_case(tmp_path / "in", NFD, seed=1)
    (tmp_path / "ref").mkdir()
    os.rename(gt, tmp_path / "ref" / f"{NFC}_gt.nii.gz")
    [case] = discover_cases(tmp_path / "in", tmp_path / "ref")
    assert case.error is None and case.case == NFD  # the case keeps its name on disk
    assert Path(case.reference).name == f"{NFC}_gt.nii.gz" and Path(case.reference).is_file()


def test_labels_beside_their_image_in_the_other_form_are_its_reference_not_a_case(tmp_path):
    from medseg.batch import discover_cases
    from medseg.pairs import read_pairs

    _, gt = _write_case(tmp_path, NFC, seed=2)
    os.rename(gt, tmp_path / f"{NFD}_gt.nii.gz")
    [case] = discover_cases(tmp_path, tmp_path)
    assert case.error is None and Path(case.reference).name == f"{NFD}_gt.nii.gz"
    [pair] = read_pairs(tmp_path)  # evaluate / adapt --pairs FOLDER
    assert pair.label.name == f"{NFD}_gt.nii.gz"


def test_two_files_of_one_name_in_two_forms_are_an_error_or_kept_apart(tmp_path):
    from medseg.batch import discover_cases, find_reference

    _write_case(tmp_path / "one", NFC, seed=1)
    _write_case(tmp_path / "one", NFD, seed=2)
    cases = discover_cases(tmp_path / "one")
    assert len(cases) == 2 and all("is shared by" in c.error and "two Unicode forms" in c.error and "rename one" in c.error for c in cases)
    _write_case(tmp_path / "two" / "a", NFC, seed=1)
    _write_case(tmp_path / "two" / "b", NFD, seed=2)
    cases = discover_cases(tmp_path / "two")
    assert sorted(c.case for c in cases) == [f"a_{NFC}", f"b_{NFD}"] and not any(c.error for c in cases)
    ref = tmp_path / "ref"
    ref.mkdir()
    for name in (NFC, NFD):
        (ref / f"{name}_gt.nii.gz").write_bytes(b"x")
    with pytest.raises(MedsegError, match="ambiguous"):
        find_reference(NFC, ref)


def test_evaluate_predicted_finds_outputs_and_summary_rows_named_in_the_other_form(tmp_path):
    from medseg.pairs import read_pairs, with_predictions

    _write_case(tmp_path / "in", NFC, seed=3)
    _write_case(tmp_path / "in", "Zoë", seed=4)
    _write_case(tmp_path / "in", "Åsa", seed=5)
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / f"{NFD}.nii.gz").write_bytes((tmp_path / "in" / f"{NFC}_gt.nii.gz").read_bytes())
    rows = [{"case": unicodedata.normalize("NFD", "Zoë"), "status": "handed_over", "handed_over": "lv myo rv"},
            {"case": unicodedata.normalize("NFD", "Åsa"), "status": "failed", "reason": "no model"}]
    (pred / "summary.json").write_text(json.dumps({"cases": rows}), encoding="utf-8")
    got = {p.case: p for p in with_predictions(read_pairs(tmp_path / "in"), pred)}
    assert got[NFC].prediction == pred / f"{NFD}.nii.gz"
    assert got["Zoë"].handed_over == ("lv", "myo", "rv") and got["Åsa"].failed == "no model"


def test_a_pairs_csv_typed_in_nfc_opens_files_and_folders_named_on_a_mac(tmp_path):
    from medseg.pairs import read_pairs

    image, gt = _write_case(tmp_path / NFD, NFD, seed=6)
    typed = f"{NFC}/{NFC}"
    csv = tmp_path / "pairs.csv"
    csv.write_text(f"image,label\n{typed}.nii.gz,{typed}_gt.nii.gz\n", encoding="utf-8")
    [pair] = read_pairs(csv)
    assert pair.image == image and pair.label == gt and pair.case == NFD  # the files on disk, the case named as batch names it
    csv.write_text(f"image,label,case,phase\n{typed}.nii.gz,{typed}_gt.nii.gz,{NFC},ED\n"
                   f"{NFD}/{NFD}.nii.gz,{NFD}/{NFD}_gt.nii.gz,{NFD},ED\n", encoding="utf-8")
    with pytest.raises(MedsegError, match="row 3 repeats row 2 \\(case"):  # one case twice: it would be counted twice
        read_pairs(csv)


def test_a_rerun_writes_over_the_output_of_a_case_named_in_the_other_form(tmp_path):
    """--resume after the input folder was copied again: it found no output, segmented the case
    again and left two label files for one case."""
    from medseg.batch import handed_over_path, output_path
    from medseg.batch.measure_rows import _row_store
    from medseg.batch.pages import page_path

    out = tmp_path / "out"
    for sub in ("handed_over", "measured", "pdf"):
        (out / sub).mkdir(parents=True)
    (out / f"{NFD}.nii.gz").write_bytes(b"labels")
    for name in (f"handed_over/{NFD}.json", f"measured/{NFD}.json", f"pdf/{NFD}.pdf"):
        (out / name).write_bytes(b"{}")
    assert output_path(out, NFC) == out / f"{NFD}.nii.gz"
    assert handed_over_path(out, NFC) == out / "handed_over" / f"{NFD}.json"
    assert _row_store(out, NFC) == out / "measured" / f"{NFD}.json" and page_path(out, NFC) == out / "pdf" / f"{NFD}.pdf"
    assert output_path(out, "Zoë") == out / "Zoë.nii.gz"
    (out / f"{NFC}.nii.gz").write_bytes(b"labels")  # both there (an older run's): each its own
    assert output_path(out, NFC) == out / f"{NFC}.nii.gz" and output_path(out, NFD) == out / f"{NFD}.nii.gz"


def test_compare_pairs_case_ids_in_either_form_and_refuses_two_that_collide():
    from medseg.measure.compare import Visit, pair_visits

    def visit(case):
        return Visit(case=case, source="cohort.csv", values={"lv.ef_pct": 55.0}, kind="ED/ES")

    pairs, rule = pair_visits([visit(NFD), visit("p2")], [visit(NFC), visit("p2")])
    assert rule == "case" and [(b.case, f.case) for b, f in pairs] == [(NFD, NFC), ("p2", "p2")]
    with pytest.raises(MedsegError, match="two cases named .*two Unicode forms"):
        pair_visits([visit(NFD)], [visit(NFC), visit(NFD)])


def test_an_adapters_training_cases_match_in_either_form():
    from medseg.adapters import cases_trained_on

    assert cases_trained_on([NFD, "p2_ED"], None, [NFC, f"{NFC}_ED", "p3"]) == [NFC, f"{NFC}_ED"]


def test_one_studys_ed_and_es_named_in_two_forms_give_the_clinical_errors(tmp_path):
    from medseg.evaluation import evaluate_pairs
    from medseg.pairs import read_pairs, with_predictions

    _write_case(tmp_path / "in", f"{NFC}_ED", seed=1)
    _write_case(tmp_path / "in", f"{NFD}_ES", seed=2)
    pred = tmp_path / "pred"
    pred.mkdir()
    for name in (f"{NFC}_ED", f"{NFD}_ES"):
        (pred / f"{name}.nii.gz").write_bytes((tmp_path / "in" / f"{name}_gt.nii.gz").read_bytes())
    result = evaluate_pairs(with_predictions(read_pairs(tmp_path / "in"), pred), MAP, None, None)
    assert result["summary"]["n_clinical_cases"] == 1 and result["summary"]["lvef_mae"] == 0.0


def test_echo_views_of_one_study_from_two_copies_are_one_study(tmp_path):
    from medseg.cli._echo_pairs import check_echo_names
    from napari_plugin._measure import echo_names_problem

    check_echo_names({"--ed": tmp_path / f"{NFC}_4CH_ED.nii.gz", "--es": tmp_path / f"{NFD}_4CH_ES.nii.gz"})
    assert echo_names_problem(f"{NFC}_4CH_ED", f"{NFD}_4CH_ES_gt") is None
    with pytest.raises(MedsegError, match="different studies"):
        check_echo_names({"--ed": tmp_path / f"{NFC}_4CH_ED.nii.gz", "--es": tmp_path / "Other_4CH_ES.nii.gz"})


def test_batch_measures_one_studys_ed_and_es_named_in_two_forms_as_one_study(tmp_path):
    """batch --measure: ``Müller_ED`` (typed) and ``Müller_ES`` (a Mac's copy) got no study row, no LVEF."""
    from medseg.batch.cohort import stack_study_rows

    _, ed = _write_case(tmp_path, f"{NFC}_ED", seed=1)
    _, es = _write_case(tmp_path, f"{NFD}_ES", seed=2)
    results = [{"case": f"{NFD}_ES", "status": "ok", "output": str(es), "input": ""},
               {"case": f"{NFC}_ED", "status": "ok", "output": str(ed), "input": ""}]
    [row] = stack_study_rows(results)
    assert row["case"] == NFD and row["cohort_row"]["lv.ef_pct"] > 0


def test_a_subjects_file_naming_one_id_in_both_forms_is_refused(tmp_path):
    """--subjects matches ids in NFC: two rows whose ids differ only so gave one case the first row's body data, silently."""
    from medseg.subjects import read_subjects

    path = tmp_path / "subjects.csv"
    path.write_text(f"id,height_cm,weight_kg\n{NFC},170,70\n{NFD},180,90\n", encoding="utf-8")
    with pytest.raises(MedsegError, match="line 3: id .* appears twice"):
        read_subjects(path)


def test_a_patients_visits_in_two_folders_and_two_forms_keep_their_folder_prefix(tmp_path):
    """Each visit's frames are one study (``v1_Müller``, ``v2_Müller``), as when both are named alike;
    else ``Müller_frame09`` (v1) and ``Müller_frame10`` (v2) were measured together, now that their study is matched in NFC."""
    from medseg.batch import discover_cases

    for folder, name, frame in (("v1", NFC, 1), ("v1", NFC, 9), ("v2", NFD, 1), ("v2", NFD, 10)):
        _write_case(tmp_path / folder, f"{name}_frame{frame:02d}", seed=frame)
    cases = discover_cases(tmp_path)
    assert sorted(c.case for c in cases) == [f"v1_{NFC}_frame01", f"v1_{NFC}_frame09", f"v2_{NFD}_frame01", f"v2_{NFD}_frame10"]
