"""medseg in a Jupyter notebook: what a cell prints of a Volume, a model, a Session, a segmentation
and its confidence is one short line (not megabytes of voxels, a network's module tree or a
DICOM file list); tab completion lists the lazily imported names; an image array holding NaN is
refused by ``segment_volume`` as ``read_volume`` refuses the file; an affine that is not numbers
is a one-line GeometryError."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from medseg.errors import GeometryError, ImageReadError, MedsegError


@pytest.fixture(scope="module")
def cine():
    from medseg.phantoms import cine_sax_phantom

    return cine_sax_phantom(n_frames=2, n_slices=6, shape=(96, 96), spacing=(10.0, 1.5, 1.5), seed=4)


def _short(text: str, limit: int = 300) -> None:
    assert "\n" not in text and len(text) < limit and "array(" not in text, text


def test_a_volume_prints_its_shape_spacing_and_source_not_its_voxels(cine):
    vol = cine.image.with_array(cine.image.array, meta={"format": "dicom", "path": "/data/SCD0000501", "files": [[f"{i}.dcm"] * 6 for i in range(500)]})
    text = repr(vol)
    _short(text)
    assert text.startswith("Volume(shape=(2, 6, 96, 96) (T, Z, Y, X), dtype=float32, spacing_mm=(10, 1.5, 1.5)"), text
    assert "path='/data/SCD0000501'" in text and "dcm" not in text
    assert str(vol) == text


def test_model_session_prediction_confidence_and_result_print_in_one_line(model, cine):
    from medseg.labels import LabelMap
    from medseg.segment import SegmentResult
    from medseg.session import Session
    from medseg.types import Box, SlicePrompt

    _short(repr(model))
    assert repr(model).startswith("LoadedModel(model_id='default', sha256='") and "Conv2d" not in repr(model)
    s = Session(cine.image, model, "lv=1,myo=2")
    assert repr(s) == "Session(image=(2, 6, 96, 96) MR, model='default', structures: lv=1 (0 slices), myo=2 (0 slices); 0 actions)"
    prompt = SlicePrompt("lv", 0, 3, box=Box.from_mask(cine.labels[0, 3] == 1))
    pred = s.predict(prompt, multimask=True)
    _short(repr(pred))
    assert repr(pred).startswith("Prediction(mask=(96, 96) with ") and "candidates=3" in repr(pred)
    s.apply_prompt(prompt)
    assert "lv=1 (1 slices)" in repr(s) and "1 actions" in repr(s)
    conf = s.confidence()
    _short(repr(conf))
    assert repr(conf).startswith("ConfidenceReport(volume={'lv': ") and "slices=1" in repr(conf)
    res = SegmentResult(s.labels, LabelMap.parse("lv=1,myo=2"), {"needs_review": True}, confidence={"volume": {"lv": 0.9}}, seconds=1.25)
    assert repr(res) == "SegmentResult(labels=(2, 6, 96, 96) uint8, label_map='lv=1,myo=2', confidence={'lv': 0.9}, needs_review=True, seconds=1.2)"


def test_tab_completion_lists_the_lazily_imported_api():
    import medseg
    import medseg.measure

    assert {"load_model", "read_volume", "Volume", "MedsegError", "Session", "segment_volume"} <= set(dir(medseg))
    from medseg.segment import segment_volume
    from medseg.session import Session

    assert medseg.Session is Session and medseg.segment_volume is segment_volume  # as the notebook section's imports
    assert {"measure_ed_es", "measure_phase", "bullseye_png"} <= set(dir(medseg.measure))


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e300])
def test_segment_volume_refuses_an_array_with_nan_as_read_volume_refuses_the_file(cine, bad):
    """A Volume made in a notebook with NaN voxels (a masked image) was segmented with them set
    to 0 in silence; read_volume refuses such a file."""
    from medseg.segment import segment_volume

    arr = cine.image.array.astype(np.float64)
    arr[0, 2, 5, 5] = bad
    with pytest.raises(ImageReadError) as e:
        segment_volume(cine.image.with_array(arr), SimpleNamespace(config=None), auto=True)
    assert str(e.value).startswith("Volume.array: image contains 1 ") and "the array first" in str(e.value) and "\n" not in str(e.value)


def test_segment_volume_refuses_a_model_name_in_one_line(cine):
    """segment_volume(vol, "default", auto_structures=...) was an AttributeError ('str' object has no attribute 'config')."""
    from medseg.segment import segment_volume

    with pytest.raises(MedsegError, match=r"needs a loaded model \(medseg.models.load_model\), got str"):
        segment_volume(cine.image, "default", auto=True, auto_structures=("lv",))


@pytest.mark.parametrize(("affine", "msg"), [
    ("abc", "affine must be a 4x4 matrix of numbers, got str 'abc'"),
    ([[1, 2], [3]], "affine must be a 4x4 matrix of numbers, got list"),
    (np.full((4, 4), np.nan), "affine holds NaN or infinite values; allowed: finite numbers"),
    (np.diag([0.0, 1.0, 1.0, 1.0]), "voxel spacing is zero or missing (x, y, z = 0, 1, 1 mm)"),
])
@pytest.mark.parametrize("fn", ["measure_phase", "measure_ed_es"])
def test_measure_names_a_bad_affine_in_one_line(cine, affine, msg, fn):
    """A string or ragged lists were numpy's ValueError; a NaN affine said "got shape (4, 4)";
    zero spacing printed np.float64(0.0)."""
    import medseg.measure as m

    lab = cine.labels[0]
    args = (lab, affine, cine.label_map) if fn == "measure_phase" else (lab, lab, affine, cine.label_map)
    with pytest.raises(GeometryError) as e:
        getattr(m, fn)(*args)
    assert str(e.value).startswith(msg), str(e.value)


def test_the_readme_notebook_snippet_runs_as_written(model, tmp_path, monkeypatch, capsys):
    """README "In a notebook": the snippet runs on an array saved as stack.npy (a phantom, its
    LV's box on slice 5 put in for the one written there) and prints what its comment says."""
    import re
    from pathlib import Path

    import medseg.models
    from medseg.phantoms import cine_sax_phantom
    from medseg.types import Box

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    code = re.search(r"#### In a notebook\n.*?```python\n(.*?)```", readme, re.S).group(1)
    ph = cine_sax_phantom(n_frames=1, n_slices=8, shape=(128, 128), spacing=(8.0, 1.37, 1.37), seed=5)
    box = Box.from_mask(ph.labels[0, 5] == 1)
    assert "Box(100, 90, 150, 140)" in code
    code = code.replace("Box(100, 90, 150, 140)", f"Box{box.as_tuple()}")
    monkeypatch.chdir(tmp_path)
    np.save("stack.npy", ph.image.array[0].astype(np.int16))
    monkeypatch.setattr(medseg.models, "load_model", lambda name: model)  # the session's model, loaded once
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    assert capsys.readouterr().out == "an affine (or a Volume) is needed to measure in millimetres\n"
    assert (tmp_path / "lv.nii.gz").is_file() and (tmp_path / "lv.json").is_file()
    assert ns["report"]["volumes_ml"]["lv"] > 0 and "lv" in ns["review"]["confidence"]["volume"]
    assert "lv=1 (" in repr(ns["session"]) and "(0 slices)" not in repr(ns["session"]).split("myo")[0]


def test_an_output_that_is_a_folder_is_refused_in_one_line_and_leaves_nothing(cine, tmp_path):
    """write_csv(report, folder) was an IsADirectoryError naming the temporary file it left
    behind, as was a plot's output given as a folder (write_labels refused it by its ending)."""
    from medseg.errors import ImageWriteError
    from medseg.io import write_labels
    from medseg.measure import measure_phase, volume_curve_png, write_csv

    out = tmp_path / "out"
    out.mkdir()
    report = measure_phase(cine.labels[0], cine.image.affine, cine.label_map)
    for write in (lambda: write_csv(report, out), lambda: volume_curve_png(report, out)):
        with pytest.raises(ImageWriteError) as e:
            write()
        assert str(e.value) == f"{out} is a folder; the output is a file: give a file name"
    with pytest.raises(ImageWriteError, match="cannot write labels to 'out': supported endings"):
        write_labels(cine.labels, cine.image, out, cine.label_map)
    assert list(out.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("given", [["lv", "myo"], 5, b"lv=1"])
def test_a_label_map_of_another_kind_is_named_in_one_line(given):
    """LabelMap.parse(["lv", "myo"]) said: bad label map entry "['lv'"."""
    from medseg.errors import LabelMapError
    from medseg.labels import LabelMap

    with pytest.raises(LabelMapError, match=rf"^a label map is 'name=value,...' text, a dict or a map file's path, got {type(given).__name__} "):
        LabelMap.parse(given)
