"""Structure names and label maps.

A label map says which integer value stands for which structure in one label file, for
example ``lv=3,myo=2,rv=1`` (ACDC) or ``lv=1,myo=2,rv=3`` (M&Ms). Datasets differ, so the map
is always data, never a constant baked into code paths. medseg's own output default is
:data:`DEFAULT_LABEL_MAP`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

import numpy as np

from .errors import LabelMapError
from .label_files import file_map, is_file


class Structure(str, Enum):
    """Cardiac structures medseg knows by name (value = the name used in files and CLIs)."""

    LV = "lv"  # LV blood pool (cavity)
    MYO = "myo"  # LV myocardium
    RV = "rv"  # RV blood pool
    LA = "la"
    RA = "ra"
    AORTA = "aorta"
    PA = "pa"

    @classmethod
    def names(cls) -> list[str]:
        return [s.value for s in cls]


STRUCTURE_NAMES: tuple[str, ...] = tuple(Structure.names())


@dataclass(frozen=True)
class LabelMap:
    """Mapping structure name -> positive integer label value (values unique)."""

    values: Mapping[str, int]

    def __post_init__(self) -> None:
        if not self.values:
            raise LabelMapError("label map is empty; give at least one structure, e.g. lv=1")
        seen: dict[int, str] = {}
        for name, v in self.values.items():
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or int(v) <= 0:
                raise LabelMapError(f"label value for {name!r} must be a positive integer, got {v!r}")
            if int(v) > 65535:  # labels are written as uint8 or uint16 (a prompts file's map too)
                raise LabelMapError(f"label value for {name!r} must be at most 65535, got {v!r}")
            if int(v) in seen:
                raise LabelMapError(f"label value {v} is used twice ({seen[int(v)]!r} and {name!r})")
            seen[int(v)] = name
        object.__setattr__(self, "values", {str(k): int(v) for k, v in self.values.items()})

    # -- construction -------------------------------------------------------------------
    @classmethod
    def parse(cls, spec: str | Mapping[str, int] | LabelMap | None) -> LabelMap:
        """Parse ``lv=3,myo=2,rv=1``, a JSON object string, a path to a JSON file (an nnU-Net
        ``dataset.json`` too), an ITK-SNAP label description file (``.txt`` / ``.label``:
        :mod:`medseg.label_files`), or a mapping.

        ``None`` gives :data:`DEFAULT_LABEL_MAP`. Unknown structure names are allowed (custom
        structures) as long as they are simple identifiers.
        """
        if spec is None:
            return DEFAULT_LABEL_MAP
        if isinstance(spec, LabelMap):
            return spec
        if isinstance(spec, Mapping):
            return cls(_check_names(dict(spec)))
        if not isinstance(spec, str | os.PathLike):  # a list of names was read as "['lv'"
            raise LabelMapError(f"a label map is 'name=value,...' text, a dict or a map file's path, got {type(spec).__name__} {spec!r:.60}")
        text = str(spec).strip()
        if not text:
            raise LabelMapError("label map is empty; expected e.g. 'lv=3,myo=2,rv=1'")
        found = file_map(text)  # JSON (text or file), an nnU-Net dataset.json, an ITK-SNAP label file
        if found is not None:
            return cls(_check_names({k: _as_int(k, v) for k, v in found[0].items()}))
        if "=" not in text and is_file(text):
            raise LabelMapError(f"label map file {text}: not a label map medseg reads (a .json map or nnU-Net dataset.json, "
                                "an ITK-SNAP label description .txt / .label), nor name=value, e.g. 'lv=3,myo=2,rv=1'")
        out: dict[str, int] = {}
        for part in text.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise LabelMapError(f"bad label map entry {part.strip()!r}; expected name=value, e.g. 'lv=3,myo=2,rv=1'")
            name, value = (p.strip() for p in part.split("=", 1))
            if name in out:
                raise LabelMapError(f"structure {name!r} appears twice in the label map")
            out[name] = _as_int(name, value)
        return cls(_check_names(out))

    # -- queries ------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.values)

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def __getitem__(self, name: str) -> int:
        try:
            return self.values[name]
        except KeyError:
            raise LabelMapError(
                f"structure {name!r} is not in the label map ({self.to_string()})"
            ) from None

    def name_of(self, value: int) -> str | None:
        for k, v in self.values.items():
            if v == int(value):
                return k
        return None

    def fit(self, labels: np.ndarray) -> tuple[dict[str, int], list[int]]:
        """How this map fits an integer label array: the structures whose value it does not hold
        ({name: value}), and the non-zero values it holds that no structure names (sorted)."""
        held = {int(v) for v in np.unique(np.asarray(labels))} - {0}
        absent = {n: v for n, v in self.values.items() if v not in held}
        return absent, sorted(v for v in held if self.name_of(v) is None)

    def to_string(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.values.items())

    def to_dict(self) -> dict[str, int]:
        return dict(self.values)

    def subset(self, names: Iterable[str]) -> LabelMap:
        return LabelMap({n: self[n] for n in names})

    def in_use(self, present: Iterable[int]) -> LabelMap:
        """This map cut to lv, myo, rv and the other structures whose values ``present`` holds:
        how medseg's default map is applied to labels that name no structures (a short-axis
        stack has no aorta to report missing; ``medseg measure`` and napari's panel)."""
        held = {int(v) for v in present}
        return self.subset([n for n, v in self.values.items() if n in ("lv", "myo", "rv") or v in held])

    def masks(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        """Boolean mask per structure of an integer label array (any shape)."""
        return {n: labels == v for n, v in self.values.items()}

    def by_name(self, labels: np.ndarray, target: LabelMap) -> np.ndarray:
        """``labels`` (in this map) in ``target``'s values, matched by structure name, when the two
        maps give the same structures other values (a DICOM SEG's segment numbers, labels written
        with ACDC's values and with medseg's); ``labels`` as they are when the maps agree or share
        no structure name (then the values are taken to be ``target``'s already)."""
        if self.values == target.values or not set(self.values) & set(target.values):
            return labels
        return self.remap(np.asarray(labels), target)

    def remap(self, labels: np.ndarray, target: LabelMap) -> np.ndarray:
        """Re-encode ``labels`` (in this map) into ``target``'s values; structures missing in
        ``target`` become background. Returns uint8 (uint16 if a value exceeds 255)."""
        dtype = np.uint8 if max(target.values.values()) < 256 else np.uint16
        out = np.zeros(labels.shape, dtype=dtype)
        for name, v in self.values.items():
            if name in target:
                out[labels == v] = target[name]
        return out


def _as_int(name: str, value: object) -> int:
    shown = repr(value) if len(repr(value)) <= 60 else f"{repr(value)[:57]}..."  # a JSON list or object can be megabytes
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise LabelMapError(f"label value for {name!r} must be an integer, got {shown}") from None
    if not f.is_integer():
        raise LabelMapError(f"label value for {name!r} must be an integer, got {shown}")
    if f > 65535:  # labels are written as uint8 or uint16
        raise LabelMapError(f"label value for {name!r} must be at most 65535, got {value!r}")
    return int(f)


def _check_names(d: dict) -> dict:
    """``d`` with its names checked, and medseg's structure names in any case read as medseg's
    (``LV=3,MYO=2,RV=1`` is lv, myo, rv: "LV" made a structure of its own, and measure said the
    map names no LV blood pool)."""
    out: dict = {}
    for name, value in d.items():
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise LabelMapError(f"bad structure name {name!r}; use names like {', '.join(STRUCTURE_NAMES)}")
        key = name.lower() if name.lower() in STRUCTURE_NAMES else name
        if key in out:
            raise LabelMapError(f"structure {key!r} appears twice in the label map ({name!r})")
        out[key] = value
    return out


DEFAULT_LABEL_MAP = LabelMap({"lv": 1, "myo": 2, "rv": 3, "la": 4, "ra": 5, "aorta": 6, "pa": 7})
#: structure -> display colour: figures, review sheets, napari's layers and DICOM SEG segments.
#: LV red, MYO yellow, RV blue, LA cyan, RA light orange, aorta dark blue, PA orange (Paul Tol's,
#: Okabe-Ito's and IBM's colour-blind-safe sets): touching structures stay >= 30 CIEDE2000 apart
#: under normal vision, protanopia, deuteranopia and tritanopia, and each reads over greyscale
#: (benchmarks/palette_cvd.py; ColorBrewer Set1 before put LV red and MYO green 10 apart for deutans).
STRUCTURE_COLOURS: dict[str, str] = {"lv": "#cc3311", "myo": "#f0e442", "rv": "#648fff", "la": "#33bbee", "ra": "#ee8866",
                                     "aorta": "#004488", "pa": "#fe6100"}


def reference_misfit(path: object, label_map: LabelMap, unknown: list[int]) -> str:
    """The one-line error for reference labels that hold none of ``label_map``'s values but
    ``unknown`` ones (another data set's values; a binary mask saved 0/255 by another tool)."""
    from ._files import shown

    hint = " (a binary mask saved as 0/255? save it with the map's values, or give its structure as =255)" if 255 in unknown else ""
    return (f"{shown(path)}: holds none of the label map's values ({label_map.to_string()}) but value(s) "
            f"{', '.join(map(str, unknown[:8]))}{hint}: is the map right?")
