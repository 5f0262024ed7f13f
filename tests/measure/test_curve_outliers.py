"""A cine frame whose volume is an isolated outlier on its structure's curve (the model's RV
collapsed to 1.5 mL on one frame of a phantom cine and, as the raw minimum, became RV ES: RVEF
98.7 %) is flagged ``volume_outlier_frame``, triggers review, is left out of the ED/ES choice
and drawn hollow on the volume curve; real curves, however sharp their systole, are not flagged."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from medseg import _phantom_shapes as ps  # noqa: E402
from medseg.cli import run_cli  # noqa: E402
from medseg.measure import measure_cine  # noqa: E402
from medseg.measure.plots import draw_volume_curve  # noqa: E402
from medseg.measure.qc import volume_outlier_frames  # noqa: E402
from medseg.phantoms import cine_sax_phantom  # noqa: E402
from medseg.review import needs_review, review_segmentation  # noqa: E402


def _cine(n_frames=20, seed=3):
    ph = cine_sax_phantom(n_frames=n_frames, n_slices=10, shape=(96, 96), spacing=(10.0, 2.0, 2.0), seed=seed)
    return ph.labels, ph.image.affine, ph.label_map


def _collapse_rv(labels, lmap, t):
    """The RV of frame ``t`` kept on one slice only (a segmentation that lost it elsewhere)."""
    bad = labels.copy()
    rv = bad[t] == lmap["rv"]
    zs = np.flatnonzero(rv.any(axis=(1, 2)))
    for z in zs[1:]:
        bad[t, z][rv[z]] = 0
    return bad


@pytest.fixture(scope="module")
def collapsed():
    labels, aff, lmap = _cine()
    clean = measure_cine(labels, aff, lmap)
    t = (clean["rv_es_frame"] + 3) % labels.shape[0]  # early diastole: the collapsed frame is the curve's raw minimum
    bad = _collapse_rv(labels, lmap, t)
    return clean, measure_cine(bad, aff, lmap), t, bad, aff, lmap


def test_collapsed_frame_is_flagged_and_not_es(collapsed):
    clean, rep, t, *_ = collapsed
    assert rep["volume_curve_ml"]["rv"][t] < min(v for k, v in enumerate(rep["volume_curve_ml"]["rv"]) if k != t)
    flags = [f for f in rep["flags"] if f["code"] == "volume_outlier_frame"]
    assert [(f["structure"], f["frame"]) for f in flags] == [("rv", t)]
    assert rep["rv_es_frame"] == clean["rv_es_frame"] != t
    assert rep["rv"]["ef_pct"] == pytest.approx(clean["rv"]["ef_pct"])
    assert f"frame {t}" in flags[0]["message"] and f"RV ES frame {clean['rv_es_frame']}" in flags[0]["message"]
    assert rep["volume_curve_ml"]["rv"][t] == pytest.approx(flags[0]["value_ml"], abs=0.01)  # the curve keeps it as measured
    assert (rep["ed_frame"], rep["es_frame"]) == (clean["ed_frame"], clean["es_frame"])  # the LV's own curve is untouched


def test_collapsed_frame_needs_review(collapsed):
    *_, bad, aff, lmap = collapsed
    review = review_segmentation(bad, aff, lmap, asked=[])
    assert needs_review(review["flags"])
    assert any(f["code"] == "volume_outlier_frame" and f.get("structure") == "rv" for f in review["flags"])


@pytest.mark.parametrize("n_frames,seed", [(10, 0), (16, 1), (25, 2), (30, 4)])
def test_phantom_cines_are_not_flagged(n_frames, seed):
    rep = measure_cine(*_cine(n_frames, seed))
    assert not [f for f in rep["flags"] if f["code"] == "volume_outlier_frame"]


def test_rule_on_curves():
    # phantom cycles, 10-50 frames, EF 10-85 %, 2 % jitter: a narrow end-systole is no outlier
    for n in (10, 12, 20, 25, 30, 50):
        for seed in range(40):
            r = np.random.default_rng(seed)
            v, _, es = ps.cardiac_cycle(n, r)
            c = r.uniform(60, 300) * (1 - r.uniform(0.1, 0.85) * v) * (1 + r.normal(0, 0.02, n))
            assert volume_outlier_frames(c) == {}, (n, seed)
    c = 100 - 50 * np.sin(np.linspace(0, np.pi, 20)) ** 8  # a very narrow systole (V-shaped minimum)
    assert volume_outlier_frames(c) == {}
    spike = np.full(20, 100.0) - 30 * np.sin(np.linspace(0, np.pi, 20))
    spike[4] = 400.0  # a leak on one frame: would be ED
    assert list(volume_outlier_frames(spike)) == [4]
    assert volume_outlier_frames(spike[:9]) == {}  # under 10 frames: not judged
    two = spike.copy()
    two[5] = 420.0  # two bad frames in a row: each has a bad neighbour (documented)
    assert volume_outlier_frames(two) == {}
    gap = spike.copy()
    gap[3] = np.nan  # an unlabelled neighbour: cannot be told
    assert volume_outlier_frames(gap) == {}


def test_plot_draws_the_outlier_hollow(collapsed):
    _, rep, t, *_ = collapsed
    fig = Figure()
    ax = fig.add_subplot(1, 1, 1)
    draw_volume_curve(ax, rep, compact=True)
    hollow = [ln for ln in ax.lines if ln.get_markerfacecolor() == "none"]
    assert len(hollow) == 1 and list(hollow[0].get_xdata()) == [t]


def test_cli_says_which_frame(collapsed, tmp_path, capsys):
    *_, bad, aff, lmap = collapsed
    path = tmp_path / "cine.nii.gz"
    nib.save(nib.Nifti1Image(bad.T.copy().astype(np.uint8), aff), str(path))
    out = tmp_path / "r.json"
    assert run_cli(["measure", str(path), "--label-map", "lv=1,myo=2,rv=3", "-o", str(out)]) == 0
    t = collapsed[2]
    said = capsys.readouterr()
    assert f"note: RV volume on frame {t}" in said.out + said.err
    assert any(f["code"] == "volume_outlier_frame" for f in json.loads(out.read_text())["flags"])
