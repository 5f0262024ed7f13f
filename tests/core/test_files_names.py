"""Output writing under file names that are not UTF-8 (Linux names are bytes; Python gives
``caf\\xe9`` as the surrogate-escaped str ``caf\\udce9``), and :func:`medseg._files.shown`, the
readable form console lines and plots give such names and control characters."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from medseg._files import _tmp_prefix, atomic_path, shown, stale_temp_files, write_json_atomic, write_text_atomic

CAFE = os.fsdecode(b"caf\xe9.nii.gz")  # 'caf\udce9.nii.gz'


def test_tmp_prefix_of_a_non_utf8_name_hashes_its_bytes():
    prefix = _tmp_prefix(Path(CAFE))
    assert prefix == f".{CAFE}.{hashlib.sha256(b'caf' + bytes([0xE9]) + b'.nii.gz').hexdigest()[:8]}."
    assert _tmp_prefix(Path("ok.nii.gz")).endswith(f".{hashlib.sha256(b'ok.nii.gz').hexdigest()[:8]}.")  # unchanged for UTF-8 names


def test_atomic_path_writes_a_non_utf8_name_and_finds_its_stale_temporary_file(tmp_path):
    import tempfile

    target = tmp_path / CAFE
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"labels")
    assert os.listdir(os.fsencode(tmp_path)) == [b"caf\xe9.nii.gz"] and target.read_bytes() == b"labels"
    fd, left = tempfile.mkstemp(prefix=_tmp_prefix(target), suffix=".tmp.nii.gz", dir=tmp_path)  # as a killed run leaves it
    os.close(fd)
    assert stale_temp_files(target) == [Path(left)]


def test_write_text_atomic_writes_a_surrogate_as_its_original_byte(tmp_path):
    """summary.csv of a batch holding case caf\\xe9 raised UnicodeEncodeError (and lost the batch)."""
    target = tmp_path / "summary.csv"
    write_text_atomic(target, f"case,input\ncaf\udce9,/data/{CAFE}\nbiom\u00e9trie,x\n")
    raw = target.read_bytes()
    assert raw == b"case,input\ncaf\xe9,/data/caf\xe9.nii.gz\nbiom\xc3\xa9trie,x\n"  # UTF-8; the name's own byte kept
    back = raw.decode("utf-8", errors="surrogateescape").splitlines()[1].split(",")[1]
    assert back == f"/data/{CAFE}"  # read back with surrogateescape: the path names the file again


def test_write_json_atomic_round_trips_a_non_utf8_path(tmp_path):
    image = tmp_path / CAFE
    image.write_bytes(b"x")
    side = write_json_atomic(tmp_path / "side.json", {"input": str(image)})
    text = side.read_bytes().decode("ascii")  # JSON text is ASCII: the surrogate as the escape \udce9
    assert "\\udce9" in text
    assert Path(json.loads(text)["input"]).read_bytes() == b"x"


@pytest.mark.parametrize(("text", "expected"), [
    (CAFE, "caf\\xe9.nii.gz"),
    ("new\nline", "new\\nline"),
    ("a\rb\tc", "a\\rb\\tc"),
    ("\x1b[31mred", "\\x1b[31mred"),
    ("del\x7f c1\x9b", "del\\x7f c1\\x9b"),
    ("lone \ud800", "lone \\ud800"),
    ("caf\u00e9 \u2764 ok", "caf\u00e9 \u2764 ok"),  # UTF-8 text stays as it is
    (Path("/d") / CAFE, "/d/caf\\xe9.nii.gz"),
])
def test_shown(text, expected):
    assert shown(text) == expected
    assert shown(shown(text)) == expected
    expected.encode("utf-8")  # printable anywhere: no surrogate left


def test_cli_error_naming_a_non_utf8_file_shows_its_byte(tmp_path, capsys):
    """The one-line error shows the name as ``ls -b`` would (``caf\\xe9``), not Python's
    ``caf\\udce9`` (or a UnicodeEncodeError on a strict console)."""
    from medseg.cli import run_cli

    (tmp_path / CAFE).write_bytes(b"not an image")
    assert run_cli(["info", str(tmp_path / CAFE)]) == 1
    err = capsys.readouterr().err
    assert "caf\\xe9.nii.gz" in err and "udce9" not in err and len(err.strip().splitlines()) == 1
