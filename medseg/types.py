"""Prompt and result types, and the coordinate rule.

Coordinate rule: prompts cross every public API in **voxel indices of the input as the user
sees it**, in array order: ``frame`` (t), ``slice`` (z), then ``y`` (row) and ``x`` (column).
A point is ``(y, x)``; a box is ``(y0, x0, y1, x1)`` with inclusive pixel indices. Only
:mod:`medseg.predictor` converts these to SAM's ``(x, y)`` / XYXY model coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import PromptError


def index(value: Any, what: str) -> int:
    """A frame or slice index: a whole number >= 0 (Python or numpy; 2.0 is 2, 2.5 or -1 is a
    PromptError, not a truncation)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise PromptError(f"'{what}' must be a whole number >= 0, got {value!r}")
    if (isinstance(value, (float, np.floating)) and not np.isfinite(value)) or value != int(value) or value < 0:
        raise PromptError(f"'{what}' must be a whole number >= 0, got {value!r}")
    return int(value)


def _coord(value: Any, what: str, finite: bool = True) -> float:
    if isinstance(value, (bool, np.bool_)):  # float(True) would take it as 1
        raise PromptError(f"{what} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise PromptError(f"{what} must be a number, got {value!r}") from None
    if finite and not np.isfinite(v):
        raise PromptError(f"{what} must be finite, got {value!r}")
    return v


@dataclass(frozen=True)
class Point:
    """A click at row ``y``, column ``x`` (pixel indices); ``positive`` False = background."""

    y: float
    x: float
    positive: bool = True

    def __post_init__(self) -> None:  # numpy scalars -> Python floats: a prompt is JSON as made
        object.__setattr__(self, "y", _coord(self.y, "point y"))
        object.__setattr__(self, "x", _coord(self.x, "point x"))
        object.__setattr__(self, "positive", bool(self.positive))


@dataclass(frozen=True)
class Box:
    """A box with inclusive pixel-index corners (y0, x0) top-left and (y1, x1) bottom-right."""

    y0: float
    x0: float
    y1: float
    x1: float

    def __post_init__(self) -> None:
        for name in ("y0", "x0", "y1", "x1"):
            object.__setattr__(self, name, _coord(getattr(self, name), f"box {name}", finite=False))
        vals = (self.y0, self.x0, self.y1, self.x1)
        if not all(np.isfinite(v) for v in vals):
            raise PromptError(f"box has non-finite corners {vals}")
        if self.y1 < self.y0 or self.x1 < self.x0:
            raise PromptError(f"box corners must satisfy y0<=y1 and x0<=x1, got {vals}")

    @classmethod
    def from_mask(cls, mask: np.ndarray) -> Box | None:
        """Tight box around a 2-D (Y, X) boolean mask, or None when the mask is empty."""
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise PromptError(f"Box.from_mask needs one slice's (Y, X) mask, got shape {mask.shape}")
        ys, xs = np.nonzero(mask)
        if ys.size == 0:
            return None
        return cls(float(ys.min()), float(xs.min()), float(ys.max()), float(xs.max()))

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.y0, self.x0, self.y1, self.x1)

    @property
    def height(self) -> float:
        return self.y1 - self.y0 + 1

    @property
    def width(self) -> float:
        return self.x1 - self.x0 + 1


#: most clicks one prompt may hold
MAX_POINTS = 128


def _as_box(box: Any) -> Box | None:
    """A Box, from a Box or 4 numbers (y0, x0, y1, x1); PromptError otherwise."""
    if box is None or isinstance(box, Box):
        return box
    if isinstance(box, (list, tuple, np.ndarray)) and np.shape(box) == (4,):
        return Box(*(v.item() if isinstance(v, np.generic) else v for v in box))
    raise PromptError(f"box must be a Box or 4 numbers (y0, x0, y1, x1), got {box!r:.80}")


def _as_points(points: Any) -> tuple[Point, ...]:
    """Clicks as Points, from Points or (y, x) pairs (positive); PromptError otherwise."""
    try:
        items = () if isinstance(points, (str, bytes, dict, Point)) else tuple(points)
    except TypeError:
        items = ()
    if not items and not (isinstance(points, (list, tuple, np.ndarray)) and len(points) == 0):
        raise PromptError(f"points must be a list of Point or (y, x) pairs, got {points!r:.80}")
    out = []
    for p in items:
        if isinstance(p, Point):
            out.append(p)
        elif isinstance(p, (list, tuple, np.ndarray)) and np.shape(p) == (2,):
            out.append(Point(p[0], p[1]))
        else:
            raise PromptError(f"a click must be a Point or a (y, x) pair, got {p!r:.80}")
    return tuple(out)


@dataclass(frozen=True)
class SlicePrompt:
    """Prompts for one structure on one 2-D slice.

    Attributes:
        structure: structure name (``lv``, ``myo``, ``rv``, ... or a custom name).
        frame, slice: indices into the Volume's (T, Z) axes.
        box: optional :class:`Box`, or 4 numbers ``(y0, x0, y1, x1)`` (inclusive pixel indices).
        points: clicks: :class:`Point` s, or ``(y, x)`` pairs (positive clicks).
        mask: optional (Y, X) bool mask prompt (for example the previous slice's result during
            propagation).
    """

    structure: str
    frame: int = 0
    slice: int = 0
    box: Box | None = None
    points: tuple[Point, ...] = ()
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "frame", index(self.frame, "frame"))
        object.__setattr__(self, "slice", index(self.slice, "slice"))
        if not isinstance(self.structure, str):
            raise PromptError(f"structure must be a name such as 'lv', got {self.structure!r}")
        object.__setattr__(self, "box", _as_box(self.box))
        object.__setattr__(self, "points", _as_points(self.points))
        if self.mask is not None:
            mask = np.asarray(self.mask)
            if mask.ndim != 2 or not (mask.dtype == bool or np.issubdtype(mask.dtype, np.number)):
                raise PromptError(f"mask prompt must be a (Y, X) boolean array, got {mask.dtype} of shape {mask.shape}")
            object.__setattr__(self, "mask", mask)
        if len(self.points) > MAX_POINTS:  # the decoder's attention grows with their square: 8000 asked for 2 GB
            raise PromptError(f"prompt for {self.structure!r} on slice {self.slice}, frame {self.frame} has {len(self.points)} clicks; "
                              f"at most {MAX_POINTS} (a box and a few clicks say where a structure is)")
        if self.box is None and not self.points and self.mask is None:
            raise PromptError(f"prompt for {self.structure!r} on slice {self.slice}, frame {self.frame} has no box, point or mask")
        if self.box is None and self.mask is None and not any(p.positive for p in self.points):
            raise PromptError(f"prompt for {self.structure!r} on slice {self.slice}, frame {self.frame} has only background clicks: "
                              "add a box or a click on the structure")

    def check_inside(self, shape_tyx: tuple[int, int, int, int]) -> None:
        """Raise PromptError unless frame/slice/box/points lie inside a (T, Z, Y, X) shape."""
        T, Z, Y, X = shape_tyx
        where = f"{self.structure!r} (frame {self.frame}, slice {self.slice})"
        if not 0 <= self.frame < T:
            raise PromptError(f"prompt {where}: frame {self.frame} is outside 0..{T - 1}")
        if not 0 <= self.slice < Z:
            raise PromptError(f"prompt {where}: slice {self.slice} is outside 0..{Z - 1}")
        for p in self.points:
            if not (0 <= p.y <= Y - 1 and 0 <= p.x <= X - 1):
                raise PromptError(f"prompt {where}: point (y={p.y}, x={p.x}) is outside the {Y}x{X} image")
        if self.box is not None:
            b = self.box
            if b.y1 < 0 or b.x1 < 0 or b.y0 > Y - 1 or b.x0 > X - 1:
                raise PromptError(f"prompt {where}: box {b.as_tuple()} lies outside the {Y}x{X} image")
            if b.y0 < -Y or b.x0 < -X or b.y1 > 2 * Y or b.x1 > 2 * X:  # dragged past the edge is fine; 1e308 is a typo
                raise PromptError(f"prompt {where}: box {b.as_tuple()} reaches far beyond the {Y}x{X} image")
        if self.mask is not None and self.mask.shape != (Y, X):
            raise PromptError(f"prompt {where}: mask shape {self.mask.shape} != slice shape {(Y, X)}")

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"structure": self.structure, "frame": self.frame, "slice": self.slice}
        if self.box is not None:
            d["box"] = [round(v, 3) for v in self.box.as_tuple()]
        pos = [[p.y, p.x] for p in self.points if p.positive]
        neg = [[p.y, p.x] for p in self.points if not p.positive]
        if pos:
            d["points"] = pos
        if neg:
            d["negative_points"] = neg
        if self.mask is not None:
            d["mask_pixels"] = int(np.count_nonzero(self.mask))
        return d


@dataclass
class Prediction:
    """The model's answer to one SlicePrompt.

    Attributes:
        mask: (Y, X) bool on the full slice.
        score: predicted IoU of the chosen mask, in [0, 1].
        logits: (h, w) low-resolution logits inside ``roi`` (for use as the next mask prompt).
        roi: (x0, y0, x1, y1) the square crop that was encoded, in continuous slice-pixel
            coordinates (pixel c covers [c, c + 1): :mod:`medseg.roi_ops`), as the model takes it.
        candidates: with multimask output, all (K, Y, X) masks and their (K,) scores.
    """

    mask: np.ndarray
    score: float
    logits: np.ndarray | None = None
    roi: tuple[float, float, float, float] | None = None
    candidates: tuple[np.ndarray, np.ndarray] | None = None

    def __repr__(self) -> str:  # the mask's pixel count, not the (Y, X) array
        return (f"Prediction(mask={self.mask.shape} with {int(np.count_nonzero(self.mask))} pixels, score={float(self.score):.4f}, "
                f"roi={self.roi}" + (f", candidates={len(self.candidates[1])}" if self.candidates is not None else "") + ")")


def as_json(value: Any, limit: int = 60) -> str:
    """A value read from a JSON file, shown as the file writes it (``null``, not Python's ``None``;
    a prompt action without its ``prompt`` said "got None"), cut at ``limit`` characters."""
    import json

    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def prompt_from_json(d: dict[str, Any]) -> SlicePrompt:
    """Inverse of :meth:`SlicePrompt.to_json` (mask prompts are not serialised); PromptError for
    a malformed entry."""
    if not isinstance(d, dict):
        raise PromptError(f"a prompt must be an object with a 'structure', got {as_json(d)}")
    if not isinstance(d.get("structure"), str):
        raise PromptError(f"a prompt's 'structure' must be a name, got {d.get('structure')!r}")
    for key in ("points", "negative_points"):
        if d.get(key) is not None and not isinstance(d[key], (list, tuple)):
            raise PromptError(f"'{key}' must be a list of [y, x], got {d[key]!r}")
        for pt in d.get(key) or []:
            if not isinstance(pt, (list, tuple)) or len(pt) != 2:
                raise PromptError(f"each of '{key}' must be [y, x], got {pt!r}")
    if d.get("box") is not None and (not isinstance(d["box"], (list, tuple)) or len(d["box"]) != 4):
        raise PromptError(f"'box' must be [y0, x0, y1, x1], got {d['box']!r}")
    pts = tuple(Point(y, x, True) for y, x in d.get("points") or []) + tuple(Point(y, x, False) for y, x in d.get("negative_points") or [])
    box = Box(*d["box"]) if d.get("box") is not None else None
    return SlicePrompt(d["structure"], index(d.get("frame", 0), "frame"), index(d.get("slice", 0), "slice"), box=box, points=pts)



#: the operations of a provenance log (:meth:`medseg.session.Session.replay`), and the values of
#: a ``propagate`` action's ``through`` and ``direction``
ACTIONS = ("prompt", "propagate", "auto", "lock", "clear", "undo", "redo", "edit", "review")
THROUGH = ("z", "t", "zt")
DIRECTIONS = ("both", "up", "down")


def check_action(a: Any, shape: tuple[int, int, int, int], structures: Any, top: int = 255) -> None:
    """Raise PromptError naming what is wrong unless ``a`` is a well-formed provenance action for
    a (T, Z, Y, X) image of ``shape`` whose session knows ``structures`` (names) and holds labels
    up to ``top``: an object with a known ``op``, and its fields of the right types, finite
    numbers, indices inside the image, structure names known (what a hand-edited or truncated
    log gets wrong; the checks that need the model or the labels come when it runs)."""
    if not isinstance(a, dict):
        raise PromptError(f"an action must be an object with an 'op', got {as_json(a)}")
    op = a.get("op")
    if not isinstance(op, str) or op not in ACTIONS:
        raise PromptError(f"cannot replay unknown action {op!r} (one of {', '.join(ACTIONS)})")
    known = list(structures)
    if op == "prompt":
        prompt = prompt_from_json(a.get("prompt"))
        prompt.check_inside(shape)
        _check_name(op, prompt.structure, known)
        _check_flag(a, "multimask", False)
    elif op == "auto":
        _check_auto(a, shape[0], known)
        _check_region(a.get("us_region"), shape[2:])
    elif op == "edit":
        from .edits import check_edit

        check_edit(a, shape, top)
    elif op in ("propagate", "lock", "clear", "review"):
        _check_target(a, op, shape, known)


def _check_name(op: str, name: Any, known: list[str], optional: bool = False) -> None:
    if name is None and optional:
        return
    if name is None:
        raise PromptError(f"{op!r} needs a 'structure' (one of this session's: {', '.join(known)})")
    if not isinstance(name, str) or name not in known:
        raise PromptError(f"{op!r} names structure {name!r}, not one of this session's ({', '.join(known)})")


def _check_flag(a: dict[str, Any], key: str, default: bool | None) -> None:
    value = a.get(key, default)
    if not isinstance(value, bool):
        raise PromptError(f"{a['op']!r} needs '{key}' true or false, got {value!r}")


def _check_where(a: dict[str, Any], key: str, n: int, optional: bool) -> None:
    """``a[key]`` (a frame or slice) is an index below ``n`` (or None when ``optional``)."""
    if a.get(key) is None and optional:
        return
    if key not in a:
        raise PromptError(f"{a['op']!r} needs a '{key}'")
    if index(a[key], key) >= n:
        raise PromptError(f"{a['op']!r} {key} {a[key]!r} lies outside the image's {n} {key}(s)")


def _check_target(a: dict[str, Any], op: str, shape: tuple[int, int, int, int], known: list[str]) -> None:
    """``propagate``, ``lock``, ``clear``, ``review``: a structure, and a frame and slice."""
    if op != "review":
        _check_name(op, a.get("structure"), known)
    elif a.get("structure") is not None and not isinstance(a["structure"], str):  # a record only: any structure flagged
        raise PromptError(f"'review' structure must be a name, got {a['structure']!r}")
    if op == "lock":
        _check_flag(a, "locked", None)
        return
    for key, n in (("frame", shape[0]), ("slice", shape[1])):
        _check_where(a, key, n, optional=op != "propagate")
    if op == "propagate" and (a.get("through", "z") not in THROUGH or a.get("direction", "both") not in DIRECTIONS):
        raise PromptError(f"'propagate' through must be one of {', '.join(THROUGH)} and direction one of {', '.join(DIRECTIONS)}, "
                          f"got {a.get('through')!r}, {a.get('direction')!r}")
    if op == "review" and not isinstance(a.get("note", ""), str):
        raise PromptError(f"'review' note must be text, got {a['note']!r}")


def _check_region(region: Any, shape_yx: tuple[int, ...]) -> None:
    """An ``auto`` action's recorded ``us_region`` (None: none): four whole pixel indices
    [row0, col0, row1, col1], inclusive, inside the image; PromptError naming it otherwise."""
    if region is None:
        return
    h, w = int(shape_yx[0]), int(shape_yx[1])
    whole = isinstance(region, list) and len(region) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in region)
    if not (whole and 0 <= region[0] <= region[2] < h and 0 <= region[1] <= region[3] < w):
        raise PromptError(f"'auto' us_region must be [row0, col0, row1, col1], whole pixel indices inside the {h}x{w} image, got {region!r}")


def _check_auto(a: dict[str, Any], n_frames: int, known: list[str]) -> None:
    names, frames = a.get("structures"), a.get("frames")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) and n in known for n in names)):
        raise PromptError(f"'auto' structures must be a list of this session's ({', '.join(known)}), got {names!r}")
    if frames is not None and not isinstance(frames, list):
        raise PromptError(f"'auto' frames must be a list of frame indices, got {frames!r}")
    for t in frames or []:
        if index(t, "frame") >= n_frames:
            raise PromptError(f"'auto' frame {t!r} lies outside the image's {n_frames} frame(s)")
