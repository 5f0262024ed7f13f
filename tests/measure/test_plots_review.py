"""The review sheet (medseg.measure.sheets.review_panels / review_sheet_png)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from medseg.measure.sheets import MAX_SHEET_SLICES, review_panels, review_sheet_figure, review_sheet_png

MAP = "lv=1,myo=2,rv=3"


def _cine(n_frames: int, n_slices: int, lv_sizes: list[int]) -> np.ndarray:
    lab = np.zeros((n_frames, n_slices, 40, 40), np.uint8)
    for t, r in enumerate(lv_sizes):
        for z in range(1, n_slices - 1):
            lab[t, z, 20 - r - 3 : 20 + r + 3, 20 - r - 3 : 20 + r + 3] = 2
            lab[t, z, 20 - r : 20 + r, 20 - r : 20 + r] = 1
    return lab


def test_panels_show_ed_and_es_of_a_cine_with_flags_and_confidence():
    lab = _cine(5, 6, [9, 7, 4, 6, 8])  # LV largest at frame 0 (ED), smallest at frame 2 (ES)
    review = {"flags": [{"code": "needs_review", "level": "slice", "structure": "lv", "frame": 2, "slice": 3},
                        {"code": "needs_review", "level": "volume", "structure": "myo", "message": "myo: low"}]}
    conf = {"slices": [{"structure": "lv", "frame": 0, "slice": 1, "confidence": 0.9},
                       {"structure": "myo", "frame": 0, "slice": 1, "confidence": 0.7}]}
    panels = review_panels(lab, MAP, review, conf)
    assert [(p["frame"], p["slice"]) for p in panels] == [(0, z) for z in range(1, 5)] + [(2, z) for z in range(1, 5)]
    flagged = [(p["frame"], p["slice"]) for p in panels if p["flags"]]
    assert flagged == [(2, 3)] and panels[0]["confidence"] == 0.7 and panels[1]["confidence"] is None


def test_long_stacks_keep_flagged_slices():
    lab = _cine(1, 30, [6])
    review = {"flags": [{"code": "myo_not_enclosing_lv", "level": "slice", "structure": "myo", "frame": 0, "slice": 2}]}
    panels = review_panels(lab, MAP, review)
    zs = [p["slice"] for p in panels]
    assert len(zs) == MAX_SHEET_SLICES and 2 in zs and zs == sorted(zs)
    # the sheet says which labelled slices it left out (it read as every labelled slice)
    from medseg.measure.sheets import left_out_text

    labelled = [z for z in range(30) if lab[0, z].any()]
    gone = [z for z in labelled if z not in zs]
    (line,) = left_out_text(lab, panels, [0])
    assert line.startswith(f"frame 0: {MAX_SHEET_SLICES} of {len(labelled)} labelled slices shown (z{gone[0]}, ")
    assert left_out_text(lab[:, :10], review_panels(lab[:, :10], MAP, review), [0]) == []


def test_sheet_png_is_written(tmp_path):
    lab = _cine(2, 5, [8, 5])
    img = np.random.default_rng(0).random(lab.shape)
    path = review_sheet_png(img, lab, MAP, tmp_path / "s.png", {"flags": []}, None, title="case")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 500


def test_sheet_header_and_legend_never_cover_the_panels():
    # a 2-D cine (one slice, two frames shown) with five volume flags: the header grew over the
    # panel titles and the legend over the header on the narrow two-panel sheet
    lab = _cine(2, 3, [8, 5])[:, 1:2]
    img = np.random.default_rng(0).random(lab.shape)
    flags = [{"code": "needs_review", "level": "volume", "message": f"frame {i}: the RV never touches the myocardium (septum)"}
             for i in range(6)]
    fig = review_sheet_figure(img, lab, MAP, {"flags": flags}, None, title="001_LA_CINE.nii.gz")
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    header = fig.texts[0].get_window_extent(renderer)
    legend = fig.legends[0].get_window_extent(renderer)
    assert "... 2 more" in fig.texts[0].get_text()
    assert not header.overlaps(legend)
    for ax in fig.axes:
        panel = ax.get_tightbbox(renderer)  # the image with its title
        assert not header.overlaps(panel) and not legend.overlaps(panel)
    assert header.x1 <= fig.bbox.x1 and header.y1 <= fig.bbox.y1  # inside the figure


def test_cohort_panels_show_the_one_phase_volume_only_of_one_phase_studies(tmp_path):
    """The cohort overview's "LV volume, one phase" panel holds the studies measured on one
    phase; a study with ED and ES has that volume as its EDV, which its own panel shows."""
    from medseg.measure.sheets import cohort_panels, cohort_png

    cines = [{"case": f"c{i}", "lv.ef_pct": 50 + i, "lv.edv_ml": 150 + i, "volumes_ml.lv": 150 + i} for i in range(3)]
    panels = dict(cohort_panels(cines))
    assert "LV volume, one phase (mL)" not in panels and [v for _, v in panels["LV EDV (mL)"]] == [150, 151, 152]
    single = [{"case": f"s{i}", "volumes_ml.lv": 90.0 + i, "lv.edv_ml": ""} for i in range(2)]
    panels = dict(cohort_panels(cines + single))
    assert panels["LV volume, one phase (mL)"] == [("s0", 90.0), ("s1", 91.0)]
    import warnings

    with warnings.catch_warnings():  # the one flagged study is only in the last panel: the legend still has its entry
        warnings.simplefilter("error")
        assert cohort_png(cines + single, tmp_path / "c.png", {"s1"}).stat().st_size > 0


def test_figures_show_a_ct_in_its_cardiac_window():
    from medseg.io.volume import Volume
    from medseg.review import display_array

    arr = np.tile(np.array([-1000.0, 0.0, 300.0, 1500.0]), (1, 1, 8, 2))  # (1, 1, 8, 8)
    ct = Volume(arr, np.eye(4), modality="CT")
    assert display_array(ct)[0, 0, 0, :4].tolist() == [-250.0, 0.0, 300.0, 750.0]
    mr = Volume(arr, np.eye(4), modality="MR")
    assert display_array(mr) is mr.array
