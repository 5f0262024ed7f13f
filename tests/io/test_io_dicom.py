"""DICOM reading on synthetic series written with pydicom (oblique, shuffled, cine, enhanced,
ultrasound, compressed; headers that do not fit). Studies through batch / evaluate / measure:
test_io_dicom_studies.py."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from io_synth import write_cine_series, write_enhanced_mr, write_us_clip

from medseg.errors import GeometryError, ImageReadError
from medseg.io import read_volume, slice_positions_mm
from medseg.io.geometry import lps_to_ras


def _check_against_ipp(vol, series) -> None:
    for t in range(vol.n_frames):
        for z in range(vol.n_slices):
            ds = pydicom.dcmread(vol.meta["files"][t][z], stop_before_pixels=True)
            ras = lps_to_ras(np.asarray(ds.ImagePositionPatient, dtype=float))
            assert np.allclose(vol.index_to_world([[z, 0, 0]])[0], ras, atol=1e-3)
            assert np.allclose(ds.ImagePositionPatient, series.ipps[z], atol=1e-3)
            assert ds.TriggerTime == pytest.approx(series.triggers_ms[t, z])


def test_cine_series_sorted_by_position_and_trigger(tmp_path):
    s = write_cine_series(tmp_path / "cine", n_slices=4, n_phases=2)
    vol = read_volume(tmp_path / "cine")
    assert vol.shape == (2, 4, 12, 10) and vol.modality == "MR" and vol.array.dtype == np.float32
    assert np.allclose(vol.spacing, (8.0, 1.5, 1.25), atol=1e-4)
    assert np.array_equal(vol.array, s.pixels.astype(np.float32) * s.slope + s.intercept)
    _check_against_ipp(vol, s)
    assert np.allclose(vol.frame_times_s, s.triggers_ms[:, 0] / 1000.0)
    assert np.allclose(np.diff(slice_positions_mm(vol)), 8.0, atol=1e-3)
    assert vol.meta["series_description"] == "CINE SA" and vol.meta["heart_rate"] == 60.0
    # in-plane: pixel (row 3, column 5) lies at IPP + 5*dx*row_dir + 3*dy*col_dir
    ds = pydicom.dcmread(vol.meta["files"][0][1], stop_before_pixels=True)
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    lps = np.asarray(ds.ImagePositionPatient, dtype=float) + 5 * 1.25 * iop[:3] + 3 * 1.5 * iop[3:]
    assert np.allclose(vol.index_to_world([[1, 3, 5]])[0], lps_to_ras(lps), atol=1e-3)


@pytest.mark.parametrize("modality", ["MR", "CT"])
def test_monochrome1_reads_as_it_is_shown(tmp_path, modality):
    """MONOCHROME1 (low values shown white) is read the way a viewer shows it: the stored
    values mirrored in their bit range before the rescale, so blood stays bright for the model
    (it was read inverted and segmented nothing). A CT keeps its Hounsfield units."""
    s = write_cine_series(tmp_path / "cine", n_slices=3, n_phases=1)
    for f in sorted((tmp_path / "cine").iterdir()):
        ds = pydicom.dcmread(f)
        ds.PhotometricInterpretation, ds.Modality = "MONOCHROME1", modality
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
        ds.PixelData = ds.pixel_array.astype(np.uint16).tobytes()
        ds.save_as(f, enforce_file_format=True)
    vol = read_volume(tmp_path / "cine")
    stored = s.pixels.astype(np.float32)
    shown = 4095 - stored if modality == "MR" else stored
    assert np.array_equal(vol.array, shown * s.slope + s.intercept)


def test_non_dicom_files_in_the_folder_are_ignored(tmp_path):
    write_cine_series(tmp_path / "cine", n_slices=3, n_phases=1)
    (tmp_path / "cine" / "notes.txt").write_text("hello")
    (tmp_path / "cine" / "junk.dcm").write_bytes(np.random.default_rng(0).bytes(500))
    (tmp_path / "cine" / "empty.dcm").write_bytes(b"")
    assert read_volume(tmp_path / "cine").shape == (1, 3, 12, 10)


def test_single_slice_uses_slice_thickness(tmp_path):
    s = write_cine_series(tmp_path / "one", n_slices=1, n_phases=1)
    (path,) = list((tmp_path / "one").iterdir())
    for src in (tmp_path / "one", path):
        vol = read_volume(src)
        assert vol.shape == (1, 1, 12, 10) and vol.spacing[0] == pytest.approx(6.0)
        assert np.allclose(vol.affine[:3, 3], lps_to_ras(s.ipps[0]), atol=1e-3)


def test_one_series_per_slice_is_merged(tmp_path):
    for z in range(3):  # one series per slice position (common for cine short-axis exports)
        write_cine_series(tmp_path / "g", n_slices=1, n_phases=2, description=f"SA {z}", first_slice=z, prefix=f"S{z}_")
    vol = read_volume(tmp_path / "g")
    assert vol.shape == (2, 3, 12, 10) and len(vol.meta["series_instance_uids"]) == 3
    assert np.allclose(vol.spacing[0], 8.0, atol=1e-3)
    for z in range(3):  # three series at the same position do not form one volume
        write_cine_series(tmp_path / "f", n_slices=1, n_phases=2, description=f"SA {z}", prefix=f"S{z}_")
    with pytest.raises(ImageReadError, match=r"3 series that do not form one volume .*'SA 1' \.\.\.\w+ \(2 images\).*--series"):
        read_volume(tmp_path / "f")


def test_a_study_folder_with_one_folder_per_series_reads_as_its_series(tmp_path):
    """A study exported as one folder per series (PACS, DICOMDIR-style): a short-axis cine saved
    one series per slice reads from the study folder as one stack; with another series beside
    it, the listing names each series' folder and --series (a glob) picks the stack; several
    studies below one folder are refused (medseg batch takes each)."""
    from medseg.errors import MixedSeriesError
    from medseg.io.dicom import series_folders_form_a_stack

    study = tmp_path / "study"
    for z in range(3):
        write_cine_series(study / f"sax_b{z + 1}", n_slices=1, n_phases=2, description=f"SAX b{z + 1}", first_slice=z, study_uid="1.2.3.77")
    flat = tmp_path / "flat"
    for z in range(3):
        write_cine_series(flat, n_slices=1, n_phases=2, description=f"SAX b{z + 1}", first_slice=z, study_uid="1.2.3.77", prefix=f"S{z}_")
    vol = read_volume(study)
    assert vol.shape == (2, 3, 12, 10) and np.array_equal(vol.array, read_volume(flat).array)
    assert vol.describe()["series_merged"] == 3  # medseg info says the stack came from 3 series
    assert series_folders_form_a_stack(sorted(study.iterdir()))
    assert not series_folders_form_a_stack([study / "sax_b1", study / "sax_b1"])  # one position twice

    write_cine_series(study / "la_4ch", n_slices=1, n_phases=2, rows=16, cols=16, description="CINE 4CH", study_uid="1.2.3.77")
    assert not series_folders_form_a_stack(sorted(study.iterdir()))
    with pytest.raises(MixedSeriesError, match=r"'CINE 4CH' \.\.\.\w+ \(2 images in la_4ch/\)"):
        read_volume(study)
    assert read_volume(study, series="sax*").shape == (2, 3, 12, 10)
    assert read_volume(study, series="4ch").shape == (2, 1, 16, 16)

    write_cine_series(tmp_path / "export" / "patient2" / "cine", n_slices=2, n_phases=1, study_uid="1.2.3.78")
    (tmp_path / "export" / "patient1").mkdir()
    study.rename(tmp_path / "export" / "patient1" / "study")
    with pytest.raises(ImageReadError, match="its sub-folders hold more than one study"):
        read_volume(tmp_path / "export")


def test_series_picks_one_series_of_a_scanner_export(tmp_path):
    """A study folder as scanners export it (cine short axis, a localizer, ...): --series picks
    one by number, description (a part, or a glob) or UID end; medseg info lists them."""
    import json

    from medseg.cli import run_cli
    from medseg.io.dicom import list_dicom_series

    sax = write_cine_series(tmp_path / "study", n_slices=3, n_phases=2, rows=24, cols=20, description="CINE SAX", prefix="A_", series_number=7)
    write_cine_series(tmp_path / "study", n_slices=1, n_phases=1, rows=16, cols=16, description="LOCALIZER", prefix="B_", series_number=1,
                      series_uid="1.2.3.9999.4242")
    with pytest.raises(ImageReadError, match=r"#1 'LOCALIZER' \.\.\.999\.4242 \(1 images\); #7 'CINE SAX'"):
        read_volume(tmp_path / "study")
    for sel in ("7", "sax", "*cine*", "CINE SAX"):
        vol = read_volume(tmp_path / "study", series=sel)
        assert vol.shape == (2, 3, 24, 20) and np.array_equal(vol.array, sax.pixels * 2.0 - 5.0)
    assert read_volume(tmp_path / "study", series="...4242").shape == (1, 1, 16, 16)
    with pytest.raises(ImageReadError, match=r"no series matches --series 'lge'; it holds #1 'LOCALIZER'"):
        read_volume(tmp_path / "study", series="lge")
    with pytest.raises(ImageReadError, match="is not a folder"):
        read_volume(next((tmp_path / "study").iterdir()), series="7")
    assert [(r["number"], r["description"], r["images"]) for r in list_dicom_series(tmp_path / "study")] == [(1, "LOCALIZER", 1), (7, "CINE SAX", 6)]
    assert run_cli(["info", str(tmp_path / "study"), "--json"]) == 0
    assert run_cli(["segment", str(tmp_path / "study"), "--series", "sax", "--auto", "-o", str(tmp_path / "seg.nii.gz")]) == 0
    assert json.loads((tmp_path / "seg.json").read_text())["provenance"]["series"] == "sax"


def test_enhanced_multiframe(tmp_path):
    s = write_enhanced_mr(tmp_path / "enh.dcm")
    vol = read_volume(tmp_path / "enh.dcm")
    assert vol.shape == (2, 3, 8, 9)
    assert np.array_equal(vol.array, s.pixels.astype(np.float32))
    assert np.allclose(vol.spacing, (7.0, 1.1, 1.3), atol=1e-4)
    for z in range(3):
        assert np.allclose(vol.index_to_world([[z, 0, 0]])[0], lps_to_ras(s.ipps[z]), atol=1e-3)
    assert np.allclose(vol.frame_times_s, s.triggers_ms[:, 0] / 1000.0)


def test_a_legacy_converted_enhanced_cine_keeps_its_frame_times_and_heart_rate(tmp_path):
    """A Legacy Converted Enhanced MR (highdicom, dcm2dcm) keeps TriggerTime, HeartRate and
    NominalInterval in its Unassigned Converted Attributes, not in a functional group: its
    frame times and heart rate (cardiac output) are those of the series it was made from (both
    were lost)."""
    import warnings

    from highdicom.legacy import LegacyConvertedEnhancedMRImage
    from pydicom.uid import generate_uid

    write_cine_series(tmp_path / "cine", n_slices=3, n_phases=2)
    sources = [pydicom.dcmread(f) for f in sorted((tmp_path / "cine").iterdir())]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        LegacyConvertedEnhancedMRImage(sources, series_instance_uid=generate_uid(), series_number=9, sop_instance_uid=generate_uid(),
                                       instance_number=1).save_as(tmp_path / "converted.dcm")
    ref, conv = read_volume(tmp_path / "cine"), read_volume(tmp_path / "converted.dcm")
    assert np.array_equal(conv.array, ref.array) and np.allclose(conv.affine, ref.affine)
    assert conv.frame_times_s is not None and np.allclose(conv.frame_times_s, ref.frame_times_s)
    assert (conv.meta["heart_rate"], conv.meta["nominal_interval"]) == (60.0, 1000.0)


def test_ultrasound_multiframe_clip(tmp_path):
    pixels = write_us_clip(tmp_path / "us.dcm", n_frames=5)
    vol = read_volume(tmp_path / "us.dcm")
    assert vol.shape == (5, 1, 16, 20) and vol.modality == "US" and not vol.spacing_known
    assert np.array_equal(vol.array[:, 0], pixels.astype(np.float32))
    assert np.allclose(vol.frame_times_s, np.arange(5) * 0.0333)


@pytest.mark.parametrize("implicit", [True, False])
def test_dicom_without_the_part10_preamble_reads_as_with_it(tmp_path, implicit):
    """Old exports and research archives hold DICOM data sets without the 128-byte preamble,
    the DICM marker and file meta (often without an extension too): they read as the same
    series (they were 'no DICOM images in folder'); a text file beside them is still no image."""
    from medseg.batch import discover_cases

    s = write_cine_series(tmp_path / "plain", n_slices=3, n_phases=2)
    (tmp_path / "in" / "bare").mkdir(parents=True)
    for i, f in enumerate(sorted((tmp_path / "plain").iterdir())):
        ds = pydicom.dcmread(f)
        bare = pydicom.Dataset()
        bare.update(ds)
        bare.save_as(tmp_path / "in" / "bare" / f"{i + 1}", implicit_vr=implicit, little_endian=True, enforce_file_format=False)
    (tmp_path / "in" / "bare" / "notes").write_text("scanned 2009\n")
    assert (tmp_path / "in" / "bare" / "1").read_bytes()[128:132] != b"DICM"
    vol = read_volume(tmp_path / "in" / "bare")
    assert np.array_equal(vol.array, read_volume(tmp_path / "plain").array) and np.array_equal(vol.array, s.pixels * 2.0 - 5.0)
    assert np.allclose(vol.affine, read_volume(tmp_path / "plain").affine)
    assert read_volume(tmp_path / "in" / "bare" / "1").shape == (1, 1, 12, 10)
    assert [c.case for c in discover_cases(tmp_path / "in")] == ["bare"]
    with pytest.raises(ImageReadError, match="unsupported file type"):
        read_volume(tmp_path / "in" / "bare" / "notes")


def _edit(folder, pick, **changes) -> None:
    """Change header attributes of the files selected by ``pick(index)``."""
    for i, f in enumerate(sorted(folder.iterdir())):
        if pick(i):
            ds = pydicom.dcmread(f)
            for k, v in changes.items():
                if v is None:
                    delattr(ds, k)
                else:
                    setattr(ds, k, v)
            ds.save_as(f)


def test_unequal_phase_counts_are_rejected(tmp_path):
    write_cine_series(tmp_path / "c", n_slices=3, n_phases=2)
    sorted((tmp_path / "c").iterdir())[0].unlink()
    with pytest.raises(ImageReadError, match="different numbers of phases"):
        read_volume(tmp_path / "c")


def test_missing_slice_is_read_as_a_blank_slice(tmp_path):
    """(Refused before; tests/io/test_gapped_stack47.py has the rest.)"""
    s = write_cine_series(tmp_path / "c", n_slices=4, n_phases=1)
    for f in (tmp_path / "c").iterdir():
        if np.allclose(pydicom.dcmread(f).ImagePositionPatient, s.ipps[2], atol=1e-3):
            f.unlink()
    assert read_volume(tmp_path / "c").meta["missing_slices"] == [2]


def test_missing_pixel_spacing_is_rejected(tmp_path):
    write_cine_series(tmp_path / "c", n_slices=2, n_phases=1)
    _edit(tmp_path / "c", lambda i: i == 1, PixelSpacing=None)
    with pytest.raises(GeometryError, match="missing spacing"):
        read_volume(tmp_path / "c")


def test_mixed_image_sizes_are_rejected(tmp_path):
    write_cine_series(tmp_path / "c", n_slices=3, n_phases=1)
    write_cine_series(tmp_path / "d", n_slices=1, n_phases=1, rows=6, cols=6)
    uid = pydicom.dcmread(next((tmp_path / "c").iterdir())).SeriesInstanceUID
    _edit(tmp_path / "d", lambda i: True, SeriesInstanceUID=uid)
    f = next((tmp_path / "d").iterdir())
    f.rename(tmp_path / "c" / "small.dcm")
    with pytest.raises(ImageReadError, match="different sizes"):
        read_volume(tmp_path / "c")


@pytest.mark.parametrize("syntax", ["JPEGLosslessProcess14_1", "JPEGLSLossless", "JPEG2000Lossless", "RLELossless"])
def test_compressed_series_read_as_the_uncompressed_one(tmp_path, monkeypatch, syntax):
    """PACS exports are often compressed (JPEG Lossless process 14 above all): a series whose
    files were transcoded by GDCM reads back voxel for voxel as before."""
    import gdcm

    s = write_cine_series(tmp_path / "plain", n_slices=3, n_phases=2)
    (tmp_path / "packed").mkdir()
    for f in sorted((tmp_path / "plain").iterdir()):
        r = gdcm.ImageReader()
        r.SetFileName(str(f))
        assert r.Read()
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, syntax)))
        change.SetInput(r.GetImage())
        assert change.Change()
        w = gdcm.ImageWriter()  # GDCM rewrites some header fields: take only its compressed pixels
        w.SetFileName(str(tmp_path / "gdcm.dcm"))
        w.SetFile(r.GetFile())
        w.SetImage(change.GetOutput())
        assert w.Write()
        packed, ds = pydicom.dcmread(tmp_path / "gdcm.dcm"), pydicom.dcmread(f)
        ds.file_meta.TransferSyntaxUID = packed.file_meta.TransferSyntaxUID
        ds.PixelData = packed.PixelData
        ds["PixelData"].VR = "OB"
        ds.save_as(tmp_path / "packed" / f.name, enforce_file_format=True)
    first = next((tmp_path / "packed").iterdir())
    assert pydicom.dcmread(first, stop_before_pixels=True).file_meta.TransferSyntaxUID.is_compressed
    plain, packed = read_volume(tmp_path / "plain"), read_volume(tmp_path / "packed")
    assert np.array_equal(packed.array, plain.array) and np.allclose(packed.affine, plain.affine) and packed.shape == (2, 3, 12, 10)
    assert np.array_equal(plain.array, s.pixels * 2.0 - 5.0)
    # without a decoder for it: one line that names the package to install
    def no_decoder(self):
        raise RuntimeError("Unable to decode as exceptions were raised by all available plugins")

    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(no_decoder))

    def gdcm_fails_too(ds, pillow_error):  # JPEG 2000: GDCM's try runs in a child process, which the patch above does not reach
        raise pillow_error

    monkeypatch.setattr("medseg.io.dicom_pixels._gdcm_in_child", gdcm_fails_too)
    # decoders for it are installed (GDCM, Pillow; pydicom's own for RLE) and failed: damaged data, and the package
    # that might decode it where it is not installed (python-gdcm was named with python-gdcm installed)
    want = {"JPEG2000Lossless": "pylibjpeg-openjpeg", "RLELossless": "may be damaged (copy the file again"}.get(syntax, "pylibjpeg-libjpeg")
    with pytest.raises(ImageReadError, match="cannot decode pixels") as err:
        read_volume(tmp_path / "packed")
    assert want in str(err.value) and "could not decode it: its pixel data may be damaged" in str(err.value) and "\n" not in str(err.value)
    assert "python-gdcm" not in str(err.value)
    # no decoder for it installed: the package to install
    class _NoPlugins:
        available_plugins = ()

    monkeypatch.setattr("pydicom.pixels.get_decoder", lambda ts: _NoPlugins())
    want = {"JPEG2000Lossless": "pylibjpeg-openjpeg", "RLELossless": "python-gdcm"}.get(syntax, "pylibjpeg-libjpeg")
    with pytest.raises(ImageReadError, match="cannot decode pixels") as err:
        read_volume(tmp_path / "packed")
    assert want in str(err.value) and "damaged" not in str(err.value)


def test_a_video_transfer_syntax_says_to_convert_not_to_install_gdcm(tmp_path):
    """MPEG-2 pixel data: no decoder exists in pydicom for it, and the hint said "install
    python-gdcm" with python-gdcm installed."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import MPEG2MPML

    write_cine_series(tmp_path / "cine", n_slices=2, n_phases=1)
    for f in sorted((tmp_path / "cine").iterdir()):
        ds = pydicom.dcmread(f)
        ds.file_meta.TransferSyntaxUID = MPEG2MPML
        ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
        ds["PixelData"].VR = "OB"
        ds.save_as(f, enforce_file_format=True)
    with pytest.raises(ImageReadError, match="cannot decode pixels") as err:
        read_volume(tmp_path / "cine")
    msg = str(err.value)
    assert "pydicom decodes no MPEG2 Main Profile / Main Level pixel data: convert the series to uncompressed images" in msg
    assert "install python-gdcm" not in msg and "\n" not in msg
