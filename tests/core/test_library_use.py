"""medseg used as a library (a notebook or script): the wrong kind of argument (an array where a
Volume is expected, a path where an array is, a dict where a SlicePrompt is, a whole report where
a part of it is) raises a one-line MedsegError naming what is allowed, not an AttributeError
from deep inside; the forms a scientist naturally writes are taken."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import ImageReadError, ImageWriteError, MedsegError, PromptError
from medseg.measure.geometry import MeasurementError


@pytest.fixture(scope="module")
def cine():
    from medseg.phantoms import cine_sax_phantom

    return cine_sax_phantom(n_frames=2, n_slices=6, shape=(96, 96), spacing=(10.0, 1.5, 1.5), seed=4)


def _volume_callers(ph, tmp):
    from medseg.io import check_same_grid, write_dicom_seg, write_labels
    from medseg.segment import segment_volume
    from medseg.session import Session

    lab, lmap = ph.labels, ph.label_map
    return {
        "Session": lambda x: Session(x, None, "lv=1"),
        "segment_volume": lambda x: segment_volume(x, None, auto=True),
        "write_labels": lambda x: write_labels(lab, x, tmp / "a.nii.gz", lmap),
        "write_dicom_seg": lambda x: write_dicom_seg(lab[0], x, tmp / "a.dcm", lmap),
        "check_same_grid": lambda x: check_same_grid(ph.image, x, "lab.nii.gz"),
    }


@pytest.mark.parametrize("caller", ["Session", "segment_volume", "write_labels", "write_dicom_seg", "check_same_grid"])
@pytest.mark.parametrize("given", ["array", "path"])
def test_a_volume_argument_refuses_an_array_or_a_path_by_name(cine, tmp_path, caller, given):
    bad = cine.image.array if given == "array" else str(tmp_path / "img.nii.gz")
    with pytest.raises(MedsegError, match=r"must be a medseg\.io\.Volume .*got (a numpy array of shape \(2, 6, 96, 96\)|str ')"):
        _volume_callers(cine, tmp_path)[caller](bad)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("bad", [np.zeros((1, 2, 16, 16)), None, 3])
@pytest.mark.parametrize("reader", ["read_volume", "read_label_volume"])
def test_readers_refuse_what_is_not_a_path_by_name(bad, reader):
    import medseg.io

    with pytest.raises(ImageReadError, match=r"path must be a file or folder name \(str or os\.PathLike\), got "):
        getattr(medseg.io, reader)(bad)


def test_write_labels_takes_a_label_volume_and_refuses_provenance_that_is_no_dict(cine, tmp_path):
    from medseg.io import read_label_volume, write_labels

    written = write_labels(cine.label_volume, cine.image, tmp_path / "lab.nii.gz", cine.label_map)
    assert np.array_equal(read_label_volume(written[0]).array, cine.labels)
    with pytest.raises(ImageWriteError, match="provenance must be a dict .* got str"):
        write_labels(cine.labels, cine.image, tmp_path / "other.nii.gz", cine.label_map, provenance="by hand")


def test_slice_prompt_takes_a_box_and_clicks_as_plain_numbers():
    from medseg.types import Box, Point, SlicePrompt

    p = SlicePrompt("lv", 0, 3, box=(30, 30, 60, 61), points=[(40, 41)])
    q = SlicePrompt("lv", 0, 3, box=np.array([30, 30, 60, 61]), points=np.array([[40.0, 41.0]]))
    assert p == q == SlicePrompt("lv", 0, 3, box=Box(30, 30, 60, 61), points=(Point(40, 41),))
    assert p.to_json() == {"structure": "lv", "frame": 0, "slice": 3, "box": [30.0, 30.0, 60.0, 61.0], "points": [[40.0, 41.0]]}


@pytest.mark.parametrize("kw, msg", [
    ({"box": (30, 30, 60)}, r"box must be a Box or 4 numbers \(y0, x0, y1, x1\)"),
    ({"box": "30,30,60,60"}, r"box must be a Box or 4 numbers"),
    ({"points": [(40, 41, 1)]}, r"a click must be a Point or a \(y, x\) pair"),
    ({"points": 40}, r"points must be a list of Point or \(y, x\) pairs"),
    ({"mask": np.zeros((2, 8, 8), bool)}, r"mask prompt must be a \(Y, X\) boolean array"),
])
def test_slice_prompt_refuses_other_forms_by_name(kw, msg):
    from medseg.types import SlicePrompt

    with pytest.raises(PromptError, match=msg):
        SlicePrompt("lv", 0, 3, **kw)


def test_session_prompt_must_be_a_slice_prompt_and_a_tuple_box_segments(model, cine):
    from medseg.session import Session
    from medseg.types import Box, SlicePrompt

    s = Session(cine.image, model, "lv=1,myo=2,rv=3")
    with pytest.raises(PromptError, match=r"prompt must be a medseg\.types\.SlicePrompt.*got dict"):
        s.apply_prompt({"structure": "lv", "frame": 0, "slice": 3, "box": [30, 30, 60, 60]})
    box = Box.from_mask(cine.labels[0, 3] == 1)
    s.apply_prompt(SlicePrompt("lv", 0, 3, box=box.as_tuple()))
    assert (s.labels[0, 3] == 1).sum() > 100


@pytest.mark.parametrize("kw, msg", [
    ({"auto": True, "auto_structures": "lv"}, r"auto_structures must be a tuple of structure names"),
    ({"auto": True, "through": "x"}, r"through must be z, t or zt, got 'x'"),
])
def test_segment_volume_refuses_bad_options_before_any_work(cine, kw, msg):
    from medseg.segment import segment_volume

    with pytest.raises(PromptError, match=msg):
        segment_volume(cine.image, None, **kw)


def test_measure_refuses_a_path_naming_the_reader(cine, tmp_path):
    from medseg.measure import measure_echo, measure_echo_clip, measure_phase

    with pytest.raises(MeasurementError, match=r"got the path .*read_label_volume"):
        measure_phase(str(tmp_path / "lab.nii.gz"), cine.image.affine, "lv=1,myo=2,rv=3")
    with pytest.raises(MeasurementError, match=r"\(Y, X\) label array, got the path .*read_label_volume"):
        measure_echo(tmp_path / "ed.png", tmp_path / "es.png")
    with pytest.raises(MeasurementError, match=r"\(T, Y, X\) label array, got a Volume of shape \(2, 6, 96, 96\): pass vol\.array\[:, 0\]"):
        measure_echo_clip(cine.label_volume)


def test_plots_take_the_whole_report_and_refuse_what_holds_no_segments(cine, tmp_path):
    from medseg.measure import measure_ed_es, plots

    lmap = cine.label_map.subset(["lv", "myo", "rv"])
    rep = measure_ed_es(cine.labels[0], cine.labels[1], cine.image.affine, lmap)
    assert plots.bullseye_png(rep, tmp_path / "a.png").is_file()
    assert plots.thickening_png(rep, tmp_path / "b.png").is_file()
    with pytest.raises(MeasurementError, match=r"expected a report's wall_thickness_mm .*got a dict with keys lv"):
        plots.bullseye_png({"lv": {"ef_pct": 60.0}}, tmp_path / "c.png")
    with pytest.raises(MeasurementError, match="stat must be mean or max"):
        plots.bullseye_png(rep, tmp_path / "d.png", stat="median")
    with pytest.raises(MeasurementError, match=r"labels must be a dict of phase name -> \(Z, Y, X\) label array"):
        plots.overlay_png(cine.labels[0], lmap, tmp_path / "e.png")
    with pytest.raises(MeasurementError, match=r"labels\['ED'\] must be one phase \(Z, Y, X\), got shape \(2, 6, 96, 96\)"):
        plots.overlay_png({"ED": cine.labels}, lmap, tmp_path / "f.png")
    assert plots.overlay_png({"ED": cine.label_volume.phase(0)}, lmap, tmp_path / "g.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "g.png"]


def test_dice_takes_masks_and_refuses_label_maps_and_other_shapes():
    from medseg.evaluation import dice, dice_hd95

    ref = np.zeros((2, 8, 8), np.uint8)
    ref[:, 2:6, 2:6] = 3  # an LV of an ACDC label map
    assert dice(ref.astype(np.float32) / 3, ref == 3) == 1.0  # 0/1 floats are a mask
    with pytest.raises(MedsegError, match=r"boolean mask .*dice\(pred == v, ref == v\)"):
        dice(ref // 3, ref)  # was 0.5: label values summed as voxel counts, an RV (1) where the LV (3) is
    with pytest.raises(MedsegError, match=r"of one shape, got \(3, 3\) and \(4, 4\)"):
        dice(np.ones((3, 3), bool), np.ones((4, 4), bool))
    with pytest.raises(MedsegError, match="boolean mask"):
        dice_hd95(ref, ref, (10.0, 1.0, 1.0))


def test_box_from_mask_needs_one_slice():
    from medseg.types import Box

    with pytest.raises(PromptError, match=r"one slice's \(Y, X\) mask, got shape \(2, 5, 5\)"):
        Box.from_mask(np.ones((2, 5, 5), bool))
