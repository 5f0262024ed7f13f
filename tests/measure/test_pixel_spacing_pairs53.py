"""Labels `medseg segment` / `batch` wrote for a PNG given ``--pixel-spacing`` (their sidecar
records ``spacing_from`` "--pixel-spacing" and ``pixel_spacing_mm``) pair with their own image
again: `measure --plots/--pdf` draws it under the contours, `measure --image` takes it,
`evaluate --predicted` scores them in mm; grids of one shape say what differs; and
`measure --clip --image` reads a 3-D clip image's slices as frames, as it reads the labels'."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from measure_phantoms import echo_view
from PIL import Image

from medseg.cli._app import run_cli

LMAP = "lv=1,myo=2,la=3"
SHAPE = (300, 250)
VIEWS = {"4CH_ED": (22.0, 80.0), "4CH_ES": (17.0, 70.0), "2CH_ED": (18.0, 80.0), "2CH_ES": (14.0, 70.0)}


def _labels(view: str) -> np.ndarray:
    return echo_view(*VIEWS[view], True, px=0.3, shape=SHAPE, wall_mm=4.0).astype(np.uint8)


def _grey(lab: np.ndarray, seed: int = 0) -> np.ndarray:
    """A grey echo-like image of the labels: bright wall, dark cavities, speckle."""
    rng = np.random.default_rng(seed)
    img = 90.0 + 40.0 * (lab == 2) - 50.0 * np.isin(lab, (1, 3)) + rng.normal(0, 8, lab.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _as_segment_wrote(png, lab: np.ndarray, out, spacing=(0.3, 0.3), command="segment"):
    """``medseg segment PNG --pixel-spacing ... -o out``'s labels file and sidecar (the facts
    segment_cmd / batch.run record: input, command, spacing_facts)."""
    from medseg.io import read_volume, write_labels
    from medseg.io.volume import spacing_facts, with_pixel_spacing

    vol = with_pixel_spacing(read_volume(png), spacing, str(png))
    write_labels(lab, vol, out, LMAP, provenance={"input": str(png), "command": command, **spacing_facts(vol)})
    return str(out)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """s_<view>.png (images, no pixel spacing), s_<view>_gt.png (expert labels, PNG), and
    seg/s_<view>.nii.gz: the same labels as segment --pixel-spacing 0.3 writes them."""
    d = tmp_path_factory.mktemp("study")
    (d / "seg").mkdir()
    files = {}
    for i, view in enumerate(VIEWS):
        lab = _labels(view)
        png = d / f"s_{view}.png"
        Image.fromarray(_grey(lab, i)).save(png)
        Image.fromarray(lab).save(d / f"s_{view}_gt.png")
        files[view] = (str(png), _as_segment_wrote(png, lab, d / "seg" / f"s_{view}.nii.gz"))
    return d, files


def _measure(tmp_path, files, *extra, name="r"):
    out = tmp_path / f"{name}.json"
    rc = run_cli(["measure", "--ed", files["4CH_ED"][1], "--es", files["4CH_ES"][1], "--a2c-ed", files["2CH_ED"][1],
                  "--a2c-es", files["2CH_ES"][1], "-o", str(out), *extra])
    return rc, (json.loads(out.read_text()) if rc == 0 else None)


def test_plots_and_pdf_draw_the_png_the_labels_were_segmented_from(study, tmp_path, capsys):
    """Their sidecar names the PNG; it has no spacing, the labels are at 0.3 mm: it was left
    out (contours on black, ``overlay_image`` null) because only measure's own --pixel-spacing
    counted. Now it is drawn, for --plots and for --pdf alone."""
    _, files = study
    rc, rep = _measure(tmp_path, files, "--plots", str(tmp_path / "plots"))
    assert rc == 0, capsys.readouterr().err
    assert rep["inputs"]["overlay_image"] == [files["4CH_ED"][0], files["4CH_ES"][0]]
    assert rep["inputs"]["spacing_from"] == "file (segment --pixel-spacing)"
    rc, rep = _measure(tmp_path, files, "--pdf", str(tmp_path / "page.pdf"), name="p")
    assert rc == 0 and rep["inputs"]["overlay_image"] == [files["4CH_ED"][0], files["4CH_ES"][0]]
    assert (tmp_path / "page.pdf").stat().st_size > 0


@pytest.mark.parametrize("spacing", [[], ["--pixel-spacing", "0.3"]])
def test_image_option_takes_the_source_png(study, tmp_path, capsys, spacing):
    """``--image`` the PNG itself, with or without measure's own --pixel-spacing, was refused
    "not on the labels' grid ((1, 300, 250) vs (1, 300, 250), or affines differ)"."""
    _, files = study
    rc, rep = _measure(tmp_path, files, "--plots", str(tmp_path / "plots"), "--image", files["4CH_ED"][0],
                       "--image", files["4CH_ES"][0], *spacing)
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "plots" / "overlay.png").is_file() and rep["inputs"]["image"]


def test_batch_page_images_are_the_segmented_pngs(study):
    """``batch --measure --pdf`` pages find their images the same way (medseg.batch.pages._images)."""
    from medseg.batch.pages import _images
    from medseg.io import read_label_volume

    _, files = study
    seg = [files["4CH_ED"][1], files["4CH_ES"][1]]
    got = _images(seg, read_label_volume(seg[0]), {"ED": 0, "ES": 0})
    assert got is not None and set(got) == {"ED", "ES"} and got["ED"].shape == (1, *SHAPE)


def test_same_shape_grid_error_says_what_differs(study, tmp_path, capsys):
    """Labels at 0.3 mm whose sidecar says nothing of --pixel-spacing beside a PNG: still refused,
    now saying the spacings (and that the image has none), not two equal shapes."""
    from medseg.io import read_volume, write_labels
    from medseg.io.volume import with_pixel_spacing

    d, files = study
    png = files["4CH_ED"][0]
    other = tmp_path / "other.nii.gz"
    write_labels(_labels("4CH_ED"), with_pixel_spacing(read_volume(png), (0.3, 0.3)), other, LMAP)  # no spacing facts
    rc = run_cli(["measure", "--ed", str(other), "--es", files["4CH_ES"][1], "-o", str(tmp_path / "r.json"),
                  "--plots", str(tmp_path / "p"), "--image", png, "--image", files["4CH_ES"][0]])
    err = " ".join(capsys.readouterr().err.split())
    assert rc != 0 and "not on the labels' grid" in err and "spacing (1, 0.3, 0.3) mm vs image (1, 1, 1) mm" in err
    assert "the image records none" in err and "(1, 300, 250) vs (1, 300, 250)" not in err


def test_check_same_grid_names_origin_direction_and_spacing():
    """One shape, another placement: the message names each part that differs, with values."""
    from medseg.errors import GeometryError
    from medseg.io import Volume, check_same_grid

    img = Volume(np.zeros((1, 2, 4, 5), np.float32), np.diag([0.5, 0.5, 2.0, 1.0]))
    shifted = np.diag([0.5, 0.5, 2.0, 1.0])
    shifted[:3, 3] = (1.0, -2.0, 0.0)
    with pytest.raises(GeometryError) as e:
        check_same_grid(img, Volume(np.zeros((1, 2, 4, 5), np.uint8), shifted), "lab.nii.gz")
    msg = str(e.value)
    assert "same (Z,Y,X) (2, 4, 5)" in msg and "origin [1, -2, 0] vs image [0, 0, 0] mm" in msg and "spacing" not in msg
    flipped = np.diag([-0.5, 0.5, 2.0, 1.0])
    with pytest.raises(GeometryError, match=r"direction \(-1 0 0; 0 1 0; 0 0 1\) vs image \(1 0 0; 0 1 0; 0 0 1\)"):
        check_same_grid(img, Volume(np.zeros((1, 2, 4, 5), np.uint8), flipped), "lab.nii.gz")
    with pytest.raises(GeometryError, match=r"spacing \(2, 0.5, 0.7\) mm vs image \(2, 0.5, 0.5\) mm"):
        check_same_grid(img, Volume(np.zeros((1, 2, 4, 5), np.uint8), np.diag([0.7, 0.5, 2.0, 1.0])), "lab.nii.gz")


def test_check_same_grid_gives_a_png_the_spacing_segment_was_given(study):
    """The library check (evaluate, adapt, prompts-from use it): a PNG and its segment
    --pixel-spacing labels are one grid; the same labels without the sidecar's record are not."""
    from medseg.errors import GeometryError
    from medseg.io import check_same_grid, read_label_volume, read_volume

    d, files = study
    png, seg = files["4CH_ED"]
    check_same_grid(read_volume(png), read_label_volume(seg), "seg")
    bare = read_label_volume(seg).with_array(read_label_volume(seg).array, meta={})  # no path: no sidecar
    with pytest.raises(GeometryError, match="spacing"):
        check_same_grid(read_volume(png), bare, "seg")


def _pairs_and_batch(study, tmp_path, ref_spacing=None):
    """A pairs folder (images and PNG expert labels; ``ref_spacing``: the 4-chamber ED reference
    as segment --pixel-spacing wrote it instead) and a batch-like OUT_DIR of the same labels at 0.3 mm."""
    import shutil

    d, files = study
    pairs, out = tmp_path / "pairs", tmp_path / "out"
    pairs.mkdir()
    out.mkdir()
    for view, (png, _) in files.items():
        shutil.copy(png, pairs / f"s_{view}.png")
        if ref_spacing and view == "4CH_ED":
            _as_segment_wrote(pairs / f"s_{view}.png", _labels(view), pairs / f"s_{view}_gt.nii.gz", spacing=ref_spacing)
        else:
            shutil.copy(d / f"s_{view}_gt.png", pairs / f"s_{view}_gt.png")
        _as_segment_wrote(pairs / f"s_{view}.png", _labels(view), out / f"s_{view}.nii.gz", command="batch")
    return pairs, out


def test_evaluate_predicted_scores_segment_outputs_of_pngs_in_mm(study, tmp_path, capsys):
    """`evaluate --predicted` of batch --pixel-spacing 0.3 outputs against PNG expert labels was
    refused "spacing (1, 0.3, 0.3) mm vs image (1, 1, 1) mm"; now scored at the predicted
    sidecar's spacing: HD95 in mm, the echo clinical numbers with EDV, as measure gives them."""
    pairs, out = _pairs_and_batch(study, tmp_path)
    res = tmp_path / "ev.json"
    rc = run_cli(["evaluate", "--pairs", str(pairs), "--label-map", LMAP, "--predicted", str(out), "-o", str(res)])
    assert rc == 0, capsys.readouterr().err
    r = json.loads(res.read_text())
    assert r["summary"]["n_cases"] == 4 and all(c["pixel_spacing_mm"] == [0.3, 0.3] for c in r["cases"])
    assert all("hd95_mm" in c and "hd95_px" not in c and c["dice"]["lv"] == 1.0 for c in r["cases"])
    clin = next(c["clinical"] for c in r["cases"] if c.get("clinical"))
    _, files = study
    rc, rep = _measure(tmp_path, {v: (p, str(pairs / f"s_{v}_gt.png")) for v, (p, _) in files.items()}, "--label-map", LMAP,
                       "--pixel-spacing", "0.3", name="gt")
    assert rc == 0
    assert clin["edv_ref_ml"] == pytest.approx(rep["lv"]["edv_ml"], rel=1e-6) == pytest.approx(clin["edv_pred_ml"])
    assert clin["lvef_ref"] == pytest.approx(rep["lv"]["ef_pct"], rel=1e-6)


def test_evaluate_refuses_a_reference_segmented_at_another_spacing(study, tmp_path, capsys):
    """A reference that segment wrote at 0.5 mm against predictions at 0.3 mm of one PNG: one
    clear line naming both spacings (not a grid error, not scores at either)."""
    pairs, out = _pairs_and_batch(study, tmp_path, ref_spacing=(0.5, 0.5))
    rc = run_cli(["evaluate", "--pairs", str(pairs), "--label-map", LMAP, "--predicted", str(out), "-o", str(tmp_path / "ev.json")])
    err = " ".join(capsys.readouterr().err.split())
    assert rc != 0 and "--pixel-spacing 0.3,0.3 mm" in err and "at 0.5,0.5 mm" in err and "grid does not match" not in err


def _clip(tmp_path, n=7, name="S_A4C_half_sequence"):
    """A CAMUS-style half-sequence: 3-D NIfTI labels and image whose third axis is time (0.3 mm pixels)."""
    frames = [echo_view(22.0 - i, 80.0 - 1.5 * i, True, px=0.3, shape=SHAPE, wall_mm=4.0).astype(np.uint8) for i in range(n)]
    lab = np.stack(frames, axis=-1).transpose(1, 0, 2)  # [x, y, t]
    aff = np.diag([0.3, 0.3, 1.0, 1.0])
    img = np.stack([_grey(f, i) for i, f in enumerate(frames)], axis=-1).transpose(1, 0, 2)
    nib.save(nib.Nifti1Image(lab, aff), tmp_path / f"{name}_gt.nii.gz")
    nib.save(nib.Nifti1Image(img, aff), tmp_path / f"{name}.nii.gz")
    return str(tmp_path / f"{name}_gt.nii.gz"), str(tmp_path / f"{name}.nii.gz")


def test_clip_image_is_read_as_frames_like_its_labels(tmp_path, capsys):
    """``measure LABELS --clip --image IMAGE``: the 3-D image was refused "(7, 300, 250) vs
    (1, 300, 250)"; it is read with its slices as frames, each phase drawn on its own frame."""
    lab, img = _clip(tmp_path)
    out = tmp_path / "r.json"
    rc = run_cli(["measure", lab, "--clip", "--label-map", LMAP, "--image", img, "-o", str(out), "--plots", str(tmp_path / "p")])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "p" / "overlay.png").is_file()
    from medseg.io import read_label_volume, read_volume
    from medseg.measure.source_images import overlay_images

    vol = read_label_volume(lab)
    clip = vol.with_array(vol.array[0][:, None], meta={**vol.meta, "clip_from_slices": True})
    got = overlay_images([img], clip, {"ED": 0, "ES": 5})
    from medseg.review import display_array

    want = display_array(read_volume(img))[0]
    assert np.array_equal(got["ES"], want[5][None]) and np.array_equal(got["ED"], want[0][None])


def test_clip_image_of_another_length_is_refused_in_one_line(tmp_path, capsys):
    lab, _ = _clip(tmp_path)
    _, img = _clip(tmp_path, n=5, name="short")
    rc = run_cli(["measure", lab, "--clip", "--label-map", LMAP, "--image", img, "-o", str(tmp_path / "r.json"),
                  "--plots", str(tmp_path / "p")])
    err = " ".join(capsys.readouterr().err.split())
    assert rc != 0 and "has 5 slices and the clip labels 7 frames" in err
