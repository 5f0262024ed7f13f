"""`medseg measure --pdf`: one A4 page per study (medseg.measure.study_pdf): a valid one-page PDF,
the report's numbers and ranges on it, nothing drawn empty, nothing written on failure, and text
that stays on the page for long ids and many flags."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest
from measure_phantoms import LVPhantom, centred_affine, echo_view, rasterise

from medseg.cli import run_cli
from medseg.measure.study_pdf import A4_IN, page_text, study_page
from medseg.measure.study_text import number_rows

SHAPE = (9, 48, 48)
AFF = centred_affine((10.0, 1.5, 1.5), SHAPE)


def _save(path, arr, aff=AFF):
    nib.save(nib.Nifti1Image(np.asarray(arr).T.copy(), aff), str(path))
    return str(path)


@pytest.fixture(scope="module")
def sax(tmp_path_factory):
    d = tmp_path_factory.mktemp("study_pdf")
    ed = rasterise(LVPhantom(r_cav=20.0), AFF, SHAPE)
    es = rasterise(LVPhantom(r_cav=14.0, thickness=lambda t: np.full_like(t, 11.0)), AFF, SHAPE)
    frames = [rasterise(LVPhantom(r_cav=17.0 + 3 * np.cos(2 * np.pi * t / 6)), AFF, SHAPE) for t in range(6)]
    return {"dir": d, "ed": _save(d / "ed.nii.gz", ed), "es": _save(d / "es.nii.gz", es), "cine": _save(d / "cine.nii.gz", np.stack(frames)),
            "image": _save(d / "img.nii.gz", ((ed > 0) * 300.0 + 50.0).astype(np.float32)), "empty": _save(d / "empty.nii.gz", np.zeros_like(ed)),
            "other_grid": _save(d / "other.nii.gz", np.zeros((5, 20, 20), np.float32))}


def _one_page_pdf(path) -> bytes:
    data = path.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", data)) == 1  # one page object (the tree is /Pages)
    box = [float(v) for v in re.search(rb"/MediaBox\s*\[\s*([\d.\s]+)\]", data).group(1).split()]
    assert box[2] == pytest.approx(A4_IN[0] * 72, abs=1) and box[3] == pytest.approx(A4_IN[1] * 72, abs=1)  # A4 portrait
    return data


def _pdf_text(path) -> str | None:
    """The PDF's text by poppler's pdftotext (the fonts are embedded as TrueType: searchable); None without poppler."""
    if shutil.which("pdftotext") is None:
        return None
    return " ".join(subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout.split())


def _page(report, **kw):
    fig = study_page(report, **kw)
    return fig, " ".join(page_text(fig))


def test_ed_es_page_has_numbers_ranges_bullseyes_and_contours(sax, tmp_path, capsys):
    out, pdf = tmp_path / "r.json", tmp_path / "study.pdf"
    assert run_cli(["measure", "--ed", sax["ed"], "--es", sax["es"], "-o", str(out), "--pdf", str(pdf), "--height-cm", "175",
                    "--weight-kg", "80", "--sex", "F", "--image", sax["image"], "--image", sax["image"], "--label-map", "lv=1,myo=2,rv=3"]) == 0
    _one_page_pdf(pdf)
    assert f"study page -> {pdf}" in " ".join(capsys.readouterr().out.split())
    rep = json.loads(out.read_text())
    fig, text = _page(rep, labels={"ED": nib.load(sax["ed"]).get_fdata().T, "ES": nib.load(sax["es"]).get_fdata().T}, label_map="lv=1,myo=2,rv=3")
    for v, unit in ((rep["lv"]["edv_ml"], "mL"), (rep["lv"]["esv_ml"], "mL"), (rep["lv"]["ef_pct"], "%"), (rep["lv_mass_g"], "g"),
                    (rep["indexed"]["lv_edv_ml_m2"], "mL/m²"), (rep["wall_thickening_pct"]["global"], "%")):
        assert f"{v:.1f} {unit}" in text
    assert "51–71 %" in text and "for females" in text  # LVEF range of women (UK Biobank), the sex given
    assert "AHA wall thickness" in text and "Systolic wall thickening" in text and "ED and ES volumes" in text
    assert "ED: slice" in text and "ES: slice" in text and "Label files: ED: ed.nii.gz, ES: es.nii.gz" in text
    assert "not made by a medseg model" in text and f"medseg {rep['inputs']['medseg_version']}" in text
    written = _pdf_text(pdf)
    if written is not None:  # the numbers can be found (and copied) in the PDF itself
        assert "Cardiac measurements: ed" in written and f"{rep['lv']['ef_pct']:.1f} %" in written and "ED: slice" in written


def test_out_of_range_values_are_marked_as_the_report_flags_them():
    rep = {"lv": {"edv_ml": 250.0, "esv_ml": 200.0, "sv_ml": 50.0, "ef_pct": 20.0}, "rv": {"edv_ml": None, "esv_ml": None, "sv_ml": None, "ef_pct": None},
           "lv_mass_g": 150.0, "indexed": {"lv_edv_ml_m2": 125.0, "lv_mass_g_m2": 75.0, "rv_edv_ml_m2": None}, "sex": "M", "bsa_m2": 2.0,
           "bsa_method": "mosteller", "flags": [{"code": "lvef_low", "reference": "cmr_lvef_pct", "severity": "info", "message": "lvef 20 %"},
                                                {"code": "lv_mass_index_high", "reference": "cmr_lv_mass_index_g_m2", "severity": "info", "message": "m"}]}
    rows = {r.measure: r for r in number_rows(rep)}
    assert rows["LV ejection fraction"].mark == "low" and rows["LV ejection fraction"].normal == "48–68 %"  # men's range
    assert rows["LV mass"].mark == "high" and rows["LV mass"].indexed == "75.0 g/m²" and rows["LV mass"].normal == "35–71 g/m²"
    assert rows["LV end-diastolic volume"].mark == "" and rows["LV end-diastolic volume"].indexed == "125.0 mL/m²"
    assert not any(m.startswith("RV") for m in rows)  # null values are left out, not drawn empty
    # a child's height: the report applied no range, the page shows none either
    child = {**rep, "flags": [{"code": "reference_ranges_not_applied", "severity": "info", "message": "child"}]}
    assert {r.normal for r in number_rows(child) if r.normal} == {"not applied (child)"}


def test_cine_page_draws_the_curve_and_names_its_frames(sax, tmp_path):
    out, pdf = tmp_path / "c.json", tmp_path / "c.pdf"
    assert run_cli(["measure", sax["cine"], "-o", str(out), "--pdf", str(pdf), "--label-map", "lv=1,myo=2,rv=3"]) == 0
    _one_page_pdf(pdf)
    rep = json.loads(out.read_text())
    _, text = _page(rep)
    assert "Volume over the cycle" in text and f"cine of 6 frames (LV ED frame {rep['ed_frame']}, ES frame {rep['es_frame']})" in text


def test_one_phase_page_leaves_out_what_it_lacks(sax, tmp_path):
    out, pdf = tmp_path / "o.json", tmp_path / "o.pdf"
    assert run_cli(["measure", sax["ed"], "-o", str(out), "--pdf", str(pdf), "--label-map", "lv=1,myo=2,rv=3"]) == 0
    _one_page_pdf(pdf)
    rep = json.loads(out.read_text())
    fig, text = _page(rep)
    assert f"{rep['volumes_ml']['lv']:.1f} mL" in text and "Volumes (one phase)" in text and "AHA wall thickness" in text
    # no ED/ES: no thickening bullseye; no body data: no indexed or normal-range column, no body line
    assert "thickening" not in text and "Indexed" not in text and "Normal (adult)" not in text and "Body:" not in text


@pytest.mark.parametrize("spacing", [None, "0.5"], ids=["no_spacing", "spacing"])
def test_echo_pages(tmp_path, spacing):
    from PIL import Image

    for k, w, L in (("ed", 22.0, 80.0), ("es", 17.0, 70.0)):
        Image.fromarray(echo_view(w, L, True, px=1.0).astype(np.uint8)).save(tmp_path / f"p1_4CH_{k.upper()}_gt.png")
    out, pdf = tmp_path / "e.json", tmp_path / "e.pdf"
    argv = ["measure", "--ed", str(tmp_path / "p1_4CH_ED_gt.png"), "--es", str(tmp_path / "p1_4CH_ES_gt.png"), "--label-map", "lv=1,myo=2,la=3",
            "-o", str(out), "--pdf", str(pdf)] + (["--pixel-spacing", spacing] if spacing else [])
    assert run_cli(argv) == 0
    _one_page_pdf(pdf)
    rep = json.loads(out.read_text())
    _, text = _page(rep, labels={"ED": np.zeros((1, 8, 8), int)}, label_map="lv=1,myo=2,la=3")
    assert "Echo, single-plane method of disks" in text and f"{rep['lv']['ef_pct']:.1f} %" in text and "52–74 %" in text  # echo LVEF range
    assert "AHA" not in text and "Wall thickness" not in text  # no short-axis numbers on an echo page
    written = _pdf_text(pdf)
    assert written is None or "Cardiac measurements: p1 " in written  # the study, as batch names it, not the view's file
    if spacing:
        assert f"{rep['lv']['edv_ml']:.1f} mL" in text and "ED and ES volumes" in text
    else:  # EF only: no volume row, no empty volume plot
        assert "end-diastolic volume" not in text and "ED and ES volumes" not in text


@pytest.mark.parametrize("extra, message", [
    (["--pdf", "{dir}/page.png"], "name it .pdf"),
    (["--pdf", "{dir}/page.pdf", "--csv", "{dir}/page.pdf"], "is both the study page and the CSV"),
    (["--pdf", "{dir}/page.pdf", "--plots", "{dir}/page.pdf"], "is both the plots folder and the study page"),
    (["--pdf", "{ed}"], "name it .pdf"),
    (["--pdf", "{dir}/page.pdf", "--image", "{other_grid}"], "not on the labels' grid"),
])
def test_pdf_refused_writes_nothing(sax, tmp_path, capsys, extra, message):
    out = tmp_path / "r.json"
    argv = ["measure", sax["ed"], "-o", str(out), "--label-map", "lv=1,myo=2,rv=3", *[a.format(**{**sax, "dir": tmp_path}) for a in extra]]
    assert run_cli(argv) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists() and not (tmp_path / "page.pdf").exists() and not list(tmp_path.glob("*.tmp*"))


def test_failed_measure_writes_no_pdf(sax, tmp_path):
    pdf = tmp_path / "p.pdf"
    assert run_cli(["measure", sax["empty"], "-o", str(tmp_path / "r.json"), "--pdf", str(pdf), "--label-map", "lv=1,myo=2,rv=3"]) != 0
    assert not pdf.exists() and not list(tmp_path.iterdir())


def test_image_with_pdf_alone_is_accepted(sax, tmp_path):
    """--image draws under the page's contours too: it needs --plots or --pdf, not --plots only."""
    pdf = tmp_path / "p.pdf"
    assert run_cli(["measure", sax["ed"], "-o", str(tmp_path / "r.json"), "--pdf", str(pdf), "--image", sax["image"], "--label-map", "lv=1,myo=2,rv=3"]) == 0
    _one_page_pdf(pdf)


def test_long_ids_many_flags_and_cautions_stay_on_the_page(sax, tmp_path):
    out = tmp_path / "r.json"
    assert run_cli(["measure", "--ed", sax["ed"], "--es", sax["es"], "-o", str(out), "--label-map", "lv=1,myo=2,rv=3"]) == 0
    rep = json.loads(out.read_text())
    # CJK: escapes on a machine without a CJK font, measured as drawn
    rep["inputs"]["study"] = {"patient_id": "患者" * 30 + "ID" + "W" * 200, "study_date": "2024-03-05", "series_description": "cine retro " * 20}
    rep["inputs"]["labels_edited"] = ["ed"]
    rep["inputs"]["segmentation"] = {"ed": {"model_id": "m" * 120, "adapter_id": "cmr-cine", "needs_review": True}}
    rep["flags"] = rep["flags"] + [{"code": "missing_slice", "severity": "warning", "slice": i, "message": f"slice {i}: " + "gap " * 60} for i in range(40)]
    conf = {"ed": {"volume": {"lv": 0.95, "myo": 0.62, "rv": 0.9}, "thresholds": {"volume": 0.8}}}
    fig, text = _page(rep, confidence=conf, source="x" * 300 + ".json")
    assert "Labels edited by hand since medseg wrote them (ED)" in text and "Needs review: medseg flagged the segmentation (ED)" in text
    assert "Confidence, ED: LV 0.95, MYO 0.62, RV 0.90; below the review threshold 0.80: MYO" in text
    assert "more: see the flags in xxx" in text  # 40 long flags do not fit: the rest is counted, not cut off the page
    fig.canvas.draw()
    renderer, width, height = fig.canvas.get_renderer(), fig.bbox.width, fig.bbox.height
    from matplotlib.text import Text

    for t in fig.findobj(Text):
        if t.get_text() and t.get_visible():
            box = t.get_window_extent(renderer)
            assert box.x0 >= 0 and box.x1 <= width + 0.5 and box.y0 >= 0 and box.y1 <= height + 0.5, t.get_text()[:60]


def test_model_labels_page_says_model_review_and_confidence(tmp_path, monkeypatch):
    """Labels `segment` wrote: the page names the model and adapter, cautions that medseg flagged
    them for review, and gives the sidecar's volume confidences against their threshold."""
    from medseg.io import write_labels
    from medseg.measure import study_pdf
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=4, n_slices=6, shape=(48, 48), spacing=(10.0, 1.5, 1.5), seed=0, ef=0.6, pose_jitter=False)
    conf = {"volume": {"lv": 0.91, "myo": 0.55}, "thresholds": {"volume": 0.8, "slice": 0.6}, "slices": [], "needs_review": True, "flags": []}
    prov = {"model_id": "default", "model_sha256": "a" * 64, "adapter_id": "cmr-cine", "adapter_sha256": "b" * 64, "needs_review": True,
            "confidence": conf}
    lab = tmp_path / "p9_frame01.nii.gz"
    write_labels(ph.labels, ph.image, lab, "lv=1,myo=2,rv=3", provenance=prov)
    seen = []
    real = study_pdf.study_page
    monkeypatch.setattr(study_pdf, "study_page", lambda *a, **kw: seen.append(page_text(fig := real(*a, **kw))) or fig)
    assert run_cli(["measure", str(lab), "-o", str(tmp_path / "r.json"), "--pdf", str(tmp_path / "p.pdf")]) == 0
    _one_page_pdf(tmp_path / "p.pdf")
    text = " ".join(seen[0])
    assert "Cardiac measurements: p9" in text and "Segmentation: model default + adapter cmr-cine" in text
    assert "Needs review: medseg flagged the segmentation (labels)" in text
    assert "Confidence, labels: LV 0.91, MYO 0.55; below the review threshold 0.80: MYO" in text


def test_overlay_of_views_of_different_sizes(tmp_path):
    """Echo ED and ES views saved apart, each cropped to its view (130 x 104 and 120 x 94 px): the
    overlay (--plots and the study page) crashed on one crop box for both ("inhomogeneous shape")."""
    from medseg.measure import plots

    ed, es = (echo_view(w, L, True, px=1.0)[None].astype(int) for w, L in ((22.0, 80.0), (17.0, 70.0)))
    assert ed.shape != es.shape
    assert plots.overlay_png({"ED": ed, "ES": es}, "lv=1,myo=2,la=3", tmp_path / "o.png").read_bytes()[:4] == b"\x89PNG"
    _, text = _page({"lv": {"ef_pct": 50.0}, "method": "single_plane_disks_a4c", "flags": []}, labels={"ED": ed, "ES": es}, label_map="lv=1,myo=2,la=3")
    assert "ED" in text and "ES" in text
