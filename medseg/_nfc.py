"""Names matched in Unicode's composed form (NFC). A folder or file named on a Mac is often in the
decomposed form (NFD: ``Mu`` + combining diaeresis + ``ller``), the same name typed in a
spreadsheet, an editor or a shell composed (``M`` + ``ü`` + ``ller``): they look alike and are
different strings, and on Linux different file names. Case ids and file names from two such
sources are compared by :func:`nfc`; a file is still opened by its name on disk
(:func:`on_disk`, :func:`same_name_entries`)."""

from __future__ import annotations

import os
import time
import unicodedata
from collections.abc import Iterable
from pathlib import Path

#: a folder's listing is re-read when the folder changed less than this long ago (its mtime's clock is coarse)
_FRESH_NS = 2_000_000_000
_LISTED: dict[str, tuple[int, dict[str, list[str]]]] = {}


def nfc(name: str) -> str:
    """``name`` in Unicode's composed form (NFC); an ASCII name as it is."""
    return name if name.isascii() else unicodedata.normalize("NFC", name)


def _index(folder: str | os.PathLike) -> dict[str, list[str]]:
    """NFC name -> the non-ASCII entry names of ``folder`` that have it; kept while the folder is
    unchanged (references looked up for thousands of cases list their folder once), read again
    when it changed in the last :data:`_FRESH_NS` (a live OUT_DIR: only for non-ASCII names not there as given)."""
    key = os.fspath(folder)
    try:
        mtime = os.stat(key).st_mtime_ns
    except OSError:
        return {}
    hit = _LISTED.get(key)
    if hit is not None and hit[0] == mtime and time.time_ns() - mtime > _FRESH_NS:
        return hit[1]
    index: dict[str, list[str]] = {}
    try:
        names = os.listdir(key)
    except OSError:
        names = []
    for n in names:
        if not n.isascii():
            index.setdefault(nfc(n), []).append(n)
    if len(_LISTED) >= 32:
        _LISTED.clear()
    _LISTED[key] = (mtime, index)
    return index


def same_name_entries(path: str | os.PathLike) -> list[Path]:
    """The entries of ``path``'s folder named as ``path`` in NFC: ``path`` itself when it exists,
    and any other that differs from it only in its Unicode form (sorted; none when none exists)."""
    p = Path(path)
    found = [p] if os.path.lexists(p) else []
    if p.name.isascii():
        return found
    return found + [p.parent / n for n in sorted(_index(p.parent).get(nfc(p.name), ())) if n != p.name]


def on_disk(path: str | os.PathLike) -> Path:
    """``path`` as the file system names it: itself when it exists, else with each part that is
    not there replaced by the one entry of its folder equal to it in NFC (a name typed in a CSV,
    a folder copied from a Mac); ``path`` unchanged when no such entry, or two, are there."""
    p = Path(path)
    if os.path.lexists(p) or str(p).isascii():
        return p
    cur, parts = (Path(p.anchor), p.parts[1:]) if p.anchor else (Path(), p.parts)
    for i, part in enumerate(parts):
        nxt = cur / part
        if not os.path.lexists(nxt):
            hits = same_name_entries(nxt)
            if len(hits) != 1:
                return p
            nxt = hits[0]
        cur = nxt
        if i < len(parts) - 1 and not cur.is_dir():
            return p
    return cur


def as_written(path: str | os.PathLike) -> Path:
    """``path``, or the one entry already there whose name differs from it only in its Unicode
    form (an output of an earlier run, named as the input folder then was: a Mac's NFD): a run
    (``--resume`` too) finds it and writes over it instead of adding a second file beside it."""
    hits = same_name_entries(path)
    return hits[0] if len(hits) == 1 else Path(path)


def two_forms(names: Iterable[str]) -> str:
    """A note for an error naming ``names`` that are equal in NFC, when they are not equal as
    written (they look alike in the message), else ``""``."""
    return " (one name in two Unicode forms, as a Mac and another system write it)" if len(set(names)) > 1 else ""
