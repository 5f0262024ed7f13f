"""Label maps in other tools' files, for ``--label-map FILE`` (:meth:`medseg.labels.LabelMap.parse`).

* An **ITK-SNAP label description file** (``.txt`` or ``.label``, exported from ITK-SNAP's label
  editor): ``#`` comment lines (ITK-SNAP writes an ``ITK-SnAP Label Description File`` header),
  and one line per label, ``IDX -R- -G- -B- -A-- VIS MSH "LABEL"``, e.g.
  ``3   0 0 255   1  1  1   "LV cavity"``.
* An **nnU-Net** ``dataset.json``: v2's ``"labels": {"background": 0, "LV": 1}`` or v1's
  ``"labels": {"0": "background", "1": "LV"}``.

The tools' label names are matched to medseg's structures in lower case, with ``_`` and ``-``
read as spaces, by medseg's names (``lv``, ``myo``, ...) and the spellings of
:data:`medseg.io.seg_reader.SEGMENT_NAMES` ("LV", "Left Ventricle", "LV cavity", "LV
myocardium", "Myocardium", "RV cavity", "right_ventricle", nnU-Net's ACDC "LVC" / "MLV", ...).
Value 0 and the names of :data:`BACKGROUND_NAMES` are the background. Names that match no
structure (papillary muscles, scar) are left out, with a note, when others match; a file none
of whose names matches, or two names matching one structure, is refused.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import LabelMapError

#: endings of files read as ITK-SNAP label description files
ITKSNAP_SUFFIXES = (".txt", ".label")
#: label names read as the background (ITK-SNAP's value 0 is "Clear Label")
BACKGROUND_NAMES = frozenset({"clear label", "clear", "background", "bg", "unlabeled", "unlabelled"})
_MAX_BYTES = 8 << 20  # 65536 labels at ~60 bytes a line fit 4 MB
_FORMAT = 'IDX R G B A VIS MSH "LABEL"'
_LINE = re.compile(r'\s*(-?\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([-+.\deE]+)\s+(\d+)\s+(\d+)\s+"([^"]*)"\s*')


def is_tool_file(text: str) -> bool:
    """Whether a ``--label-map`` value names an ITK-SNAP label description file."""
    return not text.lstrip().startswith("{") and Path(text).suffix.lower() in ITKSNAP_SUFFIXES


def itksnap_map(path: str | Path) -> tuple[dict[str, int], list[str]]:
    """An ITK-SNAP label description file as (structure -> value, notes)."""
    return named_map(itksnap_labels(path), str(path))


def itksnap_labels(path: str | Path) -> dict[int, str]:
    """The labels of an ITK-SNAP label description file, value -> name; LabelMapError, in one
    line naming the file (and the line), for anything else."""
    p = Path(path)
    if not is_file(p):
        raise LabelMapError(f"label map file not found: {path}")
    if p.stat().st_size > _MAX_BYTES:
        raise LabelMapError(f"{path}: too large for an ITK-SNAP label description file ({p.stat().st_size} bytes)")
    text = _text(p.read_bytes(), str(path))
    out: dict[int, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.fullmatch(line)
        if m is None:
            hint = "" if out or "ITK-SnAP" in text else " (not an ITK-SNAP label description file? a map as text: --label-map lv=3,myo=2,rv=1)"
            raise LabelMapError(f"{path}: line {n} is not an ITK-SNAP label line {_FORMAT}: {line.strip()[:60]!r}{hint}")
        idx = int(m.group(1))
        if not 0 <= idx <= 65535:
            raise LabelMapError(f"{path}: line {n}: label index {idx} is outside 0..65535")
        if idx in out:
            raise LabelMapError(f"{path}: line {n}: label index {idx} appears twice ({out[idx]!r} and {m.group(8)!r})")
        out[idx] = m.group(8)
    if not out:
        raise LabelMapError(f"{path}: holds no label lines ({_FORMAT}): is it an ITK-SNAP label description file?")
    return out


def nnunet_labels(labels: dict, where: str) -> dict[int, str]:
    """An nnU-Net dataset.json's ``"labels"`` as value -> name: v2's ``{"LV": 1}`` or v1's ``{"1": "LV"}``."""
    out: dict[int, str] = {}
    if len({isinstance(v, str) for v in labels.values()}) > 1:
        raise LabelMapError(f"{where}: its \"labels\" mix nnU-Net v1's {{\"1\": \"LV\"}} and v2's {{\"LV\": 1}}: use one")
    for key, value in labels.items():
        if isinstance(value, list):
            raise LabelMapError(f"{where}: label {key!r} is a region ({value}) of nnU-Net's region-based training, "
                                "not one value: give --label-map name=value for the label values")
        v1 = isinstance(value, str)
        name, raw = (value, key) if v1 else (key, value)
        try:
            idx = int(raw) if v1 or (isinstance(raw, (int, float)) and not isinstance(raw, bool) and float(raw).is_integer()) else None
        except ValueError:
            idx = None
        if idx is None:
            raise LabelMapError(f"{where}: label {key!r}: {value!r} is not a label value; nnU-Net's \"labels\" are "
                                "{\"LV\": 1} (v2) or {\"1\": \"LV\"} (v1)")
        if not 0 <= idx <= 65535:
            raise LabelMapError(f"{where}: label {name!r}: value {idx} is outside 0..65535")
        if idx in out:
            raise LabelMapError(f"{where}: label value {idx} appears twice ({out[idx]!r} and {name!r})")
        out[idx] = name
    if not out:
        raise LabelMapError(f"{where}: its \"labels\" is empty")
    return out


def structure_of(name: str) -> str | None:
    """The medseg structure a tool's label name stands for (None: none; "" for the background)."""
    from .io.seg_reader import SEGMENT_NAMES
    from .labels import STRUCTURE_NAMES

    key = " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())
    if key in BACKGROUND_NAMES:
        return ""
    key = SEGMENT_NAMES.get(key, key)
    return key if key in STRUCTURE_NAMES else None


def named_map(labels: dict[int, str], where: str) -> tuple[dict[str, int], list[str]]:
    """Value -> tool's name as (structure -> value, notes): the names matched to medseg's
    structures; one note naming those left out (none matched)."""
    from .labels import STRUCTURE_NAMES

    out: dict[str, int] = {}
    left: dict[int, str] = {}
    for idx, name in sorted(labels.items()):
        s = structure_of(name)
        if idx == 0 or s == "":
            continue
        if s is None:
            left[idx] = name
        elif s in out:
            raise LabelMapError(f"{where}: labels {out[s]} {labels[out[s]]!r} and {idx} {name!r} both name {s}: keep one")
        else:
            out[s] = idx
    if not out:
        shown = ", ".join(repr(n) for n in list(left.values())[:6]) or "only the background"
        raise LabelMapError(f"{where}: no label names a medseg structure ({shown}); medseg knows {', '.join(STRUCTURE_NAMES)}, also "
                            "spelled e.g. 'LV', 'Left Ventricle', 'LV cavity', 'Myocardium', 'LV myocardium', 'RV cavity' "
                            "(docs/io.md): rename the labels, or give --label-map lv=3,myo=2,rv=1 with your values")
    out = dict(sorted(out.items(), key=lambda kv: STRUCTURE_NAMES.index(kv[0])))  # lv, myo, rv, ... as medseg's own maps
    if not left:
        return out, []
    full = dict(out)
    for i, n in left.items():  # each as a name=value entry of its own: lower case, other characters as _
        key = re.sub(r"\W+", "_", n.lower()).strip("_") or f"label_{i}"
        full[f"{key}_{i}" if key in full else key] = i
    return out, [f"{where}: label(s) {', '.join(f'{i} {n!r}' for i, n in left.items())} name no medseg structure: left out "
                 f"(to keep them as structures of your own, give --label-map {','.join(f'{k}={v}' for k, v in full.items())})"]


def file_map(text: str) -> tuple[dict[str, Any], list[str]] | None:
    """A ``--label-map`` value that is no ``name=value`` text: (name -> value, notes) of JSON (the
    text, or a ``.json`` file: its ``label_map`` object or itself), an nnU-Net ``dataset.json``
    or an ITK-SNAP label description file (their names matched to medseg's structures, notes for
    names left out); None for anything else. LabelMapError for a bad file."""
    if is_tool_file(text):
        return itksnap_map(text)
    if not (text.startswith("{") or Path(text).suffix == ".json"):
        return None
    obj, where = read_json_map(text)
    if all(isinstance(obj.get(k), list) for k in ("images", "annotations", "categories")):  # medseg.io.annotations.is_coco
        raise LabelMapError(f"{where} is a COCO annotation file (polygons per image), not a label map: turn its polygons into "
                            "label images with examples/annotation_references.py (docs/io.md, Annotations that are no label images)")
    if isinstance(obj.get("labels"), dict) and not isinstance(obj.get("label_map"), dict):  # nnU-Net's dataset.json
        return named_map(nnunet_labels(obj["labels"], where), where)
    return (obj["label_map"] if isinstance(obj.get("label_map"), dict) else obj), []


def read_json_map(text: str) -> tuple[dict, str]:
    """A ``--label-map`` JSON object (the text, or a ``.json`` file it names) and where it came from.
    A file is read as every JSON file medseg reads back (:mod:`medseg._json_files`: UTF-8 with or
    without a byte-order mark, or UTF-16); what is wrong with it is said naming it."""
    if not text.startswith("{"):
        from ._json_files import json_file_problem

        path = Path(text)
        if not (is_file(path) or path.is_dir()):
            raise LabelMapError(f"label map file not found: {text}")
        obj, problem = json_file_problem(path, expect=None)
        if problem is not None:
            raise LabelMapError(f"label map file {text} {problem}")
        if not isinstance(obj, dict):
            raise LabelMapError(f"label map file {text} must hold an object like {{\"lv\": 1}}")
        return obj, text
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise LabelMapError(f"label map JSON is malformed: {e.msg} (line {e.lineno})") from None
    if not isinstance(obj, dict):
        raise LabelMapError("label map JSON must be an object like {\"lv\": 1}")
    return obj, "label map JSON"


def notes(spec: object) -> list[str]:
    """The notes of a ``--label-map`` value that names a tool's file (its labels left out);
    none for anything else, and none for a bad file (the command's own parse says what is wrong)."""
    if not isinstance(spec, str):
        return []
    try:
        found = file_map(spec.strip())
    except (LabelMapError, OSError):
        return []
    return found[1] if found is not None else []


def is_file(path: str | Path) -> bool:
    """``Path.is_file`` that is False, not OSError, for a name too long to be a file's."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def _text(raw: bytes, where: str) -> str:
    """``raw`` as text: UTF-8 (a byte-order mark too), else Latin-1; binary data refused."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if "\x00" in text or any(ord(c) < 32 and c not in "\t\n\r\f\v" for c in text):
        raise LabelMapError(f"{where}: is not a text file (binary data); expected an ITK-SNAP label description file")
    return text
