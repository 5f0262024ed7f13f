"""`batch --measure --pdf` says how the images were read, as `medseg measure --pdf` does.

`medseg measure` puts the label sidecars' notes on how their images were read (a DICOM stack's
slices missing from the series, an echo screen's ultrasound region clipped, ...) into its
report's ``inputs``; `batch --measure` built its pages and cohort rows without them, so a batch
page said less than `medseg measure --pdf` on the same labels, and neither page showed the notes
that change the numbers (a missing slice: no area counted there; a region note: the pixel size
may not be that of what is labelled). Kept labels (saved by `segment`, beside the batch's
outputs) on small synthetic DICOM inputs: no model runs."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

if (_IO := str(Path(__file__).resolve().parents[1] / "io")) not in sys.path:  # the io tests' synthetic DICOM writers
    sys.path.insert(0, _IO)
from io_synth import us_region, write_cine_series, write_us_screen  # noqa: E402

from medseg._files import sha256_path  # noqa: E402
from medseg.cli import run_cli  # noqa: E402
from medseg.io import read_volume, write_labels  # noqa: E402
from medseg.measure.input_notes import IMAGE_NOTE_KEYS  # noqa: E402
from medseg.measure.study_text import caution_lines  # noqa: E402

NOTES = (*IMAGE_NOTE_KEYS, "missing_slices")
MISSING = 3  # the slice left out of the short-axis series
ROWS, COLS, TOP, LEFT, SIDE = 120, 160, 10, 30, 100  # the echo screen, the sector's place and size on it


def _kept(labels: np.ndarray, like, out: Path, source: Path, label_map: str) -> Path:
    """``labels`` written for ``like`` at ``out`` as `medseg segment` saves them (its sidecar with
    the image's notes; the input's sha256, so that batch keeps them and does not segment again)."""
    label_file, _ = write_labels(labels, like, out, label_map, provenance={"command": "segment", "input_sha256": sha256_path(source)})
    return label_file


def _gapped_stack(folder: Path) -> object:
    """A 7-slice short-axis series (one frame) with slice MISSING's image left out: read on the
    whole grid with that slice blank."""
    s = write_cine_series(folder, n_slices=7, n_phases=1, rows=24, cols=20, study_uid="1.2.826.0.1.3680043.8.498.7", seed=4)
    for p in sorted(folder.iterdir()):
        z = int(np.argmin(np.linalg.norm(s.ipps - np.asarray(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient, float), axis=1)))
        if z == MISSING:
            p.unlink()
    vol = read_volume(folder)
    assert vol.meta["missing_slices"] == [MISSING]
    return vol


def _stack_labels(vol, r: int) -> np.ndarray:
    """An LV of half-width ``r`` ringed by myocardium on every slice but the missing one."""
    lab = np.zeros(vol.shape, np.uint8)
    cy, cx = vol.shape[2] // 2, vol.shape[3] // 2
    lab[:, :, cy - r - 2:cy + r + 2, cx - r - 2:cx + r + 2] = 2
    lab[:, :, cy - r:cy + r, cx - r:cx + r] = 1
    lab[:, MISSING] = 0
    return lab


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> dict:
    """INPUT_DIR with a study's ED and ES series (``gap_ED``, ``gap_ES``: each missing slice
    MISSING) and an echo clip whose ultrasound region reaches past the screen (``echo``), their
    labels kept in OUT_DIR, and `batch --measure --pdf` run over them; the pages' reports seen."""
    import medseg.measure.study_pdf as sp

    root = tmp_path_factory.mktemp("notes")
    inp, out = root / "in", root / "out"
    out.mkdir()
    for case, r in (("gap_ED", 5), ("gap_ES", 3)):
        vol = _gapped_stack(inp / case)
        _kept(_stack_labels(vol, r), vol, out / f"{case}.nii.gz", inp / case, "lv=1,myo=2")
    clip = write_us_screen(inp / "echo.dcm", np.random.default_rng(1).integers(0, 200, (3, ROWS, COLS), dtype=np.uint8),
                           [us_region((TOP, LEFT, TOP + SIDE - 1, 400))])  # past the right edge: clipped
    vol = read_volume(clip)
    assert "clipped to" in vol.meta["us_region_note"]
    lab = np.zeros(vol.shape, np.uint8)
    for t, half in enumerate((16, 10, 14)):  # the LV largest at frame 0, smallest at 1
        lab[t, 0, 30:30 + 3 * half, 80 - half:80 + half] = 1
    _kept(lab, vol, out / "echo.nii.gz", clip, "lv=1,myo=2,la=3")
    seen: dict[str, dict] = {}
    real = sp.write_study_pdf

    def spy(rep, path, **kw):
        seen[Path(path).stem] = rep
        return real(rep, path, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(sp, "write_study_pdf", spy)
    try:
        assert run_cli(["batch", str(inp), "-o", str(out), "--auto", "--workers", "1", "--measure", "--pdf"]) == 0
    finally:
        mp.undo()
    return {"in": inp, "out": out, "reports": seen, "root": root}


def _measure(labels: list[str], where: Path, name: str) -> dict:
    """`medseg measure LABELS --pdf`'s report (its page at where/name.pdf)."""
    rep = where / f"{name}.json"
    assert run_cli(["measure", *labels, "-o", str(rep), "--pdf", str(where / f"{name}.pdf")]) == 0
    return json.loads(rep.read_text())


def _notes(inputs: dict) -> dict:
    return {k: inputs[k] for k in NOTES if k in inputs}


def _pdf_text(path: Path) -> str | None:
    """The PDF's words by poppler's pdftotext; None without poppler."""
    if shutil.which("pdftotext") is None:
        return None
    return " ".join(subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout.split())


def _cohort(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "cohort.csv", newline="", encoding="utf-8") as fh:
        return {r["case"]: r for r in csv.DictReader(fh)}


def test_batch_pages_carry_the_notes_measure_gives(batch, capsys):
    """Each page's report (a case's, the ED/ES study row's, the echo clip's) has the notes of
    `medseg measure` on the same labels, and the cohort rows (measured/<case>.json's stored row
    too) the cells of `measure --csv`'s row."""
    from medseg.measure.export import report_row

    out, reports = batch["out"], batch["reports"]
    assert sorted(reports) == ["echo", "gap", "gap_ED", "gap_ES"]
    want = {"gap_ED": _measure([str(out / "gap_ED.nii.gz")], batch["root"], "m_ed"),
            "gap": _measure(["--ed", str(out / "gap_ED.nii.gz"), "--es", str(out / "gap_ES.nii.gz")], batch["root"], "m_study"),
            "echo": _measure([str(out / "echo.nii.gz")], batch["root"], "m_echo")}
    capsys.readouterr()
    assert want["gap"]["inputs"]["missing_slices"] == [MISSING] and "clipped to" in want["echo"]["inputs"]["us_region_note"]
    for case, rep in want.items():
        assert _notes(reports[case]["inputs"]) == _notes(rep["inputs"]), case
    assert _notes(reports["gap_ES"]["inputs"]) == {"missing_slices": [MISSING]}
    cohort = _cohort(out)
    for case, rep in want.items():
        cells = {k: v for k, v in report_row(rep).items() if k.startswith("inputs.") and k.split(".", 1)[1] in NOTES}
        assert cells and {k: cohort[case][k] for k in cells} == {k: str(v) for k, v in cells.items()}, case
    stored = json.loads((out / "measured" / "gap_ED.json").read_text())["result"]["cohort_row"]
    assert stored["inputs.missing_slices"] == str(MISSING)
    assert cohort["gap_ES"]["inputs.us_region_note"] == "" and cohort["echo"]["inputs.missing_slices"] == ""


def test_the_pages_caution_missing_slices_and_the_region_note(batch, capsys):
    """The batch's pages and `measure --pdf`'s say which slice the series lacked and that the
    volumes count no area there, and the echo clip's the region note, word for word."""
    out, root = batch["out"], batch["root"]
    note = batch["reports"]["echo"]["inputs"]["us_region_note"]
    line = f"Slice {MISSING} is missing from the DICOM series: volumes count no area on it (--interpolate-missing fills it)."
    assert line in caution_lines(batch["reports"]["gap"]) and line in caution_lines(batch["reports"]["gap_ED"])
    assert f"Ultrasound region: {note}" in caution_lines(batch["reports"]["echo"])
    if shutil.which("pdftotext") is None:
        pytest.skip("no pdftotext")
    _measure([str(out / "gap_ED.nii.gz")], root, "m_ed")
    _measure([str(out / "echo.nii.gz")], root, "m_echo")
    capsys.readouterr()
    for pdf in (out / "pdf" / "gap.pdf", out / "pdf" / "gap_ED.pdf", root / "m_ed.pdf"):
        assert " ".join(line.split()) in _pdf_text(pdf), pdf.name
    for pdf in (out / "pdf" / "echo.pdf", root / "m_echo.pdf"):
        assert "Ultrasound region: " + " ".join(note.split()) in _pdf_text(pdf), pdf.name


def test_missing_slices_line_names_the_slices_and_what_the_volumes_make_of_them():
    """Several slices, a cine (all frames), --interpolate-missing (bridged); none: no line."""
    cine = {"inputs": {"missing_slices": [2, 5]}, "volume_curve_ml": {"lv": [1.0, 2.0]}}
    assert caution_lines(cine) == ["Slices 2, 5 (all frames) are missing from the DICOM series: volumes count no area on them "
                                   "(--interpolate-missing fills them)."]
    bridged = {"inputs": {"missing_slices": [4], "settings": {"interpolate_missing": True}}}
    assert caution_lines(bridged) == ["Slice 4 is missing from the DICOM series: volumes bridge it with interpolated area (--interpolate-missing)."]
    assert caution_lines({"inputs": {"missing_slices": []}}) == [] and caution_lines({"inputs": {}}) == []
    two = {"inputs": {"us_region_note": ["region a clipped", "region b ignored"]}}
    assert caution_lines(two) == ["Ultrasound region: region a clipped; region b ignored"]


def test_a_long_region_note_stays_in_the_caution_box(batch):
    """Every caution and a long several-regions note: the text stays on the page, and the table
    starts below the cautions' box."""
    from matplotlib.text import Text

    from medseg.measure.study_pdf import study_page

    rep = json.loads(json.dumps(batch["reports"]["gap_ED"]))
    rep["inputs"].update(labels_edited=["labels"], us_region_note="3 calibrated 2-D ultrasound regions on the screen: " + "another region "
                         "has 0.35 x 0.35 mm pixels: what is labelled there is measured at 0.7 x 0.7 mm, wrong for it; " * 4)
    fig = study_page(rep)
    fig.canvas.draw()
    renderer, width, height = fig.canvas.get_renderer(), fig.bbox.width, fig.bbox.height
    texts = [t for t in fig.findobj(Text) if t.get_text() and t.get_visible()]
    for t in texts:
        box = t.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= width + 0.5 and box.y0 >= 0 and box.y1 <= height + 0.5, t.get_text()[:60]
    missing = next((t for t in texts if t.get_text().startswith(f"Slice {MISSING} is missing")), None)
    table = next(t for t in texts if t.get_text() == "Measure")
    assert missing is not None, "no missing-slice caution on the page"
    assert table.get_window_extent(renderer).y1 < missing.get_window_extent(renderer).y0  # (y up: the table below)


def test_cautions_past_the_box_end_in_a_pointer_to_the_report(batch):
    """More cautions than the box's 8 lines: its last line ends saying the rest is in the report
    (they were cut off mid-sentence, "...the first, rows 20-179,", with nothing saying so)."""
    from medseg.measure.study_pdf import page_text, study_page

    rep = json.loads(json.dumps(batch["reports"]["gap_ED"]))
    rep["inputs"].update(labels_edited=["labels"], us_region_note="3 calibrated 2-D ultrasound regions on the screen: " + "another region "
                         "has 0.35 x 0.35 mm pixels: what is labelled there is measured at 0.7 x 0.7 mm, wrong for it; " * 8)
    texts = page_text(study_page(rep))
    ends = [t for t in texts if t.endswith(" ... (more in the report's inputs and flags)")]
    assert len(ends) == 1 and len(ends[0]) > len(" ... (more in the report's inputs and flags)")
    rep["inputs"].pop("us_region_note")
    assert not any(t.endswith("inputs and flags)") for t in page_text(study_page(rep)))
