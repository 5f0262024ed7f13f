"""An echo user's afternoon with two full-screen clips: `medseg info` on the clip, then `medseg
measure A4C_CLIP --a2c A2C_CLIP --pdf --plots`.

Before: `info` did not show the ultrasound region that zero-click is confined to (nor a note
that it was clipped or ignored); the study page and overlay.png of two clips titled the
4-chamber panels "ED: frame 2 (mid-ventricular)" (a short-axis word, on an apical view, and
not saying which of the two views is drawn), and the header listed the files as
"labels: a4c.nii.gz, A2C: a2c.nii.gz"."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from measure_phantoms import echo_view

if (_IO := str(Path(__file__).resolve().parents[1] / "io")) not in sys.path:  # the io tests' synthetic DICOM writers
    sys.path.insert(0, _IO)
from io_synth import us_region, write_us_screen  # noqa: E402

from medseg.cli import run_cli

MAP = "lv=1,myo=2,la=3"
SHAPE = (430, 340)


# -- medseg info on a full-screen clip ---------------------------------------------------------
def _us_clip(path: Path, box_xyxy: tuple[int, int, int, int] | None, rows: int = 120, cols: int = 160) -> str:
    """A 3-frame US multi-frame DICOM screen; ``box_xyxy``: its 2-D region (MinX0, MinY0, MaxX1, MaxY1), 0.7 mm."""
    regions = None if box_xyxy is None else [us_region((box_xyxy[1], box_xyxy[0], box_xyxy[3], box_xyxy[2]))]
    return str(write_us_screen(path, np.random.default_rng(0).integers(0, 200, (3, rows, cols), dtype=np.uint8), regions))


def _info(argv, capsys) -> str:
    assert run_cli(["info", *argv]) == 0
    return " ".join(capsys.readouterr().out.replace("│", " ").split())


def test_info_shows_the_ultrasound_region(tmp_path, capsys):
    """The region's box (where zero-click looks, whose pixel size is the spacing) in the table
    and the JSON; a box reaching outside the screen: the note that it was clipped; no region: no row."""
    clip = _us_clip(tmp_path / "a4c.dcm", (30, 10, 129, 99))
    d = json.loads(capsys.readouterr().out if run_cli(["info", "--json", clip]) == 0 else "{}")
    assert d["us_region"] == [10, 30, 99, 129] and "us_region_note" not in d
    text = _info([clip], capsys)
    assert "us region rows 10-99, columns 30-129: the 2-D image" in text and "zero-click looks only there" in text
    wide = _us_clip(tmp_path / "wide.dcm", (30, 10, 400, 99))
    d = json.loads(capsys.readouterr().out if run_cli(["info", "--json", wide]) == 0 else "{}")
    assert d["us_region"] == [10, 30, 99, 159] and "clipped to rows 10-99, columns 30-159" in d["us_region_note"]
    assert "reaches outside the 120x160 image" in _info([wide], capsys)
    assert "us region" not in _info([_us_clip(tmp_path / "plain.dcm", None)], capsys)


# -- measure two clips: the page and the overlay say what they show ----------------------------
def _nifti(path: Path, arr: np.ndarray, px: float = 0.5) -> str:
    """(T, Y, X) labels as a 2-D + time NIfTI ((X, Y, 1, T)), no sidecar."""
    nib.save(nib.Nifti1Image(np.asarray(arr)[:, None].T.astype(np.int16).copy(), np.diag([px, px, 1.0, 1.0])), str(path))
    return str(path)


@pytest.fixture
def titles(monkeypatch):
    """Every overlay panel title drawn (overlay.png and the study page), and the page's text."""
    from medseg.measure import plots, study_pdf

    seen: dict[str, list[str]] = {"panels": [], "page": []}
    draw, page = plots.draw_overlay, study_pdf.study_page

    def drawn(ax, labels_yx, label_map, image_yx=None, spacing_yx=(1.0, 1.0), box=None, title="", **kw):
        seen["panels"].append(title)
        return draw(ax, labels_yx, label_map, image_yx, spacing_yx, box, title, **kw)

    def paged(report, **kw):
        fig = page(report, **kw)
        seen["page"] += study_pdf.page_text(fig)
        return fig

    monkeypatch.setattr(plots, "draw_overlay", drawn)
    monkeypatch.setattr(study_pdf, "study_page", paged)
    return seen


def test_two_clip_panels_name_the_view_and_no_short_axis_slice(tmp_path, titles):
    """The 4-chamber clip's ED and ES are drawn as "A4C ED: frame 1" / "A4C ES: frame 3" in the
    PDF and in overlay.png (not "ED: frame 1 (mid-ventricular)"); the header names the clips."""
    c4 = np.stack([echo_view(w, 60 + w, True, shape=SHAPE) for w in (19.0, 21.0, 18.0, 15.0, 16.0)])
    c2 = np.stack([echo_view(w, 55 + w, True, shape=SHAPE) for w in (14.0, 13.0, 16.0, 18.0, 17.0, 15.0)])
    a4c, a2c = _nifti(tmp_path / "a4c.nii.gz", c4), _nifti(tmp_path / "a2c.nii.gz", c2)
    assert run_cli(["measure", a4c, "--a2c", a2c, "--label-map", MAP, "-o", str(tmp_path / "r.json"),
                    "--plots", str(tmp_path / "plots"), "--pdf", str(tmp_path / "study.pdf")]) == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert (rep["clips"]["a4c"]["ed_frame"], rep["clips"]["a4c"]["es_frame"]) == (1, 3)
    assert titles["panels"] == ["A4C ED: frame 1", "A4C ES: frame 3"] * 2  # the page, then overlay.png
    page = " ".join(titles["page"])
    assert "mid-ventricular" not in page and "Label files: A4C clip: a4c.nii.gz, A2C clip: a2c.nii.gz" in page
    assert "A4C clip of 5 frames (ED frame 1, ES frame 3), A2C clip of 6 frames (ED frame 3, ES frame 1)" in page


def test_one_clip_page_says_no_mid_ventricular_slice(tmp_path, titles):
    """One apical clip (single plane): its ED and ES panels name the frames, not a
    mid-ventricular slice an apical view does not have."""
    c4 = np.stack([echo_view(w, 60 + w, True, shape=SHAPE) for w in (19.0, 21.0, 18.0, 15.0, 16.0)])
    assert run_cli(["measure", _nifti(tmp_path / "a4c.nii.gz", c4), "--label-map", MAP, "-o", str(tmp_path / "r.json"),
                    "--pdf", str(tmp_path / "study.pdf")]) == 0
    assert titles["panels"] == ["ED: frame 1", "ES: frame 3"]
    assert "Label files: labels: a4c.nii.gz" in " ".join(titles["page"])  # one file: the words as before


# -- measure two clips: one view given twice ----------------------------------------------------
def _segmented(path: Path, clip: np.ndarray, image_sha: str, series: str | None = None) -> str:
    """Labels as `medseg segment` writes them: a sidecar whose provenance names the image segmented
    (``series``: the --series of a DICOM study folder)."""
    from medseg.io import Volume, write_labels

    lab = clip[:, None].astype(np.uint8)
    like = Volume(np.zeros(lab.shape, np.uint8), np.diag([0.5, 0.5, 1.0, 1.0]), frame_times_s=np.arange(len(lab)) * 0.04, modality="US")
    prov = {"input": f"/data/{image_sha}.dcm", "input_sha256": image_sha * 8, **({"series": series} if series else {})}
    return str(write_labels(lab, like, path, MAP, prov)[0])


def _measure_err(argv, capsys) -> tuple[int, str]:
    rc = run_cli(["measure", *argv])
    return rc, " ".join(capsys.readouterr().err.split())


def test_one_clip_segmented_twice_is_no_biplane(tmp_path, capsys):
    """The 4-chamber clip segmented whole and with --frames ed,es, given as both clips, gave a
    "biplane" EF of one view (50.4 % = that clip's single plane): refused when the sidecars
    name one image, or when a file's name starts with the other view."""
    c4 = np.stack([echo_view(w, 60 + w, True, shape=SHAPE) for w in (19.0, 21.0, 18.0)])
    c2 = np.stack([echo_view(w, 55 + w, True, shape=SHAPE) for w in (14.0, 16.0, 13.0)])
    only = c4 * (np.arange(3) > 0)[:, None, None]  # --frames ed,es: frames 1 (ED) and 2 (ES) labelled, the others empty
    whole, edes = _segmented(tmp_path / "clip_whole.nii.gz", c4, "a"), _segmented(tmp_path / "clip_edes.nii.gz", only, "a")
    out = tmp_path / "r.json"
    rc, err = _measure_err([whole, "--a2c", edes, "-o", str(out)], capsys)
    assert rc != 0 and "clip_whole.nii.gz and clip_edes.nii.gz were both segmented from a.dcm (their sidecars say)" in err
    assert not out.exists()
    other = _segmented(tmp_path / "clip_2.nii.gz", c2, "b")  # another image: measured
    assert run_cli(["measure", whole, "--a2c", other, "-o", str(out)]) == 0 and json.loads(out.read_text())["method"] == "biplane_disks"
    # two series of one DICOM study folder (segment DIR --series A4C / --series A2C): two images, measured
    s4, s2 = _segmented(tmp_path / "s_4.nii.gz", c4, "d", "A4C"), _segmented(tmp_path / "s_2.nii.gz", c2, "d", "A2C")
    assert run_cli(["measure", s4, "--a2c", s2, "-o", str(tmp_path / "rs.json")]) == 0
    rc, err = _measure_err([s4, "--a2c", _segmented(tmp_path / "s_4b.nii.gz", only, "d", "A4C"), "-o", str(tmp_path / "rs2.json")], capsys)
    assert rc != 0 and "were both segmented from d.dcm" in err
    # names that start with the view (no study before it) are checked as <study>_<view> names are
    a4c, a4c_edes = _nifti(tmp_path / "a4c.nii.gz", c4), _nifti(tmp_path / "a4c_edes.nii.gz", only)
    rc, err = _measure_err([a4c, "--a2c", a4c_edes, "--label-map", MAP, "-o", str(tmp_path / "r2.json")], capsys)
    assert rc != 0 and "a4c_edes.nii.gz is named the 4-chamber view, but was given as --a2c" in err
    a2c = _nifti(tmp_path / "A2C_clip.nii.gz", c2)
    rc, err = _measure_err([a2c, "--a2c", a4c, "--label-map", MAP, "-o", str(tmp_path / "r3.json")], capsys)
    assert rc != 0 and "A2C_clip.nii.gz is named the 2-chamber view, but was given as LABELS" in err
    assert run_cli(["measure", a4c, "--a2c", a2c, "--label-map", MAP, "-o", str(tmp_path / "r4.json")]) == 0
