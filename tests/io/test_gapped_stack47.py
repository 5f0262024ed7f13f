"""A short-axis stack with a slice missing (an image lost in a PACS export: gaps of 8, 8, 16, 8
mm) is read on its regular grid with a blank slice where the image is missing, said in a note
(``geometry_note``) and ``meta["missing_slices"]``; gaps that are not whole multiples of one
step stay refused. Segmentation leaves the blank slice empty, measurement flags it, a DICOM SEG
references only the images there are and reads back on the whole grid. Synthetic series from
io_synth; one real-data check on Sunnybrook SCD0000501 (skipped without ../shared/data)."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pydicom
import pytest
from io_synth import _ROW, write_cine_series, write_phantom_cine_series

from medseg.cli import run_cli
from medseg.errors import GeometryError, ImageWriteError
from medseg.io import read_label_volume, read_volume, write_labels


def _slice_of(s, ds) -> int:
    return int(np.argmin(np.linalg.norm(s.ipps - np.asarray(ds.ImagePositionPatient, dtype=float)[None], axis=1)))


def _drop(s, slices) -> None:
    for p in sorted(s.folder.iterdir()):
        if _slice_of(s, pydicom.dcmread(p, stop_before_pixels=True)) in slices:
            p.unlink()


def _truth(s) -> np.ndarray:
    return s.pixels.astype(np.float32) * s.slope + s.intercept


def test_a_slice_missing_is_read_as_a_blank_slice_on_the_stacks_grid(tmp_path, capsys):
    """Gaps 8, 8, 16, 8, 8 mm: refused before ("not evenly spaced ...; a slice may be missing")."""
    s = write_cine_series(tmp_path / "c", n_slices=6, n_phases=2)
    full = read_volume(s.folder)
    _drop(s, {3})
    vol = read_volume(s.folder)
    assert vol.shape == full.shape == (2, 6, 12, 10)
    assert np.allclose(vol.affine, full.affine)
    kept = [0, 1, 2, 4, 5]
    assert np.array_equal(vol.array[:, kept], _truth(s)[:, kept])
    assert np.ptp(vol.array[:, 3]) == 0 and np.all(np.isfinite(vol.array))  # blank: no signal
    assert vol.meta["missing_slices"] == [3]
    for key in ("files", "sop_instance_uids", "trigger_times_ms", "frame_numbers"):
        assert [row[3] for row in vol.meta[key]] == [None, None]
        assert all(v is not None for row in vol.meta[key] for z, v in enumerate(row) if z != 3) or key == "frame_numbers"
    note = vol.meta["geometry_note"]
    assert note.startswith("slice 3 of 6 is missing from the series (a gap of 16 mm along the normal where the slice step is 8 mm")
    assert "\n" not in note and vol.describe()["geometry_note"] == note
    assert vol.frame_times_s is not None and len(vol.frame_times_s) == 2
    assert run_cli(["info", str(s.folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["geometry_note"] == note


def test_several_slices_missing_and_a_wider_gap(tmp_path):
    s = write_cine_series(tmp_path / "c", n_slices=9, n_phases=1, step_mm=6.0)
    _drop(s, {2, 3, 6})
    vol = read_volume(s.folder)
    assert vol.shape == (1, 9, 12, 10) and vol.meta["missing_slices"] == [2, 3, 6]
    assert vol.spacing[0] == pytest.approx(6.0, abs=1e-3)
    assert vol.meta["geometry_note"].startswith("slices 2, 3, 6 of 9 are missing from the series (a gap of 18, 12 mm")
    kept = [0, 1, 4, 5, 7, 8]
    assert np.array_equal(vol.array[:, kept], _truth(s)[:, kept])


def test_an_even_stack_has_no_note_and_no_missing_slices(tmp_path):
    s = write_cine_series(tmp_path / "c", n_slices=4, n_phases=2)
    vol = read_volume(s.folder)
    assert "missing_slices" not in vol.meta and "geometry_note" not in vol.meta


def _move(s, z: int, along_mm: float = 0.0, inplane_mm: float = 0.0) -> None:
    from io_synth import NORMAL

    for p in sorted(s.folder.iterdir()):
        ds = pydicom.dcmread(p)
        if _slice_of(s, ds) == z:
            ds.ImagePositionPatient = [f"{v:.4f}" for v in s.ipps[z] + along_mm * NORMAL + inplane_mm * _ROW]
            ds.save_as(p)


@pytest.mark.parametrize("shift", [4.0, 3.0])
def test_gaps_that_are_no_whole_multiple_of_the_step_stay_refused(tmp_path, shift):
    """8, 12, 4 mm (all on a 4 mm grid, but the common step is 8) and 8, 11, 5 mm."""
    s = write_cine_series(tmp_path / "c", n_slices=4, n_phases=1)
    _move(s, 2, along_mm=shift)
    with pytest.raises(GeometryError, match="not evenly spaced along the normal"):
        read_volume(s.folder)


def test_too_many_positions_missing_is_refused(tmp_path):
    """Three slices, then a gap of five steps: two stacks, not an image lost."""
    s = write_cine_series(tmp_path / "c", n_slices=9, n_phases=1)
    _drop(s, {3, 4, 5, 6, 7})
    with pytest.raises(GeometryError, match="positions would be missing, more than"):
        read_volume(s.folder)


def test_a_slice_off_the_stacks_line_across_a_gap_is_refused(tmp_path):
    s = write_cine_series(tmp_path / "c", n_slices=6, n_phases=1)
    _drop(s, {2})
    _move(s, 4, inplane_mm=5.0)
    with pytest.raises(GeometryError, match=r"slice 3 .* is shifted 5.00 mm within its plane .* whole multiples of one step"):
        read_volume(s.folder)


def test_a_jittered_gapped_stack_is_read(tmp_path):
    """Positions rounded per image (+-0.05 mm) across a gap: within the reader's tolerance."""
    s = write_cine_series(tmp_path / "c", n_slices=6, n_phases=1)
    _drop(s, {3})
    _move(s, 4, along_mm=0.05)
    _move(s, 1, along_mm=-0.05)
    assert read_volume(s.folder).meta["missing_slices"] == [3]


def test_dicom_seg_references_only_the_images_there_are_and_reads_back(tmp_path, capsys):
    s = write_cine_series(tmp_path / "c", n_slices=5, n_phases=1)
    _drop(s, {2})
    vol = read_volume(s.folder)
    lab = np.zeros(vol.shape, np.uint8)
    lab[:, :, 3:8, 2:6] = 1
    lab[:, 2] = 0
    written = write_labels(lab, vol, tmp_path / "seg.dcm", "lv=1")
    seg_path = next(p for p in written if p.suffix == ".dcm")
    import highdicom as hd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(seg_path)
        seg = hd.seg.Segmentation.from_dataset(ds)
        refs = {str(u[2]) for u in seg.get_source_image_uids()}
    real = {u for row in vol.meta["sop_instance_uids"] for u in row if u}
    assert int(ds.NumberOfFrames) == 4 and refs == real
    back = read_label_volume(seg_path)
    assert back.same_grid(vol) and np.array_equal(back.array, lab)
    assert json.loads(seg_path.with_suffix(".json").read_text())["provenance"]["image_notes"]["geometry_note"] == vol.meta["geometry_note"]
    assert run_cli(["info", str(seg_path)]) == 0
    assert run_cli(["measure", str(seg_path), "--label-map", "lv=1", "-o", str(tmp_path / "REPORT.json")]) == 0
    capsys.readouterr()
    lab[0, 2, 4:6, 3:5] = 1  # drawn on the blank slice: no image to reference
    with pytest.raises(ImageWriteError, match="labels on slice 2, which the series lacks"):
        write_labels(lab, vol, tmp_path / "seg2.dcm", "lv=1")
    assert not (tmp_path / "seg2.dcm").exists()


def test_zero_click_leaves_the_missing_slice_empty_and_measure_flags_it(tmp_path, capsys):
    study = tmp_path / "phantom"
    write_phantom_cine_series(study, "1.2.3.47")
    full = read_volume(study)
    mid = full.n_slices // 2
    for p in sorted(study.iterdir()):  # the phantom's middle slice, every frame
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        if np.allclose(np.asarray(ds.ImagePositionPatient, dtype=float), full.index_to_world([(mid, 0, 0)])[0] * [-1, -1, 1], atol=0.01):
            p.unlink()
    vol = read_volume(study)
    assert vol.meta["missing_slices"] == [mid] and vol.shape == full.shape
    out = tmp_path / "labels.nii.gz"
    capsys.readouterr()
    assert run_cli(["segment", str(study), "--auto", "--frames", "0", "-o", str(out)]) == 0
    assert f"slice {mid} of {full.n_slices} is missing from the series" in " ".join(capsys.readouterr().err.split())
    labels = read_label_volume(out)
    assert labels.same_grid(vol) and not labels.array[:, mid].any() and labels.array[0].any()
    side = json.loads(out.with_name("labels.json").read_text())["provenance"]
    assert side["image_notes"]["geometry_note"] == vol.meta["geometry_note"] and side["missing_slices"] == [mid]
    report = tmp_path / "REPORT.json"
    assert run_cli(["measure", str(out), "-o", str(report)]) == 0
    assert json.loads(report.read_text())["inputs"]["missing_slices"] == [mid]  # why that slice is flagged
    flags = json.loads(report.read_text())["flags"]
    assert any(f["code"] == "missing_slice" and f.get("slice") == mid for f in flags)
    capsys.readouterr()


def test_sunnybrook_with_a_middle_image_removed(tmp_path, shared_data):
    """SCD0000501 (validation split) without its middle slice (images 109 and 119): read on the
    11-slice grid with slice 5 blank; the expert LV contours measured on it with
    --interpolate-missing give the EDV of the whole stack within 2 %."""
    from medseg.io.contours import contour_labels
    from medseg.measure.report import measure_phase

    src = shared_data / "sunnybrook" / "dicoms" / "SCD0000501"
    full_dir, gap_dir = tmp_path / "full", tmp_path / "gap"
    shutil.copytree(src, full_dir)
    shutil.copytree(src, gap_dir)
    for name in ("109.dcm", "119.dcm"):
        (gap_dir / name).unlink()
    full, gap = read_volume(full_dir), read_volume(gap_dir)
    assert gap.shape == full.shape == (2, 11, 256, 256) and np.allclose(gap.affine, full.affine)
    assert gap.meta["missing_slices"] == [5] and not gap.array[:, 5].any()
    kept = [z for z in range(11) if z != 5]
    assert np.array_equal(gap.array[:, kept], full.array[:, kept])
    lab = contour_labels(full, shared_data / "sunnybrook" / "contourfiles" / "SC-HF-I-6").array
    from medseg.errors import ImageReadError

    with pytest.raises(ImageReadError, match=r"contours of image number\(s\) 109, 119 that .* does not hold"):  # TypeError (Path(None)) before
        contour_labels(gap, shared_data / "sunnybrook" / "contourfiles" / "SC-HF-I-6")
    holed = lab.copy()
    holed[:, 5] = 0
    whole = [measure_phase(lab[t], gap.affine, "lv=1,myo=2")["volumes_ml"]["lv"] for t in range(2)]
    filled = [measure_phase(holed[t], gap.affine, "lv=1,myo=2", interpolate_missing=True)["volumes_ml"]["lv"] for t in range(2)]
    bare = [measure_phase(holed[t], gap.affine, "lv=1,myo=2")["volumes_ml"]["lv"] for t in range(2)]
    assert max(whole) == pytest.approx(max(filled), rel=0.02) and max(bare) < 0.95 * max(whole)


def test_a_broken_copy_of_the_missing_image_is_named_in_the_note(tmp_path):
    """The missing image copied as 0 bytes: the note names the file not read (as the error of a
    series one image short does)."""
    s = write_cine_series(tmp_path / "c", n_slices=5, n_phases=1)
    victim = next(p for p in sorted(s.folder.iterdir()) if _slice_of(s, pydicom.dcmread(p, stop_before_pixels=True)) == 2)
    victim.write_bytes(b"")
    vol = read_volume(s.folder)
    assert vol.meta["missing_slices"] == [2]
    assert vol.meta["geometry_note"].endswith(f"; 1 file(s) of the folder were not read as DICOM images: {victim.name} (0 bytes)")
