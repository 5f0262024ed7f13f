"""NIfTI and MHA/NRRD: cross-library round trips (nibabel <-> medseg <-> SimpleITK)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medseg.io import read_label_volume, read_volume, write_labels
from medseg.io.geometry import affine_from_sitk

LABEL_MAP = "lv=1,myo=2,rv=3"


def _oblique_affine() -> np.ndarray:
    rot, _ = np.linalg.qr(np.array([[0.9, 0.3, 0.1], [-0.2, 0.8, 0.4], [0.1, -0.5, 0.9]]))
    aff = np.eye(4)
    aff[:3, :3] = rot * np.array([1.25, 1.5, 8.0])
    aff[:3, 3] = [12.0, -30.5, 44.0]
    return aff


def _labels_for(shape) -> np.ndarray:
    lab = np.zeros(shape, np.uint8)
    lab[..., 1:4, 2:5] = 1
    lab[..., 0, 0] = 3
    return lab


def test_nifti_3d_read_write_cross_library(tmp_path):
    aff = _oblique_affine()
    data = np.random.default_rng(0).integers(-100, 900, size=(7, 6, 5)).astype(np.int16)  # [x, y, z]
    img = nib.Nifti1Image(data, aff)
    img.set_qform(aff, 1)
    img.set_sform(aff, 2)
    nib.save(img, tmp_path / "img.nii.gz")

    vol = read_volume(tmp_path / "img.nii.gz")
    assert vol.shape == (1, 5, 6, 7) and vol.array.dtype == np.int16
    assert np.array_equal(vol.array[0], data.transpose(2, 1, 0))
    assert np.allclose(vol.affine, aff) and np.allclose(vol.spacing, (8.0, 1.5, 1.25))
    assert vol.frame_times_s is None

    lab = _labels_for(vol.grid_shape)
    written = write_labels(lab, vol, tmp_path / "out" / "seg.nii.gz", LABEL_MAP, provenance={"model": "m1"})
    assert [p.name for p in written] == ["seg.nii.gz", "seg.json"]
    back = nib.load(written[0])
    assert back.shape == (7, 6, 5)  # 3-D in, 3-D out
    assert np.array_equal(back.affine, img.affine)
    assert int(back.header["sform_code"]) == 2 and int(back.header["qform_code"]) == 1
    assert np.array_equal(np.asanyarray(back.dataobj), lab.transpose(2, 1, 0))
    simg = sitk.ReadImage(str(written[0]))
    assert np.allclose(affine_from_sitk(simg), aff, atol=1e-4)
    assert np.array_equal(sitk.GetArrayFromImage(simg), lab)
    side = json.loads(written[1].read_text())
    assert side == {"labels": ["seg.nii.gz"], "label_map": {"lv": 1, "myo": 2, "rv": 3}, "provenance": {"model": "m1", "spacing_known": True}}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["seg.json", "seg.nii.gz"]  # no temp files


def test_nifti_4d_time_and_frame_writes(tmp_path):
    data = np.random.default_rng(1).random((6, 5, 3, 4)).astype(np.float32)
    img = nib.Nifti1Image(data, np.diag([1.4, 1.4, 9.0, 1.0]))
    img.header.set_xyzt_units("mm", "msec")
    img.header["pixdim"][4] = 40.0
    nib.save(img, tmp_path / "cine.nii")
    vol = read_volume(tmp_path / "cine.nii")
    assert vol.shape == (4, 3, 5, 6)
    assert np.allclose(vol.frame_times_s, [0.0, 0.04, 0.08, 0.12])
    lab4 = _labels_for(vol.shape)
    out4 = write_labels(lab4, vol, tmp_path / "l4.nii.gz", LABEL_MAP)[0]
    assert nib.load(out4).shape == (6, 5, 3, 4)
    out3 = write_labels(lab4[2], vol, tmp_path / "l3.nii.gz", LABEL_MAP)[0]
    assert nib.load(out3).shape == (6, 5, 3)
    assert np.array_equal(nib.load(out3).affine, nib.load(tmp_path / "cine.nii").affine)
    assert read_label_volume(out3).same_grid(vol)


def test_nifti_2d_and_trailing_singletons(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((8, 9), np.uint8), np.diag([0.7, 0.8, 1.0, 1.0])), tmp_path / "a.nii.gz")
    v2 = read_volume(tmp_path / "a.nii.gz")
    assert v2.shape == (1, 1, 9, 8) and np.allclose(v2.spacing[1:], (0.8, 0.7))
    out = write_labels(np.zeros((1, 9, 8), np.uint8), v2, tmp_path / "a_seg.nii.gz", LABEL_MAP)[0]
    assert nib.load(out).shape == (8, 9)
    nib.save(nib.Nifti1Image(np.ones((4, 5, 3, 1, 1), np.int16), np.eye(4)), tmp_path / "b.nii.gz")
    assert read_volume(tmp_path / "b.nii.gz").shape == (1, 3, 5, 4)


def test_nifti_sform_without_scales_takes_pixdim_like_itk(tmp_path):
    """ACDC-style header: sform code 2 with unit axis lengths, true spacing in pixdim."""
    img = nib.Nifti1Image(np.zeros((10, 9, 4), np.int16), np.diag([1.5625, 1.5625, 10.0, 1.0]))
    img.set_sform(np.diag([-1.0, -1.0, 1.0, 1.0]), 2)
    img.set_qform(None, 0)
    nib.save(img, tmp_path / "acdc_like.nii.gz")
    vol = read_volume(tmp_path / "acdc_like.nii.gz")
    assert np.allclose(vol.spacing, (10.0, 1.5625, 1.5625)) and "pixdim" in vol.meta["geometry_note"]
    assert vol.describe()["geometry_note"] == vol.meta["geometry_note"]  # `medseg info` shows which size was taken
    assert vol.meta["geometry_conflict"] is False  # unit axis lengths hold no voxel size: nothing to warn of
    img.set_sform(np.diag([1.2, 1.2, 5.0, 1.0]), 1)  # a second, other voxel size: measure says which was taken
    nib.save(img, tmp_path / "two_sizes.nii.gz")
    two = read_volume(tmp_path / "two_sizes.nii.gz")
    assert two.meta["geometry_conflict"] is True
    # how much the choice weighs: pixdim 1.5625 x 1.5625 x 10 against the sform's 1.2 x 1.2 x 5
    assert "volumes (mL) are 3.39 times those the sform's voxel size would give" in two.meta["geometry_note"]
    assert "times those" not in vol.meta["geometry_note"]  # ACDC's unit axes: no second size
    assert np.allclose(vol.affine, affine_from_sitk(sitk.ReadImage(str(tmp_path / "acdc_like.nii.gz"))))
    out = write_labels(np.zeros(vol.grid_shape, np.uint8), vol, tmp_path / "gt.nii.gz", LABEL_MAP)[0]
    back = nib.load(out)
    assert np.array_equal(back.header.get_sform(), nib.load(tmp_path / "acdc_like.nii.gz").header.get_sform())
    assert read_label_volume(out).same_grid(vol)


@pytest.mark.parametrize("unit, to_mm", [("meter", 1000.0), ("micron", 1e-3), ("mm", 1.0), ("unknown", 1.0)])
def test_nifti_spatial_units_are_read_in_millimetres_like_itk(tmp_path, unit, to_mm):
    """A header in metres (xyzt_units) gives spacing and origin in mm, as SimpleITK reads it, and
    labels written for it are on the image's grid again."""
    aff = _oblique_affine() / np.array([1000.0, 1000.0, 1000.0, 1.0])[:, None] / to_mm * 1000.0
    aff[3] = [0, 0, 0, 1]
    img = nib.Nifti1Image(np.arange(7 * 6 * 5, dtype=np.int16).reshape(7, 6, 5), aff)
    img.header.set_xyzt_units(unit)
    nib.save(img, tmp_path / "img.nii.gz")
    vol = read_volume(tmp_path / "img.nii.gz")
    assert np.allclose(vol.affine, _oblique_affine())
    assert np.allclose(vol.affine, affine_from_sitk(sitk.ReadImage(str(tmp_path / "img.nii.gz"))))
    out = write_labels(np.zeros(vol.grid_shape, np.uint8), vol, tmp_path / "gt.nii.gz", LABEL_MAP)[0]
    assert read_label_volume(out).same_grid(vol)


def _sitk_oblique(array: np.ndarray) -> sitk.Image:
    img = sitk.GetImageFromArray(array)
    rot, _ = np.linalg.qr(np.array([[0.9, 0.3, 0.1], [-0.2, 0.8, 0.4], [0.1, -0.5, 0.9]]))
    img.SetDirection(tuple(rot.ravel()))
    img.SetSpacing((0.9, 1.1, 6.0))
    img.SetOrigin((-20.0, 15.0, 3.0))
    return img


@pytest.mark.parametrize("ext", [".mha", ".nrrd"])
def test_itk_read_matches_nibabel_and_writes_back(tmp_path, ext):
    arr = np.random.default_rng(2).integers(0, 500, size=(4, 6, 7)).astype(np.int16)  # (Z, Y, X)
    img = _sitk_oblique(arr)
    sitk.WriteImage(img, str(tmp_path / f"img{ext}"))
    sitk.WriteImage(img, str(tmp_path / "same.nii.gz"))  # the nibabel-equivalent of the same image
    vol = read_volume(tmp_path / f"img{ext}")
    assert vol.shape == (1, 4, 6, 7) and np.array_equal(vol.array[0], arr)
    assert np.allclose(vol.affine, nib.load(tmp_path / "same.nii.gz").affine, atol=1e-4)

    lab = _labels_for(vol.grid_shape)
    out = write_labels(lab, vol, tmp_path / f"seg{ext}", LABEL_MAP)[0]
    back = sitk.ReadImage(str(out))
    assert np.allclose(back.GetOrigin(), img.GetOrigin()) and np.allclose(back.GetSpacing(), img.GetSpacing())
    assert np.allclose(back.GetDirection(), img.GetDirection())
    assert np.array_equal(sitk.GetArrayFromImage(back), lab)
    nifti_out = write_labels(lab, vol, tmp_path / "seg_from_itk.nii.gz", LABEL_MAP)[0]
    assert np.allclose(nib.load(nifti_out).affine, vol.affine)


def test_itk_4d_and_2d(tmp_path):
    arr4 = np.zeros((3, 2, 5, 6), np.float32)  # (T, Z, Y, X)
    arr4[1] = 1.0
    sitk.WriteImage(sitk.GetImageFromArray(arr4, isVector=False), str(tmp_path / "c.mha"))
    vol = read_volume(tmp_path / "c.mha")
    assert vol.shape == (3, 2, 5, 6) and np.array_equal(vol.array, arr4)
    out = write_labels(np.ones(vol.shape, np.uint8), vol, tmp_path / "c_seg.mha", "lv=1")[0]
    assert sitk.ReadImage(str(out)).GetDimension() == 4
    rgb = sitk.GetImageFromArray(np.full((5, 6, 3), 100, np.uint8), isVector=True)
    sitk.WriteImage(rgb, str(tmp_path / "rgb.mha"))
    v2 = read_volume(tmp_path / "rgb.mha")
    assert v2.shape == (1, 1, 5, 6) and np.allclose(v2.array, 100.0, atol=0.01)


def test_a_ct_in_a_format_without_modality_is_read_as_ct_from_its_hounsfield_units(tmp_path):
    """NIfTI / MHA / NRRD do not record the modality; a CT in Hounsfield units read as "OT"
    got the MR intensity normalisation (zero-click LV Dice 0.94 -> 0.57 on the CT phantoms).
    Its intensities say CT; MR (raw or z-scored) and echo stay as they were; a header that
    says MR, and --modality, win."""
    from medseg.io.geometry import medseg_to_nifti
    from medseg.io.readers import in_hounsfield_units
    from medseg.phantoms import cine_sax_phantom, ct_phantom, echo_apical_phantom

    ct = ct_phantom(shape=(16, 64, 64), seed=1).image
    mr = cine_sax_phantom(n_frames=1, n_slices=4, shape=(64, 64), seed=1).image.array
    assert in_hounsfield_units(ct.array)
    assert not in_hounsfield_units(mr) and not in_hounsfield_units((mr - mr.mean()) / mr.std())
    assert not in_hounsfield_units(echo_apical_phantom().image.array)
    img = nib.Nifti1Image(medseg_to_nifti(ct.array.astype(np.int16), 3), ct.affine)
    nib.save(img, tmp_path / "ct.nii.gz")
    vol = read_volume(tmp_path / "ct.nii.gz")
    assert (vol.modality, vol.meta["modality_from"]) == ("CT", "intensities (Hounsfield units)")
    sitk.WriteImage(sitk.ReadImage(str(tmp_path / "ct.nii.gz")), str(tmp_path / "ct.mha"))
    assert read_volume(tmp_path / "ct.mha").modality == "CT"
    img.header["descrip"] = b"MR"
    nib.save(img, tmp_path / "said_mr.nii.gz")
    assert read_volume(tmp_path / "said_mr.nii.gz").modality == "MR"
    forced = read_volume(tmp_path / "ct.nii.gz", modality="mr")
    assert (forced.modality, forced.meta["modality_from"]) == ("MR", "--modality")


def test_labels_of_a_sheared_grid_carry_the_series_readers_qform(tmp_path):
    """A DICOM stack whose positions drift in-plane (gantry tilt) has a sheared affine; a qform
    can only hold a rotation and zooms. The labels keep the exact sform (nibabel, medseg) and,
    for ITK (which refused a file with the sform alone), the qform of the grid ITK's DICOM series
    reader builds: rows, columns, the planes' normal with the slice step as spacing (review 53, F3)."""
    from medseg.io import Volume

    sheared = np.diag([1.5, 1.5, 10.0, 1.0])
    sheared[0, 2] = 2.0  # each slice 2 mm further along x
    series = np.diag([1.5, 1.5, float(np.hypot(10.0, 2.0)), 1.0])
    for i, (aff, qform) in enumerate(((sheared, series), (_oblique_affine(), _oblique_affine()))):
        vol = Volume(np.zeros((1, 4, 6, 7), np.float32), aff, modality="MR", meta={"format": "dicom"})
        out = write_labels(_labels_for(vol.grid_shape), vol, tmp_path / f"seg{i}.nii.gz", LABEL_MAP)[0]
        hdr = nib.load(out).header
        assert int(hdr["qform_code"]) == 1 and int(hdr["sform_code"]) == 1
        assert np.allclose(hdr.get_sform(), aff, atol=1e-4) and np.allclose(hdr.get_qform(), qform, atol=1e-4)
        assert np.allclose(read_label_volume(out).affine, aff, atol=1e-4)


@pytest.mark.parametrize("case", ["sform_and_qform_differ", "no_transform", "sheared_sform"])
def test_a_header_tools_place_differently_is_noted(tmp_path, case):
    """medseg takes nibabel's transform (the sform; a centred default without either); ITK may
    take the qform or its own default, so labels written as .mha lie elsewhere there: say so."""
    img = nib.Nifti1Image(np.zeros((12, 10, 4), np.float32), np.diag([1.5, 1.5, 8.0, 1.0]))
    if case == "sform_and_qform_differ":
        moved = np.diag([-1.5, -1.5, 8.0, 1.0])
        moved[:3, 3] = [50.0, 60.0, 0.0]
        img.set_sform(moved, 2)
        img.set_qform(np.diag([1.5, 1.5, 8.0, 1.0]), 1)
    elif case == "no_transform":
        img.set_sform(None, 0)
        img.set_qform(None, 0)
    else:
        shear = np.array([[1.4, 0.2, 0.5, -30.0], [-0.3, 1.3, 1.0, 20.0], [0.1, -0.4, 7.9, 5.0], [0, 0, 0, 1.0]])
        img.set_sform(shear, 1)
        img.set_qform(shear, 1)  # a qform holds no shear: nibabel stores its rigid part
    nib.save(img, tmp_path / "img.nii")
    note = read_volume(tmp_path / "img.nii").meta.get("geometry_note", "")
    assert ("neither a qform nor an sform" if case == "no_transform" else "place the grid up to") in note
    assert "keep the labels as NIfTI" in note


def test_a_header_whose_transforms_agree_has_no_note(tmp_path):
    img = nib.Nifti1Image(np.zeros((12, 10, 4), np.float32), _oblique_affine())
    img.set_qform(_oblique_affine(), 1)
    img.set_sform(_oblique_affine(), 1)
    nib.save(img, tmp_path / "img.nii")
    assert "geometry_note" not in read_volume(tmp_path / "img.nii").meta
