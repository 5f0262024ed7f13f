"""Fixtures of the I/O tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """The temporary folder the archive reader inflates into (``tempfile.tempdir``): a test checks
    that it is empty again afterwards."""
    import tempfile

    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder
