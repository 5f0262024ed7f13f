"""Reader, writer and sample data (layer-data tuples; no viewer needed)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from medseg_napari._layers import META_LABEL_MAP, META_PROVENANCE, META_VOLUME, layer_geometry, volume_for_layer
from medseg_napari._reader import get_reader, read_image
from medseg_napari._sample_data import make_cine_sample, make_echo_sample
from medseg_napari._writer import write_label_layer, write_labels_dicom_seg, write_labels_nifti
from napari_helpers import io_synth

from medseg.io import read_label_volume
from medseg.io.volume import Volume


def _nifti_4d(path, shape=(3, 5, 16, 20), zooms=(1.5, 1.25, 8.0), origin=(10.0, -20.0, 30.0)):
    import nibabel as nib

    data = np.random.default_rng(0).integers(0, 500, size=shape).astype(np.int16)  # (T, Z, Y, X)
    aff = np.diag([-zooms[0], zooms[1], zooms[2], 1.0])  # x flipped, like many scanners
    aff[:3, 3] = origin
    nib.save(nib.Nifti1Image(np.transpose(data, (3, 2, 1, 0)), aff), str(path))
    return data, aff


def test_reader_nifti_4d_geometry(tmp_path):
    data, aff = _nifti_4d(tmp_path / "cine.nii.gz")
    reader = get_reader(str(tmp_path / "cine.nii.gz"))
    assert reader is read_image
    (arr, kw, kind), = reader(str(tmp_path / "cine.nii.gz"))
    assert kind == "image" and arr.shape == data.shape and np.array_equal(arr, data)
    assert kw["name"] == "cine"
    assert kw["scale"] == pytest.approx((1.0, 8.0, 1.25, 1.5))
    # translate: the origin projected on each axis direction (x runs towards -x here)
    assert kw["translate"] == pytest.approx((0.0, 30.0, -20.0, -10.0))
    vol = kw["metadata"][META_VOLUME]
    assert isinstance(vol, Volume) and np.allclose(vol.affine, aff)


def test_reader_opens_another_tools_reference_labels_as_labels(tmp_path):
    """ACDC's patientNNN_frameNN_gt.nii.gz (no medseg sidecar) opens as a label layer with no
    label map of its own (the measurement panel's map says which value is which); an image of a
    few values without such a name, and a `_gt` file of many values, stay images."""
    import nibabel as nib

    aff = np.diag([1.5, 1.5, 8.0, 1.0])
    lab = np.zeros((20, 16, 4), np.float32)  # nibabel (x, y, z); ACDC stores labels as float
    lab[5:12, 4:10, 1:3] = 3
    lab[3:5, 4:10, 1:3] = 2
    nib.save(nib.Nifti1Image(lab, aff), str(tmp_path / "patient001_frame01_gt.nii.gz"))
    nib.save(nib.Nifti1Image(lab, aff), str(tmp_path / "patient001_frame01.nii.gz"))
    noisy = np.random.default_rng(0).integers(0, 500, size=lab.shape).astype(np.int16)
    nib.save(nib.Nifti1Image(noisy, aff), str(tmp_path / "noisy_gt.nii.gz"))
    (arr, kw, kind), = read_image(str(tmp_path / "patient001_frame01_gt.nii.gz"))
    assert kind == "labels" and np.issubdtype(arr.dtype, np.integer)
    assert np.array_equal(arr[0], np.transpose(lab, (2, 1, 0)).astype(arr.dtype))
    assert META_LABEL_MAP not in kw["metadata"] and kw["scale"] == pytest.approx((1.0, 8.0, 1.5, 1.5))
    assert read_image(str(tmp_path / "patient001_frame01.nii.gz"))[0][2] == "image"
    assert read_image(str(tmp_path / "noisy_gt.nii.gz"))[0][2] == "image"


def test_reader_dicom_folder_and_png(tmp_path):
    from PIL import Image

    write_cine_series = io_synth().write_cine_series

    s = write_cine_series(tmp_path / "dicom", n_slices=3, n_phases=2)
    (arr, kw, _), = get_reader(str(tmp_path / "dicom"))(str(tmp_path / "dicom"))
    assert arr.shape == (2, 3, 12, 10) and kw["scale"] == pytest.approx((1.0, s.step_mm, 1.5, 1.25))
    Image.fromarray(np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)).save(tmp_path / "a.png")
    (arr, kw, _), = read_image(str(tmp_path / "a.png"))
    assert arr.shape == (1, 1, 12, 10)


def test_reader_opens_each_series_of_a_scanner_export_as_a_layer(tmp_path):
    """A study folder with a cine and a localizer (no one volume): a layer per series, named by
    number and description, each on its own grid."""
    write_cine_series = io_synth().write_cine_series

    write_cine_series(tmp_path / "study", n_slices=3, n_phases=2, description="CINE SAX", prefix="A_", series_number=7)
    write_cine_series(tmp_path / "study", n_slices=1, n_phases=1, rows=16, cols=16, description="LOCALIZER", prefix="B_", series_number=1)
    layers = get_reader(str(tmp_path / "study"))(str(tmp_path / "study"))
    assert [(kw["name"], arr.shape, kind) for arr, kw, kind in layers] == [("study #1 LOCALIZER", (1, 1, 16, 16), "image"),
                                                                       ("study #7 CINE SAX", (2, 3, 12, 10), "image")]


def test_reader_opens_a_dicom_seg_as_labels_over_its_images(tmp_path):
    from medseg.io import read_volume, write_labels

    io_synth().write_cine_series(tmp_path / "dicom", n_slices=3, n_phases=2)
    vol = read_volume(tmp_path / "dicom")
    lab = np.zeros((2, *vol.grid_shape), np.uint8)
    lab[:, 1, 3:8, 2:6] = 3  # rv
    lab[:, 0, 2:4, 2:4] = 1  # lv
    write_labels(lab, vol, tmp_path / "seg.dcm", "lv=1,myo=2,rv=3")
    (img, img_kw, _), = read_image(str(tmp_path / "dicom"))
    (arr, kw, kind), = get_reader(str(tmp_path / "seg_frame01.dcm"))(str(tmp_path / "seg_frame01.dcm"))
    assert kind == "labels" and arr.shape == (1, *vol.grid_shape) and np.array_equal(arr[0], lab[1])
    assert kw["scale"] == pytest.approx(img_kw["scale"]) and kw["translate"] == pytest.approx(img_kw["translate"])
    assert kw["metadata"][META_LABEL_MAP] == {"lv": 1, "myo": 2, "rv": 3}


@pytest.mark.parametrize("make", [
    lambda p: None,  # missing file
    lambda p: (p / "notes.txt").write_text("hello"),
    lambda p: (p / "empty_dir").mkdir(),
])
def test_get_reader_declines(tmp_path, make):
    make(tmp_path)
    for name in ("missing.nii.gz", "notes.txt", "empty_dir"):
        if (tmp_path / name).exists() or name == "missing.nii.gz":
            assert get_reader(str(tmp_path / name)) is None
    assert get_reader([str(tmp_path / "a.nii"), str(tmp_path / "b.nii")]) is None


def test_reader_never_raises_on_corrupt_file(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    reader = get_reader(str(bad))
    assert reader is not None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert reader(str(bad)) is None
    assert any("broken.nii.gz" in str(w.message) for w in caught)


def test_writer_nifti_keeps_source_geometry(tmp_path):
    import nibabel as nib

    data, aff = _nifti_4d(tmp_path / "img.nii.gz")
    (_, kw, _), = read_image(str(tmp_path / "img.nii.gz"))
    labels = np.zeros(data.shape, np.uint8)
    labels[1, 2, 4:9, 5:12] = 1
    labels[1, 2, 9:11, 5:12] = 2
    attrs = {"metadata": {META_VOLUME: kw["metadata"][META_VOLUME], META_LABEL_MAP: {"lv": 1, "myo": 2},
                          META_PROVENANCE: {"actions": [{"op": "prompt"}]}}, "scale": kw["scale"], "translate": kw["translate"]}
    out = write_labels_nifti(str(tmp_path / "seg.nii.gz"), labels, attrs)
    assert [p.rsplit("/", 1)[-1] for p in out] == ["seg.nii.gz", "seg.json"]
    img = nib.load(out[0])
    assert np.allclose(img.affine, aff) and img.shape == (20, 16, 5, 3)
    assert np.array_equal(read_label_volume(out[0]).array, labels)
    side = json.loads(open(out[1]).read())
    assert side["label_map"] == {"lv": 1, "myo": 2} and side["provenance"]["actions"] == [{"op": "prompt"}]


def test_writer_never_replaces_the_image(tmp_path):
    from medseg.errors import ImageWriteError

    data, _ = _nifti_4d(tmp_path / "img.nii.gz")
    before = (tmp_path / "img.nii.gz").read_bytes()
    (_, kw, _), = read_image(str(tmp_path / "img.nii.gz"))
    attrs = {"metadata": {META_VOLUME: kw["metadata"][META_VOLUME], META_LABEL_MAP: {"lv": 1}}, "scale": kw["scale"], "translate": kw["translate"]}
    with pytest.raises(ImageWriteError, match="would replace the image the labels were drawn on"):
        write_labels_nifti(str(tmp_path / "img.nii.gz"), np.zeros(data.shape, np.uint8), attrs)
    assert (tmp_path / "img.nii.gz").read_bytes() == before and not (tmp_path / "img.json").exists()


def test_writer_without_metadata_uses_layer_scale(tmp_path):
    labels = np.zeros((4, 10, 12), np.uint8)
    labels[1, 2:5, 3:6] = 3
    out = write_label_layer(tmp_path / "plain.nii.gz", labels, {"scale": (8.0, 1.5, 1.25), "translate": (5.0, 0.0, 0.0)})
    vol = read_label_volume(out[0])
    assert vol.shape == (1, 4, 10, 12) and vol.spacing == pytest.approx((8.0, 1.5, 1.25))
    assert vol.affine[2, 3] == pytest.approx(5.0)
    assert json.loads(out[1].read_text())["label_map"]["rv"] == 3


def test_writer_dicom_seg_per_frame(tmp_path):
    pytest.importorskip("highdicom")
    import pydicom

    write_cine_series = io_synth().write_cine_series

    write_cine_series(tmp_path / "dicom", n_slices=3, n_phases=2)
    (arr, kw, _), = read_image(str(tmp_path / "dicom"))
    labels = np.zeros(arr.shape, np.uint8)
    labels[0, 1, 3:8, 2:7] = 1
    labels[1, 1, 4:8, 2:6] = 1
    out = write_labels_dicom_seg(str(tmp_path / "seg.dcm"), labels, {"metadata": kw["metadata"]})
    segs = sorted(p for p in out if p.endswith(".dcm"))
    assert [s.rsplit("/", 1)[-1] for s in segs] == ["seg_frame00.dcm", "seg_frame01.dcm"]
    ds = pydicom.dcmread(segs[1])
    assert ds.Modality == "SEG" and ds.SegmentSequence[0].SegmentLabel == "LV blood pool" and ds.SegmentSequence[0].TrackingID == "lv"


def test_sample_data_layers():
    for make, shape in ((make_cine_sample, (20, 10, 128, 128)), (make_echo_sample, (16, 1, 224, 224))):
        (img, ikw, ik), (lab, lkw, lk) = make()
        assert (ik, lk) == ("image", "labels") and img.shape == lab.shape == shape
        assert lkw["visible"] is False and ikw["scale"] == lkw["scale"]
        vol = ikw["metadata"][META_VOLUME]
        assert layer_geometry(vol)["scale"] == ikw["scale"]


def test_volume_for_layer_matches_kept_volume():
    (img, kw, _), _ = make_cine_sample()
    vol = volume_for_layer(img, kw["scale"], kw["translate"], kw["metadata"])
    assert vol is kw["metadata"][META_VOLUME]
    other = volume_for_layer(img[0], kw["scale"][1:], kw["translate"][1:], {})  # a 3-D layer of one frame
    assert other.shape == (1, 10, 128, 128) and other.spacing == pytest.approx(vol.spacing)


def test_a_cine_seg_opens_on_the_frame_it_segments(make_napari_viewer, tmp_path):
    """One SEG per phase (medseg writes seg_frameNN.dcm): opened over its cine it is shown on its
    own frame (found by its source images' SOP instance UIDs), not on frame 0; without the cine
    open it is a one-frame layer as before, moved onto its frame when the cine is opened."""
    from medseg.io import read_volume, write_labels

    io_synth().write_cine_series(tmp_path / "dicom", n_slices=3, n_phases=3)
    vol = read_volume(tmp_path / "dicom")
    lab = np.zeros((3, *vol.grid_shape), np.uint8)
    lab[2, 1, 3:8, 2:6] = 1
    write_labels(lab, vol, tmp_path / "seg.dcm", "lv=1")
    seg = str(tmp_path / "seg_frame02.dcm")
    viewer = make_napari_viewer()
    (alone,) = viewer.open(seg, plugin="medseg")
    assert alone.translate[0] == 0 and "(frame" not in alone.name
    viewer.layers.clear()
    (image,) = viewer.open(str(tmp_path / "dicom"), plugin="medseg")
    (labels,) = viewer.open(seg, plugin="medseg")
    assert labels.translate[0] == 2 and labels.name.endswith("(frame 2)")
    assert tuple(labels.translate[1:]) == pytest.approx(tuple(image.translate[1:]))
    viewer.layers.clear()  # the SEG first, then its cine: the SEG moves onto its frame
    (first,) = viewer.open(seg, plugin="medseg")
    viewer.open(str(tmp_path / "dicom"), plugin="medseg")
    assert first.translate[0] == 2 and first.name.endswith("(frame 2)")


def test_a_seg_without_its_empty_slices_opens_on_its_cines_whole_stack(make_napari_viewer, tmp_path, monkeypatch):
    """Other tools' SEGs hold frames only for slices with a segment (highdicom's, dcmqi's and
    3D Slicer's default): over its cine, opened after or before it, the label layer covers the
    whole stack on the SEG's own frame (it stayed a cropped layer on frame 0)."""
    import highdicom as hd

    from medseg.io import read_volume, write_dicom_seg

    io_synth().write_cine_series(tmp_path / "dicom", n_slices=4, n_phases=3)
    vol = read_volume(tmp_path / "dicom")
    lab = np.zeros(vol.grid_shape, np.uint8)
    lab[1:3, 3:8, 2:6] = 1  # slices 0 and 3 empty: left out of the SEG
    make = hd.seg.Segmentation
    with monkeypatch.context() as m:
        m.setattr(hd.seg, "Segmentation", lambda *a, **kw: make(*a, **{**kw, "omit_empty_frames": True}))
        seg = str(write_dicom_seg(lab, vol, tmp_path / "seg.dcm", "lv=1", frame=2))
    viewer = make_napari_viewer()
    (alone,) = viewer.open(seg, plugin="medseg")
    assert alone.data.shape == (1, 2, *vol.grid_shape[1:])  # the SEG by itself: its two slices
    viewer.layers.clear()
    (image,) = viewer.open(str(tmp_path / "dicom"), plugin="medseg")
    for layer in (viewer.open(seg, plugin="medseg")[0], None):
        if layer is None:  # the SEG first, then its cine
            viewer.layers.clear()
            (layer,) = viewer.open(seg, plugin="medseg")
            (image,) = viewer.open(str(tmp_path / "dicom"), plugin="medseg")
        assert layer.data.shape == (1, *vol.grid_shape) and np.array_equal(np.asarray(layer.data)[0] > 0, lab > 0)
        assert layer.translate[0] == 2 and tuple(layer.translate[1:]) == pytest.approx(tuple(image.translate[1:]))


def test_reader_opens_a_study_folder_with_a_folder_per_slice_series(tmp_path):
    """File > Open Folder on a study exported one series folder per slice: one stack layer."""
    for z in range(3):
        io_synth().write_cine_series(tmp_path / "study" / f"sax_{z}", n_slices=1, n_phases=2, first_slice=z, study_uid="1.2.3.91")
    reader = get_reader(str(tmp_path / "study"))
    assert reader is not None
    (arr, kw, kind), = reader(str(tmp_path / "study"))
    assert kind == "image" and arr.shape == (2, 3, 12, 10)
    assert get_reader(str(tmp_path / "study" / "sax_0")) is not None and get_reader(str(tmp_path)) is not None
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert get_reader(str(tmp_path / "empty")) is None


def test_a_ct_opens_in_the_cardiac_window(tmp_path):
    """A CT NIfTI (no modality in the file: known by its Hounsfield units) opens in the window
    the model sees (-250..750 HU), not the percentiles, which span air to bone."""
    import nibabel as nib

    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import ct_phantom

    ct = ct_phantom(shape=(12, 48, 48), seed=2).image
    nib.save(nib.Nifti1Image(medseg_to_nifti(ct.array.astype(np.int16), 3), ct.affine), tmp_path / "ct.nii.gz")
    (data, kwargs, kind), = read_image(str(tmp_path / "ct.nii.gz"))
    assert kind == "image" and tuple(kwargs["contrast_limits"]) == (-250.0, 750.0)
    assert kwargs["metadata"][META_VOLUME].modality == "CT"
