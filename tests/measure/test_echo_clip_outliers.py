"""An echo clip (one apical view over the cycle, ``measure_echo_clip``) applies the cine's
volume-outlier rule: a frame where the LV was lost (zero-click kept a small blob of it) is
flagged ``volume_outlier_frame``, needs review, is circled on the curve and is not ES (it
became ES and the EF jumped); clean phantom clips are not flagged."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from medseg.cli import run_cli  # noqa: E402
from medseg.measure.echo import measure_echo_clip  # noqa: E402
from medseg.measure.plots import draw_volume_curve  # noqa: E402
from medseg.phantoms import echo_apical_phantom  # noqa: E402
from medseg.review import measurement_flags, needs_review, review_segmentation  # noqa: E402

SP = (0.5, 0.5)
SHAPE = (128, 128)


def _lose_lv(labels, t, lv=1, frac=0.25):
    """Frame ``t`` with the LV kept to a small box at its centre (a segmentation that lost it)."""
    bad = labels.copy()
    m = bad[t] == lv
    ys, xs = np.nonzero(m)
    yy, xx = np.mgrid[:m.shape[0], :m.shape[1]]
    keep = (abs(yy - ys.mean()) <= frac * np.ptp(ys) / 2 + 1) & (abs(xx - xs.mean()) <= frac * np.ptp(xs) / 2 + 1)
    bad[t][m & ~keep] = 0
    return bad


@pytest.fixture(scope="module")
def clip():
    p = echo_apical_phantom(view="a4c", n_frames=20, seed=1, spacing=SP[0], shape=SHAPE)
    labels = p.labels[:, 0]
    clean = measure_echo_clip(labels, label_map=p.label_map, spacing_mm=SP)
    t = clean["es_frame"]
    assert 0 < t < labels.shape[0] - 1
    return clean, _lose_lv(labels, t), t, p.label_map, labels


def _outliers(rep):
    return [f for f in rep["flags"] if f["code"] == "volume_outlier_frame"]


def test_lost_lv_frame_is_flagged_and_not_es(clip):
    clean, bad, t, lmap, _ = clip
    rep = measure_echo_clip(bad, label_map=lmap, spacing_mm=SP)
    curve = rep["volume_curve_ml"]["lv"]
    assert curve[t] < 0.2 * min(v for k, v in enumerate(curve) if k != t)  # the raw minimum: it was ES, EF ~95 %
    flags = _outliers(rep)
    assert [(f["structure"], f["frame"]) for f in flags] == [("lv", t)]
    assert rep["es_frame"] != t and rep["ed_frame"] == clean["ed_frame"]
    assert abs(rep["es_frame"] - t) == 1  # the frame beside the lost one
    c = clean["volume_curve_ml"]["lv"]  # the EF of the untouched frames, not the ~95 % of the lost one
    assert rep["lv"]["ef_pct"] == pytest.approx(100 * (1 - c[rep["es_frame"]] / c[rep["ed_frame"]]), abs=0.01)
    assert f"LV ES frame {rep['es_frame']}" in flags[0]["message"] and "mL" in flags[0]["message"]
    assert flags[0]["value_ml"] == pytest.approx(curve[t], abs=0.01)
    assert needs_review(measurement_flags(rep))


def test_without_spacing_the_flag_is_in_percent_of_edv(clip):
    _, bad, t, lmap, _ = clip
    rep = measure_echo_clip(bad, label_map=lmap)
    flags = _outliers(rep)
    assert [f["frame"] for f in flags] == [t] and rep["es_frame"] != t
    assert "mL" not in flags[0]["message"] and "% of EDV" in flags[0]["message"]
    assert flags[0]["value_pct_edv"] == pytest.approx(100 * rep["volume_curve_rel"]["lv"][t], abs=0.05)
    assert "value_ml" not in flags[0]


def test_plot_circles_the_frame(clip):
    _, bad, t, lmap, _ = clip
    for sp in (SP, None):  # mL, or % of EDV without spacing
        fig = Figure()
        ax = fig.add_subplot(1, 1, 1)
        draw_volume_curve(ax, measure_echo_clip(bad, label_map=lmap, spacing_mm=sp), compact=True)
        hollow = [ln for ln in ax.lines if ln.get_markerfacecolor() == "none"]
        assert len(hollow) == 1 and list(hollow[0].get_xdata()) == [t]


def test_review_of_a_clip_segmentation(clip):
    _, bad, t, lmap, labels = clip
    aff = np.diag([1.0, SP[0], SP[1], 1.0])
    rev = review_segmentation(bad[:, None], aff, lmap, asked=[])
    assert rev["needs_review"]
    assert [f["frame"] for f in rev["flags"] if f["code"] == "volume_outlier_frame"] == [t]
    ok = review_segmentation(labels[:, None], aff, lmap, asked=[])
    assert not [f for f in ok["flags"] if f["code"] == "volume_outlier_frame"]


def test_cli_says_which_frame(clip, tmp_path, capsys):
    _, bad, t, lmap, _ = clip
    path = tmp_path / "clip.nii.gz"
    # (X, Y, 1, T): one slice over the cycle
    nib.save(nib.Nifti1Image(bad.T[:, :, None, :].astype(np.uint8).copy(), np.diag([SP[1], SP[0], 1.0, 1.0])), str(path))
    out = tmp_path / "r.json"
    assert run_cli(["measure", str(path), "--label-map", "lv=1,myo=2,rv=3,la=4,ra=5,aorta=6,pa=7", "-o", str(out)]) == 0
    said = capsys.readouterr()
    assert f"note: LV volume on frame {t}" in said.out + said.err
    rep = json.loads(out.read_text())
    assert rep["method"] == "single_plane_disks_clip" and rep["es_frame"] != t


@pytest.mark.parametrize("view,n_frames,seed", [("a4c", 10, 0), ("a2c", 16, 3), ("a4c", 30, 5)])
def test_phantom_clips_are_not_flagged(view, n_frames, seed):
    p = echo_apical_phantom(view=view, n_frames=n_frames, seed=seed, spacing=SP[0], shape=SHAPE)
    assert not _outliers(measure_echo_clip(p.labels[:, 0], label_map=p.label_map, spacing_mm=SP))
