"""METHODS.md's Cite list reads CITATION.cff: installed from a wheel (no checkout beside the
package) it is found in share/medseg, where the wheel's data files go (pyproject.toml), as the
shipped checkpoints are. tests/core/test_wheel_contents.py builds and installs the real wheel."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_an_installed_package_finds_its_citation_in_share_medseg(tmp_path, monkeypatch):
    from medseg import _methods_cite
    from medseg.models import registry

    site = tmp_path / "site-packages"
    (site / "medseg").mkdir(parents=True)
    (site / "CITATION.cff").write_text("title: another package's\n", encoding="utf-8")  # not medseg's: never read
    share = tmp_path / "share" / "medseg"
    (share / "checkpoints").mkdir(parents=True)
    shutil.copy(ROOT / "CITATION.cff", share / "CITATION.cff")
    monkeypatch.setattr(_methods_cite, "__file__", str(site / "medseg" / "_methods_cite.py"))
    monkeypatch.setattr(registry, "asset_dirs", lambda kind: [share / kind])
    _methods_cite.citation_cff.cache_clear()
    try:
        assert _methods_cite.citation_path() == share / "CITATION.cff"
        entry = _methods_cite.software_entry("0.1.0")
        assert "Software, version 0.1.0" in entry and "medseg developers" in entry
        assert _methods_cite.reference_titled(r"segment anything")  # the references come with it
        (share / "CITATION.cff").unlink()
        _methods_cite.citation_cff.cache_clear()
        assert _methods_cite.citation_path() is None and _methods_cite.citation_cff() == {}
    finally:
        _methods_cite.citation_cff.cache_clear()
