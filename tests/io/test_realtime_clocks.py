"""A real-time (ungated) cine saved one file per image whose AcquisitionDateTime is one moment for
every frame (an export that copies the series' start into each image): its frame times came from
no clock (left out); the images' own moments, in AcquisitionTime or ContentTime, are read instead."""

from __future__ import annotations

import datetime

import numpy as np
import pydicom
import pytest
from io_synth import write_cine_series

from medseg.io import read_volume

Z, T = 3, 4
START = datetime.datetime(2024, 1, 1, 12, 0, 0)


def _realtime(folder, where: str):
    """A cine without TriggerTime, every AcquisitionDateTime the same, each image's moment
    (40 ms per image, slice after slice) in ``where``: "AcquisitionTime" or "ContentTime"."""
    s = write_cine_series(folder, n_slices=Z, n_phases=T)
    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(f)
        z = int(np.argmin(np.linalg.norm(s.ipps - np.asarray(ds.ImagePositionPatient, dtype=float)[None], axis=1)))
        t = int(np.argmin(np.abs(s.triggers_ms[:, z] - float(ds.TriggerTime))))
        del ds.TriggerTime
        ds.InstanceNumber = z * T + t + 1
        ds.AcquisitionDateTime = START.strftime("%Y%m%d%H%M%S.%f")
        when = START + datetime.timedelta(milliseconds=40.0 * (t * Z + z))
        if where == "AcquisitionTime":
            ds.AcquisitionDate, ds.AcquisitionTime = when.strftime("%Y%m%d"), when.strftime("%H%M%S.%f")
        else:
            ds.AcquisitionDate, ds.AcquisitionTime = START.strftime("%Y%m%d"), START.strftime("%H%M%S.%f")
            ds.ContentDate, ds.ContentTime = when.strftime("%Y%m%d"), when.strftime("%H%M%S.%f")
        ds.save_as(f, enforce_file_format=True)
    return s


@pytest.mark.parametrize("where", ["AcquisitionTime", "ContentTime"])
def test_one_acquisition_datetime_for_every_frame_falls_back_to_the_images_own_clock(tmp_path, where):
    _realtime(tmp_path / "rt", where)
    vol = read_volume(tmp_path / "rt")
    np.testing.assert_allclose(vol.frame_times_s, [0.0, 0.12, 0.24, 0.36])  # Z = 3 images of 40 ms each per frame
    name = "AcquisitionDate and AcquisitionTime" if where == "AcquisitionTime" else "ContentDate and ContentTime"
    assert f"frame times from the frames' {name}, their AcquisitionDateTime (or AcquisitionDate and AcquisitionTime) no frame clock " \
           "(120.0 ms apart)" in vol.meta["time_note"]


def test_no_clock_that_moves_leaves_the_frame_times_out(tmp_path):
    """Every clock one moment: no frame times, as before."""
    s = _realtime(tmp_path / "rt", "ContentTime")
    for f in sorted(s.folder.iterdir()):
        ds = pydicom.dcmread(f)
        ds.ContentTime = START.strftime("%H%M%S.%f")
        ds.save_as(f, enforce_file_format=True)
    vol = read_volume(s.folder)
    assert vol.frame_times_s is None
