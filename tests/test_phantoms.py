"""Tests for medseg.phantoms: geometry, labels, analytic truths, determinism, training slices."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from medseg import phantoms as P
from medseg.io.volume import Volume
from medseg.labels import DEFAULT_LABEL_MAP

LM = DEFAULT_LABEL_MAP
ALLOWED = {0, *LM.values.values()}
CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)

SMALL = {
    "cine": lambda seed: P.cine_sax_phantom(n_frames=4, n_slices=6, shape=(96, 96), spacing=(10.0, 2.0, 2.0), seed=seed),
    "lax": lambda seed: P.lax_4ch_phantom(shape=(96, 96), spacing=2.5, seed=seed, n_frames=2),
    "echo": lambda seed: P.echo_apical_phantom(n_frames=2, shape=(128, 128), seed=seed),
    "ct": lambda seed: P.ct_phantom(shape=(24, 64, 64), spacing=(4.0, 2.0, 2.0), seed=seed),
}


@pytest.fixture(scope="module")
def cine() -> P.Phantom:
    return P.cine_sax_phantom(seed=3)


@pytest.fixture(scope="module")
def ct() -> P.Phantom:
    return P.ct_phantom(seed=1)


@pytest.mark.parametrize("name", list(SMALL))
def test_shapes_dtypes_labels(name):
    p = SMALL[name](0)
    assert isinstance(p.image, Volume)
    assert p.image.array.dtype == np.float32 and p.labels.dtype == np.uint8
    assert p.labels.shape == p.image.shape and p.image.array.ndim == 4
    assert set(np.unique(p.labels)) <= ALLOWED
    assert np.isfinite(p.image.array).all()
    assert p.label_map is LM and p.label_volume.same_grid(p.image)
    assert p.image.modality == {"cine": "MR", "lax": "MR", "echo": "US", "ct": "CT"}[name]


@pytest.mark.parametrize("name", list(SMALL))
def test_seed_determinism_and_variation(name):
    a, b, c = SMALL[name](7), SMALL[name](7), SMALL[name](8)
    np.testing.assert_array_equal(a.image.array, b.image.array)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, c.labels)
    assert not np.allclose(a.image.array, c.image.array)


def test_cine_geometry_and_info(cine):
    img = cine.image
    assert img.shape == (20, 10, 128, 128)
    assert np.allclose(img.spacing, (10.0, 1.5, 1.5))
    np.testing.assert_allclose(img.affine, np.diag([1.5, 1.5, 10.0, 1.0]))
    assert img.frame_times_s is not None and img.frame_times_s.shape == (20,)
    assert set(np.unique(cine.labels)) == {0, LM["lv"], LM["myo"], LM["rv"]}
    info = cine.info
    assert 0 <= info["ed_frame"] < 20 and 0 <= info["es_frame"] < 20 and info["ed_frame"] != info["es_frame"]
    assert info["ef_pct"] == pytest.approx(60.0, abs=0.5) and info["apex_covered"]
    assert 7.0 <= info["wall_thickness_ed_mm"] < info["wall_thickness_es_mm"] <= 16.0
    assert 80 <= info["lv_mass_g"] <= 200


def test_cine_lv_volume_matches_analytic(cine):
    vox_ml = cine.image.voxel_volume_mm3 / 1000.0
    counted = (cine.labels == LM["lv"]).sum(axis=(1, 2, 3)) * vox_ml
    np.testing.assert_allclose(counted, cine.info["lv_volume_ml"], rtol=0.03)
    np.testing.assert_allclose(counted, cine.info["lv_volume_disc_ml"], rtol=0.015)
    myo = (cine.labels == LM["myo"]).sum(axis=(1, 2, 3)) * vox_ml
    np.testing.assert_allclose(myo, cine.info["myo_volume_ml"], rtol=0.03)
    assert np.ptp(cine.info["myo_volume_ml"]) < 1e-6 * max(cine.info["myo_volume_ml"])  # conserved


@pytest.mark.parametrize("seed,n_frames", [(0, 20), (5, 12), (11, 25)])
def test_ed_is_max_and_es_is_min(seed, n_frames):
    p = P.cine_sax_phantom(n_frames=n_frames, n_slices=8, shape=(80, 80), spacing=(10.0, 2.2, 2.2), seed=seed)
    counted = (p.labels == LM["lv"]).sum(axis=(1, 2, 3))
    assert int(np.argmax(counted)) == p.info["ed_frame"]
    assert int(np.argmin(counted)) == p.info["es_frame"]
    assert int(np.argmax(p.info["lv_volume_ml"])) == p.info["ed_frame"]


def test_myocardium_encloses_cavity_and_rv_touches_septum(cine):
    for t in range(cine.image.n_frames):
        lv_z = np.nonzero((cine.labels[t] == LM["lv"]).any(axis=(1, 2)))[0]
        for z in lv_z[len(lv_z) // 3: 2 * len(lv_z) // 3 + 1]:  # mid-ventricular slices
            lab = cine.labels[t, z]
            lv, myo, rv = lab == LM["lv"], lab == LM["myo"], lab == LM["rv"]
            assert lv.any() and rv.any()
            assert not (binary_dilation(lv, CROSS) & ~(lv | myo)).any(), (t, z)
            assert (binary_dilation(rv, CROSS) & myo).any(), (t, z)
            assert not (binary_dilation(rv, CROSS) & lv).any(), (t, z)


def test_cine_contrast_is_ssfp_like(cine):
    t = cine.info["ed_frame"]
    img, lab = cine.image.array[t], cine.labels[t]
    blood, myo = np.median(img[lab == LM["lv"]]), np.median(img[lab == LM["myo"]])
    assert blood > 2.0 * myo


def test_lax_labels_and_area():
    p = P.lax_4ch_phantom(seed=2)
    assert p.image.shape == (1, 1, 160, 160)
    assert set(np.unique(p.labels)) == {0, *(LM[s] for s in ("lv", "myo", "rv", "la", "ra"))}
    lab = p.labels[0, 0]
    assert (binary_dilation(lab == LM["lv"], CROSS) & (lab == LM["la"])).any()  # mitral plane
    area = (lab == LM["lv"]).sum() * 1.5 ** 2
    assert area == pytest.approx(p.info["lv_area_mm2"][0], rel=0.03)


@pytest.mark.parametrize("view,present", [("a4c", {"lv", "myo", "rv", "la", "ra"}), ("a2c", {"lv", "myo", "la"})])
def test_echo_sector_speckle_and_labels(view, present):
    p = P.echo_apical_phantom(view=view, n_frames=3, seed=4)
    img, sector = p.image.array[:, 0], p.info["sector_mask"]
    assert img.shape == (3, 224, 224) and sector.shape == (224, 224)
    assert np.all(img[:, ~sector] == 0) and img[:, sector].mean() > 20
    assert img.min() >= 0 and img.max() <= 255
    assert not p.labels[:, 0][:, ~sector].any()
    assert {LM.name_of(v) for v in np.unique(p.labels) if v} == present
    lab = p.labels[0, 0]
    assert np.median(img[0][lab == LM["lv"]]) < np.median(img[0][lab == LM["myo"]])  # dark blood
    area = (lab == LM["lv"]).sum() * 0.3 ** 2
    assert area == pytest.approx(p.info["lv_area_mm2"][0], rel=0.03)
    assert p.image.spacing_known and p.info["spacing_known"]


def test_echo_views_share_one_heart():
    a4c, a2c = (P.echo_apical_phantom(view=v, n_frames=4, seed=9) for v in ("a4c", "a2c"))
    assert a4c.info["lv_volume_ml"] == a2c.info["lv_volume_ml"] and a4c.info["es_frame"] == a2c.info["es_frame"]
    assert a4c.info["lv_length_mm"] == a2c.info["lv_length_mm"]


def test_echo_without_spacing():
    p = P.echo_apical_phantom(view="a2c", spacing=None, shape=(128, 160))
    assert not p.image.spacing_known and not p.info["spacing_known"]
    assert p.image.shape == (1, 1, 128, 160)


def test_ct_hounsfield_ranges(ct):
    hu, lab = ct.image.array[0], ct.labels[0]
    assert ct.image.shape == (1, 64, 128, 128) and ct.image.modality == "CT"
    assert set(np.unique(lab)) == ALLOWED
    for name in ("lv", "rv", "la", "ra", "aorta", "pa"):
        assert 280 <= np.median(hu[lab == LM[name]]) <= 460, name
    assert 80 <= np.median(hu[lab == LM["myo"]]) <= 170
    corners = hu[:, :4, :4]
    assert abs(corners.mean() + 1000) < 20  # air outside the body
    assert hu.max() > 550 and (hu < -700).mean() > 0.2  # bone; air and lungs
    assert ct.info["label_volumes_ml"]["lv"] == pytest.approx(ct.info["lv_volume_ml"], rel=0.05)


@pytest.mark.parametrize("kind", P.KINDS)
def test_random_training_slice(kind):
    rng = np.random.default_rng(3)
    for _ in range(3):
        img, lab, modality = P.random_training_slice(rng, kind)
        assert img.ndim == 2 and img.shape == lab.shape and img.dtype == np.float32 and lab.dtype == np.uint8
        assert set(np.unique(lab)) <= ALLOWED and np.isfinite(img).all()
        assert modality == {"sax": "MR", "lax": "MR", "echo": "US", "ct": "CT"}[kind]
    assert lab.any()


def test_random_training_slice_default_kind_and_bad_kind():
    img, lab, modality = P.random_training_slice(np.random.default_rng(0))
    assert modality in {"MR", "US", "CT"}
    with pytest.raises(ValueError, match="sax, lax, echo, ct"):
        P.random_training_slice(np.random.default_rng(0), "pet")


def test_phantom_dataset():
    images, labels, modalities = P.phantom_dataset(8, seed=2, size=96)
    assert images.shape == labels.shape == (8, 96, 96)
    assert images.dtype == np.uint8 and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= ALLOWED
    assert sorted(set(modalities)) == ["CT", "MR", "US"] and modalities.count("MR") == 4
    assert all(labels[i].any() and images[i].max() > 200 for i in range(8))
    again = P.phantom_dataset(8, seed=2, size=96)
    np.testing.assert_array_equal(images, again[0])


def test_sample_data():
    vol, lab = P.sample_data_cine()
    assert isinstance(vol, Volume) and lab.shape == vol.shape and lab.dtype == np.uint8


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: P.cine_sax_phantom(ef=1.5), "ef"),
        (lambda: P.cine_sax_phantom(shape=(8, 8)), "shape"),
        (lambda: P.cine_sax_phantom(spacing=(10.0, 0.0, 1.0)), "spacing"),
        (lambda: P.cine_sax_phantom(n_frames=0), "n_frames"),
        (lambda: P.echo_apical_phantom(view="plax"), "a4c, a2c"),
        (lambda: P.ct_phantom(shape=(64, 128)), "shape"),
        (lambda: P.phantom_dataset(0), "n"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
