"""`medseg batch --auto --measure` on a study's two apical clips (``p1_A4C.dcm``, ``p1_A2C.dcm``)
wrote two single-plane rows in cohort.csv, both ``per_study`` TRUE: the study counted twice, and
the 2-chamber clip's single-plane EF read as the study's. Now the pair gets one biplane study row,
as ``medseg measure A4C --a2c A2C`` measures the same labels, and the two clips' own rows are
``per_study`` FALSE with a note naming that row. Labels are written here: no model runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

EMAP = "lv=1,myo=2,rv=3,la=4,ra=5"


def _clip_case(folder: Path, case: str, view: str, n_frames: int, spacing: float, shift: int = 0, status: str = "ok") -> dict:
    """A clip case as the batch leaves it: its labels over the cycle (an echo phantom's, its own
    pixel size and frame times) and, measured on its own, its single-plane row."""
    from medseg.batch import BatchOptions
    from medseg.batch.cohort import _measure
    from medseg.io import write_labels
    from medseg.phantoms import echo_apical_phantom

    if status != "ok":
        return {"case": case, "status": status, "output": "", "input": f"{case}.nii.gz", "reason": "no LV found"}
    ph = echo_apical_phantom(view, n_frames=n_frames, seed=1, spacing=spacing)
    out = folder / f"{case}.nii.gz"
    write_labels(np.roll(ph.labels, shift, axis=0).astype(np.uint8), ph.image, out, EMAP)
    res = {"case": case, "status": "ok", "output": str(out), "input": f"{case}.nii.gz"}
    return {**res, **_measure(out, BatchOptions(out_dir=folder, measure=True), case)}


def _measure_cli(tmp_path: Path, a4c: str, a2c: str) -> dict:
    from medseg.cli import run_cli

    out = tmp_path / "cli.json"
    assert run_cli(["measure", a4c, "--a2c", a2c, "-o", str(out)]) == 0
    return json.loads(out.read_text())


def test_two_clips_of_a_study_give_one_biplane_row_with_measures_numbers(tmp_path, capsys):
    """Clips of different lengths, pixel sizes and phases (the 2-chamber one starts 3 frames
    later): the study row is the report of `medseg measure A4C --a2c A2C` on those labels, to the
    last digit; its views and each clip's ED/ES frames are said."""
    from medseg.batch.cohort import echo_clip_rows
    from medseg.measure.export import report_row

    cases = [_clip_case(tmp_path, "p1_A4C", "a4c", 10, 0.7), _clip_case(tmp_path, "p1_a2c", "a2c", 10, 0.6, shift=-3)]
    (row,) = echo_clip_rows(cases)
    assert row["case"] == "p1" and row["measure_note"] == ""
    got, want = row["cohort_row"], report_row(_measure_cli(tmp_path, cases[0]["output"], cases[1]["output"]))
    capsys.readouterr()
    assert got["method"] == "biplane_disks" and got["views"] == "4CH 2CH"
    for key in ("lv.ef_pct", "lv.edv_ml", "lv.esv_ml", "la_volume_ml", "clips.a4c.ed_frame", "clips.a4c.es_frame", "clips.a2c.ed_frame",
                "clips.a2c.es_frame", "clips.a4c.n_frames", "clips.a2c.n_frames"):
        assert got[key] == want[key], key
    assert got["lv.edv_ml"] > 0 and (got["clips.a2c.ed_frame"], got["clips.a2c.es_frame"]) != (got["clips.a4c.ed_frame"], got["clips.a4c.es_frame"])
    single = {c["case"]: c["cohort_row"]["lv.ef_pct"] for c in cases}  # each view's own single-plane EF is not the study's
    assert all(ef != got["lv.ef_pct"] for ef in single.values())


def test_cohort_counts_a_clip_study_once_and_keeps_a_lone_clip(tmp_path):
    """cohort.csv: the study row per_study TRUE, its two clips FALSE with a note naming it; a
    study with one clip keeps that clip's single-plane row as before (TRUE, no note); one whose
    2-chamber clip failed keeps the 4-chamber row TRUE, its note saying why it is single plane."""
    from medseg.batch import BatchOptions
    from medseg.batch.cohort import write_cohort_with_studies

    rows = [_clip_case(tmp_path, "p1_A4C", "a4c", 10, 0.7), _clip_case(tmp_path, "p1-2CH", "a2c", 8, 0.6),
            _clip_case(tmp_path, "p2_A4C", "a4c", 9, 0.7),
            _clip_case(tmp_path, "p3_4ch", "a4c", 10, 0.5), _clip_case(tmp_path, "p3_A2C", "a2c", 10, 0.5, status="failed")]
    lone_ef = rows[2]["cohort_row"]["lv.ef_pct"]
    write_cohort_with_studies(BatchOptions(out_dir=tmp_path, measure=True), rows)
    with open(tmp_path / "cohort.csv", newline="") as fh:
        table = {r["case"]: r for r in csv.DictReader(fh)}
    assert sorted(table) == ["p1", "p1-2CH", "p1_A4C", "p2_A4C", "p3_4ch"]
    assert table["p1"]["per_study"] == "TRUE" and table["p1"]["method"] == "biplane_disks" and table["p1"]["views"] == "4CH 2CH"
    for case, other in (("p1_A4C", "p1-2CH"), ("p1-2CH", "p1_A4C")):
        assert table[case]["per_study"] == "FALSE" and table[case]["method"] == "single_plane_disks_clip"
        assert table[case]["measure_note"] == f"one view of study p1: its biplane EF (with {other}) is in the row p1"
    assert table["p2_A4C"]["per_study"] == "TRUE" and table["p2_A4C"]["measure_note"] == ""
    assert float(table["p2_A4C"]["lv.ef_pct"]) == pytest.approx(lone_ef, abs=1e-9)
    assert table["p3_4ch"]["per_study"] == "TRUE"
    assert table["p3_4ch"]["measure_note"] == "single plane: p3_A2C failed (no LV found); biplane needs both clips"
    per_study = [r["case"] for r in table.values() if r["per_study"] == "TRUE"]
    assert sorted(per_study) == ["p1", "p2_A4C", "p3_4ch"]  # each study once


def test_a_clip_study_row_gets_its_page(tmp_path):
    """--pdf: the study row has its page (pdf/<study>.pdf), as the four-file echo study has."""
    from medseg.batch.cohort import echo_clip_rows

    cases = [_clip_case(tmp_path, "e1_A4C", "a4c", 6, 0.7), _clip_case(tmp_path, "e1_A2C", "a2c", 6, 0.6, shift=-2)]
    (row,) = echo_clip_rows(cases, pages=tmp_path)
    assert Path(row["pdf"]) == tmp_path / "pdf" / "e1.pdf" and Path(row["pdf"]).stat().st_size > 10_000
    assert echo_clip_rows(cases)[0].get("pdf") is None


def test_view_names_are_read_by_one_pattern():
    """batch's case names and measure's clip file names read the view with one pattern."""
    from medseg.batch.case_names import echo_clip, echo_view, file_view, study_of

    assert echo_clip("p1_A4C") == ("p1", "4ch") and echo_clip("P2-2ch") == ("P2", "2ch") and echo_clip("p1_A4C_ED") is None
    assert study_of("p1_a2c") == "p1" and echo_view("p1_A4C_ed") == ("p1", "4ch", "ED")
    assert file_view("patient0451_4CH_half_sequence_gt.nii.gz") == ("patient0451", "4ch")
    assert file_view("a4c.nii.gz") == (None, "4ch") and file_view("A2C_clip.nii.gz") == (None, "2ch")
    assert file_view("clip.nii.gz") is None


def _cohort(tmp_path: Path, rows: list[dict], pdf: bool = False) -> list[dict]:
    from medseg.batch import BatchOptions
    from medseg.batch.cohort import write_cohort_with_studies

    write_cohort_with_studies(BatchOptions(out_dir=tmp_path, measure=True, pdf=pdf), rows)
    with open(tmp_path / "cohort.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _labels_case(folder: Path, case: str, labels: np.ndarray, image, label_map: str = EMAP) -> dict:
    from medseg.io import write_labels

    out = folder / f"{case}.nii.gz"
    write_labels(labels.astype(np.uint8), image, out, label_map)
    return {"case": case, "status": "ok", "output": str(out), "input": f"{case}.nii.gz"}


def test_echo_views_and_clips_of_one_study_give_one_row_saying_so(tmp_path):
    """Four single-frame views p1_4CH_ED ... AND two clips p1_A4C, p1_A2C: the id p1 was two
    rows, both per_study TRUE (EF 64.95 and 68.81). Now one row p1, no numbers, naming both sets;
    the clips' rows stay FALSE, their note naming that row (not a biplane EF it does not hold)."""
    from medseg.phantoms import echo_apical_phantom

    rows = [_clip_case(tmp_path, "p1_A4C", "a4c", 10, 0.7), _clip_case(tmp_path, "p1_A2C", "a2c", 10, 0.7, shift=-3)]
    for view in ("a4c", "a2c"):
        ph = echo_apical_phantom(view, n_frames=10, seed=1, spacing=0.7)
        for phase, f in (("ED", 0), ("ES", 5)):
            rows.append(_labels_case(tmp_path, f"p1_{view[1]}CH_{phase}", ph.labels[f:f + 1],
                                     ph.image.with_array(ph.image.array[f:f + 1], frame_times_s=None)))
    table = _cohort(tmp_path, rows)
    assert sorted(r["case"] for r in table) == ["p1", "p1_A2C", "p1_A4C"]  # one row p1
    (study,) = [r for r in table if r["case"] == "p1"]
    assert study["per_study"] == "TRUE" and study["lv.ef_pct"] == "" and study["method"] == ""
    assert study["measure_note"] == ("not measured: the cases of study p1 form two studies "
                                     "(p1_2CH_ED, p1_2CH_ES, p1_4CH_ED, p1_4CH_ES; p1_A2C, p1_A4C): rename one set")
    for r in table:
        if r["case"] != "p1":
            assert r["per_study"] == "FALSE" and r["measure_note"] == "one view of study p1: the row p1 says why it was not measured"


def test_stacks_and_clips_of_one_id_give_one_row_and_no_page(tmp_path):
    """Short-axis p1_ED / p1_ES AND clips p1_A4C / p1_A2C with --pdf: two rows p1 shared one
    pdf/p1.pdf (the stack's, drawn last, named by the biplane row). Now one row p1 without
    numbers or page, and no pdf/p1.pdf."""
    from medseg.phantoms import cine_sax_phantom

    rows = [_clip_case(tmp_path, "p1_A4C", "a4c", 10, 0.7), _clip_case(tmp_path, "p1_A2C", "a2c", 10, 0.7, shift=-3)]
    ph = cine_sax_phantom(n_frames=10, n_slices=8)
    for phase, f in (("ED", ph.info.get("ed_frame", 0)), ("ES", ph.info.get("es_frame", 4))):
        rows.append(_labels_case(tmp_path, f"p1_{phase}", ph.labels[f:f + 1], ph.image.with_array(ph.image.array[f:f + 1], frame_times_s=None),
                                 "lv=1,myo=2,rv=3"))
    table = _cohort(tmp_path, rows, pdf=True)
    studies = [r for r in table if r["case"] == "p1"]
    assert len(studies) == 1 and studies[0]["lv.ef_pct"] == "" and studies[0].get("pdf", "") == ""
    assert studies[0]["measure_note"] == ("not measured: the cases of study p1 form two studies "
                                          "(p1_A2C, p1_A4C; p1_ED, p1_ES): rename one set")
    assert not (tmp_path / "pdf" / "p1.pdf").exists()


def test_clips_not_measurable_together_keep_the_clip_row_per_study(tmp_path):
    """The 2-chamber clip has the LV on one frame (segmented ok, not measured on its own): the
    study row held only a note, which made the 4-chamber clip's valid single-plane row per_study
    FALSE, so the study had no per_study numbers. Now no study row (an earlier run's page
    removed), the 4-chamber row TRUE with its note saying why it is single plane."""
    from medseg.batch import BatchOptions
    from medseg.batch.cohort import _measure
    from medseg.phantoms import echo_apical_phantom

    a4c = _clip_case(tmp_path, "p1_A4C", "a4c", 10, 0.7)
    ph = echo_apical_phantom("a2c", n_frames=10, seed=1, spacing=0.7)
    lab = ph.labels.astype(np.uint8)
    lab[1:][lab[1:] == 1] = 0  # LV on frame 0 only
    a2c = _labels_case(tmp_path, "p1_A2C", lab, ph.image)
    a2c.update(_measure(Path(a2c["output"]), BatchOptions(out_dir=tmp_path, measure=True), "p1_A2C"))
    (tmp_path / "pdf").mkdir()
    (tmp_path / "pdf" / "p1.pdf").write_bytes(b"%PDF an earlier run's study page")
    table = {r["case"]: r for r in _cohort(tmp_path, [a4c, a2c], pdf=True)}
    assert "p1" not in table and not (tmp_path / "pdf" / "p1.pdf").exists()
    row = table["p1_A4C"]
    assert row["per_study"] == "TRUE" and float(row["lv.ef_pct"]) == pytest.approx(a4c["cohort_row"]["lv.ef_pct"], abs=1e-9)
    assert row["measure_note"].startswith("single plane: biplane with p1_A2C not measured (the 2-chamber clip: EF over a clip needs the LV")


def test_one_clip_copied_as_both_views_is_not_a_biplane_study(tmp_path):
    """The 2-chamber case's labels are a copy of the 4-chamber clip's (one clip segmented twice
    under two names): no biplane row from one view; the 4-chamber row keeps its single-plane
    numbers, its note saying the two hold the same labels (as `measure A4C --a2c COPY` refuses)."""
    import shutil

    from medseg.batch import BatchOptions
    from medseg.batch.cohort import _measure

    a4c = _clip_case(tmp_path, "p1_A4C", "a4c", 10, 0.7)
    copy = tmp_path / "p1_A2C.nii.gz"
    shutil.copy(a4c["output"], copy)
    shutil.copy(str(a4c["output"]).replace(".nii.gz", ".json"), tmp_path / "p1_A2C.json")
    a2c = {"case": "p1_A2C", "status": "ok", "output": str(copy), "input": "p1_A2C.nii.gz"}
    a2c.update(_measure(copy, BatchOptions(out_dir=tmp_path, measure=True), "p1_A2C"))
    table = {r["case"]: r for r in _cohort(tmp_path, [a4c, a2c])}
    assert "p1" not in table
    assert table["p1_A4C"]["per_study"] == "TRUE" and table["p1_A4C"]["method"] == "single_plane_disks_clip"
    assert "hold the same labels (one clip given twice?)" in table["p1_A4C"]["measure_note"]
