"""Label exports that other tools misread (review 53, F1-F5).

F1: a ``.png`` label file of an image whose pixel spacing is known is refused (it dropped the
spacing: ``measure`` then gave no volumes and another EF). F2: ``.mha`` / ``.nrrd`` / ``.seg.nrrd``
labels of a NIfTI that ITK places elsewhere (its qform, a negative pixdim) are refused, and only
then. F3: a gantry-tilted CT's ``.nii.gz`` labels open in SimpleITK, on the grid its DICOM series
reader builds, while medseg and nibabel keep the exact sheared grid. F4: ``.mha`` / ``.nrrd``
labels of a 2-D image are 2-D. F5: the DICOM SR's TrackingUIDs are the SEG's, every run.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from io_synth import write_phantom_cine_series
from PIL import Image
from pydicom import dcmread
from pydicom.uid import generate_uid
from test_ct_user import _hu, write_ct_series

from medseg.errors import ImageWriteError
from medseg.io import read_label_volume, read_volume, write_labels
from medseg.io.geometry import affine_from_sitk, check_same_grid
from medseg.io.volume import with_pixel_spacing
from medseg.io.writers import check_output

ACDC = Path(__file__).resolve().parents[3] / "shared" / "data" / "acdc" / "training" / "patient017" / "patient017_frame01.nii.gz"


@pytest.fixture(autouse=True)
def _quiet_itk():
    """SimpleITK's "unexpected scales in sform" warnings of the test's own reads."""
    was = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    yield
    sitk.ProcessObject.SetGlobalWarningDisplay(was)


def _mha_2d(path: Path, spacing=(0.3, 0.35)) -> Path:
    """A 2-D MHA (rows x columns 24 x 32) whose pixels are ``spacing`` (x, y) mm."""
    img = sitk.GetImageFromArray((np.arange(24 * 32) % 251).reshape(24, 32).astype(np.uint8))
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path))
    return path


def _mask(shape) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    m[..., 5:14, 3:9] = 1  # off every axis of symmetry
    return m


# -- F1: a PNG loses a known pixel spacing --------------------------------------------------------

def test_png_labels_of_an_image_with_a_known_spacing_are_refused(tmp_path):
    vol = read_volume(_mha_2d(tmp_path / "c.mha"))
    with pytest.raises(ImageWriteError, match=r"c\.png: a PNG records no pixel spacing .*\(0\.35 x 0\.3 mm\).*write \.nii\.gz"):
        check_output(tmp_path / "c.png", vol)
    with pytest.raises(ImageWriteError, match="records no pixel spacing"):  # the API and napari's layer writer too
        write_labels(_mask(vol.grid_shape[1:]), vol, tmp_path / "c.png", "lv=1")
    assert not (tmp_path / "c.png").exists() and not (tmp_path / "c.json").exists()
    write_labels(_mask(vol.grid_shape[1:]), vol, tmp_path / "c.nii.gz", "lv=1")  # a format that keeps it


def test_png_labels_of_a_png_given_a_spacing_are_refused_and_of_a_plain_png_written(tmp_path):
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(tmp_path / "p.png")
    png = read_volume(tmp_path / "p.png")
    with pytest.raises(ImageWriteError, match=r"\(0\.6 x 0\.5 mm\)"):
        write_labels(_mask((24, 32)), with_pixel_spacing(png, (0.6, 0.5)), tmp_path / "s.png", "lv=1")
    out, _ = write_labels(_mask((24, 32)), png, tmp_path / "l.png", "lv=1")  # no spacing to lose: as before
    assert np.array_equal(np.asarray(Image.open(out)), _mask((24, 32)))


def test_segment_refuses_a_png_output_for_an_mha_before_any_work(tmp_path, capsys):
    from medseg.cli import run_cli

    image = _mha_2d(tmp_path / "c.mha")
    assert run_cli(["segment", str(image), "--auto", "-o", str(tmp_path / "c.png")]) == 1
    assert "a PNG records no pixel spacing" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "c.png").exists()


# -- F2: a NIfTI that ITK places elsewhere --------------------------------------------------------

def _nifti(path: Path, sform_code: int, qform_code: int, qform_shift=(0.0, 0.0, 0.0), negative_pixdim: int = 0) -> Path:
    """A 12 x 10 x 4 NIfTI, 1.5 x 1.5 x 10 mm; its qform ``qform_shift`` mm off the sform; pixdim[``negative_pixdim``] < 0."""
    a = np.diag([-1.5, -1.5, 10.0, 1.0])
    a[:3, 3] = [10, 20, 30]
    q = a.copy()
    q[:3, 3] += qform_shift
    img = nib.Nifti1Image(np.zeros((12, 10, 4), np.int16), a)
    img.set_sform(a, sform_code)
    img.set_qform(q, qform_code)
    hdr = img.header.copy()
    if negative_pixdim:  # nibabel would fix it on save: the header is written as it is
        hdr["pixdim"][negative_pixdim] *= -1
    hdr["vox_offset"] = 352
    with open(path, "wb") as f:
        hdr.write_to(f)
        f.write(b"\0" * 4 + np.zeros((12, 10, 4), np.int16).tobytes(order="F"))
    return path


@pytest.mark.parametrize(("sform_code", "qform_code", "shift", "neg", "said"), [
    (2, 1, (6.0, 6.0, 6.0), 0, r"up to 10\.4 mm away"),  # ITK takes the qform of an sform not "scanner"
    (0, 1, (0.0, 0.0, 0.0), 1, r"mirrored in x, up to 33\.0 mm away"),  # ITK mirrors a negative pixdim[1] (11 x 1.5 mm, twice)
])
def test_itk_outputs_of_a_nifti_itk_places_elsewhere_are_refused(tmp_path, sform_code, qform_code, shift, neg, said):
    path = _nifti(tmp_path / "img.nii", sform_code, qform_code, shift, neg)
    vol = read_volume(path)
    lab = _mask(vol.grid_shape)
    for ext in (".mha", ".nrrd", ".seg.nrrd"):
        with pytest.raises(ImageWriteError, match=said + r" from where medseg does .*write \.nii\.gz"):
            check_output(tmp_path / f"lab{ext}", vol)
        with pytest.raises(ImageWriteError, match=said):
            write_labels(lab, vol, tmp_path / f"lab{ext}", "lv=1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.nii"]
    # it is so: ITK's image of the file is not where medseg (and so its .mha labels) put it
    assert not np.allclose(affine_from_sitk(sitk.ReadImage(str(path))), vol.affine, atol=0.1)
    out, _ = write_labels(lab, vol, tmp_path / "lab.nii.gz", "lv=1")  # NIfTI keeps the image's header
    assert np.allclose(affine_from_sitk(sitk.ReadImage(str(out))), affine_from_sitk(sitk.ReadImage(str(path))), atol=1e-4)


def test_a_nifti_whose_qform_itk_does_not_take_is_written_as_mha(tmp_path):
    """sform code 1 (scanner): SimpleITK takes it over the qform 6 mm off, as medseg: no refusal,
    though the reader notes the two transforms."""
    path = _nifti(tmp_path / "img.nii", 1, 1, (6.0, 6.0, 6.0))
    vol = read_volume(path)
    assert "qform" in vol.meta["geometry_note"]
    out, _ = write_labels(_mask(vol.grid_shape), vol, tmp_path / "lab.mha", "lv=1")
    assert np.allclose(affine_from_sitk(sitk.ReadImage(str(out))), affine_from_sitk(sitk.ReadImage(str(path))), atol=1e-4)


@pytest.mark.skipif(not ACDC.is_file(), reason="ACDC data not present")
def test_acdc_labels_are_still_written_as_mha(tmp_path):
    vol = read_volume(ACDC)  # its sform has unit axes, pixdim the voxel size: ITK and medseg agree
    out, _ = write_labels(np.zeros(vol.grid_shape, np.uint8), vol, tmp_path / "lab.mha", "lv=1")
    assert np.allclose(affine_from_sitk(sitk.ReadImage(str(out))), affine_from_sitk(sitk.ReadImage(str(ACDC))), atol=1e-3)


# -- F3: a gantry-tilted CT's NIfTI labels in ITK -------------------------------------------------

def test_tilted_ct_labels_open_in_itk_on_its_series_grid_and_in_medseg_exactly(tmp_path):
    folder = write_ct_series(tmp_path / "tilt", _hu(nz=6, ny=24, nx=24), tilt_deg=15.0)
    vol = read_volume(folder)
    out, _ = write_labels(_mask(vol.grid_shape), vol, tmp_path / "tilt.nii.gz", "lv=1")
    lab = sitk.ReadImage(str(out))  # "ITK only supports orthonormal direction cosines" before
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    series = reader.Execute()
    assert np.allclose(lab.GetOrigin(), series.GetOrigin(), atol=1e-4) and np.allclose(lab.GetSpacing(), series.GetSpacing(), atol=1e-5)
    assert np.allclose(lab.GetDirection(), series.GetDirection(), atol=1e-5)
    assert np.array_equal(sitk.GetArrayFromImage(lab), _mask(vol.grid_shape))
    back = read_label_volume(out)  # medseg and nibabel: the sform, the exact sheared grid
    check_same_grid(vol, back, "labels")
    assert np.allclose(back.affine, vol.affine, atol=1e-5) and np.allclose(nib.load(out).affine, vol.affine, atol=1e-5)
    assert "sheared" in back.meta["geometry_note"]  # the reader says which transform each tool takes


def test_untilted_ct_labels_keep_one_transform(tmp_path):
    folder = write_ct_series(tmp_path / "ct", _hu(nz=4, ny=24, nx=24))
    vol = read_volume(folder)
    out, _ = write_labels(_mask(vol.grid_shape), vol, tmp_path / "ct.nii.gz", "lv=1")
    hdr = nib.load(out).header
    assert (int(hdr["qform_code"]), int(hdr["sform_code"])) == (1, 1)
    assert np.allclose(hdr.get_qform(), hdr.get_sform(), atol=1e-5)
    assert "geometry_note" not in read_label_volume(out).meta


# -- F4: 2-D labels of a 2-D image ----------------------------------------------------------------

@pytest.mark.parametrize("ext", [".mha", ".nrrd"])
@pytest.mark.parametrize("image", ["png", "mha"])
def test_itk_labels_of_a_2d_image_are_2d_and_resample_onto_it(tmp_path, ext, image):
    if image == "png":
        src = tmp_path / "img.png"
        Image.fromarray(np.zeros((24, 32), np.uint8)).save(src)
    else:
        src = _mha_2d(tmp_path / "img.mha")
    vol = read_volume(src)
    out, _ = write_labels(_mask((24, 32)), vol, tmp_path / f"lab{ext}", "lv=1")
    lab, ref = sitk.ReadImage(str(out)), sitk.ReadImage(str(src))
    assert lab.GetDimension() == 2  # Y x X x 1 before: sitk.Resample onto the image raised
    onto = sitk.Resample(lab, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, lab.GetPixelID())
    assert np.array_equal(sitk.GetArrayFromImage(onto), _mask((24, 32)))
    back = read_label_volume(out)
    check_same_grid(vol, back, "labels")
    assert np.array_equal(back.array[0, 0], _mask((24, 32)))


def test_slicer_segmentation_of_a_2d_image_stays_3d(tmp_path):
    src = _mha_2d(tmp_path / "img.mha")
    vol = read_volume(src)
    out, _ = write_labels(_mask((24, 32)), vol, tmp_path / "lab.seg.nrrd", "lv=1")
    assert sitk.ReadImage(str(out)).GetDimension() == 3  # 3D Slicer's segmentations are 3-D
    check_same_grid(vol, read_label_volume(out), "labels")


# -- F5: the SR's TrackingUIDs are the SEG's ------------------------------------------------------

def _sr_tracking_uids(sr) -> dict[str, str]:
    """Tracking Identifier text -> Tracking Unique Identifier of each measurement group."""
    out = {}

    def walk(items):
        ident = next((str(i.TextValue) for i in items if i.ConceptNameCodeSequence[0].CodeValue == "112039"), None)
        uid = next((str(i.UID) for i in items if i.ConceptNameCodeSequence[0].CodeValue == "112040"), None)
        if ident and uid:
            out[ident] = uid
        for i in items:
            if "ContentSequence" in i:
                walk(i.ContentSequence)

    walk(sr.ContentSequence)
    return out


def test_sr_tracking_uids_are_the_segs_and_the_same_every_run(tmp_path):
    from medseg.io.sr_writer import SRContext, build_measurement_sr

    study = generate_uid()
    ph = write_phantom_cine_series(tmp_path / "dicom", study)
    image = read_volume(tmp_path / "dicom")
    seg_path = write_labels(ph.labels[0], image, tmp_path / "seg.dcm", ph.label_map)[0]
    seg = {str(s.TrackingID): str(s.TrackingUID) for s in dcmread(seg_path).SegmentSequence}
    headers = [dcmread(p, stop_before_pixels=True) for p in sorted((tmp_path / "dicom").iterdir())[:2]]
    report = {"lv": {"edv_ml": 150.0, "esv_ml": 60.0, "sv_ml": 90.0, "ef_pct": 60.0}, "rv": {"edv_ml": 160.0, "esv_ml": 70.0}}
    runs = [_sr_tracking_uids(build_measurement_sr(report, SRContext(headers, "MR", study))[0]) for _ in range(2)]
    assert runs[0] == runs[1] and set(runs[0]) == {"left ventricle", "right ventricle"}
    assert (runs[0]["left ventricle"], runs[0]["right ventricle"]) == (seg["lv"], seg["rv"])
