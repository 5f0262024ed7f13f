"""Short-axis stacks that are not textbook (review of 7 Dec): a series exported twice into one
folder without TriggerTimes, a slice planned with another field of view, a stray image of
another size, a slice whose phases lie 0.3 mm apart, and labels whose expert skipped a slice.
Synthetic series from io_synth (no shared data needed)."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from io_synth import _ROW, NORMAL, write_cine_series
from pydicom.uid import generate_uid

from medseg.errors import GeometryError, ImageReadError
from medseg.io import read_volume
from medseg.measure.report import measure_phase


def _rewrite(folder, fn):
    for p in sorted(folder.iterdir()):
        ds = pydicom.dcmread(p)
        if fn(p, ds) is not False:
            ds.save_as(p)


def _slice_of(s, ds) -> int:
    return int(np.argmin(np.linalg.norm(s.ipps - np.asarray(ds.ImagePositionPatient, dtype=float)[None], axis=1)))


def _copy_with_new_uid(src, dst):
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(dst)


def _untimed_stack(folder):
    s = write_cine_series(folder, n_slices=4, n_phases=1)
    _rewrite(folder, lambda p, ds: delattr(ds, "TriggerTime"))
    return s


def test_a_stack_without_trigger_times_exported_twice_is_refused_not_read_as_a_cine(tmp_path):
    """Every image twice under new SOPInstanceUIDs (same position, same InstanceNumber, no
    TriggerTime: a static stack exported twice into one folder) read as a 2-frame cine whose
    frames were copies, in an order decided by file names; one image twice only said "slice
    positions have different numbers of phases"."""
    s = _untimed_stack(tmp_path / "s")
    assert read_volume(s.folder).shape == (1, 4, 12, 10)  # the stack itself reads
    twice = tmp_path / "twice"
    shutil.copytree(s.folder, twice)
    for p in sorted(s.folder.iterdir()):
        _copy_with_new_uid(p, twice / f"copy_{p.name}")
    with pytest.raises(ImageReadError, match=r"8 images without TriggerTime share a position and InstanceNumber .*copy_IM"):
        read_volume(twice)
    one = tmp_path / "one"
    shutil.copytree(s.folder, one)
    first = sorted(s.folder.iterdir())[0]
    _copy_with_new_uid(first, one / "extra.dcm")
    with pytest.raises(ImageReadError, match=rf"2 images without TriggerTime .*e\.g\. ({first.name} and extra\.dcm|extra\.dcm and {first.name})"):
        read_volume(one)


def test_untimed_phases_with_their_own_instance_numbers_still_read(tmp_path):
    """A cine without TriggerTime whose phases have their own InstanceNumbers is ordered by
    them, as before (only a shared InstanceNumber at one position is refused)."""
    s = write_cine_series(tmp_path / "c", n_slices=3, n_phases=2)
    _rewrite(s.folder, lambda p, ds: delattr(ds, "TriggerTime"))
    vol = read_volume(s.folder)
    assert vol.shape == (2, 3, 12, 10) and vol.frame_times_s is None


def test_a_slice_shifted_within_its_plane_is_named_not_called_a_missing_slice(tmp_path):
    """Slices evenly spaced along the normal, one of them planned 5 mm off within its plane:
    the error read "slices are not evenly spaced along the normal (gaps 8, 8, 8 mm); a slice may
    be missing", gaps that are even, for a slice that is not missing."""
    s = write_cine_series(tmp_path / "c", n_slices=4, n_phases=2)
    moved = []

    def shift(p, ds):
        if _slice_of(s, ds) != 2:
            return False
        moved.append(p.name)
        ds.ImagePositionPatient = [f"{v:.4f}" for v in s.ipps[2] + 5.0 * _ROW]

    _rewrite(s.folder, shift)
    with pytest.raises(GeometryError) as e:
        read_volume(s.folder)
    msg = str(e.value)
    assert "slice 2 (" in msg and "shifted 5.00 mm within its plane" in msg and "may be missing" not in msg, msg
    assert any(name in msg for name in moved) and "gaps along the normal 8, 8, 8 mm" in msg, msg
    # a stack that leans (every slice moved a little more within its plane) still reads, its slice distance kept
    lean = write_cine_series(tmp_path / "lean", n_slices=4, n_phases=1)
    _rewrite(lean.folder, lambda p, ds: setattr(ds, "ImagePositionPatient",
                                                [f"{v:.4f}" for v in lean.ipps[_slice_of(lean, ds)] + 2.0 * _slice_of(lean, ds) * _ROW]))
    vol = read_volume(lean.folder)
    step = vol.affine[:3, 2]
    normal = np.cross(vol.affine[:3, 0], vol.affine[:3, 1])
    assert abs(step @ normal / np.linalg.norm(normal)) == pytest.approx(8.0, abs=1e-3)
    # a missing slice is read as a blank one (test_gapped_stack47), named so
    gap = write_cine_series(tmp_path / "gap", n_slices=5, n_phases=1)
    for p in sorted(gap.folder.iterdir()):
        if _slice_of(gap, pydicom.dcmread(p)) == 2:
            p.unlink()
    assert read_volume(gap.folder).meta["geometry_note"].startswith("slice 2 of 5 is missing from the series (a gap of 16 mm")


def test_an_image_of_another_size_is_named(tmp_path):
    """"images have different sizes: 10x12 (8 images), 8x12 (1 images)" named no file to remove."""
    s = write_cine_series(tmp_path / "c", n_slices=4, n_phases=2)
    src = sorted(s.folder.iterdir())[0]
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    pixels = ds.pixel_array[:, :8].copy()
    ds.Columns = 8
    ds.PixelData = pixels.tobytes()
    ds.TriggerTime = 123.0
    ds.save_as(s.folder / "stray.dcm")
    with pytest.raises(ImageReadError, match=r"images have different sizes: 10x12 \(8 images\), 8x12 \(1 image: stray\.dcm\)$"):
        read_volume(s.folder)


def test_a_slice_whose_phases_lie_apart_names_the_image_and_the_distance(tmp_path):
    """One image of a slice 0.3 mm off its other phase made two positions of one phase each:
    "slice positions have different numbers of phases (1 phase(s) at 2 position(s), ...)",
    naming neither image nor distance."""
    s = write_cine_series(tmp_path / "c", n_slices=4, n_phases=2)
    done = []

    def nudge(p, ds):
        if _slice_of(s, ds) != 1 or done:
            return False
        done.append(p.name)
        ds.ImagePositionPatient = [f"{v:.4f}" for v in s.ipps[1] + 0.3 * NORMAL]

    _rewrite(s.folder, nudge)
    with pytest.raises(ImageReadError) as e:
        read_volume(s.folder)
    msg = str(e.value)
    assert "different numbers of phases" in msg and "0.30 mm from the nearest other position" in msg, msg
    assert "1 image(s) at " in msg and "mm along the normal (IM" in msg, msg


def _disc_stack(n=7, r_lv=8, r_epi=11):
    """(Z, Y, X) labels: an LV disc (1) in a myocardial ring (2) on every slice."""
    yy, xx = np.mgrid[:40, :40]
    d = np.hypot(yy - 20, xx - 20)
    sl = np.where(d <= r_lv, 1, np.where(d <= r_epi, 2, 0)).astype(np.int16)
    return np.repeat(sl[None], n, axis=0)


def test_labels_with_a_skipped_slice_volume_flags_and_no_fragments():
    """An expert skipped slice 3 of 7: its area counts 0 mL (flagged missing_slice, the
    measurement spec's default) or the interpolated area with interpolate_missing; the labels on
    either side of the gap are one structure, not "fragmented" (they were: a review flag for
    every structure of a stack labelled with a gap)."""
    aff = np.diag([1.5, 1.5, 8.0, 1.0])  # (x, y, z): 1.5 mm pixels, 8 mm slices
    full = _disc_stack()
    lab = full.copy()
    lab[3] = 0
    per_slice = {v: (full[0] == v).sum() * 1.5 * 1.5 * 8.0 / 1000.0 for v in (1, 2)}
    rep = measure_phase(lab, aff, "lv=1,myo=2", basal_rule=False)
    assert rep["volumes_ml"]["lv"] == pytest.approx(6 * per_slice[1])
    assert rep["lv_mass_g"] == pytest.approx(6 * per_slice[2] * 1.05)
    assert sorted(f["structure"] for f in rep["flags"] if f["code"] == "missing_slice") == ["lv", "myo"]
    assert [f for f in rep["flags"] if f["code"] == "fragmented"] == []
    rep = measure_phase(lab, aff, "lv=1,myo=2", basal_rule=False, interpolate_missing=True)
    assert rep["volumes_ml"]["lv"] == pytest.approx(7 * per_slice[1]) and rep["lv_mass_g"] == pytest.approx(7 * per_slice[2] * 1.05)
    # a second part that is one (a blob beside the LV on a labelled slice) is still fragmented
    lab[5, 0:4, 0:4] = 1
    assert [f["structure"] for f in measure_phase(lab, aff, "lv=1,myo=2", basal_rule=False)["flags"] if f["code"] == "fragmented"] == ["lv"]
