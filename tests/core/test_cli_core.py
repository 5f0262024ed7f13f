"""End-to-end CLI: info, models, version, usage errors, one-line errors, console output (the
`study` fixture: tests/core/conftest.py). `segment`: test_cli_segment.py; `evaluate`: test_cli_evaluate.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseg.cli._app import run_cli


def test_info_json(study, capsys):
    assert run_cli(["info", str(study / "img.nii.gz"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["shape"] == [1, 6, 112, 112] and d["axes"] == ["t", "z", "y", "x"]
    assert d["spacing_mm"] == [10.0, 1.5, 1.5] and d["n_frames"] == 1 and d["n_slices"] == 6
    assert "label_map" not in d


def test_info_of_labels_medseg_wrote_names_their_map_image_and_review(study, tmp_path, capsys):
    from medseg.io import read_label_volume, read_volume, write_labels

    assert run_cli(["info", str(study / "gt.nii.gz"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["label_map"] == "lv=1, myo=2, rv=3" and "labels_of" not in d
    out = tmp_path / "seg.nii.gz"
    write_labels(read_label_volume(study / "gt.nii.gz").array, read_volume(study / "img.nii.gz"), out, "lv=1,myo=2,rv=3",
                 provenance={"input": str(study / "img.nii.gz"), "needs_review": True})
    assert run_cli(["info", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["label_map"], d["labels_of"], d["needs_review"]) == ("lv=1, myo=2, rv=3", str(study / "img.nii.gz"), True)
    assert run_cli(["info", str(out)]) == 0
    assert "needs_review" in capsys.readouterr().out


def test_models_lists_default_with_hash(capsys):
    assert run_cli(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    default = next(r for r in rows if r["name"] == "default")
    assert default["sha256"] == default["registry_sha256"] and default["size_mb"] > 1


def test_import_medseg_is_light():
    import subprocess
    import sys

    code = "import sys, medseg, medseg.io, medseg.labels, medseg.types; bad=[m for m in ('napari','qtpy','PyQt6','magicgui','typer','rich','torch') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_error_text_with_brackets_is_printed_not_parsed(tmp_path, capsys):
    """Rich markup in an error message (paths, lists) must not crash the error printer."""
    bad = tmp_path / "[x]" / "missing[/bold].nii.gz"
    assert run_cli(["info", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "[/bold]" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["segment", "img.nii.gz"], "Missing option '-o' / '--out'"),
    (["segment", "img.nii.gz", "-o", "x.nii.gz", "--bogus"], "No such option: --bogus"),
    (["evaluate", "--prompt", "box", "-o", "r.json"], "Missing option '--pairs'"),
    (["measure"], "Missing option '-o' / '--out' / '--output'"),
])
def test_usage_errors_print_clicks_message_and_exit_2(argv, message, capsys):
    """A missing or unknown option is click's usage message and exit code 2, whichever copy of
    click typer raises (typer >= 0.29 vendors its own): not 'unexpected MissingParameter'."""
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "unexpected" not in err and "Traceback" not in err


def test_version(capsys):
    from medseg import __version__

    assert run_cli(["--version"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"medseg {__version__}"  # then python/torch/numpy and the model's sha256


def test_ctrl_c_and_a_full_disk_are_one_line(study, tmp_path, capsys, monkeypatch):
    """Ctrl-C: typer turns KeyboardInterrupt into Exit(130), so "interrupted" was never said;
    a disk that fills during a write raises an OSError naming no file, which read as an
    "unexpected OSError"."""
    import errno

    import medseg.io

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(medseg.io, "read_volume", interrupt)
        assert run_cli(["info", str(study / "img.nii.gz")]) == 130
    # not "a batch goes on with --resume", which it said after every command
    assert capsys.readouterr().err.strip() == "interrupted: medseg info left no output half-written"

    import medseg._files

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(medseg._files, "write_json_atomic", full)
    assert run_cli(["measure", str(study / "gt.nii.gz"), "-o", str(tmp_path / "r.json")]) == 74  # EX_IOERR
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot write the output: No space left on device" in err and "unexpected" not in err


def test_info_prints_text_from_files_as_it_is(study, tmp_path, capsys):
    """A sidecar's label names (or a DICOM description) holding rich markup or an escape
    sequence: `info` raised a MarkupError on "[/]" and passed ESC to the terminal."""
    import shutil

    for name in ("gt.nii.gz", "gt.json"):
        shutil.copy(study / name, tmp_path / name)
    side = json.loads((tmp_path / "gt.json").read_text())
    side["label_map"]["[/]x\x1b]0;T\x07"] = 9
    (tmp_path / "gt.json").write_text(json.dumps(side))
    capsys.readouterr()
    assert run_cli(["info", str(tmp_path / "gt.nii.gz")]) == 0
    out = capsys.readouterr().out
    assert "[/]x" in out and "\x1b" not in out and "\x07" not in out


def test_an_error_after_a_progress_bar_is_the_only_line_on_stderr(tmp_path, capsys):
    """Piped or logged (no terminal), the progress bar is not drawn: its transient bar printed an
    empty line before the one-line error of every command that shows one."""
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((48, 48, 3), np.float32), np.diag([1.5, 1.5, 8.0, 1.0])), str(tmp_path / "blank.nii.gz"))
    assert run_cli(["segment", str(tmp_path / "blank.nii.gz"), "--auto", "-o", str(tmp_path / "s.nii.gz")]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [err.strip()] and err.startswith("error: the image holds no signal")


def test_console_lines_stay_whole_when_not_a_terminal(capsys):
    """Piped or logged, a message is one line however long (rich broke them at column 80,
    "25.0 \\n% of the good ones"); tables still fit the width."""
    from rich.table import Table

    from medseg.cli._app import console, stdout

    msg = "review flags: " + "; ".join(f"{i}.0 % of the good ones" for i in range(8))
    console.print(msg, markup=False)
    stdout.print(msg, markup=False)
    cap = capsys.readouterr()
    assert cap.err == msg + "\n" and cap.out == msg + "\n"
    t = Table("case", "note")
    t.add_row("patient001", "a long note " * 12)
    stdout.print(t)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 5 and all(len(line) <= stdout.width for line in lines)
