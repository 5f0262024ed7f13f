"""DICOM reading on synthetic series written with pydicom (oblique, shuffled, cine)."""

from __future__ import annotations

from pathlib import Path

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


def test_a_folder_of_echo_clips_is_a_case_per_clip(tmp_path):
    """An echo machine exports a study as a folder of clips (patient/study/clips): `batch` takes
    each clip as a case (the folder was one case that failed: "mixes multi-frame files with
    other images"), and reading the folder says it holds clips, one to open at a time."""
    from medseg.batch import discover_cases

    study = tmp_path / "in" / "echo study"
    study.mkdir(parents=True)
    write_us_clip(study / "A4C.dcm")
    write_us_clip(study / "IM_0002")  # no extension, as many exports
    with pytest.raises(ImageReadError, match=r"holds 2 multi-frame clips .* each a recording of its own") as err:
        read_volume(study)
    assert "other images" not in str(err.value)
    cases = discover_cases(tmp_path / "in")
    assert sorted(Path(c.input).name for c in cases) == ["A4C.dcm", "IM_0002"] and len({c.case for c in cases}) == 2
    write_cine_series(tmp_path / "in2" / "cine", n_slices=2, n_phases=1)  # an ordinary series folder stays one case
    assert [c.case for c in discover_cases(tmp_path / "in2")] == ["cine"]


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


def test_batch_series_reads_the_named_series_of_every_patient_folder(tmp_path):
    """`medseg batch EXPORT --series sax`: each patient's study folder holds a cine and a
    localizer; the cine of each is segmented (random pixels: a box prompt, zero-click finds no
    heart there), and the series is part of the provenance."""
    import json

    from medseg.cli import run_cli

    for i, pat in enumerate(("pat1", "pat2")):
        write_cine_series(tmp_path / "in" / pat, n_slices=3, n_phases=1, rows=24, cols=20, description="CINE SAX", prefix="A_",
                          series_number=7, seed=i)
        write_cine_series(tmp_path / "in" / pat, n_slices=1, n_phases=1, rows=16, cols=16, description="LOCALIZER", prefix="B_", series_number=1)
    assert run_cli(["batch", str(tmp_path / "in"), "--auto", "-o", str(tmp_path / "plain")]) == 1  # mixed folders fail, in one line each
    rows = json.loads((tmp_path / "plain" / "summary.json").read_text())["cases"]
    assert all(r["status"] == "failed" and "--series" in r["reason"] for r in rows)
    (tmp_path / "p.json").write_text(json.dumps({"prompts": [{"structure": "lv", "slice": 1, "box": [6, 5, 17, 14]}]}))
    assert run_cli(["batch", str(tmp_path / "in"), "--prompts", str(tmp_path / "p.json"), "--series", "sax", "-o", str(tmp_path / "out")]) == 0
    for pat in ("pat1", "pat2"):
        side = json.loads((tmp_path / "out" / f"{pat}.json").read_text())
        assert side["provenance"]["series"] == "sax" and side["provenance"]["input_shape"] == [1, 3, 24, 20]


def test_batch_series_skips_the_other_series_folders_of_a_study(tmp_path):
    """A study exported one folder per series (a CD's PT/ST/SE layout): with `--series sax`,
    the localizer's folder is skipped, not failed, so the batch exits 0 when every cine is
    segmented; a case whose own selector misses still fails."""
    import json

    from medseg.cli import run_cli

    write_cine_series(tmp_path / "in" / "pat1" / "SE1", n_slices=3, n_phases=1, rows=24, cols=20, description="CINE SAX", series_number=7)
    write_cine_series(tmp_path / "in" / "pat1" / "SE2", n_slices=1, n_phases=1, rows=16, cols=16, description="LOCALIZER", series_number=1)
    (tmp_path / "p.json").write_text(json.dumps({"prompts": [{"structure": "lv", "slice": 1, "box": [6, 5, 17, 14]}]}))
    assert run_cli(["batch", str(tmp_path / "in"), "--prompts", str(tmp_path / "p.json"), "--series", "sax", "-o", str(tmp_path / "out")]) == 0
    rows = {r["case"]: r for r in json.loads((tmp_path / "out" / "summary.json").read_text())["cases"]}
    assert {k: r["status"] for k, r in rows.items()} == {"SE1": "ok", "SE2": "skipped"}
    assert "not the series --series names" in rows["SE2"]["reason"] and not (tmp_path / "out" / "SE2.nii.gz").exists()


def test_batch_takes_a_study_exported_one_series_folder_per_slice_as_one_case(tmp_path):
    """`medseg batch EXPORT`: a patient whose short-axis cine was exported one series (one
    folder) per slice is one case, segmented as a stack, also beside a long-axis series (which
    stays a case of its own); a patient with one ordinary series folder stays a case of that
    folder, as before."""
    import json

    from medseg.batch import discover_cases
    from medseg.cli import run_cli

    for z in range(3):
        write_cine_series(tmp_path / "in" / "pat1" / f"sax_{z}", n_slices=1, n_phases=1, rows=24, cols=20, description=f"SAX {z}",
                          first_slice=z, study_uid="1.2.3.81", seed=z)
    write_cine_series(tmp_path / "in" / "pat2" / "cine", n_slices=3, n_phases=1, rows=24, cols=20, description="CINE SAX")
    cases = discover_cases(tmp_path / "in")
    assert [(c.case, c.input) for c in cases] == [("cine", str(tmp_path / "in" / "pat2" / "cine")), ("pat1", str(tmp_path / "in" / "pat1"))]
    (tmp_path / "p.json").write_text(json.dumps({"prompts": [{"structure": "lv", "slice": 1, "box": [6, 5, 17, 14]}]}))
    assert run_cli(["batch", str(tmp_path / "in"), "--prompts", str(tmp_path / "p.json"), "-o", str(tmp_path / "out")]) == 0
    side = json.loads((tmp_path / "out" / "pat1.json").read_text())
    assert side["provenance"]["input_shape"] == [1, 3, 24, 20]
    # a study with a long-axis series beside its slice series: --series names the stack
    for z in range(3):
        write_cine_series(tmp_path / "in" / "pat3" / f"sax_{z}", n_slices=1, n_phases=1, rows=24, cols=20, description=f"SAX {z}",
                          first_slice=z, study_uid="1.2.3.83", seed=z)
    write_cine_series(tmp_path / "in" / "pat3" / "la", n_slices=1, n_phases=1, rows=16, cols=16, description="CINE 4CH", study_uid="1.2.3.83")
    cases = {c.case: c for c in discover_cases(tmp_path / "in")}  # the stack's three series, and the long axis alone
    assert sorted(cases) == ["cine", "la", "pat1", "pat3"] and cases["pat3"].series.count("|") == 2 and cases["pat1"].series is None
    assert [c.case for c in discover_cases(tmp_path / "in", series="*sax*")] == ["cine", "pat1", "pat3"]
    assert run_cli(["batch", str(tmp_path / "in"), "--prompts", str(tmp_path / "p.json"), "--series", "*sax*", "-o", str(tmp_path / "out3")]) == 0
    assert json.loads((tmp_path / "out3" / "pat3.json").read_text())["provenance"]["input_shape"] == [1, 3, 24, 20]
    assert run_cli(["batch", str(tmp_path / "in"), "--prompts", str(tmp_path / "p.json"), "-o", str(tmp_path / "out4")]) == 1  # la: no slice 1
    rows = {r["case"]: r for r in json.loads((tmp_path / "out4" / "summary.json").read_text())["cases"]}
    assert rows["pat3"]["status"] == "ok" and rows["la"]["status"] == "failed" and "outside" in rows["la"]["reason"]
    assert json.loads((tmp_path / "out4" / "pat3.json").read_text())["provenance"]["input_shape"] == [1, 3, 24, 20]


def test_evaluate_a_folder_whose_study_stack_sits_beside_other_series(tmp_path):
    """`medseg evaluate --pairs FOLDER` finds cases as batch does: a study folder whose slice
    series sit beside a long-axis series is scored on its stack, against the labels beside it
    (`<study>_gt.nii.gz`, not taken for a case of its own)."""
    import json

    from medseg.batch import discover_cases
    from medseg.cli import run_cli

    for z in range(3):
        write_cine_series(tmp_path / "in" / "pat3" / f"sax_{z}", n_slices=1, n_phases=1, rows=48, cols=48, description=f"SAX {z}",
                          first_slice=z, study_uid="1.2.3.85", seed=z)
    write_cine_series(tmp_path / "in" / "pat3" / "la", n_slices=1, n_phases=1, rows=16, cols=16, description="CINE 4CH", study_uid="1.2.3.85")
    (case,) = [c for c in discover_cases(tmp_path / "in") if c.case == "pat3"]
    vol = read_volume(tmp_path / "in" / "pat3", series=case.series)
    lab = np.zeros(vol.grid_shape, np.uint8)
    lab[:, 14:34, 14:34] = 1
    from medseg.io import write_labels

    write_labels(lab, vol, tmp_path / "in" / "pat3_gt.nii.gz", "lv=1")
    (tmp_path / "in" / "pat3_gt.json").unlink()  # as another tool's labels: no sidecar
    assert sorted(c.case for c in discover_cases(tmp_path / "in")) == ["la", "pat3"]
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "in"), "--label-map", "lv=1", "--prompt", "box", "-o", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert [c["case"] for c in res["cases"]] == ["pat3"] and res["cases"][0]["dice"]["lv"] > 0.3


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


def test_batch_reads_non_conformant_uids_without_warnings(tmp_path):
    """Real exports carry UIDs pydicom calls invalid (a component with a leading zero, as every
    Sunnybrook file has): `medseg batch` finds the cases of such an export without printing a
    pydicom warning per folder."""
    import warnings

    from medseg.batch import discover_cases

    with warnings.catch_warnings():  # writing them warns too (pydicom's validation): not what is tested
        warnings.simplefilter("ignore")
        for pat in ("p1", "p2", "p3"):  # >= 3 folders: the search for a stack among them reads their headers
            write_cine_series(tmp_path / "in" / pat, n_slices=2, n_phases=1, rows=12, cols=10, series_uid=f"1.2.08.{pat[1]}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cases = discover_cases(tmp_path / "in")
    assert [c.case for c in cases] == ["p1", "p2", "p3"]
    assert [str(w.message) for w in caught] == []


def test_batch_dicom_seg_writes_each_dicom_studys_labels_as_seg_and_resume_checks_them(tmp_path, monkeypatch):
    """`medseg batch --dicom-seg`: a DICOM study's labels also as DICOM SEG (one per labelled
    frame) in OUT/<case>_seg/, reading back as the NIfTI's labels on the same frame; a NIfTI
    input gets NIfTI only, with the reason in the summary; --resume redoes a case whose SEG is
    gone; a SEG that fails to write leaves the case ok with its NIfTI and the reason."""
    import json

    import nibabel as nib

    from medseg.cli import run_cli
    from medseg.io import read_label_volume

    write_cine_series(tmp_path / "in" / "pat1", n_slices=3, n_phases=2, rows=24, cols=20, seed=3)
    nib.save(nib.Nifti1Image(np.random.default_rng(0).normal(size=(20, 24, 3)).astype(np.float32), np.eye(4)), str(tmp_path / "in" / "nif.nii.gz"))
    (tmp_path / "p.json").write_text(json.dumps({"prompts": [{"structure": "lv", "frame": 0, "slice": 1, "box": [6, 5, 17, 14]}]}))
    out = tmp_path / "out"
    args = ["batch", str(tmp_path / "in"), "--prompts", str(tmp_path / "p.json"), "-o", str(out), "--dicom-seg"]
    assert run_cli(args) == 0
    rows = {r["case"]: r for r in json.loads((out / "summary.json").read_text())["cases"]}
    assert rows["pat1"]["dicom_seg"] == "pat1_frame00.dcm" and rows["nif"]["dicom_seg"].startswith("none: DICOM SEG needs an image read from DICOM")
    seg = read_label_volume(out / "pat1_seg" / "pat1_frame00.dcm")
    nifti = read_label_volume(out / "pat1.nii.gz")
    assert np.array_equal(seg.array[0], nifti.array[0]) and nifti.array[0].any() and seg.same_grid(nifti)
    (out / "pat1_seg" / "pat1_frame00.dcm").unlink()
    assert run_cli([*args, "--resume"]) == 0
    rows = {r["case"]: r for r in json.loads((out / "summary.json").read_text())["cases"]}
    assert (rows["pat1"]["reason"], rows["nif"]["status"]) == ("redone: DICOM SEG file missing", "skipped")
    assert (out / "pat1_seg" / "pat1_frame00.dcm").is_file()
    import medseg.io

    real = medseg.io.write_labels

    def seg_fails(labels, like, path, *a, **k):
        if str(path).endswith(".dcm"):
            raise ValueError("highdicom refused this source")
        return real(labels, like, path, *a, **k)

    monkeypatch.setattr(medseg.io, "write_labels", seg_fails)
    out2 = tmp_path / "out2"
    assert run_cli([*args[:-2], str(out2), "--dicom-seg"]) == 0
    rows = {r["case"]: r for r in json.loads((out2 / "summary.json").read_text())["cases"]}
    assert rows["pat1"]["status"] == "ok" and rows["pat1"]["dicom_seg"] == "none: writing it failed: highdicom refused this source"
    assert (out2 / "pat1.nii.gz").is_file() and not (out2 / "pat1_seg").exists()


def test_body_data_of_a_dicom_study_index_its_cohort_measurements(tmp_path):
    """`batch --measure` of a DICOM study takes height, weight and sex from its header
    (PatientSize m, PatientWeight kg, PatientSex) for BSA and indexed values; a subjects row's
    values win field by field; placeholders (size 0) are left out; cohort.csv says which came
    from the header (`dicom_body`)."""
    from medseg.batch import BatchOptions
    from medseg.batch.cohort import _measure
    from medseg.io import write_labels
    from medseg.io.dicom import dicom_body
    from medseg.phantoms import cine_sax_phantom
    from medseg.subjects import Subject

    series = write_cine_series(tmp_path / "pat", n_slices=2, n_phases=1)
    for f in series.folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.PatientSize, ds.PatientWeight, ds.PatientSex = "1.80", "80", "F"
        ds.save_as(f)
    assert dicom_body(series.folder) == {"height_cm": 180.0, "weight_kg": 80.0, "sex": "F"}
    assert dicom_body(tmp_path) == dicom_body(series.folder)  # a study folder: its series sub-folder
    assert read_volume(series.folder).meta["patient_body"] == dicom_body(series.folder)  # napari's measurement panel takes it
    ph = cine_sax_phantom(n_frames=6, n_slices=5, shape=(64, 64), seed=3)
    out = tmp_path / "pat.nii.gz"
    write_labels(ph.labels, ph.image, out, ph.label_map)
    row = _measure(out, BatchOptions(out_dir=tmp_path, measure=True), "pat", str(series.folder))["cohort_row"]
    assert row["bsa_m2"] == pytest.approx(2.0, abs=1e-4) and row["sex"] == "female" and row["dicom_body"] == "height_cm weight_kg sex"
    opts = BatchOptions(out_dir=tmp_path, measure=True, subjects=(Subject("pat", None, 90.0),))
    row = _measure(out, opts, "pat", str(series.folder))["cohort_row"]
    assert row["bsa_m2"] == pytest.approx((180 * 90 / 3600) ** 0.5, abs=1e-4) and (row["subject"], row["dicom_body"]) == ("pat", "height_cm sex")
    for f in series.folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.PatientSize = "0"
        ds.save_as(f)
    assert dicom_body(series.folder) == {"weight_kg": 80.0, "sex": "F"} and dicom_body(out) == {}


def test_measure_of_labels_takes_body_data_from_their_dicom_images_header(tmp_path):
    """`medseg measure LABELS` of labels segmented from a DICOM cine (their sidecar names it):
    height, weight and sex not typed come from its header, and the report says which."""
    import json

    from medseg.cli import run_cli
    from medseg.io import write_labels

    series = write_cine_series(tmp_path / "cine", n_slices=3, n_phases=2, rows=24, cols=20)
    for f in series.folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.PatientSize, ds.PatientWeight, ds.PatientSex = "1.80", "80", "F"
        ds.save_as(f)
    vol = read_volume(series.folder)
    yy, xx = np.mgrid[:24, :20]
    lab = np.zeros(vol.shape, np.uint8)
    for t, r in enumerate((7.0, 5.0)):  # a bigger cavity at frame 0 (ED)
        ring = (yy - 12) ** 2 + (xx - 10) ** 2
        lab[t, :, ring <= (r + 2) ** 2] = 2
        lab[t, :, ring <= r ** 2] = 1
    out = tmp_path / "seg.nii.gz"
    write_labels(lab, vol, out, "lv=1,myo=2", provenance={"input": str(series.folder)})
    assert run_cli(["measure", str(out), "-o", str(tmp_path / "r.json")]) == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["bsa_m2"] == pytest.approx(2.0, abs=1e-4) and rep["sex"] == "female"
    assert rep["inputs"]["body_from_dicom"] == ["height_cm", "weight_kg", "sex"]
    assert run_cli(["measure", str(out), "-o", str(tmp_path / "r2.json"), "--weight-kg", "45"]) == 0
    rep = json.loads((tmp_path / "r2.json").read_text())
    assert rep["bsa_m2"] == pytest.approx(1.5, abs=1e-4) and rep["inputs"]["body_from_dicom"] == ["height_cm", "sex"]


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
