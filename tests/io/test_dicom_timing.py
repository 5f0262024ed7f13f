"""DICOM cines whose timing headers are incomplete or contradict each other (TriggerTime on
some images only, two images per position and trigger time, HeartRate vs NominalInterval),
slice positions that jitter between frames, and PixelPaddingValue."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from io_synth import write_cine_series, write_enhanced_mr, write_us_clip
from pydicom.uid import generate_uid

from medseg.errors import GeometryError, ImageReadError
from medseg.io import read_volume


def _cine(folder: Path, n_slices: int = 3, n_phases: int = 5, **kw):
    """A cine whose InstanceNumbers follow slice then phase (as scanners number them)."""
    s = write_cine_series(folder, n_slices=n_slices, n_phases=n_phases, **kw)
    _rewrite(s, lambda ds, z, t: setattr(ds, "InstanceNumber", z * n_phases + t + 1))
    return s


def _where(s, ds) -> tuple[int, int]:
    """(slice, phase) of a file of the series ``s`` (from its position and trigger time)."""
    z = int(np.argmin(np.linalg.norm(s.ipps - np.asarray(ds.ImagePositionPatient, dtype=float)[None], axis=1)))
    t = int(np.argmin(np.abs(s.triggers_ms[:, z] - float(ds.TriggerTime))))
    return z, t


def _rewrite(s, fn) -> None:
    """Call ``fn(ds, z, t)`` on every file of the series ``s`` and save it."""
    for f in sorted(s.folder.iterdir()):
        ds = pydicom.dcmread(f)
        fn(ds, *_where(s, ds))
        ds.save_as(f, enforce_file_format=True)


def _truth(s) -> np.ndarray:
    return s.pixels.astype(np.float32) * s.slope + s.intercept


# -- 1. TriggerTime on some images only ----------------------------------------------------
def test_trigger_time_missing_on_some_images_orders_every_slice_by_instance_number(tmp_path):
    """Two images of the middle slice lack TriggerTime: they were sorted to the end of that
    slice's frames (slice 1 out of phase with the others from frame 1 on, frame times kept
    from slice 0). Now every slice is ordered by InstanceNumber, which agrees with the trigger
    times the others have, and the frame times are left out with a note."""
    s = _cine(tmp_path / "cine")

    def drop(ds, z, t):
        if (z, t) in ((1, 1), (1, 3)):
            del ds.TriggerTime

    _rewrite(s, drop)
    vol = read_volume(s.folder)
    assert np.array_equal(vol.array, _truth(s))  # every slice in phase
    assert vol.frame_times_s is None
    note = "2 of 15 images have no TriggerTime: frames ordered by InstanceNumber, frame times left out"
    assert vol.meta["time_note"] == note and vol.describe()["time_note"] == note
    assert [row[1] for row in vol.meta["trigger_times_ms"]][1::2] == [None, None]


def test_trigger_time_missing_where_instance_numbers_disagree_is_refused(tmp_path):
    s = _cine(tmp_path / "cine")

    def drop_and_reverse(ds, z, t):
        if (z, t) == (1, 2):
            del ds.TriggerTime
        if z == 1:
            ds.InstanceNumber = 100 - t  # slice 1 numbered backwards

    _rewrite(s, drop_and_reverse)
    with pytest.raises(ImageReadError, match=r"1 of 15 images have no TriggerTime \(e\.g\. IM\d{4}\.dcm\), and the InstanceNumber order "
                                             r"disagrees with the TriggerTimes of the others") as e:
        read_volume(s.folder)
    assert "\n" not in str(e.value)


def test_a_stack_of_one_phase_missing_some_trigger_times_needs_no_note(tmp_path):
    s = _cine(tmp_path / "stack", n_phases=1)
    _rewrite(s, lambda ds, z, t: ds.__delattr__("TriggerTime") if z == 1 else None)
    vol = read_volume(s.folder)
    assert np.array_equal(vol.array, _truth(s)) and "time_note" not in vol.meta


def test_no_trigger_time_at_all_is_ordered_by_instance_number_as_before(tmp_path):
    s = _cine(tmp_path / "cine")
    _rewrite(s, lambda ds, z, t: ds.__delattr__("TriggerTime"))
    vol = read_volume(s.folder)
    assert np.array_equal(vol.array, _truth(s)) and vol.frame_times_s is None and "time_note" not in vol.meta


def test_one_placeholder_trigger_time_per_slice_is_no_frame_time(tmp_path):
    """An ungated cine whose images all carry TriggerTime 0 is no pair of duplicates: its
    frames follow InstanceNumber, without frame times (as before, now with a note)."""
    s = _cine(tmp_path / "cine")
    _rewrite(s, lambda ds, z, t: setattr(ds, "TriggerTime", 0.0))
    vol = read_volume(s.folder)
    assert np.array_equal(vol.array, _truth(s)) and vol.frame_times_s is None
    assert vol.meta["time_note"] == "the images of each slice share one TriggerTime (0 ms): frames ordered by InstanceNumber, frame times left out"


# -- 2. two images per position and trigger time -------------------------------------------
def _add_copies(s, image_type: list[str] | None, only=None) -> None:
    """A second image at each (or only the ``only``) position and trigger time: other pixels,
    another SOP instance, ImageType ``image_type`` (the first ones get ...\\M\\ND)."""
    for i, f in enumerate(sorted(s.folder.iterdir())):
        ds = pydicom.dcmread(f)
        if only is not None and _where(s, ds) != only:
            continue
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.save_as(f, enforce_file_format=True)
        if image_type is not None:
            ds.ImageType = image_type
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = 1000 + i
        ds.PixelData = np.full((ds.Rows, ds.Columns), 7 * i, dtype=np.int16).tobytes()
        ds.save_as(f.with_name(f"PH{i:04d}.dcm"), enforce_file_format=True)


def test_a_repeated_image_at_one_position_and_trigger_time_is_refused(tmp_path):
    s = _cine(tmp_path / "cine")
    _add_copies(s, None, only=(2, 3))
    with pytest.raises(ImageReadError, match=r"2 images share a position and trigger time \(e\.g\. \w+\.dcm and \w+\.dcm, \d+ ms\): "
                                             r"the series repeats images or mixes acquisitions; export one"):
        read_volume(s.folder)


def test_one_sop_instance_under_two_names_is_still_one_image(tmp_path):
    s = _cine(tmp_path / "cine")
    for f in sorted(s.folder.iterdir()):
        shutil.copy(f, f.with_name("copy_" + f.name))
    vol = read_volume(s.folder)
    assert np.array_equal(vol.array, _truth(s)) and np.allclose(vol.frame_times_s, s.triggers_ms[:, 0] / 1000.0)


# -- 3. HeartRate and NominalInterval ------------------------------------------------------
def test_heart_rate_is_the_median_over_the_images(tmp_path):
    """Each slice's images record the heart rate of its own breath-hold (Sunnybrook: 76-80/min):
    the series' heart rate was the first image's."""
    s = _cine(tmp_path / "cine", n_phases=2)
    rates = {0: (50, 1200), 1: (61, 984), 2: (62, 968)}
    _rewrite(s, lambda ds, z, t: (setattr(ds, "HeartRate", rates[z][0]), setattr(ds, "NominalInterval", rates[z][1])))
    vol = read_volume(s.folder)
    assert (vol.meta["heart_rate"], vol.meta["nominal_interval"]) == (61.0, 984.0)
    assert "cardiac_timing_note" not in vol.meta


def test_heart_rate_that_disagrees_with_nominal_interval_gives_way_to_it(tmp_path, capsys):
    """HeartRate 120 with NominalInterval 1000 ms: the scanner gated on 60/min, which cardiac
    output now uses (it took 120, doubling it), with a note `medseg info` shows; labels written
    for the image keep 60 in their sidecar for `medseg measure`."""
    from medseg.cli._app import run_cli
    from medseg.io import read_label_volume, write_labels
    from medseg.measure.report import heart_rate_options

    s = _cine(tmp_path / "cine", n_phases=2)
    _rewrite(s, lambda ds, z, t: (setattr(ds, "HeartRate", 120), setattr(ds, "NominalInterval", 1000)))
    vol = read_volume(s.folder)
    note = ("HeartRate 120 beats/min and NominalInterval 1000 ms (60.0 beats/min) differ by more than 10%: "
            "60.0 beats/min taken, from the RR interval the scanner gated on")
    assert (vol.meta["heart_rate"], vol.meta["nominal_interval"], vol.meta["cardiac_timing_note"]) == (60.0, 1000.0, note)
    assert heart_rate_options(vol) == {"heart_rate": 60.0}
    write_labels(np.ones(vol.shape, dtype=np.uint8), vol, tmp_path / "seg.nii.gz", "lv=1")
    assert heart_rate_options(read_label_volume(tmp_path / "seg.nii.gz")) == {"heart_rate": 60.0}
    assert run_cli(["info", str(s.folder)]) == 0
    assert "│ heart rate " in capsys.readouterr().out  # its row in the table
    assert run_cli(["info", str(s.folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cardiac_timing_note"] == note


def test_heart_rate_within_ten_percent_of_nominal_interval_is_kept(tmp_path):
    s = _cine(tmp_path / "cine", n_phases=2)
    _rewrite(s, lambda ds, z, t: (setattr(ds, "HeartRate", 65), setattr(ds, "NominalInterval", 1000)))
    vol = read_volume(s.folder)
    assert vol.meta["heart_rate"] == 65.0 and "cardiac_timing_note" not in vol.meta


# -- 4. positions that jitter between frames -----------------------------------------------
def _jitter(s, amount_mm: float) -> None:
    """Each image moved along the normal by -amount or +amount (alternating by phase: each
    slice spans 2 x amount)."""
    from io_synth import NORMAL

    def move(ds, z, t):
        ds.ImagePositionPatient = [f"{v:.4f}" for v in s.ipps[z] + (amount_mm if (t + z) % 2 else -amount_mm) * NORMAL]

    _rewrite(s, move)


def test_positions_jittering_by_hundredths_of_a_millimetre_are_one_slice(tmp_path):
    """+-0.03 mm along the normal per frame (8 mm slices) failed as 'slice positions have
    different numbers of phases'."""
    s = _cine(tmp_path / "cine", n_slices=4, n_phases=6)
    _jitter(s, 0.03)
    vol = read_volume(s.folder)
    assert vol.shape == (6, 4, 12, 10) and np.array_equal(vol.array, _truth(s))
    assert np.allclose(vol.frame_times_s, s.triggers_ms[:, 0] / 1000.0) and vol.spacing[0] == pytest.approx(8.0, abs=0.05)


def test_positions_drifting_beyond_the_tolerance_say_so(tmp_path):
    from io_synth import NORMAL

    s = _cine(tmp_path / "cine", n_slices=3, n_phases=5)
    _rewrite(s, lambda ds, z, t: setattr(ds, "ImagePositionPatient", [f"{v:.4f}" for v in s.ipps[z] + 0.06 * t * NORMAL]))
    with pytest.raises(GeometryError, match=r"the positions of one slice drift by 0\.24 mm between frames \(IM\d+\.dcm at .* mm, "
                                            r"IM\d+\.dcm at .* mm along the normal; images within 0\.1 mm are one slice\)"):
        read_volume(s.folder)


def test_a_slice_acquired_twice_at_another_position_is_still_refused(tmp_path):
    """A real mixed series (one slice's phases split over two positions 1 mm apart) is no jitter."""
    from io_synth import NORMAL

    s = _cine(tmp_path / "cine", n_slices=3, n_phases=4)
    _rewrite(s, lambda ds, z, t: setattr(ds, "ImagePositionPatient", [f"{v:.4f}" for v in s.ipps[z] + (1.0 if (z, t) == (1, 3) else 0) * NORMAL]))
    with pytest.raises(ImageReadError, match="different numbers of phases"):
        read_volume(s.folder)


def test_thin_slices_keep_the_strict_position_rule(tmp_path):
    """Slices 0.08 mm apart (under 1 mm) are not merged by the jitter tolerance."""
    s = write_cine_series(tmp_path / "thin", n_slices=4, n_phases=1, step_mm=0.08)
    vol = read_volume(s.folder)
    assert vol.shape == (1, 4, 12, 10) and vol.spacing[0] == pytest.approx(0.08, abs=1e-3)


# -- 5. PixelPaddingValue ------------------------------------------------------------------
def _pad_series(folder: Path, value: int, border: int = 2, vr: str | None = None, **tags) -> tuple:
    """A one-phase series with a padded frame ``border`` pixels wide (stored ``value``)."""
    s = write_cine_series(folder, n_slices=2, n_phases=1, rows=14, cols=12)
    stored = tags.pop("stored", value)

    def pad(ds, z, t):
        arr = ds.pixel_array.copy()
        arr[:border], arr[-border:], arr[:, :border], arr[:, -border:] = value, value, value, value
        ds.PixelData = arr.astype(arr.dtype).tobytes()
        ds.add_new(0x00280120, vr or ("SS" if int(ds.PixelRepresentation) else "US"), stored)
        if "PixelPaddingRangeLimit" in tags:
            ds.add_new(0x00280121, "SS" if int(ds.PixelRepresentation) else "US", tags["PixelPaddingRangeLimit"])
        for k, v in tags.items():
            if k == "PixelPaddingRangeLimit":
                continue
            setattr(ds, k, v)

    _rewrite(s, pad)
    mask = np.zeros((14, 12), bool)
    mask[:border], mask[-border:], mask[:, :border], mask[:, -border:] = True, True, True, True
    return s, mask


def test_padding_pixels_become_the_lowest_real_value(tmp_path):
    """Declared padding (here -2000 stored, signed) is background: the lowest stored value of
    the image's other pixels, rescaled like them (it was read as image content)."""
    s, mask = _pad_series(tmp_path / "pad", -2000)
    vol = read_volume(s.folder)
    truth = _truth(s)
    for z in range(2):
        got, want = vol.array[0, z], truth[0, z]
        assert np.array_equal(got[~mask], want[~mask])
        assert np.all(got[mask] == want[~mask].min())


def test_ct_padding_outside_the_field_of_view_reads_as_air(tmp_path):
    """A CT (intercept -1024) padded with -2000 beyond its circular field of view: the padding
    reads as the lowest real value (-999 HU here), not as -3024 HU."""
    s = write_cine_series(tmp_path / "ct", n_slices=2, n_phases=1, rows=14, cols=12)
    yy, xx = np.mgrid[:14, :12]
    outside = (yy - 6.5) ** 2 + (xx - 5.5) ** 2 > 30

    def ct(ds, z, t):
        arr = np.clip(ds.pixel_array.astype(np.int16), 1, None) + 24  # lowest real stored 25 -> -999 HU
        arr[outside] = -2000
        ds.Modality, ds.RescaleSlope, ds.RescaleIntercept = "CT", 1, -1024
        ds.PixelData = arr.tobytes()
        ds.add_new(0x00280120, "SS", -2000)

    _rewrite(s, ct)
    vol = read_volume(s.folder)
    assert vol.modality == "CT" and vol.array.min() >= -1024 + 25
    for z in range(2):
        assert np.all(vol.array[0, z][outside] == vol.array[0, z][~outside].min())


def test_padding_range_limit_and_a_signed_value_written_unsigned(tmp_path):
    """PixelPaddingValue..PixelPaddingRangeLimit (inclusive, either order) is padding; a signed
    image's padding written as US (63536 for -2000) is its two's complement."""
    s, mask = _pad_series(tmp_path / "range", -2000, vr="US", stored=63536)
    vol = read_volume(s.folder)
    assert np.all(vol.array[0, 0][mask] == vol.array[0, 0][~mask].min())
    s2, mask2 = _pad_series(tmp_path / "range2", -2000, PixelPaddingRangeLimit=-1990)

    def ramp(ds, z, t):
        arr = ds.pixel_array.copy()
        arr[0, :] = -1995  # within the range: padding too
        ds.PixelData = arr.tobytes()

    _rewrite(s2, ramp)
    vol2 = read_volume(s2.folder)
    real = ~mask2
    real[0, :] = False
    assert np.all(vol2.array[0, 0][~real] == vol2.array[0, 0][real].min())


def test_without_the_tag_the_same_pixels_read_as_before(tmp_path):
    s, mask = _pad_series(tmp_path / "tagless", 4095)
    _rewrite(s, lambda ds, z, t: ds.__delattr__("PixelPaddingValue"))
    vol = read_volume(s.folder)
    assert np.all(vol.array[0, :, mask] == 4095 * s.slope + s.intercept)


def test_padding_of_a_monochrome1_image_is_background_after_the_mirror(tmp_path):
    s, mask = _pad_series(tmp_path / "m1", 4095, PhotometricInterpretation="MONOCHROME1")

    def unsigned12(ds, z, t):
        arr = ds.pixel_array.astype(np.uint16)
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
        ds.PixelData = arr.tobytes()
        del ds.PixelPaddingValue
        ds.add_new(0x00280120, "US", 4095)

    _rewrite(s, unsigned12)
    vol = read_volume(s.folder)
    shown = 4095 - s.pixels[0].astype(np.float32)
    for z in range(2):
        assert np.array_equal(vol.array[0, z][~mask], shown[z][~mask] * s.slope + s.intercept)
        assert np.all(vol.array[0, z][mask] == vol.array[0, z][~mask].min())


def test_padding_in_an_enhanced_file_and_an_ultrasound_clip(tmp_path):
    s = write_enhanced_mr(tmp_path / "enh.dcm")
    ds = pydicom.dcmread(s.folder)
    arr = ds.pixel_array.copy()
    arr[:, :, 0] = -5
    ds.PixelData, ds.PixelPaddingValue = arr.tobytes(), -5
    ds["PixelPaddingValue"].VR = "SS"
    ds.save_as(s.folder, enforce_file_format=True)
    vol = read_volume(s.folder)
    for t in range(vol.n_frames):
        for z in range(vol.n_slices):
            plane = vol.array[t, z]
            assert np.all(plane[:, 0] == plane[:, 1:].min())

    pixels = write_us_clip(tmp_path / "us.dcm")
    ds = pydicom.dcmread(tmp_path / "us.dcm")
    arr = ds.pixel_array.copy()
    arr[:, :, :3] = 255
    ds.PixelData, ds.PixelPaddingValue = arr.tobytes(), 255
    ds["PixelPaddingValue"].VR = "US"
    ds.save_as(tmp_path / "us.dcm", enforce_file_format=True)
    clip = read_volume(tmp_path / "us.dcm")
    for t in range(clip.n_frames):
        real = pixels[t, :, 3:]
        assert np.all(clip.array[t, 0, :, :3] == real[real != 255].min())


def test_one_series_per_slice_with_jittering_positions_is_still_a_stack(tmp_path):
    """``medseg batch`` takes sibling series folders as one stack when each holds one slice
    position: one whose images scatter by +-0.03 mm still does (as the reader tolerates)."""
    from medseg.io.dicom import series_folders_form_a_stack

    study = tmp_path / "study"
    for z in range(3):
        s = write_cine_series(study / f"sax_b{z + 1}", n_slices=1, n_phases=4, first_slice=z, study_uid="1.2.3.77", description=f"SAX b{z + 1}")
        _jitter(s, 0.03)
    assert series_folders_form_a_stack(sorted(study.iterdir()))
    assert read_volume(study).shape == (4, 3, 12, 10)


def test_a_one_millimetre_stack_whose_positions_jitter_is_evenly_spaced(tmp_path):
    """1 mm slices whose frame-0 positions scatter by +-0.06 mm (rounded per image) failed the
    even-spacing check ("slices are not evenly spaced ... a slice may be missing"): 2 % of the
    step is 0.02 mm, less than the scatter the slice grouping itself accepts."""
    from io_synth import NORMAL

    s = _cine(tmp_path / "cine", n_slices=5, n_phases=2, step_mm=1.0)
    offsets = {0: 0.0, 1: 0.06, 2: -0.06, 3: 0.06, 4: 0.0}
    _rewrite(s, lambda ds, z, t: setattr(ds, "ImagePositionPatient", [f"{v:.4f}" for v in s.ipps[z] + offsets[z] * NORMAL]))
    vol = read_volume(s.folder)
    assert vol.shape == (2, 5, 12, 10) and np.array_equal(vol.array, _truth(s)) and vol.spacing[0] == pytest.approx(1.0, abs=0.01)
    missing = _cine(tmp_path / "gap", n_slices=5, n_phases=1, step_mm=1.0)
    next(p for p in sorted(missing.folder.iterdir()) if _where(missing, pydicom.dcmread(p))[0] == 2).unlink()  # a slice missing: read blank
    assert read_volume(missing.folder).meta["missing_slices"] == [2]
