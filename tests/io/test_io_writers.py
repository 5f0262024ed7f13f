"""write_labels validation and atomicity, read_label_volume, DICOM SEG. A DICOM SEG given to
measure / segment / batch / evaluate: test_dicom_seg_commands.py."""

from __future__ import annotations

import json

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from io_synth import NORMAL, write_cine_series, write_enhanced_mr, write_us_clip

from medseg.errors import GeometryError, LabelMapError, MedsegError
from medseg.io import Volume, read_label_volume, read_volume, sidecar_path, write_dicom_seg, write_labels
from medseg.io.volume import affine_from_spacing
from medseg.labels import LabelMap

LM = LabelMap.parse("lv=1,myo=2,rv=3")


@pytest.fixture
def image() -> Volume:
    return Volume(np.zeros((2, 3, 6, 7), np.float32), affine_from_spacing((8.0, 1.5, 1.25)), meta={"format": "nifti"})


@pytest.mark.parametrize(
    ("labels", "error", "match"),
    [
        (np.zeros((3, 6, 8), np.uint8), GeometryError, r"labels shape \(3, 6, 8\) does not fit"),
        (np.zeros((3, 3, 6, 7), np.uint8), GeometryError, "T = 1 or 2"),
        (np.zeros((3, 6, 7), np.float32), LabelMapError, "integer array"),
        (np.full((3, 6, 7), 9, np.uint8), LabelMapError, r"label values \[9\] are not in the label map"),
        (np.full((3, 6, 7), -1, np.int16), LabelMapError, "negative"),
    ],
)
def test_write_labels_rejects_bad_labels_and_writes_nothing(tmp_path, image, labels, error, match):
    with pytest.raises(error, match=match):
        write_labels(labels, image, tmp_path / "seg.nii.gz", LM)
    assert list(tmp_path.iterdir()) == []


def test_write_labels_rejects_unknown_ending_and_bad_provenance(tmp_path, image):
    lab = np.zeros(image.grid_shape, np.uint8)
    with pytest.raises(MedsegError, match="supported endings"):
        write_labels(lab, image, tmp_path / "seg.xyz", LM)
    with pytest.raises(MedsegError, match="provenance"):
        write_labels(lab, image, tmp_path / "seg.nii.gz", LM, provenance={"x": object()})
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_previous_file_intact(tmp_path, image, monkeypatch):
    lab = np.ones(image.grid_shape, np.uint8)
    target = write_labels(lab, image, tmp_path / "seg.nii.gz", LM)[0]
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    side_before = (tmp_path / "seg.json").read_bytes()
    monkeypatch.setattr(nib, "save", boom)
    with pytest.raises(OSError):
        write_labels(np.zeros(image.grid_shape, np.uint8), image, target, LM, provenance={"run": 2})
    assert target.read_bytes() == before and (tmp_path / "seg.json").read_bytes() == side_before  # the earlier pair, both files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.json", "seg.nii.gz"]
    monkeypatch.undo()
    import medseg._files as files  # the sidecar's rename fails after the label file was written

    real = files.os.replace
    monkeypatch.setattr(files.os, "replace", lambda a, b: boom() if str(b).endswith(".json") else real(a, b))
    with pytest.raises(OSError):
        write_labels(np.zeros(image.grid_shape, np.uint8), image, target, LM, provenance={"run": 3})
    # (the label file was replaced before the rename failed: it is removed, never paired with the old sidecar)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.json"] and (tmp_path / "seg.json").read_bytes() == side_before


def test_sidecar_names():
    assert sidecar_path("out/case1.nii.gz").name == "case1.json"
    assert sidecar_path("out/case1.mha").name == "case1.json"
    assert sidecar_path("out/a.b.png").name == "a.b.json"


def test_read_label_volume_dtypes(tmp_path):
    aff = np.diag([1.0, 1.0, 2.0, 1.0])
    whole = np.zeros((4, 5, 2), np.float32)
    whole[1, 1, 1] = 3.0
    nib.save(nib.Nifti1Image(whole, aff), tmp_path / "f.nii.gz")
    lab = read_label_volume(tmp_path / "f.nii.gz")
    assert lab.array.dtype == np.uint8 and lab.array[0, 1, 1, 1] == 3
    nib.save(nib.Nifti1Image(np.full((4, 5, 2), 7, np.int16), aff), tmp_path / "i.nii.gz")
    assert read_label_volume(tmp_path / "i.nii.gz").array.dtype == np.int16
    whole[0, 0, 0] = 0.5
    nib.save(nib.Nifti1Image(whole, aff), tmp_path / "half.nii.gz")
    with pytest.raises(LabelMapError, match=r"half.nii.gz.*non-integer values \(e.g. 0.5\)"):
        read_label_volume(tmp_path / "half.nii.gz")
    near = np.zeros((4, 5, 2), np.float64)
    near[1, 1, 1] = 2.0000001  # printed as "2" (:g), which reads as a whole number
    nib.save(nib.Nifti1Image(near, aff), tmp_path / "near.nii.gz")
    with pytest.raises(LabelMapError, match=r"non-integer values \(e.g. 2.0000001\)"):
        read_label_volume(tmp_path / "near.nii.gz")


def test_dicom_seg_round_trip(tmp_path):
    write_cine_series(tmp_path / "cine", n_slices=3, n_phases=2)
    vol = read_volume(tmp_path / "cine")
    lab = np.zeros(vol.grid_shape, np.uint8)
    lab[0:2, 3:8, 2:6] = LM["lv"]
    lab[1, 4:6, 3:5] = LM["rv"]
    out, side = write_labels(lab, vol, tmp_path / "seg.dcm", LM)
    assert side.name == "seg.json"
    seg = hd.seg.segread(out)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["LV blood pool", "LV myocardium", "RV blood pool"]  # what viewers show
    assert [s.TrackingID for s in seg.SegmentSequence] == ["lv", "myo", "rv"]  # medseg's names
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Left ventricle"
    uids = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in vol.meta["files"][0]]
    got = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True)
    assert np.array_equal(got, lab)  # segment numbers equal the label values for this map

    out1 = write_dicom_seg(lab, vol, tmp_path / "seg_t1.dcm", LM, frame=1)
    uids1 = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in vol.meta["files"][1]]
    got1 = hd.seg.segread(out1).get_pixels_by_source_instance(source_sop_instance_uids=uids1, combine_segments=True)
    assert np.array_equal(got1, lab)
    with pytest.raises(MedsegError, match="one cardiac phase"):
        write_dicom_seg(np.zeros(vol.shape, np.uint8), vol, tmp_path / "x.dcm", LM)


@pytest.mark.parametrize("step_mm", [8.0, 1.0])
def test_a_dicom_seg_of_a_stack_with_a_slice_a_little_off_its_grid_reads_back(tmp_path, step_mm):
    """A stack whose slice 3 sits 0.15 mm (8 mm steps) or 0.03 mm (1 mm steps) off the regular
    grid reads (as scanners that round positions write it), and so must the SEG medseg writes of
    it: highdicom's default took the smallest gap for the step and refused it."""
    series = write_cine_series(tmp_path / "cine", n_slices=6, n_phases=1, step_mm=step_mm)
    off = 0.15 if step_mm == 8.0 else 0.03
    for f in (tmp_path / "cine").iterdir():
        ds = pydicom.dcmread(f)
        if np.allclose([float(v) for v in ds.ImagePositionPatient], series.ipps[3], atol=1e-3):
            ds.ImagePositionPatient = [f"{v:.4f}" for v in series.ipps[3] + off * NORMAL]
            ds.save_as(f)
    vol = read_volume(tmp_path / "cine")
    lab = np.zeros(vol.grid_shape, np.uint8)
    lab[1:5, 3:8, 2:6] = LM["lv"]
    out, _ = write_labels(lab, vol, tmp_path / "seg.dcm", LM)
    back = read_label_volume(out)
    assert np.array_equal(back.array[0], lab)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-3)


def test_dicom_seg_from_enhanced_multiframe(tmp_path):
    write_enhanced_mr(tmp_path / "enh.dcm")
    vol = read_volume(tmp_path / "enh.dcm")
    lab = np.zeros(vol.grid_shape, np.uint8)
    lab[1, 2:5, 2:5] = 2
    out = write_dicom_seg(lab, vol, tmp_path / "seg.dcm", LM, frame=1)
    seg = hd.seg.segread(out)
    assert seg.get_volume(combine_segments=True).array.shape == (3, 8, 9)
    # its frames derive from the source frames of phase 1 (highdicom alone picked any phase's frame
    # at each position), so the SEG is placed on phase 1 of the cine, as for classic images
    from medseg.io.seg_reader import seg_phase

    refs = {int(fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber) for fg in seg.PerFrameFunctionalGroupsSequence}
    assert refs == {n + 1 for n in vol.meta["frame_numbers"][1]}
    assert seg_phase(vol, read_label_volume(out)) == 1
    assert seg_phase(vol, read_label_volume(write_dicom_seg(lab, vol, tmp_path / "seg0.dcm", LM, frame=0))) == 0


def test_dicom_seg_needs_a_positioned_dicom_input(tmp_path, image):
    with pytest.raises(MedsegError, match="needs an image read from DICOM"):
        write_dicom_seg(np.zeros(image.grid_shape, np.uint8), image, tmp_path / "seg.dcm", LM)
    write_us_clip(tmp_path / "us.dcm")
    clip = read_volume(tmp_path / "us.dcm")
    with pytest.raises(MedsegError, match="patient position"):
        write_dicom_seg(np.zeros(clip.shape, np.uint8), clip, tmp_path / "seg.dcm", LM)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["us.dcm"]
    for z in range(3):  # a stack merged from one series per slice: a SEG references one series
        write_cine_series(tmp_path / "sax", n_slices=1, n_phases=1, rows=24, cols=24, first_slice=z, prefix=f"S{z}_")
    stack = read_volume(tmp_path / "sax")
    with pytest.raises(MedsegError, match="references the images of one series; .* is a stack of 3 series"):
        write_labels(np.zeros(stack.grid_shape, np.uint8), stack, tmp_path / "seg.dcm", LM)
    assert not (tmp_path / "seg.dcm").exists()


def _jitter_orientation(files, delta):
    """Rewrite each file's ImageOrientationPatient with its first cosine moved by delta."""
    for f in files:
        ds = pydicom.dcmread(f)
        iop = [float(v) for v in ds.ImageOrientationPatient]
        iop[3] += delta
        ds.ImageOrientationPatient = [f"{v:.7f}" for v in iop]
        ds.save_as(f)


def test_dicom_seg_accepts_orientations_that_differ_in_the_sixth_decimal(tmp_path):
    # Sunnybrook SCD0000301 / 0401: the frames' orientations differ by 1e-6; highdicom compares
    # them exactly, the reader stacks them (tolerance 1e-3), so the SEG takes the first one's.
    write_cine_series(tmp_path / "cine", n_slices=3, n_phases=2)
    files = read_volume(tmp_path / "cine").meta["files"]
    _jitter_orientation([files[0][1], files[1][2]], 1e-6)
    vol = read_volume(tmp_path / "cine")
    lab = np.zeros(vol.shape, np.uint8)
    lab[:, 0:2, 3:8, 2:6] = LM["lv"]
    written = write_labels(lab, vol, tmp_path / "seg.dcm", LM)
    assert sorted(p.name for p in written) == ["seg_frame00.dcm", "seg_frame00.json", "seg_frame01.dcm", "seg_frame01.json"]
    for t in (0, 1):
        seg = hd.seg.segread(tmp_path / f"seg_frame{t:02d}.dcm")
        uids = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in vol.meta["files"][t]]
        got = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True)
        assert np.array_equal(got, lab[t])
        first = pydicom.dcmread(vol.meta["files"][t][0], stop_before_pixels=True).ImageOrientationPatient
        shared = seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient
        assert np.allclose([float(v) for v in shared], [float(v) for v in first], atol=1e-9)


def test_the_segs_of_a_cine_are_one_series_naming_their_phase_colours_and_kind(tmp_path):
    """What PACS and viewers show: one series with instances 1, 2 (not two series of the same
    name and number), each phase named with its trigger time, a display colour per segment,
    the content creator (type 2), AUTOMATIC for zero-click labels, and the sidecar giving the
    SEG's segment numbers, which follow value order, not the label values."""
    write_cine_series(tmp_path / "cine", n_slices=3, n_phases=2)
    vol = read_volume(tmp_path / "cine")
    lab = np.zeros(vol.shape, np.uint8)
    lab[:, 0:2, 3:8, 2:6] = 5
    lab[:, 1, 4:6, 3:5] = 2
    lm = "lv=5,myo=2"
    written = write_labels(lab, vol, tmp_path / "seg.dcm", lm, provenance={"actions": [{"op": "auto"}]})
    segs = [pydicom.dcmread(p) for p in written if p.suffix == ".dcm"]
    assert len({d.SeriesInstanceUID for d in segs}) == 1 and [int(d.InstanceNumber) for d in segs] == [1, 2]
    ms = [1000 * t for t in vol.frame_times_s]
    assert [d.ContentDescription for d in segs] == [f"medseg segmentation, frame {t} ({ms[t]:.0f} ms)" for t in (0, 1)]
    assert all("ContentCreatorName" in d for d in segs)
    items = segs[0].SegmentSequence
    assert [(i.SegmentLabel, i.TrackingID, i.SegmentNumber) for i in items] == [("LV myocardium", "myo", 1), ("LV blood pool", "lv", 2)]
    assert [i.TrackingUID for i in items] == [i.TrackingUID for i in segs[1].SegmentSequence]  # one per structure of the study
    assert len({tuple(i.RecommendedDisplayCIELabValue) for i in items}) == 2
    assert {i.SegmentAlgorithmType for i in items} == {"AUTOMATIC"} and items[1].SegmentDescription.startswith("left ventricular blood pool")
    side = json.loads((tmp_path / "seg_frame00.json").read_text())
    assert side["label_map"] == {"lv": 5, "myo": 2} and side["dicom_seg_segments"] == {"myo": 1, "lv": 2}
    prompted = write_labels(lab[:1], vol, tmp_path / "one.dcm", lm, provenance={"actions": [{"op": "prompt"}]})
    assert {i.SegmentAlgorithmType for i in pydicom.dcmread(prompted[0]).SegmentSequence} == {"SEMIAUTOMATIC"}


def test_a_dicom_seg_that_fails_on_a_later_frame_leaves_no_frame_behind(tmp_path):
    write_cine_series(tmp_path / "cine", n_slices=3, n_phases=2)
    vol = read_volume(tmp_path / "cine")
    _jitter_orientation([vol.meta["files"][1][1]], 0.05)  # changed on disk after reading
    lab = np.zeros(vol.shape, np.uint8)
    lab[:, 0:2, 3:8, 2:6] = LM["lv"]
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(MedsegError, match=r"^DICOM SEG needs one orientation; .* differs from the first image's") as err:
        write_labels(lab, vol, out / "seg.dcm", LM)
    assert "\n" not in str(err.value)
    assert list(out.iterdir()) == []  # frame 0's SEG and sidecar were written, then removed


def test_a_cine_seg_beside_labels_of_the_same_name_checks_its_frames_sidecars(tmp_path):
    """A cine's SEGs are seg_frameNN.dcm with seg_frameNN.json: seg.nii.gz's seg.json is no
    obstacle, another segmentation's seg_frame01.json is."""
    from medseg.io.writers import check_output

    write_cine_series(tmp_path / "cine", n_slices=3, n_phases=2)
    vol = read_volume(tmp_path / "cine")
    lab = np.zeros(vol.shape, np.uint8)
    lab[:, 0:2, 3:8, 2:6] = LM["lv"]
    out = tmp_path / "out"
    out.mkdir()
    write_labels(lab, vol, out / "seg.nii.gz", LM, provenance={"run": 1})
    assert check_output(out / "seg.dcm", vol) == "dicom-seg"
    written = write_labels(lab, vol, out / "seg.dcm", LM, provenance={"run": 1})
    assert sorted(p.name for p in written) == ["seg_frame00.dcm", "seg_frame00.json", "seg_frame01.dcm", "seg_frame01.json"]
    (out / "seg_frame00.dcm").rename(out / "seg_frame00.keep.dcm")  # frame 0's sidecar now describes nothing
    (out / "seg_frame01.mha").write_bytes(b"x")
    side = json.loads((out / "seg_frame01.json").read_text())
    (out / "seg_frame01.json").write_text(json.dumps({**side, "labels": ["seg_frame01.mha"]}))
    with pytest.raises(MedsegError, match="seg_frame01.json is the sidecar of .*seg_frame01.mha"):
        check_output(out / "seg.dcm", vol)


@pytest.mark.parametrize("label_map", ["lv=1,myo=2,rv=3", "rv=1,myo=2,lv=3", "lv=1,la=4"])
def test_a_dicom_seg_reads_back_as_labels_on_the_images_grid(tmp_path, label_map):
    """medseg writes DICOM SEG and reads it back (measure, evaluate): the labels on the image's
    exact grid (the oblique synthetic series, slices in the reader's order), values = segment
    numbers, and the SEG's own label map (segments are numbered by ascending label value)."""
    from medseg.io.geometry import check_same_grid
    from medseg.io.seg_reader import seg_label_map

    lm = LabelMap.parse(label_map)
    write_cine_series(tmp_path / "cine", n_slices=4, n_phases=2)
    vol = read_volume(tmp_path / "cine")
    lab = np.zeros(vol.grid_shape, np.uint8)
    first, second = sorted(lm.values.values())[:2]
    lab[0:3, 3:8, 2:6] = first
    lab[1, 4:6, 6:8] = second  # slice 3 stays empty
    out = write_dicom_seg(lab, vol, tmp_path / "seg.dcm", lm, frame=1)
    back = read_label_volume(out)
    check_same_grid(vol.with_array(vol.array[1:], frame_times_s=None), back, "labels")  # phase 1's grid
    numbers = {name: rank for rank, (name, _) in enumerate(sorted(lm.values.items(), key=lambda kv: kv[1]), start=1)}
    assert back.meta["label_map"] == numbers == seg_label_map(out)
    want = np.zeros_like(lab)
    for name, value in lm.values.items():
        want[lab == value] = numbers[name]
    assert np.array_equal(back.array[0], want)
    assert seg_label_map(vol.meta["files"][0][0]) is None
    with pytest.raises(MedsegError, match="holds no image"):
        read_volume(out)  # as an image a SEG is still refused


def test_a_dicom_seg_is_not_taken_for_every_frame_of_a_cine(tmp_path):
    """One-frame labels stand for every frame of a cine image (evaluate, adapt, --prompts-from);
    a SEG segments one phase, so pairing it with the whole cine is refused in one line."""
    from medseg.errors import GeometryError
    from medseg.io.geometry import check_same_grid

    write_cine_series(tmp_path / "cine", n_slices=3, n_phases=2)
    vol = read_volume(tmp_path / "cine")
    lab = np.zeros(vol.grid_shape, np.uint8)
    lab[0:2, 3:8, 2:6] = 1
    back = read_label_volume(write_dicom_seg(lab, vol, tmp_path / "seg.dcm", LM, frame=1))
    with pytest.raises(GeometryError, match="a DICOM SEG holds one cardiac phase and the image has 2 frames") as err:
        check_same_grid(vol, back, "seg.dcm")
    assert "\n" not in str(err.value)
    check_same_grid(vol.with_array(vol.array[1:], frame_times_s=None), back, "seg.dcm")  # that phase alone: fine


def test_a_dicom_seg_finds_the_frame_of_the_cine_it_segments(tmp_path):
    """A SEG names its source images (SOP instance UIDs): over the cine they belong to it is
    that frame's labels; over another series (same grid, other images) it is none of them."""
    from medseg.io.seg_reader import seg_frame_in, seg_phase

    write_cine_series(tmp_path / "cine", n_slices=3, n_phases=3)
    write_cine_series(tmp_path / "other", n_slices=3, n_phases=3, seed=1)
    vol, other = read_volume(tmp_path / "cine"), read_volume(tmp_path / "other")
    lab = np.zeros(vol.grid_shape, np.uint8)
    lab[0:2, 3:8, 2:6] = 1
    back = read_label_volume(write_dicom_seg(lab, vol, tmp_path / "seg.dcm", LM, frame=2))
    assert seg_frame_in(back, vol) == 2 and seg_phase(vol, back) == 2
    assert seg_frame_in(back, other) is None and seg_phase(other, back) is None
    one = vol.phase(2)
    assert one.n_frames == 1 and np.array_equal(one.array[0], vol.array[2]) and one.meta["files"] == [vol.meta["files"][2]]
    assert seg_phase(one, back) is None  # one frame: nothing to place
    from medseg.io import check_same_grid

    check_same_grid(one, back, "seg.dcm")


def test_segments_of_other_tools_are_named_by_label_or_by_their_snomed_code(tmp_path):
    """Another tool's SEG: a label medseg knows in another spelling (TotalSegmentator's
    ``heart_myocardium``), or a label that says nothing ("Segment 1") whose coded property type
    is the left ventricle, are read as medseg's structures; an unknown one keeps its label."""
    from medseg.io.seg_reader import seg_label_map

    write_cine_series(tmp_path / "cine", n_slices=3, n_phases=1)
    vol = read_volume(tmp_path / "cine")
    lab = np.zeros(vol.grid_shape, np.uint8)
    lab[0:2, 3:8, 2:6], lab[1, 1:3, 1:3], lab[2, 8:10, 6:8] = 1, 2, 3
    out = write_dicom_seg(lab, vol, tmp_path / "seg.dcm", "lv=1,myo=2,rv=3")
    ds = pydicom.dcmread(out)
    for d, label in zip(ds.SegmentSequence, ("Segment 1", "heart_myocardium", "RV")):
        d.SegmentLabel = label
        del d.TrackingID, d.TrackingUID  # medseg's own, which other tools do not write
    ds.save_as(tmp_path / "other.dcm")
    assert seg_label_map(tmp_path / "other.dcm") == {"lv": 1, "myo": 2, "rv": 3}
    ds.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue = "12345"
    ds.save_as(tmp_path / "unknown.dcm")
    assert seg_label_map(tmp_path / "unknown.dcm") == {"segment 1": 1, "myo": 2, "rv": 3}


def test_a_cine_is_not_written_as_nrrd(tmp_path):
    """SimpleITK's 4-D NRRD has no anatomical space (no `space:` field, 4-vectors): refused for a
    cine before anything is written; one frame, and a 4-D MHA, are written."""
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=2, n_slices=4, shape=(64, 64), seed=1)
    lm = ph.label_map.subset(["lv", "myo", "rv"])
    with pytest.raises(MedsegError, match="a 4-D NRRD .* has no anatomical space"):
        write_labels(ph.labels, ph.image, tmp_path / "cine.nrrd", lm)
    assert not list(tmp_path.iterdir())
    write_labels(ph.labels[:1], ph.image, tmp_path / "one.nrrd", lm)
    assert "space: left-posterior-superior" in (tmp_path / "one.nrrd").read_bytes()[:600].decode(errors="replace")
    assert read_label_volume(write_labels(ph.labels, ph.image, tmp_path / "cine.mha", lm)[0]).n_frames == 2


def _seg_without_empty_slices(monkeypatch, lab, vol, path, lm, frame=None):
    """A SEG as highdicom, dcmqi and 3D Slicer write it by default: frames only where a segment is."""
    make = hd.seg.Segmentation
    monkeypatch.setattr(hd.seg, "Segmentation", lambda *a, **kw: make(*a, **{**kw, "omit_empty_frames": True}))
    try:
        return write_dicom_seg(lab, vol, path, lm, frame=frame)
    finally:
        monkeypatch.undo()


def test_segs_that_leave_out_their_empty_slices_are_placed_on_the_images_stack(tmp_path, monkeypatch, capsys):
    """Other tools' SEGs hold frames only for slices with a segment, so a reader's ED and ES
    contours cover different slice ranges: ED + ES measure on the stack both cover (it said
    'different grids'), and evaluate / --prompts-from place the SEG on its image's slices."""
    from medseg.cli import run_cli
    from medseg.io.seg_reader import on_one_stack, onto_image_stack

    write_cine_series(tmp_path / "cine", n_slices=6, n_phases=2, rows=40, cols=40)
    vol = read_volume(tmp_path / "cine")
    yy, xx = np.mgrid[:40, :40]
    r2 = (yy - 20) ** 2 + (xx - 20) ** 2
    ed, es = np.zeros(vol.grid_shape, np.uint8), np.zeros(vol.grid_shape, np.uint8)
    ed[1:5][:, r2 <= 81], ed[1:5][:, (r2 > 81) & (r2 <= 144)] = 1, 2
    es[2:6][:, r2 <= 36], es[2:6][:, (r2 > 36) & (r2 <= 121)] = 1, 2
    for name, lab, t in (("ed", ed, 0), ("es", es, 1)):
        full = read_label_volume(write_dicom_seg(lab, vol, tmp_path / f"{name}_full.dcm", "lv=1,myo=2", frame=t))
        part = read_label_volume(_seg_without_empty_slices(monkeypatch, lab, vol, tmp_path / f"{name}.dcm", "lv=1,myo=2", frame=t))
        assert part.grid_shape == (4, 40, 40) and full.grid_shape == vol.grid_shape
        placed = onto_image_stack(vol.phase(t), part)
        assert placed.same_grid(full) and np.array_equal(placed.array, full.array)
    a, b = on_one_stack(read_label_volume(tmp_path / "ed.dcm"), read_label_volume(tmp_path / "es.dcm"))
    assert a.same_grid(b) and a.grid_shape == (5, 40, 40)  # slices 1-5, the ones the two cover
    for kind in ("", "_full"):
        assert run_cli(["measure", "--ed", str(tmp_path / f"ed{kind}.dcm"), "--es", str(tmp_path / f"es{kind}.dcm"),
                        "-o", str(tmp_path / f"rep{kind}.json")]) == 0, capsys.readouterr().err
    part, full = (json.loads((tmp_path / f"rep{k}.json").read_text()) for k in ("", "_full"))
    assert part["lv"]["ef_pct"] == pytest.approx(full["lv"]["ef_pct"]) and part["lv_mass_g"] == pytest.approx(full["lv_mass_g"])
    assert full["lv"]["ef_pct"] > 20
    (tmp_path / "pairs.csv").write_text(f"image,label,case\n{tmp_path / 'cine'},{tmp_path / 'es.dcm'},c1\n")
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "pairs.csv"), "--prompt", "box", "-o", str(tmp_path / "r.json")]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "r.json").read_text())["cases"][0]["dice"]["lv"] > 0.5
    assert run_cli(["segment", str(tmp_path / "cine"), "--prompts-from", str(tmp_path / "es.dcm"), "-o", str(tmp_path / "out.nii.gz")]) == 0
    out = read_label_volume(tmp_path / "out.nii.gz").array
    assert not out[0].any() and out[1, 2:6].any() and not out[1, :2].any()


def test_nifti_labels_keep_the_images_grid_but_not_what_describes_the_image(tmp_path):
    """A vector image (intent 1007), windowed 0-4000 and described as "MR cine": its labels
    keep the geometry, not the intent, window or description (viewers showed labels 1-3 black,
    medseg read the labels back as MR)."""
    src = nib.Nifti1Image(np.zeros((7, 6, 3, 1, 3), np.float32), np.diag([1.3, 1.25, 8.0, 1.0]))
    src.header.set_intent(1007)
    src.header["cal_min"], src.header["cal_max"] = 0, 4000
    src.header["descrip"] = b"MR cine"
    nib.save(src, tmp_path / "img.nii.gz")
    vol = read_volume(tmp_path / "img.nii.gz")
    labels = np.zeros(vol.shape[1:], np.uint8)
    labels[1, 2:4, 2:5] = 1
    write_labels(labels, vol, tmp_path / "seg.nii.gz", LM)
    h = nib.load(tmp_path / "seg.nii.gz").header
    assert h.get_intent()[0] == "none"
    assert (float(h["cal_min"]), float(h["cal_max"])) == (0.0, 0.0)
    assert bytes(h["descrip"]).rstrip(b"\0") == b"medseg labels"
    np.testing.assert_array_equal(h.get_best_affine(), src.header.get_best_affine())
    back = read_label_volume(tmp_path / "seg.nii.gz")
    assert back.modality == "OT" and np.array_equal(back.array[0], labels)
