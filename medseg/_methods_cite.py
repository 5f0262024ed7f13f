"""The "Cite" list of a methods section (:mod:`medseg.methods`): medseg as its ``CITATION.cff``
says, Segment Anything / MedSAM where the model's card (or registry entry) names them, the data
sets the model card and the adapter's metadata name, and the measurement references whose
ranges or methods were used. Each entry is read from those files and constants, never typed here."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

#: a data set's name (as a model card's training-data row or an adapter's description says it) ->
#: the family name of the first author of the paper CITATION.cff lists for it
DATASET_FIRST_AUTHOR = {"ACDC": "Bernard", "CAMUS": "Leclerc", "Sunnybrook": "Radau", "M&Ms": "Martín-Isla",
                        "HVSMR": "Pace", "MS-CMRSeg": "Zhuang", "SIUE": "Cuellar"}


def citation_path() -> Path | None:
    """Where this install's CITATION.cff is: beside the package in a checkout or an sdist, else
    in ``share/medseg`` beside the shipped checkpoints, where pip puts a wheel's copy
    (pyproject.toml's data-files; :func:`medseg.models.registry.asset_dirs` finds that folder for
    ``--user``, ``--prefix`` and ``--target`` installs too); None when there is none."""
    from .models.registry import asset_dirs, medseg_home

    root = Path(__file__).resolve().parents[1]  # installed, this is site-packages: another package's CITATION.cff could lie there
    beside = [root / "CITATION.cff"] if (root / "pyproject.toml").is_file() else []
    shared = [d.parent / "CITATION.cff" for d in asset_dirs("checkpoints") if d != medseg_home("checkpoints")]
    return next((p for p in (*beside, *shared) if p.is_file()), None)


@lru_cache(maxsize=1)
def citation_cff() -> dict[str, Any]:
    """The CITATION.cff of this install (:func:`citation_path`), {} when it has none or it
    cannot be read."""
    path = citation_path()
    if path is None:
        return {}
    try:
        import yaml  # type: ignore[import-untyped]  # a dependency of dask

        obj = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 (unreadable, yaml.YAMLError: a damaged file cites nothing)
        return {}
    return obj if isinstance(obj, dict) else {}


def _names(authors: Any) -> list[str]:
    out = []
    for a in authors or []:
        if isinstance(a, dict):
            out.append(str(a.get("family-names") or a.get("name") or "").strip())
    return [n for n in out if n]


def format_reference(ref: dict[str, Any]) -> str:
    """One CFF reference as a line: "Kirillov et al. Segment Anything. Proceedings ... (2023)"."""
    names = _names(ref.get("authors"))
    who = names[0] + (" et al." if len(names) > 1 else ".") if names else ""
    where = ref.get("journal") or ref.get("collection-title") or ref.get("repository-code") or ref.get("url") or ""
    vol = f" {ref['volume']}" if ref.get("volume") else ""
    pages = f":{ref['start']}" + (f"-{ref['end']}" if ref.get("end") else "") if ref.get("start") else ""
    year = f" ({ref['year']})" if ref.get("year") else ""
    title = str(ref.get("title", ""))
    return " ".join(p for p in (who, title if title.endswith(("?", "!", ".")) else f"{title}.", f"{where}{vol}{pages}{year}".strip()) if p).strip()


def software_entry(version: str | None) -> str:
    """medseg itself: CITATION.cff's authors, title and version (the package's when no file)."""
    cff = citation_cff()
    if not cff:
        from importlib import metadata

        try:
            summary = str(metadata.metadata("medseg")["Summary"] or "")
        except (metadata.PackageNotFoundError, KeyError):
            summary = ""
        return f"medseg{': ' + summary if summary else ''}, version {version or 'unknown'} (software)"
    who = ", ".join(_names(cff.get("authors"))) or "medseg"
    line = f"{who}. {cff.get('title', 'medseg')}. Software, version {version or cff.get('version')}"
    if version and str(cff.get("version")) != str(version):
        line += f" (CITATION.cff of this install: {cff.get('version')})"
    return line + (f", licence {cff['license']}" if cff.get("license") else "") + "."


def references_by(author: str) -> list[dict[str, Any]]:
    """CITATION.cff's references whose first author is ``author`` (a family name)."""
    return [r for r in citation_cff().get("references") or [] if isinstance(r, dict) and _names(r.get("authors"))[:1] == [author]]


def reference_titled(pattern: str) -> list[str]:
    """CITATION.cff's references whose title matches ``pattern`` (a regular expression, any case)."""
    return [format_reference(r) for r in citation_cff().get("references") or []
            if isinstance(r, dict) and re.fullmatch(pattern, str(r.get("title", "")), re.IGNORECASE)]


def dataset_references(text: str) -> list[str]:
    """The CITATION.cff references of the data sets named in ``text``."""
    return [format_reference(r) for name, author in DATASET_FIRST_AUTHOR.items() if name.lower() in text.lower()
            for r in references_by(author)]


def model_card(model_id: str | None, sha256: str | None) -> str | None:
    """The text of the model card of the shipped model with this sha256 (checkpoints/README.md),
    None for any other model (an own checkpoint, SAM weights: no card medseg knows)."""
    from .models.registry import DEFAULT_CHECKPOINT_NAME, shipped_checkpoint, shipped_sha256

    try:
        if not sha256 or shipped_sha256(DEFAULT_CHECKPOINT_NAME) != sha256:
            return None
        return (shipped_checkpoint(DEFAULT_CHECKPOINT_NAME).parent / "README.md").read_text(encoding="utf-8")
    except Exception:  # noqa: BLE001 (CheckpointError: no shipped file in this install; an unreadable card)
        return None


def training_rows(card: str) -> list[str]:
    """The first cells of the model card's "Training data" table (one data set each)."""
    m = re.search(r"^## Training data[^\n]*\n(.*?)(?=^## |\Z)", card, re.MULTILINE | re.DOTALL)
    rows = [ln for ln in (m.group(1) if m else "").splitlines() if ln.startswith("|")]
    cells = [ln.strip("|").split("|")[0].strip() for ln in rows[2:]]  # after the header and its --- line
    return [c for c in cells if c]


def adapter_description(adapter_id: str | None, sha256: str | None) -> str | None:
    """The description in the adapter's medseg.json, when the folder its name finds holds these
    weights (sha256 as recorded), else None."""
    if not adapter_id:
        return None
    try:
        from .adapters import find_adapter, read_adapter_meta

        meta = read_adapter_meta(find_adapter(adapter_id))
    except Exception:  # noqa: BLE001 (gone, moved, damaged: no description)
        return None
    if sha256 and meta.get("adapter_sha256") not in (None, sha256):
        return None
    return str(meta.get("description") or "") or None


def architecture_refs(model_id: str | None, card: str | None) -> list[str]:
    """Segment Anything (and MedSAM) when the model card, or the registry's entry of the model,
    names them."""
    from .models.registry import REGISTRY

    text = (card or "") + " " + (getattr(REGISTRY.get(str(model_id)), "description", "") or "") + " " + str(model_id or "")
    out = []
    if re.search(r"segment[- ]anything|medsam|sam_vit", text, re.IGNORECASE):  # MedSAM is SAM fine-tuned
        out += reference_titled(r"segment anything")
    if re.search(r"medsam", text, re.IGNORECASE):
        out += reference_titled(r"segment anything in medical images")
    return out
