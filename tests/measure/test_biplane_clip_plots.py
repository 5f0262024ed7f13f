"""`medseg measure A4C_CLIP --a2c A2C_CLIP --plots/--pdf`: both views' curves (each its own
single-plane volume relative to its own ED, on its own time axis; no biplane mL curve, as the
clips' frames are not paired), and the 2-chamber clip's model record and confidence (its
``inputs`` key ``a2c`` in ``LABEL_KEYS``) on the study page and in `medseg compare`. Before,
two clips gave no curve at all, and the A2C clip's sidecar was read by neither."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from measure_phantoms import echo_view  # noqa: E402

from medseg.cli import run_cli  # noqa: E402
from medseg.io import Volume, write_labels  # noqa: E402

MAP = "lv=1,myo=2,la=3"
SHAPE = (430, 340)
W4, W2 = [19.0, 21.0, 18.0, 15.0, 16.0], [14.0, 13.0, 16.0, 18.0, 17.0, 15.0]  # A4C: ED 1, ES 3; A2C: ED 3, ES 1
DT = {"a4c": 0.04, "a2c": 0.033}  # separate acquisitions: other frame rates


def _clip(widths):
    return np.stack([echo_view(w, 60 + w, True, shape=SHAPE) for w in widths])


def _write(path, frames, dt, provenance=None):
    """(T, Y, X) labels of a video clip (frame times, no pixel size), with medseg's sidecar."""
    lab = np.asarray(frames)[:, None].astype(np.uint8)
    like = Volume(np.zeros(lab.shape, np.uint8), np.eye(4), frame_times_s=np.arange(len(lab)) * dt, modality="US", spacing_known=False)
    return str(write_labels(lab, like, path, MAP, provenance=provenance)[0])


def _model(sha, lv_conf, needs_review=False):
    conf = {"volume": {"lv": lv_conf, "myo": 0.9}, "thresholds": {"volume": 0.8}, "needs_review": needs_review, "flags": []}
    return {"model_id": "default", "model_sha256": sha, "adapter_id": "echo", "adapter_sha256": "e" * 64,
            "needs_review": needs_review, "confidence": conf}


def _measure(tmp_path, monkeypatch, name="r", prov4=None, prov2=None, extra=()):
    """Measure the two clips (--plots, --pdf); (report, the study page's text)."""
    from medseg.measure import study_pdf

    a4c = _write(tmp_path / f"{name}_a4c.nii.gz", _clip(W4), DT["a4c"], prov4)
    a2c = _write(tmp_path / f"{name}_a2c.nii.gz", _clip(W2), DT["a2c"], prov2)
    seen = []
    real = study_pdf.study_page
    monkeypatch.setattr(study_pdf, "study_page", lambda *a, **kw: seen.append(fig := real(*a, **kw)) or fig)
    out = tmp_path / f"{name}.json"
    assert run_cli(["measure", a4c, "--a2c", a2c, "--pixel-spacing", "0.3", "--a2c-pixel-spacing", "0.3", "-o", str(out),
                    "--plots", str(tmp_path / f"{name}_plots"), "--pdf", str(tmp_path / f"{name}.pdf"), *extra]) == 0
    _inside(seen[0])
    return json.loads(out.read_text()), " ".join(study_pdf.page_text(seen[0]))


def _inside(fig):
    """Every text of the page inside it, and the curves' title, axis labels and legend inside its margins."""
    from matplotlib.text import Text

    from medseg.measure.study_pdf import _MARGIN

    fig.canvas.draw()
    renderer, (width, height) = fig.canvas.get_renderer(), fig.canvas.get_width_height()
    ticks = {id(t) for ax in fig.axes for t in [*ax.get_xticklabels(), *ax.get_yticklabels()]}  # those off the axes are not drawn
    for t in fig.findobj(Text):
        if t.get_text() and t.get_visible():
            box = t.get_window_extent(renderer)
            right = width if id(t) in ticks else width - _MARGIN * fig.dpi + 1
            assert box.x0 >= 0 and box.x1 <= right and box.y0 >= 0 and box.y1 <= height, t.get_text()[:60]


def _drawn(report, compact=False):
    """The axes of :func:`draw_clip_curves` on ``report``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from medseg.measure.clip_plots import draw_clip_curves

    fig = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    draw_clip_curves(ax, report, compact)
    return ax


def _line(ax, label):
    return next(ln for ln in ax.get_lines() if ln.get_label().startswith(label))


def _at(ax, marker, colour):
    """(x, y) of the ED (^) or ES (v) markers drawn in ``colour``."""
    return [(float(ln.get_xdata()[0]), float(ln.get_ydata()[0])) for ln in ax.get_lines() if ln.get_marker() == marker and ln.get_color() == colour]


def test_two_clips_plot_each_views_curve_on_its_own_time_axis(tmp_path, monkeypatch):
    """volume_curve.png is written and the page draws the curves: each view's relative volume
    (%) against ms from its own first frame, its own ED and ES marked, labelled A4C / A2C."""
    rep, text = _measure(tmp_path, monkeypatch)
    png = tmp_path / "r_plots" / "volume_curve.png"
    assert rep["plots"]["volume_curve"] == str(png) and png.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in png.parent.iterdir()) == ["overlay.png", "volume_curve.png"]
    ax = _drawn(rep)
    for key, name, colour in (("a4c", "A4C", "#0072b2"), ("a2c", "A2C", "#d55e00")):
        clip = rep["clips"][key]
        line = _line(ax, f"{name} clip")
        assert line.get_xdata() == pytest.approx(np.arange(clip["n_frames"]) * DT[key] * 1000.0)  # its own frame times
        assert line.get_ydata() == pytest.approx([100.0 * v for v in clip["volume_curve_rel"]])
        ed, es = clip["ed_frame"], clip["es_frame"]
        assert _at(ax, "^", colour) == [pytest.approx((ed * DT[key] * 1000.0, 100.0))]
        assert _at(ax, "v", colour) == [pytest.approx((es * DT[key] * 1000.0, 100.0 * clip["volume_curve_rel"][es]))]
        assert f"single plane; ES {100 * clip['volume_curve_rel'][es]:.0f}% of ED" in line.get_label()
    assert (rep["clips"]["a4c"]["ed_frame"], rep["clips"]["a2c"]["ed_frame"]) == (1, 3)
    assert "mL" not in ax.get_ylabel() and "% of the view's ED" in ax.get_ylabel()  # relative: never biplane mL
    assert "ms from each clip's first frame" in ax.get_xlabel() and "not paired" in ax.get_xlabel()
    assert f"biplane EF {rep['lv']['ef_pct']:.1f}%" in ax.get_title()
    labels = [t.get_text() for t in ax.texts]
    assert "A4C ED, frame 1" in labels and "A2C ED, frame 3" in labels and any(t.startswith("A2C ES") for t in labels)
    # the page: the same curves where the one-clip page has its curve, not the biplane ED/ES bars
    assert "LV volume per clip" in text and "A4C clip" in text and "A2C clip" in text
    assert "% of its ED (single plane)" in text and "ms from each clip's start" in text
    assert "End-diastolic and end-systolic volumes" not in text and "ED and ES volumes" not in text


def test_frames_without_times_gaps_outliers_and_a_view_without_es():
    """One clip without frame times: both on frame numbers; an unlabelled frame is a gap; a
    view's volume_outlier_frame circled in that view only; a view with no ES gets no ES mark."""
    rep = {"lv": {"ef_pct": None}, "clips": {
        "a4c": {"n_frames": 5, "ed_frame": 0, "es_frame": 3, "volume_curve_rel": [1.0, 0.8, None, 0.5, 0.7],
                "frame_times_s": [0.0, 0.02, 0.04, 0.06, 0.08]},
        "a2c": {"n_frames": 4, "ed_frame": 1, "es_frame": None, "volume_curve_rel": [0.9, 1.0, 0.2, 0.9]}},
        "flags": [{"code": "volume_outlier_frame", "view": "2-chamber", "frame": 2}]}
    ax = _drawn(rep)
    a4c, a2c = _line(ax, "A4C clip"), _line(ax, "A2C clip")
    assert list(a4c.get_xdata()) == [0, 1, 2, 3, 4] and np.isnan(a4c.get_ydata()[2])  # frames, not ms: A2C has no times
    assert ax.get_xlabel().startswith("frame of each clip") and "biplane EF" not in ax.get_title()
    assert "no ES" in a2c.get_label() and _at(ax, "v", "#d55e00") == [] and _at(ax, "^", "#d55e00") == [(1.0, 100.0)]
    hollow = [ln for ln in ax.get_lines() if ln.get_label() == "outlier frame (not ED/ES)"]
    assert len(hollow) == 1 and hollow[0].get_markeredgecolor() == "#d55e00" and (hollow[0].get_xdata()[0], hollow[0].get_ydata()[0]) == (2, 20.0)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [a4c.get_label(), a2c.get_label(), "outlier frame (not ED/ES)"]
    assert all(float(t).is_integer() for t in ax.get_xticks())  # frames: no "1.5"
    compact = _drawn(rep, compact=True)
    assert [t.get_text() for t in compact.get_legend().get_texts()][:2] == ["A4C clip", "A2C clip"] and not compact.texts


def test_a_report_without_clips_draws_no_clip_curve():
    from medseg.measure.clip_plots import has_clip_curves

    assert not has_clip_curves({"volume_curve_ml": {"lv": [1.0, 2.0]}})
    assert not has_clip_curves({"clips": {"a4c": {"volume_curve_rel": [None, None]}}})
    assert has_clip_curves({"clips": {"a2c": {"volume_curve_rel": [None, 1.0]}}})


def test_a2c_clips_confidence_and_model_reach_the_page_and_compare(tmp_path, monkeypatch):
    """The 2-chamber clip's sidecar (``inputs.a2c``): its model confidence is a line of the
    page's quality section, and `compare`'s reading of a report without ``inputs.segmentation``
    (an older medseg's) finds its model there: another model on the A2C clip is seen."""
    from medseg.measure.compare import _sidecar_segmentation
    from medseg.measure.source_images import sidecar_confidence

    rep, text = _measure(tmp_path, monkeypatch, "base", _model("a" * 64, 0.93), _model("b" * 64, 0.61, needs_review=True))
    assert set(rep["inputs"]["segmentation"]) == {"labels", "a2c"}
    conf = sidecar_confidence(rep)
    assert set(conf) == {"labels", "a2c"} and conf["a2c"]["volume"]["lv"] == 0.61
    assert "Confidence, A4C clip: LV 0.93, MYO 0.90; all at or above the review threshold 0.80" in text
    assert "Confidence, A2C clip: LV 0.61, MYO 0.90; below the review threshold 0.80: LV" in text
    assert "Needs review: medseg flagged the segmentation (A2C clip)" in text
    inputs = {k: v for k, v in rep["inputs"].items() if k != "segmentation"}  # as a medseg before inputs.segmentation wrote it
    seg = _sidecar_segmentation(tmp_path / "base.json", inputs)
    assert seg == rep["inputs"]["segmentation"] and seg["a2c"]["model_sha256"] == "b" * 64 and seg["a2c"]["needs_review"]


def test_compare_reads_both_clips_models(tmp_path, monkeypatch, capsys):
    """`medseg compare` of two clip reports written without ``inputs.segmentation``: the follow-up's
    A2C clip made by another model is refused (its model read from the A2C clip's sidecar). Echo
    reports record their label map under ``inputs`` only: compare refused every echo report as
    "not a medseg measure report"."""
    from medseg.measure.compare import read_visits

    reports = {}
    for name, sha2 in (("base", "a" * 64), ("follow", "b" * 64)):
        rep, _ = _measure(tmp_path, monkeypatch, name, _model("a" * 64, 0.93), _model(sha2, 0.9))
        del rep["inputs"]["segmentation"]
        reports[name] = tmp_path / f"old_{name}.json"
        reports[name].write_text(json.dumps(rep))
    (follow,), _ = read_visits(reports["follow"])
    assert sorted(m["model_sha256"] for m in follow.models) == ["a" * 64, "b" * 64]
    capsys.readouterr()
    assert run_cli(["compare", str(reports["base"]), str(reports["follow"]), "-o", str(tmp_path / "c.json")]) == 1
    assert "model or adapter differs" in capsys.readouterr().err
