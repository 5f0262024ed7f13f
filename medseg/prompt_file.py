"""The prompts file (``medseg segment --prompts FILE``) and prompts derived from labels.

Format (JSON; coordinates are voxel indices of the input as the user sees it: ``frame`` t,
``slice`` z, points ``[y, x]`` = [row, column], boxes ``[y0, x0, y1, x1]`` inclusive)::

    {
      "format": "medseg-prompts/1",
      "label_map": {"lv": 1, "myo": 2, "rv": 3},          # optional: output label values
      "prompts": [
        {"structure": "lv",  "frame": 0, "slice": 5, "box": [60, 70, 110, 122]},
        {"structure": "rv",  "frame": 0, "slice": 5, "points": [[90, 40]], "negative_points": [[90, 75]]},
        {"structure": "myo", "frame": 0, "slice": 5, "box": [52, 62, 118, 130], "propagate": true}
      ]
    }

For ``medseg batch`` one file can hold several cases: ``{"cases": {"case01": {"prompts": [...]}}}``
(the case name is the input's file name without extension, or the DICOM folder's name).
``"propagate": true`` on a prompt propagates that structure from its slice (as ``--propagate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LabelMapError, PromptError
from .labels import LabelMap
from .types import Box, SlicePrompt

#: The prompts file format this version reads ("format" may be left out).
FORMAT = "medseg-prompts/1"


@dataclass
class PromptSet:
    prompts: list[SlicePrompt]
    propagate: set[int] = field(default_factory=set)  # indices of prompts to propagate
    label_map: LabelMap | None = None


def parse_prompts(obj: dict[str, Any], source: str = "prompts") -> PromptSet:
    """Validate and convert one ``{"prompts": [...]}`` object."""
    from .types import prompt_from_json

    if not isinstance(obj, dict) or not isinstance(obj.get("prompts"), list):
        raise PromptError(f"{source}: expected an object with a 'prompts' list")
    if obj.get("format", FORMAT) != FORMAT:
        raise PromptError(f"{source}: format {obj['format']!r} is not one this medseg reads ({FORMAT!r})")
    out, prop = [], set()
    for i, p in enumerate(obj["prompts"]):
        if not isinstance(p, dict) or "structure" not in p:
            raise PromptError(f"{source}: prompt #{i} needs a 'structure'")
        _check_magnitudes(p, f"{source}: prompt #{i}")
        try:
            sp = prompt_from_json(p)
        except (TypeError, ValueError, KeyError) as e:
            if isinstance(e, PromptError):
                raise PromptError(f"{source}: prompt #{i}: {e}") from None
            raise PromptError(f"{source}: prompt #{i} is malformed ({type(e).__name__}: {e})") from None
        if sp.box is not None and (sp.box.height < 2 or sp.box.width < 2):  # the model found nothing in it: "is the heart in this image?"
            raise PromptError(f"{source}: prompt #{i}: the box {_shown(p.get('box'))} is {sp.box.height:g} x {sp.box.width:g} pixels: "
                              "draw it around the structure ([y0, x0, y1, x1], inclusive corners), or give a click as 'points'")
        out.append(sp)
        if not isinstance(p.get("propagate", False), bool):
            raise PromptError(f"{source}: prompt #{i}: 'propagate' must be true or false, got {p['propagate']!r}")
        if p.get("propagate"):
            prop.add(i)
    if not out:
        raise PromptError(f"{source}: the prompts list is empty")
    lm = LabelMap.parse(obj["label_map"]) if obj.get("label_map") else None
    return PromptSet(out, prop, lm)


#: a frame/slice index or pixel coordinate this large is no index of any image (numpy cannot take
#: Python integers of 64 bits and more: ``"frame": 1e20`` failed as "ufunc 'isfinite' not supported")
_HUGE = 2**63


def _check_magnitudes(p: dict[str, Any], where: str) -> None:
    """PromptError for a frame or slice, or a point/box coordinate, too large for any image, and
    for points that are no list."""
    for key in ("frame", "slice"):
        v = p.get(key, 0)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and _HUGE <= abs(v) < float("inf"):  # inf: types.index says so
            raise PromptError(f"{where}: '{key}' must be a {key} index inside the image (a whole number >= 0), got {_shown(v)}")
    for key in ("points", "negative_points"):
        if p.get(key) is not None and not isinstance(p[key], (list, tuple)):
            raise PromptError(f"{where}: '{key}' must be a list of [y, x] points, got {_shown(p[key])}")
    box = p.get("box") if isinstance(p.get("box"), (list, tuple)) else ()
    coords = [*box, *(c for key in ("points", "negative_points") for pt in p.get(key) or () if isinstance(pt, (list, tuple)) for c in pt)]
    for c in coords:
        if isinstance(c, int) and not isinstance(c, bool) and abs(c) >= _HUGE:
            raise PromptError(f"{where}: a point or box coordinate is {_shown(c)}, beyond any image (rows and columns are pixel indices inside it)")


def _shown(v: Any) -> str:
    """``repr(v)`` cut short: a 400-digit number as such."""
    if isinstance(v, int) and len(str(v)) > 24:
        return f"a {len(str(abs(v)))}-digit {'negative ' if v < 0 else ''}number"
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def load_prompts_file(path: str | Path, case: str | None = None) -> PromptSet:
    """Read a prompts file; with ``case``, take that case's entry of a multi-case file."""
    path = Path(path)
    return _entry(_read_json(path), path, case)


def check_prompts_file(path: str | Path) -> None:
    """Check a whole prompts file (every case of a multi-case file) once, before a batch
    starts: the PromptError :func:`load_prompts_file` would give a case, not one per case."""
    path = Path(path)
    obj = _read_json(path)
    cases = obj.get("cases") if isinstance(obj, dict) else None
    if isinstance(cases, dict) and not cases:
        raise PromptError(f"{path}: 'cases' is empty")
    for case in cases if isinstance(cases, dict) else [None]:
        _entry(obj, path, case)


def _read_json(path: Path) -> Any:
    from ._json_files import NOT_READ, json_file_problem

    if path.is_dir():
        raise PromptError(f"{path}: a folder, not a prompts file (JSON; see examples/prompts_example.json)")
    if not path.is_file():
        raise PromptError(f"prompts file not found: {path}")
    if path.suffix.lower() in (".csv", ".tsv", ".xlsx", ".xls"):
        raise PromptError(f"{path}: a prompts file is JSON, not a table (see examples/prompts_example.json)")
    # UTF-8, also with a byte-order mark (Windows Notepad), or UTF-16 (PowerShell's Out-File); a NaN or
    # Infinity is refused by the check of its field ("'frame' must be a whole number >= 0, got inf")
    obj, problem = json_file_problem(path, expect=None, allow_nan=True)
    if problem is not None:
        raise PromptError(f"{path}: {problem.replace(NOT_READ, 'is not a prompts file').removeprefix('is ')}")
    return obj


def _entry(obj: Any, path: Path, case: str | None) -> PromptSet:
    """The prompts of ``obj`` (a prompts file's JSON), or of its entry for ``case``."""
    if isinstance(obj, dict) and "cases" in obj:
        if not isinstance(obj["cases"], dict):
            raise PromptError(f"{path}: 'cases' must be an object of case id -> {{\"prompts\": [...]}}, got {type(obj['cases']).__name__}")
        if case is None:
            raise PromptError(f"{path} holds several cases (for medseg batch, which takes each case's entry); "
                              "for one study give a file with its own 'prompts' list")
        key = _case_key(obj["cases"], case)
        if key is None:
            names = sorted(map(str, obj["cases"]))
            some = ", ".join(repr(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            raise PromptError(f"{path}: no prompts for case {case!r} (the file's cases: {some}; a case id is the input's "
                              "name without its ending, e.g. patient001 for patient001.nii.gz)")
        entry = obj["cases"][key]
        if not isinstance(entry, dict):
            raise PromptError(f"{path}: case {case!r} is not an object with a 'prompts' list")
        obj = {**entry, "label_map": entry.get("label_map", obj.get("label_map")), "format": entry.get("format", obj.get("format", FORMAT))}
    return parse_prompts(obj, str(path))


def _case_key(cases: dict, case: str) -> str | None:
    """The key of ``cases`` that names ``case``: itself, else one equal to it in Unicode's composed
    form (NFC): a folder named on a Mac (``Müller``, u + combining diaeresis, NFD) and the id typed
    in an editor (``ü``, NFC) look alike and were no match."""
    import unicodedata

    if case in cases:
        return case
    nfc = unicodedata.normalize("NFC", case)
    return next((k for k in cases if isinstance(k, str) and unicodedata.normalize("NFC", k) == nfc), None)


def prompts_from_labels(labels: np.ndarray, label_map: LabelMap, key_slice: bool = False, frames: list[int] | None = None) -> PromptSet:
    """Box prompts simulated from a reference label map (T, Z, Y, X).

    ``key_slice=False``: one tight box per structure per slice where it is present.
    ``key_slice=True``: one box per structure per frame, on the middle slice of the
    structure's slice range (those prompts are marked for propagation).
    A structure of ``label_map`` with no voxel in ``labels`` gets no prompt (``evaluate``
    scores the structures present); LabelMapError when no structure has one. ``--prompts-from``
    (:func:`study_prompts`) is stricter: every structure its map names must be there.
    """
    if labels.ndim == 3:
        labels = labels[None]
    absent = [f"{n}={v}" for n, v in label_map.values.items() if not (labels == v).any()]
    if len(absent) == len(label_map.values):
        raise LabelMapError(f"no voxel of the reference labels has any value of the label map ({', '.join(absent)}); values present: {sorted(int(v) for v in np.unique(labels) if v)}")
    prompts, prop = [], set()
    for t in frames if frames is not None else range(labels.shape[0]):
        for name, v in label_map.values.items():
            m = labels[t] == v
            zs = [z for z in range(m.shape[0]) if m[z].any()]
            if not zs:
                continue
            if key_slice:
                zs = [zs[len(zs) // 2]]
            for z in zs:
                if key_slice:
                    prop.add(len(prompts))
                prompts.append(SlicePrompt(name, t, z, box=Box.from_mask(m[z])))
    return PromptSet(prompts, prop, label_map)


def study_prompts(vol, prompts: str | Path | None, prompts_from: str | Path | None, label_map: LabelMap | None, key_slice: bool, case: str | None = None) -> PromptSet | None:
    """The prompts of one study: from a prompts file (``case`` picks a multi-case entry), or
    simulated from reference labels on the image's grid (``label_map`` required, except for a
    DICOM SEG or 3D Slicer .seg.nrrd, which name their segments, and labels medseg wrote, whose
    sidecar JSON names their map: :func:`reference_label_map`), or None."""
    if prompts:
        return load_prompts_file(prompts, case=case)
    if prompts_from:
        from .io import check_same_grid, read_label_volume

        ref = read_label_volume(prompts_from)
        if vol.meta.get("spacing_from") and not ref.spacing_known and ref.n_slices == 1:  # PNG labels of a PNG given --pixel-spacing
            from .io.volume import with_pixel_spacing

            ref = with_pixel_spacing(ref, vol.spacing[1:], str(prompts_from))
        if label_map is None and ref.meta.get("label_map"):
            label_map = LabelMap.parse(ref.meta["label_map"])  # a DICOM SEG's segments
        if label_map is None:
            label_map = reference_label_map(prompts_from, ref.array)
        from .io.seg_reader import in_label_map, onto_image_stack, seg_phase
        from .measure.report import check_reference_lv

        ref = onto_image_stack(vol, in_label_map(ref, label_map))  # a SEG's segments by name, whatever --label-map's values
        t = seg_phase(vol, ref)  # a SEG of one phase of this cine: prompts on that frame only
        check_same_grid(vol.phase(t) if t is not None else vol, ref, f"reference labels {Path(prompts_from).name}")
        if t is not None:
            arr = np.zeros(vol.shape, ref.array.dtype)
            arr[t] = ref.array[0]
        else:
            arr = ref.array if ref.n_frames == vol.n_frames else np.broadcast_to(ref.array, vol.shape)
        _check_reference_values(ref.array, label_map, Path(prompts_from).name)
        check_reference_lv(np.asarray(arr), label_map, vol.affine, f"reference labels {Path(prompts_from).name}")  # the RV prompted as the LV
        return prompts_from_labels(np.asarray(arr), label_map, key_slice=key_slice)
    return None


def one_frame_reference_note(vol, prompts_from: str | Path | None, prompt_set: PromptSet | None) -> str | None:
    """The note for one-frame reference labels that prompted every frame of a cine alike (they
    stand for every frame): an M&Ms-2 user's 4-chamber ED labels on its 25-frame cine prompted
    the ES frames with the ED boxes, where a prompt on the ED frame and propagation was meant.
    None when that is not what happened. ``medseg segment`` prints it; ``medseg batch`` puts it
    in the case's summary row and says it once for the run."""
    from .io import read_label_volume

    if prompts_from is None or prompt_set is None or vol.n_frames < 2 or len({p.frame for p in prompt_set.prompts}) < 2:
        return None
    if read_label_volume(prompts_from).n_frames != 1:
        return None
    return (f"the reference labels {Path(prompts_from).name} are one frame and the image has {vol.n_frames}: their boxes prompt every "
            "frame alike; for labels of one phase (e.g. ED) prompt that frame with a prompts file (\"frame\": N) and propagate --through t")


def reference_label_map(path: str | Path, ref: np.ndarray) -> LabelMap:
    """The label map of reference labels given without ``--label-map``: the one their medseg
    sidecar JSON names (``seg.nii.gz`` -> ``seg.json``, as ``measure``, ``evaluate`` and ``adapt``
    read it), cut to the structures whose values ``ref`` holds (medseg's full default map names
    la, ra, aorta and pa, which a short-axis stack lacks: not prompted, and no error). PromptError
    when the labels name no map; LabelMapError for a broken sidecar, or one naming no value held."""
    from .io.writers import own_label_map

    own = own_label_map(path)  # a sidecar that is not valid JSON, or whose map is invalid: an error naming it
    if own is None:
        raise PromptError(f"--prompts-from needs --label-map (which value is which structure in the reference): {Path(path).name} "
                          "names none (it is no DICOM SEG, 3D Slicer .seg.nrrd or label file with a medseg sidecar JSON)")
    lmap, side = own
    held = {int(v) for v in np.unique(ref)} - {0}
    names = [n for n, v in lmap.values.items() if v in held]
    if not names:
        raise LabelMapError(f"the reference labels {Path(path).name} hold none of the values their sidecar {side.name} names "
                            f"({lmap.to_string()}); they hold {', '.join(map(str, sorted(held))) or 'no label at all'}")
    return lmap.subset(names)


def _check_reference_values(ref: np.ndarray, label_map: LabelMap, name: str) -> None:
    """Refuse a label map that names a value the reference does not hold (a typo, another data
    set's convention, or a structure this reference lacks: nothing to prompt it from), saying
    which of the reference's values no structure of the map names. A map naming fewer
    structures than the reference holds is fine: those are segmented."""
    missing, unnamed = label_map.fit(ref)
    if not missing:
        return
    held = sorted({int(v) for v in np.unique(ref)} - {0})  # for the message
    names = ", ".join(f"{n}={v}" for n, v in missing.items())
    hint = (f", of which {', '.join(map(str, unnamed))} no structure of the map names: is the map right?" if unnamed
            else f": leave {'it' if len(missing) == 1 else 'them'} out of the map")
    raise LabelMapError(f"--label-map names {names}, but the reference labels {name} hold no such value; they hold "
                        f"{', '.join(map(str, held)) or 'no label at all'}{hint}")
