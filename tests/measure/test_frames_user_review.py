"""What a core-lab user's run of ``segment --auto --frames ed,es`` then ``measure --pdf`` on a
real short-axis DICOM cine (Sunnybrook SCD0000501: two frames, expert LV contours only) showed:
the console's frame line, sparse labelled frames read as a clip, an RV-less study page, and the
image's frame-of-reference note kept in the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from measure_phantoms import LVPhantom, centred_affine, rasterise

from medseg.cli.segment_cmd import frames_line
from medseg.measure.qc import curve_closes
from medseg.measure.report import measure_cine
from medseg.measure.study_pdf import page_text, study_page

SHAPE = (9, 64, 64)
AFF = centred_affine((10.0, 1.5, 1.5), SHAPE, shift_mm=(0.3, 0.2, -3.3))
N = 12  # ED at frame 0, ES at frame 6


def test_frame_line_of_a_cine_segmented_whole_says_so():
    """A 2-frame cine (ED and ES only) given --frames ed,es: both frames are segmented, and the
    line said "the others are left empty" of frames that do not exist."""
    pick = {"ed": 1, "es": 0, "slices": [4, 5, 6], "seconds": 1.3}
    line = frames_line({"settings": {"frames": [0, 1]}, "frame_pick": pick}, 2)
    assert "left empty" not in line and "segmented all 2 (0, 1): the cine has no other frames" in line
    assert line.startswith("frames: ED frame 1, ES frame 0 by zero-click LV area on slices 4-6")
    assert "segmented 0, 11 of 30 (frames from 0; the others are left empty)" in frames_line({"settings": {"frames": [0, 11]}}, 30)


@pytest.fixture(scope="module")
def cycle():
    return np.stack([rasterise(LVPhantom(r_cav=20.0 + 4.0 * np.cos(2 * np.pi * t / N)), AFF, SHAPE) for t in range(N)])


@pytest.mark.parametrize("kept", [[0, 6, 5], [0, 6, 3]], ids=["es_neighbour", "mid_systole"])
def test_sparse_labelled_frames_are_not_read_as_a_clip(cycle, kept):
    """--frames ed,es,5 of a whole cycle (ED and ES found on every frame): three labelled frames
    of 12, whose steps are not neighbour steps, were judged a clip ending at ED and ES (4
    phase_at_clip_end warnings), while ed,es,9 was not."""
    cine = np.zeros_like(cycle)
    cine[kept] = cycle[kept]
    rep = measure_cine(cine, AFF, "lv=1,myo=2,rv=3")
    assert (rep["ed_frame"], rep["es_frame"]) == (0, 6)
    assert not [f for f in rep["flags"] if f["code"] == "phase_at_clip_end"]
    assert curve_closes([3.0, None, None, None, None, 1.0, 1.1]) is None and curve_closes([3.0, 2.0, None, 1.0]) is False


def test_a_contiguous_part_of_a_cycle_is_still_flagged(cycle):
    cine = np.zeros_like(cycle)
    cine[0:5] = cycle[0:5]  # frames 0-4: ES (6) outside them
    rep = measure_cine(cine, AFF, "lv=1,myo=2,rv=3")
    assert {f["phase"] for f in rep["flags"] if f["code"] == "phase_at_clip_end" and f["structure"] == "lv"} == {"ed", "es"}


@pytest.mark.parametrize("missing", [None, float("nan")], ids=["from_json", "in_memory"])
def test_study_page_of_lv_only_labels_draws_no_rv_bar(missing):
    """Expert LV contours (no RV): the volume bars read "RV (EF nan%)" (a report read from JSON,
    None, raised TypeError)."""
    rep = {"lv": {"edv_ml": 221.2, "esv_ml": 164.8, "sv_ml": 56.4, "ef_pct": 25.4},
           "rv": {"edv_ml": missing, "esv_ml": missing, "sv_ml": missing, "ef_pct": missing}, "lv_mass_g": 137.1, "flags": []}
    text = page_text(study_page(rep))
    assert "LV (EF 25%)" in text and not [t for t in text if "RV (EF" in t or "nan" in t]


def test_measure_keeps_the_images_frame_of_reference_note(tmp_path):
    """segment's sidecar keeps the image's frame_of_reference_note (a series whose images carry
    several FrameOfReferenceUIDs); measure copied only the time and heart-rate notes."""
    from medseg.cli import run_cli
    from medseg.io import write_labels
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=3, n_slices=6, shape=(64, 64), seed=3)
    note = "the 22 images carry 22 FrameOfReferenceUIDs: stacked by their positions as one frame of reference"
    for name, t in (("ed", ph.info["ed_frame"]), ("es", ph.info["es_frame"])):
        img = ph.image.phase(t)
        write_labels(ph.labels[t], img.with_array(img.array, meta={**img.meta, "frame_of_reference_note": note}), tmp_path / f"{name}.nii.gz",
                     ph.label_map)
    assert run_cli(["measure", "--ed", str(tmp_path / "ed.nii.gz"), "--es", str(tmp_path / "es.nii.gz"), "-o", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["inputs"]["frame_of_reference_note"] == note


@pytest.mark.parametrize("rv_edv", [None, float("nan")])
def test_volume_bars_leave_out_a_structure_with_no_ed_volume(rv_edv):
    """``measure --plots`` volumes.png of LV-only labels (expert LV contours) drew an empty bar
    named "RV (EF nan%)" (and a report read back from JSON, None, raised TypeError)."""
    from matplotlib.figure import Figure

    from medseg.measure.plots import draw_ed_es_volumes

    ax = Figure().add_subplot()
    draw_ed_es_volumes(ax, {"lv": {"edv_ml": 150.0, "esv_ml": 60.0, "ef_pct": 60.0},
                            "rv": {"edv_ml": rv_edv, "esv_ml": rv_edv, "ef_pct": rv_edv}})
    assert [t.get_text() for t in ax.get_xticklabels()] == ["LV (EF 60%)"]


@pytest.mark.parametrize("raw, shown", [("20120307", "2012-03-07"), ("20120000", "2012"), ("20120300", "2012-03"), ("2012", "2012")])
def test_study_page_shows_dicom_dates_readably(raw, shown):
    """The page's header printed Sunnybrook's anonymised StudyDate as it is, "20120000"."""
    from medseg.measure.study_text import header_lines

    lines = header_lines({"inputs": {"study": {"patient_id": "P1", "study_date": raw}}})
    assert f"study date {shown}" in lines[0] and (raw == shown or raw not in lines[0])
