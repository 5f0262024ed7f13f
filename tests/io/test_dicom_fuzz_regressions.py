"""DICOM headers a fuzzing review found read wrongly or failing with an unexpected error: a
TransferSyntaxUID that is no transfer syntax, different images under one SOPInstanceUID, pixel
data longer than Rows x Columns declare, TriggerTime nan/inf, ImageOrientationPatient that is
not two unit vectors at right angles, and an ImagePositionPatient that is not finite. Each is a
one-line typed error naming the file and the value (or, for the times, frame times left out with
a note)."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pydicom
import pytest
from io_synth import write_cine_series, write_us_clip

from medseg.cli._app import run_cli
from medseg.errors import GeometryError, ImageReadError
from medseg.io import read_volume


def _one_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return " ".join(lines[0].split())


def _edit(files, change) -> None:
    """Apply ``change(ds)`` to each file's data set and save it as it is (no validation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom: "Invalid value for VR DS: 'nan'"
        for f in files:
            ds = pydicom.dcmread(f)
            change(ds)
            ds.save_as(f, enforce_file_format=False)


def _cine(tmp_path, **kw):
    series = write_cine_series(tmp_path / "cine", n_slices=3, n_phases=2, **kw)
    return series, sorted(series.folder.glob("*.dcm"))


def _refused(path, error, capsys, *says: str) -> str:
    with pytest.raises(error) as err:
        read_volume(path)
    msg = _one_line(str(err.value))
    for s in says:
        assert s in msg, msg
    assert "np.float64" not in msg
    assert run_cli(["info", str(path)]) == 1
    assert _one_line(capsys.readouterr().err).startswith("error: ")
    return msg


# -- 1. TransferSyntaxUID --------------------------------------------------------------------
@pytest.mark.parametrize("scope", ["one", "all"])
def test_a_transfer_syntax_uid_that_is_no_transfer_syntax_is_one_line_error(tmp_path, capsys, scope):
    _, files = _cine(tmp_path)
    bad = files[2:3] if scope == "one" else files

    def change(ds):
        ds.file_meta.TransferSyntaxUID = "1.2.3"

    _edit(bad, change)
    msg = _refused(files[0].parent, ImageReadError, capsys, "TransferSyntaxUID '1.2.3' is not a transfer syntax", "allowed")
    assert any(f.name in msg for f in bad)


# -- 2. one SOPInstanceUID, different images -------------------------------------------------
def test_files_sharing_a_sop_instance_uid_but_holding_different_images_are_refused(tmp_path, capsys):
    _, files = _cine(tmp_path)
    uid = pydicom.dcmread(files[0], stop_before_pixels=True).SOPInstanceUID

    def change(ds):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid

    _edit(files[1:], change)  # one UID on every file: kept the first file only, a (1, 1) image
    msg = _refused(files[0].parent, ImageReadError, capsys, f"{len(files)} files share SOPInstanceUID {uid} but hold different images")
    assert "InstanceNumber" in msg


def test_true_copies_sharing_a_sop_instance_uid_are_still_one_image(tmp_path):
    series, files = _cine(tmp_path)
    for f in files:  # the study copied twice, half of it re-encoded by another tool ("12.5" as "12.500000"): still copies
        shutil.copy(f, f.with_name("copy_" + f.name))
    _edit([f.with_name("copy_" + f.name) for f in files[::2]],
          lambda ds: setattr(ds, "ImagePositionPatient", [f"{float(v):.6f}" for v in ds.ImagePositionPatient]))
    vol = read_volume(series.folder)
    assert vol.shape == (2, 3, 12, 10)


# -- 3. pixel data longer than the header declares -------------------------------------------
def _fewer_columns(ds):
    ds.Columns = ds.Columns - 1


def _fewer_rows(ds):
    ds.Rows = ds.Rows - 1


def _extra_bytes(ds):
    ds.PixelData = ds.PixelData + ds.PixelData[:64]


@pytest.mark.parametrize("change, actual, expected", [(_fewer_columns, 240, 216), (_fewer_rows, 240, 220), (_extra_bytes, 304, 240)],
                         ids=["columns-1", "rows-1", "extra-bytes"])
def test_pixel_data_longer_than_rows_x_columns_is_refused(tmp_path, capsys, change, actual, expected):
    _, files = _cine(tmp_path)  # 12 x 10 pixels of 16 bits: 240 bytes
    _edit(files, change)
    msg = _refused(files[0].parent, ImageReadError, capsys, f"holds {actual:,} bytes, more than the {expected:,}")
    assert any(f.name in msg for f in files)


def test_a_single_file_with_extra_pixel_data_is_refused(tmp_path, capsys):
    _, files = _cine(tmp_path)
    _edit(files[:1], _fewer_rows)
    _refused(files[0], ImageReadError, capsys, files[0].name, "holds 240 bytes, more than the 220")


def test_a_few_trailing_padding_bytes_are_no_wrong_header(tmp_path):
    """Less than a row of extra bytes is padding some scanners write: no Rows or Columns that
    is wrong gives it, and the image reads as it is."""
    series, files = _cine(tmp_path)  # rows of 10 pixels x 2 bytes: 20 bytes
    _edit(files, lambda ds: setattr(ds, "PixelData", ds.PixelData + b"\0" * 18))
    assert read_volume(series.folder).shape == (2, 3, 12, 10)


def test_the_padding_byte_of_odd_length_pixel_data_is_allowed(tmp_path):
    clip = write_us_clip(tmp_path / "odd.dcm", n_frames=3, rows=5, cols=7)  # 105 bytes, written as 106
    assert len(pydicom.dcmread(tmp_path / "odd.dcm").PixelData) == 106
    vol = read_volume(tmp_path / "odd.dcm")
    np.testing.assert_array_equal(vol.array[:, 0], clip)


# -- 4. TriggerTime nan / inf ----------------------------------------------------------------
@pytest.mark.parametrize("value, scope", [("nan", "all"), ("inf", "all"), ("nan", "one")])
def test_a_trigger_time_that_is_no_number_leaves_the_frame_times_out_with_a_note(tmp_path, value, scope):
    series, files = _cine(tmp_path)
    bad = files if scope == "all" else files[:1]

    def change(ds):
        ds.TriggerTime = value

    _edit(bad, change)
    vol = read_volume(series.folder)
    assert vol.shape == (2, 3, 12, 10)
    assert vol.frame_times_s is None
    note = vol.meta["time_note"]
    assert f"{len(bad)} of {len(files)} images have a TriggerTime that is no time ({value}" in note and "frame times left out" in note
    assert all(t is None or np.isfinite(t) for row in vol.meta["trigger_times_ms"] for t in row)


def test_a_clip_whose_frame_time_vector_is_no_number_has_no_frame_times(tmp_path):
    write_us_clip(tmp_path / "clip.dcm", n_frames=3)
    _edit([tmp_path / "clip.dcm"], lambda ds: setattr(ds, "FrameTimeVector", [0, "nan", 33.3]))
    assert read_volume(tmp_path / "clip.dcm").frame_times_s is None
    _edit([tmp_path / "clip.dcm"], lambda ds: (delattr(ds, "FrameTimeVector"), setattr(ds, "FrameTime", "inf")))
    assert read_volume(tmp_path / "clip.dcm").frame_times_s is None


# -- 5. ImageOrientationPatient --------------------------------------------------------------
@pytest.mark.parametrize("iop, shown", [([2, 0, 0, 0, 2, 0], "[2, 0, 0, 0, 2, 0]"), ([1, 0, 0, 0.5, 0.5, 0], "[1, 0, 0, 0.5, 0.5, 0]"),
                                        ([1, 0, 0, 0.6, 0.8, 0], "[1, 0, 0, 0.6, 0.8, 0]"), ([0, 0, 0, 0, 0, 0], "[0, 0, 0, 0, 0, 0]")],
                         ids=["length-2", "not-unit", "not-perpendicular", "zero"])
def test_an_orientation_that_is_not_two_unit_vectors_at_right_angles_is_refused(tmp_path, capsys, iop, shown):
    _, files = _cine(tmp_path)
    _edit(files, lambda ds: setattr(ds, "ImageOrientationPatient", iop))
    _refused(files[0].parent, GeometryError, capsys, f"ImageOrientationPatient {shown}", "allowed")


def test_an_orientation_rounded_to_three_decimals_still_reads(tmp_path):
    c = np.cos(np.radians(20.0))
    iop = [round(v, 3) for v in (c, np.sin(np.radians(20.0)), 0.0, 0.0, 0.0, -1.0)]  # 0.94, 0.342: length 1.0003
    series, files = _cine(tmp_path)
    _edit(files, lambda ds: setattr(ds, "ImageOrientationPatient", iop))
    assert read_volume(series.folder).shape == (2, 3, 12, 10)


# -- 6. ImagePositionPatient nan / inf -------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_position_that_is_not_finite_is_refused_naming_the_file(tmp_path, capsys, value):
    _, files = _cine(tmp_path)
    _edit(files[3:4], lambda ds: setattr(ds, "ImagePositionPatient", [value, "0", "0"]))
    msg = _refused(files[0].parent, GeometryError, capsys, files[3].name, f"ImagePositionPatient [{value}, 0, 0]")
    assert "phases" not in msg


def test_a_positioned_multi_frame_clip_with_a_bad_orientation_or_position_is_refused(tmp_path, capsys):
    path = tmp_path / "clip.dcm"
    write_us_clip(path, n_frames=3)

    def positioned(iop, ipp):
        def change(ds):
            ds.ImageOrientationPatient, ds.ImagePositionPatient, ds.PixelSpacing = iop, ipp, [0.5, 0.5]
        return change

    _edit([path], positioned([1, 0, 0, 0, 1, 0], [0, 0, 0]))
    assert read_volume(path).shape == (3, 1, 16, 20)
    _edit([path], positioned([2, 0, 0, 0, 2, 0], [0, 0, 0]))
    _refused(path, GeometryError, capsys, "ImageOrientationPatient [2, 0, 0, 0, 2, 0]")
    _edit([path], positioned([1, 0, 0, 0, 1, 0], ["nan", 0, 0]))
    _refused(path, GeometryError, capsys, "ImagePositionPatient [nan, 0, 0]")


def test_series_folders_with_a_zero_orientation_are_no_stack_and_say_why_when_read(tmp_path):
    """Batch discovery asks whether a study's series folders form one stack: a zero
    ImageOrientationPatient there raised (GeometryError) instead of answering no; reading the
    folder then names the file and the orientation in plain numbers."""
    from medseg.io.dicom import series_folders_form_a_stack

    study = tmp_path / "study"
    for z in range(3):
        write_cine_series(study / f"sax_b{z + 1}", n_slices=1, n_phases=2, first_slice=z, study_uid="1.2.3.77")
    _edit(sorted(study.glob("*/*")), lambda ds: setattr(ds, "ImageOrientationPatient", [0, 0, 0, 0, 0, 0]))
    assert not series_folders_form_a_stack(sorted(study.iterdir()))
    with pytest.raises(GeometryError, match=r"ImageOrientationPatient \[0, 0, 0, 0, 0, 0\]"):
        read_volume(study / "sax_b2")
