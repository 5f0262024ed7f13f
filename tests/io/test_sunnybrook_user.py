"""What a Sunnybrook-style DICOM user met: a series file cut short within its first elements,
DICOM SEG of a series without (or with an empty) SliceThickness, and a series whose images lack
a UID the SEG must copy or reference. The core of each test runs on synthetic DICOM
(``io_synth``)."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from io_synth import write_cine_series

from medseg.cli._app import run_cli
from medseg.errors import ImageReadError, ImageWriteError
from medseg.io import read_label_volume, read_volume, write_labels
from medseg.io.writers import check_output

LM = "lv=1,myo=2"


def _one_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return " ".join(lines[0].split())


def _cine(tmp_path, n_slices=3, n_phases=2):
    series = write_cine_series(tmp_path / "cine", n_slices=n_slices, n_phases=n_phases)
    return series, sorted(series.folder.glob("*.dcm"))


def _edit(files, change) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in files:
            ds = pydicom.dcmread(f)
            change(ds)
            ds.save_as(f, enforce_file_format=False)


# -- 1. a file cut short before its image attributes ------------------------------------------
def _cut_in_file_meta(data: bytes) -> int:
    """Within the file meta, just after MediaStorageSOPClassUID (0002,0002): the data set holds
    no element, only the file meta says what the file was."""
    return data.index(b"\x02\x00\x03\x00") + 4


def _cut_in_sop_class_uid(data: bytes) -> int:
    """Within the value of SOPClassUID (0008,0016): a UID cut in two names no SOP class."""
    return data.index(b"\x08\x00\x16\x00UI") + 8 + 6


@pytest.mark.parametrize("cut", [_cut_in_file_meta, _cut_in_sop_class_uid])
def test_a_series_file_cut_short_in_its_first_elements_is_named(tmp_path, capsys, cut):
    """Before: the file was taken for no image and left out, and the folder was refused as a
    series with a phase missing at one slice, naming neither the file nor the cause."""
    _, files = _cine(tmp_path)
    data = files[2].read_bytes()
    files[2].write_bytes(data[:cut(data)])
    with pytest.raises(ImageReadError) as err:
        read_volume(files[0].parent)
    msg = _one_line(str(err.value))
    assert files[2].name in msg and "truncated" in msg and "MR Image Storage" in msg, msg
    assert run_cli(["info", str(files[0].parent)]) == 1
    err_line = _one_line(capsys.readouterr().err)
    assert err_line.startswith("error: ") and files[2].name in err_line


@pytest.mark.parametrize("content", [b"", b"\0" * 100], ids=["empty", "cut_in_preamble"])
def test_an_incomplete_series_names_the_files_it_did_not_read(tmp_path, capsys, content):
    """An image copied as 0 bytes (or cut within the 128-byte preamble) is no DICOM and is left
    out, as other non-DICOM files are; the series is then one image short. Before: the error said
    only "slice positions have different numbers of phases", naming no file."""
    _, files = _cine(tmp_path)
    files[3].write_bytes(content)
    (files[0].parent / "notes.txt").write_text("scanned 2012")
    with pytest.raises(ImageReadError) as err:
        read_volume(files[0].parent)
    msg = _one_line(str(err.value))
    assert "different numbers of phases" in msg and f"{files[3].name} ({len(content)} bytes)" in msg and "notes.txt" in msg, msg
    assert run_cli(["info", str(files[0].parent)]) == 1
    assert files[3].name in _one_line(capsys.readouterr().err)


# -- 2. DICOM SEG of a series without a SliceThickness value -----------------------------------
@pytest.mark.parametrize("how", ["deleted", "empty"])
def test_a_dicom_seg_of_a_series_without_slice_thickness_is_written_and_reads_back(tmp_path, how):
    """SliceThickness is type 2 (it may be empty) and exporters delete it. Before: deleted, the
    SEG failed after the segmentation ("'FileDataset' object has no attribute 'SliceThickness'");
    empty, the SEG was written without a slice thickness in its Pixel Measures, and reading it
    back failed ("cannot read DICOM SEG ... Pixel Measures Sequence")."""
    series, files = _cine(tmp_path, n_slices=4)

    def drop(ds):
        if how == "deleted":
            del ds.SliceThickness
        else:
            ds.SliceThickness = None

    _edit(files, drop)
    vol = read_volume(series.folder)
    lab = np.zeros((vol.n_frames, *vol.grid_shape), np.uint8)
    lab[1, 1:3, 3:8, 2:6] = 1
    lab[0, 0:2, 2:5, 3:7] = 2
    written = write_labels(lab, vol, tmp_path / "out" / "seg.dcm", LM)
    segs = sorted(p for p in written if p.suffix == ".dcm")
    assert [p.name for p in segs] == ["seg_frame00.dcm", "seg_frame01.dcm"]
    for t, p in enumerate(segs):
        measures = pydicom.dcmread(p).SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        assert float(measures.SliceThickness) == pytest.approx(series.step_mm, abs=1e-3)
        back = read_label_volume(p)
        assert np.array_equal(back.array[0], lab[t])
        np.testing.assert_allclose(back.affine, vol.affine, atol=1e-3)


# -- 3. a UID the SEG must copy or reference, missing: refused before any work -----------------
@pytest.mark.parametrize("uid", ["SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID"])
def test_a_dicom_seg_of_images_without_a_uid_it_needs_is_refused_before_segmenting(tmp_path, capsys, uid):
    """Before: the image was read and segmented, and only then highdicom failed ("'FileDataset'
    object has no attribute 'StudyInstanceUID'"); batch --dicom-seg checks a case the same way."""
    series, files = _cine(tmp_path)
    _edit(files, lambda ds: delattr(ds, uid))
    vol = read_volume(series.folder)  # the image itself reads (and segments to NIfTI)
    assert check_output(tmp_path / "seg.nii.gz", vol) == "nifti"
    with pytest.raises(ImageWriteError) as err:
        check_output(tmp_path / "seg.dcm", vol)
    msg = _one_line(str(err.value))
    assert uid in msg and ".nii.gz" in msg, msg
    out = tmp_path / "out"
    assert run_cli(["segment", str(series.folder), "-o", str(out / "seg.dcm"), "--auto"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("error: ") and uid in line
    assert not out.exists() or not any(out.iterdir())


# -- 4. expert contour polygons (Sunnybrook layout) as reference labels ------------------------
def _truth_of_files(series):
    """file -> (t, z), from each file's own position and trigger time (pydicom), not medseg."""
    out = {}
    for f in series.folder.glob("*.dcm"):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        z = int(np.argmin(np.linalg.norm(series.ipps - np.array([float(v) for v in ds.ImagePositionPatient]), axis=1)))
        t = int(np.argmin(np.abs(series.triggers_ms[:, z] - float(ds.TriggerTime))))
        out[f] = (t, z)
    return out


def _rect(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def _write_contours(folder, polys):
    """polys: {(image number, "i"|"o"): (N, 2) x y} in Sunnybrook's file layout."""
    for (n, kind), xy in polys.items():
        sub = folder / f"{kind}-contours"
        sub.mkdir(parents=True, exist_ok=True)
        np.savetxt(sub / f"IM-0001-{n:04d}-{kind}contour-manual.txt", xy, fmt="%.2f")


def _contoured_cine(tmp_path):
    """A 3-slice, 2-phase synthetic cine and contours: an endocardial rectangle on every image
    placed by (t, z), bigger at t = 1 (the ED frame), and an epicardial one at t = 1 only."""
    series = write_cine_series(tmp_path / "dicoms" / "P1", n_slices=3, n_phases=2, rows=14, cols=12)
    truth = _truth_of_files(series)
    polys, expect = {}, {}
    for f, (t, z) in truth.items():
        n = int(f.stem[2:])  # IM0003.dcm -> 3
        polys[(n, "i")] = _rect(2 + z, 3, 4 + z + 2 * t, 9)  # x (columns) 2+z .. 4+z+2t, y (rows) 3 .. 9
        if t == 1:
            polys[(n, "o")] = _rect(1 + z, 2, 7 + z + 2 * t, 11)
        expect[(t, z)] = (f, polys[(n, "i")])
    _write_contours(tmp_path / "contourfiles" / "C1", polys)
    return series, expect


def test_contours_fill_the_frame_their_image_number_names_with_exact_geometry(tmp_path):
    """Each contour file's polygon lands on the (t, z) slice of the DICOM file its number names
    (file names and InstanceNumbers shuffled), x as column and y as row: the labelled area's centre
    in world mm (medseg's affine) equals that file's pixel centre by its own header (pydicom)."""
    from medseg.io.contours import contour_labels

    series, expect = _contoured_cine(tmp_path)
    vol = read_volume(series.folder)
    labels = contour_labels(vol, tmp_path / "contourfiles" / "C1")
    assert labels.array.shape == vol.shape and labels.meta["label_map"] == {"lv": 1, "myo": 2}
    for (t, z), (f, xy) in expect.items():
        lv = labels.array[t, z] == 1
        rows, cols = np.nonzero(lv)
        assert lv.sum() > 0 and np.isclose(cols.mean(), xy[:, 0].mean(), atol=0.5) and np.isclose(rows.mean(), xy[:, 1].mean(), atol=0.5)
        assert (labels.array[t, z] == 2).any() == (t == 1)  # the ring only where an o-contour is
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        iop, (dy, dx) = np.array([float(v) for v in ds.ImageOrientationPatient]), [float(v) for v in ds.PixelSpacing]
        lps = np.array([float(v) for v in ds.ImagePositionPatient]) + cols.mean() * dx * iop[:3] + rows.mean() * dy * iop[3:]
        ras = (vol.affine @ [cols.mean(), rows.mean(), z, 1.0])[:3]
        np.testing.assert_allclose(ras, lps * [-1, -1, 1], atol=1e-3)


@pytest.mark.parametrize("damage, says", [
    ("number", "image number(s) 999"),
    ("text", "'x y' pixel"),
    ("two_points", "at least 3"),
    ("empty_folder", "no contour files"),
])
def test_contours_that_do_not_fit_the_series_are_one_line_errors(tmp_path, damage, says):
    from medseg.io.contours import contour_labels

    series, _ = _contoured_cine(tmp_path)
    cdir = tmp_path / "contourfiles" / "C1"
    some = sorted((cdir / "i-contours").glob("*.txt"))[0]
    if damage == "number":
        _write_contours(cdir, {(999, "i"): _rect(1, 1, 3, 3)})
    elif damage == "text":
        some.write_text("12.5 13.0\nnot a number\n")
    elif damage == "two_points":
        some.write_text("1 1\n2 2\n")
    else:
        cdir = tmp_path / "nothing"
        cdir.mkdir()
    with pytest.raises(ImageReadError) as err:
        contour_labels(read_volume(series.folder), cdir)
    msg = _one_line(str(err.value))
    assert says in msg, msg


def _load_example():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "sunnybrook_references.py"
    spec = importlib.util.spec_from_file_location("sunnybrook_references", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_example_writes_references_evaluate_scores_with_ed_and_es(tmp_path, capsys):
    """examples/sunnybrook_references.py: one DICOM SEG per contoured frame, placed on that frame,
    ED = the frame of the larger contoured LV; evaluate scores a prediction equal to the contours
    at Dice 1 and LVEF error 0."""
    from medseg.io.seg_reader import seg_phase

    series, expect = _contoured_cine(tmp_path)
    (tmp_path / "link.csv").write_text("patient_id,original_id\nP1,C1\n")
    rows = _load_example().main(tmp_path, tmp_path / "refs")
    assert [(r["label"], r["phase"]) for r in rows] == [("P1_frame00.dcm", "ES"), ("P1_frame01.dcm", "ED")]
    vol = read_volume(series.folder)
    for t in (0, 1):
        seg = read_label_volume(tmp_path / "refs" / f"P1_frame{t:02d}.dcm")
        assert seg_phase(vol, seg) == t
    from medseg.io.contours import contour_labels

    labels = contour_labels(vol, tmp_path / "contourfiles" / "C1")
    write_labels(labels.array, vol, tmp_path / "pred" / "P1.nii.gz", "lv=1,myo=2")
    capsys.readouterr()
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "refs" / "pairs.csv"), "--predicted", str(tmp_path / "pred"),
                    "-o", str(tmp_path / "r.json")]) == 0
    import json

    summary = json.loads((tmp_path / "r.json").read_text())["summary"]
    assert summary["dice"] == {"lv": 1.0, "myo": 1.0} and summary["n_clinical_cases"] == 1
    assert summary["lvef_mae"] == pytest.approx(0.0, abs=1e-9)


def test_real_sunnybrook_contours_land_on_the_image_they_name(shared_data):
    """SCD0000101: contour IM-0001-0048 fills the slice of dicoms/SCD0000101/48.dcm, whose pixel
    grid (pydicom) is the affine's at that slice; the contoured ED LV is larger than the ES LV."""
    from medseg.io.contours import contour_labels, polygon_mask

    folder = shared_data / "sunnybrook" / "dicoms" / "SCD0000101"
    vol = read_volume(folder)
    labels = contour_labels(vol, shared_data / "sunnybrook" / "contourfiles" / "SC-HF-I-1")
    (t, z), = [(t, z) for t, row in enumerate(vol.meta["files"]) for z, f in enumerate(row) if f.endswith("/48.dcm")]
    xy = np.loadtxt(shared_data / "sunnybrook" / "contourfiles" / "SC-HF-I-1" / "i-contours" / "IM-0001-0048-icontour-manual.txt")
    assert np.array_equal(labels.array[t, z] == 1, polygon_mask(xy, vol.grid_shape[1:]))
    ds = pydicom.dcmread(folder / "48.dcm", stop_before_pixels=True)
    np.testing.assert_allclose((vol.affine @ [0, 0, z, 1.0])[:3], np.array([float(v) for v in ds.ImagePositionPatient]) * [-1, -1, 1], atol=1e-3)
    lv = [(labels.array[k] == 1).sum() for k in range(vol.n_frames)]
    assert lv[1] > lv[0] and (labels.array[1] == 2).any() and not (labels.array[0] == 2).any()


def test_a_contour_folder_given_as_an_image_or_labels_points_to_the_conversion(tmp_path, capsys):
    """Before: "no DICOM images in folder ... nor do its 2 sub-folders", with no word of what
    the folder holds or how to use it."""
    _contoured_cine(tmp_path)
    cdir = tmp_path / "contourfiles" / "C1"
    with pytest.raises(ImageReadError) as err:
        read_label_volume(cdir)
    assert "contour polygons" in _one_line(str(err.value)) and "sunnybrook_references.py" in str(err.value)
    assert run_cli(["info", str(cdir)]) == 1
    assert "contour polygons" in _one_line(capsys.readouterr().err)
