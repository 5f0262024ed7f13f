"""A workflow manager tells a bug in medseg from bad input by the exit code: 1 for an input it
should not retry, 70 (sysexits' EX_SOFTWARE) for an unexpected error, still one line."""

from __future__ import annotations

import pytest

from medseg.cli import _app


@pytest.mark.parametrize("exc, code", [(RuntimeError("a bug\nsecond line"), 70), (KeyError("x"), 70)])
def test_run_cli_maps_an_unexpected_exception_to_exit_bug(monkeypatch, capsys, exc, code):
    def boom(*a, **k):
        raise exc

    monkeypatch.delenv("MEDSEG_DEBUG", raising=False)
    monkeypatch.setattr(_app, "app", boom)
    assert _app.run_cli(["info", "x"]) == code
    err = capsys.readouterr()
    said = (err.out + err.err).strip().splitlines()
    assert len(said) == 1 and said[0].startswith("error: unexpected") and "Traceback" not in said[0]


def test_bad_input_still_exits_1(tmp_path, capsys):
    assert _app.run_cli(["info", str(tmp_path / "missing.nii.gz")]) == 1
    err = capsys.readouterr()
    assert "error:" in err.out + err.err
