"""A bad-input sweep over the commands (info, segment, measure, evaluate, adapt, batch, bench):
each case found giving a Python exception's text, a misleading line, or exit code 0 with an
output, now one line naming the problem, exit code 1, nothing written. No case loads the model."""

from __future__ import annotations

import gzip
import io
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli

LM = "lv=1,myo=2,rv=3"


@pytest.fixture(scope="module")
def study(tmp_path_factory, phantom):
    """One phantom frame as NIfTI (img.nii.gz) with its labels (gt.nii.gz, lv=1, myo=2, rv=3);
    pairs/ holds it as case c1 with its labels beside it, pred/ the labels as c1's prediction."""
    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti

    d = tmp_path_factory.mktemp("sweep")
    vol = phantom.image.with_array(phantom.image.array[:1], frame_times_s=None)
    nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(d / "img.nii.gz"))
    write_labels(phantom.labels[:1], vol, d / "gt.nii.gz", phantom.label_map.subset(["lv", "myo", "rv"]))
    (d / "pairs").mkdir()
    shutil.copy(d / "img.nii.gz", d / "pairs" / "c1.nii.gz")
    shutil.copy(d / "gt.nii.gz", d / "pairs" / "c1_gt.nii.gz")  # no sidecar: its values need --label-map
    (d / "pred").mkdir()
    shutil.copy(d / "gt.nii.gz", d / "pred" / "c1.nii.gz")
    return d


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _refused(argv: list[str], capsys, cwd: Path, *watch: Path) -> str:
    """Run ``argv``; assert exit code 1, one ``error:`` line with no Python exception text, and
    nothing new in ``cwd`` nor in the ``watch`` folders. The line."""
    roots = (cwd, *watch)
    before = [_files(r) for r in roots]
    capsys.readouterr()
    rc = run_cli(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("error: "), (rc, err)
    for bad in ("unexpected", "Error:", "Exception", "Traceback", "PosixPath"):
        assert bad not in lines[0], lines[0]
    assert [_files(r) for r in roots] == before, "an output was left behind"
    return lines[0]


# -- an empty option value was read as the option left out --------------------------------------
# (`--label-map "$MAP"` with MAP unset: ACDC labels, lv=3, read with medseg's lv=1 map; the base
# model without the adapter; adapt and evaluate said "give --label-map" to a user who had)

def _empty_cases() -> list:
    seg = ["segment", "{d}/img.nii.gz", "-o", "{o}/seg.nii.gz", "--auto"]
    ev = ["evaluate", "--pairs", "{d}/pairs", "--predicted", "{d}/pred", "-o", "{o}/ev.json"]
    return [
        pytest.param([*seg, "--label-map", ""], "--label-map", id="segment --label-map"),
        pytest.param([*seg, "--label-map", "  "], "--label-map", id="segment --label-map blank"),
        pytest.param([*seg, "--adapter", ""], "--adapter", id="segment --adapter"),
        pytest.param([*seg, "--series", ""], "--series", id="segment --series"),
        pytest.param([*seg, "--modality", ""], "--modality", id="segment --modality"),
        pytest.param(["measure", "{d}/gt.nii.gz", "-o", "{o}/r.json", "--label-map", ""], "--label-map", id="measure --label-map"),
        pytest.param([*ev, "--label-map", ""], "--label-map", id="evaluate --label-map"),
        pytest.param([*ev, "--label-map", LM, "--predicted-label-map", ""], "--predicted-label-map", id="evaluate --predicted-label-map"),
        pytest.param(["adapt", "--pairs", "{d}/pairs", "-o", "{o}/ad", "--label-map", "", "--steps", "1"], "--label-map", id="adapt --label-map"),
        pytest.param(["batch", "{d}/pairs", "-o", "{o}/out", "--auto", "--label-map", ""], "--label-map", id="batch --label-map"),
    ]


@pytest.mark.parametrize("argv, flag", _empty_cases())
def test_an_empty_option_value_is_refused_not_taken_as_left_out(study, tmp_path, capsys, monkeypatch, argv, flag):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(d=study, o=tmp_path) for a in argv]
    line = _refused(argv, capsys, tmp_path, study)
    assert line == f"error: {flag} is empty: give a value, or leave the option out"


def test_a_non_empty_label_map_still_reaches_the_command(study, tmp_path, capsys):
    """The check refuses only empty values: the same evaluate with a map scores the case."""
    out = tmp_path / "ev.json"
    assert run_cli(["evaluate", "--pairs", str(study / "pairs"), "--predicted", str(study / "pred"), "--label-map", LM, "-o", str(out)]) == 0
    assert out.is_file()


# -- an output or input path that is "." (or empty, which typer reads as ".") or "/" -------------
# Path.with_name raised "unexpected ValueError: PosixPath('.') has an empty name"

@pytest.mark.parametrize("argv, says", [
    pytest.param(["segment", "{d}/img.nii.gz", "-o", ".", "--auto"], ". is a folder", id="segment -o ."),
    pytest.param(["segment", "{d}/img.nii.gz", "-o", "", "--auto"], ". is a folder", id="segment -o ''"),
    pytest.param(["segment", "{d}/img.nii.gz", "-o", "/", "--auto"], "/ is a folder", id="segment -o /"),
    pytest.param(["segment", "{d}/img.nii.gz", "-o", ".", "--prompts-from", "{d}/gt.nii.gz", "--label-map", LM, "--key-slice"],
                 ". is a folder", id="segment --prompts-from -o ."),
    pytest.param(["measure", ".", "-o", "{o}/sub/r.json"], "", id="measure ."),
    pytest.param(["measure", "--ed", "", "--es", "{d}/gt.nii.gz", "-o", "{o}/sub/r.json"], "", id="measure --ed ''"),
    pytest.param(["measure", "{d}/gt.nii.gz", "--plots", "{o}/pl", "--image", "", "-o", "{o}/r.json"], "", id="measure --image ''"),
])
def test_a_folder_path_where_a_file_is_named_gives_one_line(study, tmp_path, capsys, monkeypatch, argv, says):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    line = _refused([a.format(d=study, o=tmp_path) for a in argv], capsys, tmp_path, study)
    assert says in line


def test_sidecar_path_of_the_current_folder_is_its_name():
    from medseg.errors import ImageWriteError
    from medseg.io import sidecar_path

    here = Path.cwd()
    assert sidecar_path(".") == sidecar_path("") == here.with_name(here.name + ".json")
    with pytest.raises(ImageWriteError, match="is a folder, not a file"):
        sidecar_path("/")


# -- readers: a file cut short or not an image said so in words, not as Python's exception ------

def _cut_gz(d: Path, src: Path) -> Path:
    data = src.read_bytes()
    (p := d / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    return p


def _cut_nii(d: Path, src: Path) -> Path:
    data = gzip.decompress(src.read_bytes())
    (p := d / "cut.nii").write_bytes(data[: len(data) // 2])
    return p


def _png_bytes(fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def _cut_png(d: Path, src: Path) -> Path:
    data = _png_bytes("PNG")
    (p := d / "cut.png").write_bytes(data[: len(data) // 2])
    return p


def _garbage_png(d: Path, src: Path) -> Path:
    (p := d / "garbage.png").write_bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8).tobytes())
    return p


@pytest.mark.parametrize("make, says", [
    pytest.param(_cut_gz, "cannot read NIfTI file {p}: the file is cut short: its compressed data ends before the voxels", id="cut .nii.gz"),
    pytest.param(_cut_nii, "cannot read NIfTI file {p}: the file is cut short: it holds 150352 of the 301056 bytes", id="cut .nii"),
    pytest.param(_cut_png, "cannot read image file {p}: image file is truncated", id="cut .png"),
    pytest.param(_garbage_png, "cannot read image file {p}: not an image Pillow recognises (corrupt, or another format under a .png name?)",
                 id="garbage .png"),
])
@pytest.mark.parametrize("command", ["info", "measure"])
def test_a_cut_or_foreign_file_is_said_in_words(study, tmp_path, capsys, make, says, command):
    p = make(tmp_path, study / "img.nii.gz")
    argv = ["info", str(p)] if command == "info" else ["measure", str(p), "-o", str(tmp_path / "r.json"), "--label-map", LM]
    line = _refused(argv, capsys, tmp_path)
    assert line.startswith("error: " + says.format(p=p)), line


# -- bench: a JSON benchmark named as a table ----------------------------------------------------

@pytest.mark.parametrize("name", ["bench.csv", "bench.xlsx"])
def test_bench_refuses_a_table_name_before_timing(tmp_path, capsys, monkeypatch, name):
    import medseg.bench

    monkeypatch.setattr(medseg.bench, "run_bench", lambda **kw: {"timed": True})  # minutes of timing, not run
    line = _refused(["bench", "-o", str(tmp_path / name), "--no-study"], capsys, tmp_path)
    assert line == f"error: {tmp_path / name}: the benchmark (-o) is JSON; name it .json"
