"""Zips for the archive tests (``tests/io/test_zip_*.py``)."""

from __future__ import annotations

import zipfile
from pathlib import Path


def zip_tree(folder: Path, dest: Path, prefix: str = "", method: int = zipfile.ZIP_DEFLATED) -> Path:
    """Zip every file below ``folder`` as ``prefix`` + its relative path."""
    with zipfile.ZipFile(dest, "w", method) as z:
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            z.write(f, prefix + f.relative_to(folder).as_posix())
    return dest
