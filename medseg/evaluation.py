"""``medseg evaluate``: simulated prompts on labelled pairs, Dice / HD95 (MONAI), clinical errors.

Prompt simulation from the reference labels:
  box        one tight box per structure per slice;
  point      one click per structure per slice at its interior maximum-distance point;
  key-slice  one box per structure on the middle slice of its extent, then propagation;
  auto       none (zero-click).

Labels made before (a ``medseg batch`` OUT_DIR, labels corrected in napari, another reader's)
are scored the same way without running the model: a ``prediction`` column in PAIRS.csv, or
:func:`medseg.pairs.with_predictions` for a folder; their sidecars' review flags give the flags' catch rate.
Structures and cases a batch handed over for manual review (``--min-confidence``) are counted
(``summary.handed_over``), not scored.

Clinical errors (``summary.lvef_mae`` etc., ``summary.agreement`` for Bland-Altman): short-axis
ED + ES stacks of one case (a ``phase`` column, or ``_ED`` / ``_ES`` in the names) by
:func:`medseg.measure.measure_ed_es`; apical echo studies whose views are one image each
(``<study>_4CH_ED`` ...) by the method of disks (:func:`medseg.measure.echo.measure_echo`);
other one-view ED + ES pairs (M&Ms-2's long-axis ``001_LA_ED``) by single-plane disks, in
``summary.long_axis_lvef_mae`` apart from them; in :mod:`medseg.evaluation_clinical`.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LabelMapError, MedsegError
from .evaluation_clinical import clinical_errors, nanmean
from .evaluation_keep import kept_for_clinical
from .evaluation_report import flagged_structures, handed_over_summary, review_stats
from .labels import LabelMap, reference_misfit
from .pairs import Pair, pairs_from_folder, read_pairs, reference_frame, with_predictions  # noqa: F401  (public here too)
from .prompt_file import PromptSet, prompts_from_labels
from .types import Point, SlicePrompt

PROMPT_MODES = ("box", "point", "key-slice", "auto")
#: the provenance keys that name the model a label file was made with
MODEL_KEYS = ("model_id", "model_sha256", "adapter_id", "adapter_sha256")


def point_prompts(labels: np.ndarray, label_map: LabelMap) -> PromptSet:
    """One click per structure per slice at the interior point farthest from the boundary."""
    from scipy import ndimage

    if labels.ndim == 3:
        labels = labels[None]
    prompts = []
    for t in range(labels.shape[0]):
        for name, v in label_map.values.items():
            for z in range(labels.shape[1]):
                m = labels[t, z] == v
                if not m.any():
                    continue
                dt = ndimage.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
                y, x = np.unravel_index(int(np.argmax(dt)), m.shape)
                prompts.append(SlicePrompt(name, t, z, points=(Point(float(y), float(x), True),)))
    return PromptSet(prompts, set(), label_map)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks of one shape (1 when both are empty); plain numpy, for the
    many small per-slice comparisons where MONAI's tensor round trip costs more than the sum.
    0/1 arrays are taken as masks; label maps are refused (compare one structure:
    ``dice(pred == v, ref == v)``), as are masks of different shapes (MedsegError)."""
    a, b = _mask(a, "a"), _mask(b, "b")
    if a.shape != b.shape:
        raise MedsegError(f"dice needs two masks of one shape, got {a.shape} and {b.shape}")
    s = int(a.sum()) + int(b.sum())
    return float(2 * (a & b).sum() / s) if s else 1.0


def _mask(m: np.ndarray, name: str) -> np.ndarray:
    m = np.asarray(m)
    if m.dtype == bool:
        return m
    if not np.issubdtype(m.dtype, np.number) or not np.isin(m, (0, 1)).all():
        raise MedsegError(f"dice: {name} must be a boolean mask (or 0/1), got {m.dtype} values beyond 0 and 1: "
                          "for label maps compare one structure, dice(pred == v, ref == v)")
    return m.astype(bool)


def dice_hd95(pred: np.ndarray, ref: np.ndarray, spacing_zyx: tuple[float, float, float]) -> tuple[float, float]:
    """3-D Dice and HD95 (mm) of two boolean (Z, Y, X) masks via MONAI, ``spacing_zyx`` in mm
    (``Volume.spacing``). Both empty: (1.0, 0.0); one empty: HD95 NaN. Masks as for :func:`dice`."""
    pred, ref = _mask(pred, "pred"), _mask(ref, "ref")
    if pred.shape != ref.shape or pred.ndim != 3:
        raise MedsegError(f"dice_hd95 needs two (Z, Y, X) masks of one shape, got {pred.shape} and {ref.shape}")
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance

    if not ref.any() and not pred.any():
        return 1.0, 0.0
    p = torch.from_numpy(pred[None, None].astype(np.float32))
    r = torch.from_numpy(ref[None, None].astype(np.float32))
    dsc = float(compute_dice(p, r, include_background=True, ignore_empty=False)[0, 0])
    if not pred.any() or not ref.any():
        return dsc, math.nan
    with warnings.catch_warnings():  # MONAI 1.5 warns about an argument it passes itself
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
        hd = float(compute_hausdorff_distance(p, r, include_background=True, percentile=95, spacing=list(spacing_zyx))[0, 0])
    return dsc, hd


def evaluate_pairs(pairs: list[Pair], label_map: LabelMap | str, prompt: str | None, model, progress: Callable[[int, int], None] | None = None,
                   workers: int = 1, load: tuple[str, str | None, str] | None = None, predicted_map: LabelMap | str | None = None) -> dict[str, Any]:
    """Run the model on every pair with simulated prompts, or score the pairs' ``prediction``
    label files (every pair has one; ``model`` and ``prompt`` are then None); return the
    RESULT.json dict.

    ``predicted_map``: the values of prediction files that do not name their structures (a
    medseg sidecar or a DICOM SEG does); default ``label_map``. ``workers`` > 1 scores the pairs
    in that many spawned processes (``cores // workers`` torch threads each), which load the
    model themselves from ``load`` = (model, adapter, device), as ``medseg batch --workers``
    does; the result is the same, in the pairs' order.

    Structures a batch handed over for manual review (``--min-confidence``: left out of the
    labels, listed in the sidecar's ``handed_over``) and pairs handed over entirely
    (``Pair.handed_over``, :func:`with_predictions`) are not scored as segmentations: not in
    the Dice means, the clinical errors or the review statistics, but counted in
    ``summary.handed_over``. Pairs whose case the batch failed (``Pair.failed``) are not scored
    either, and are listed in ``summary.failed_in_batch`` with the batch's reason; those with no
    labels in the folder at all (``Pair.absent``, ``--skip-missing``) in ``summary.not_in_predicted``."""
    if isinstance(label_map, str):  # a notebook's "lv=3,myo=2,rv=1" (an AttributeError deep in the scoring)
        label_map = LabelMap.parse(label_map)
    if isinstance(predicted_map, str):
        predicted_map = LabelMap.parse(predicted_map)
    failed = [p for p in pairs if p.prediction is None and p.failed is not None]
    entire = [p for p in pairs if p.prediction is None and p.handed_over is not None]
    pairs = [p for p in pairs if not (p.prediction is None and (p.handed_over is not None or p.failed is not None))]
    if (entire or failed) and not pairs:
        raise MedsegError(f"none of the {len(entire) + len(failed)} cases has labels ({len(entire)} handed over for manual review, "
                          f"{len(failed)} failed in the batch): nothing to score")
    predicted = any(p.prediction is not None for p in pairs)
    if predicted and not all(p.prediction is not None for p in pairs):
        raise MedsegError("give every pair a prediction, or none")
    if not predicted and prompt not in PROMPT_MODES:
        raise MedsegError(f"--prompt must be one of {', '.join(PROMPT_MODES)}, got {prompt!r}")
    if workers > 1 and len(pairs) > 1:
        if load is None and not predicted:
            raise MedsegError("evaluating with workers needs the model's spec (model, adapter, device) for them to load it")
        cases = _in_processes(pairs, label_map, prompt, load, workers, progress, predicted_map)
    else:
        cases = []
        for i, pair in enumerate(pairs):
            cases.append(_evaluate_pair(pair, label_map, prompt, model, predicted_map))
            if progress:
                progress(i + 1, len(pairs))
    if not any(c["_present"] for c in cases):
        raise LabelMapError(f"no structure of the label map ({label_map.to_string()}) occurs in any reference label file")
    for c in cases:
        del c["_present"]
    return _summarise(cases, label_map, prompt, model, entire, failed)


def _evaluate_pair(pair: Pair, label_map: LabelMap, prompt: str | None, model, predicted_map: LabelMap | None = None) -> dict[str, Any]:
    """One pair's row (with its prediction and reference labels, packed, and its image's grid for
    the clinical errors: :func:`medseg.evaluation_keep.kept_for_clinical`)."""
    from .io import check_same_grid, read_label_volume, read_volume
    from .io.seg_reader import in_label_map, onto_image_stack, seg_phase
    from .measure.report import check_reference_lv

    cine = read_volume(pair.image, series=pair.series, modality=pair.modality)
    ref = in_label_map(read_label_volume(pair.label), label_map)
    cine = _given_spacing(cine, pair, ref)  # a PNG's or a video's labels made with segment / batch --pixel-spacing: scored in mm
    ref = _on_given_spacing(onto_image_stack(cine, ref), cine, pair.label)
    t, ref = reference_frame(pair, cine, ref, seg_phase(cine, ref))  # a SEG of one phase of a cine, a frame column: that frame is the case
    vol = cine.phase(t) if t is not None else cine
    check_same_grid(vol, ref, f"labels of case {pair.case}")
    ref_arr = np.asarray(ref.array if ref.n_frames == vol.n_frames else np.broadcast_to(ref.array, vol.shape))
    present = [n for n, v in label_map.values.items() if (ref_arr == v).any()]
    unknown = label_map.fit(ref_arr)[1]
    if unknown and not present:  # a 0/255 mask, another data set's values: it was scored as a case with nothing in it
        raise LabelMapError(reference_misfit(pair.label, label_map, unknown))
    check_reference_lv(ref_arr, label_map, vol.affine, f"reference labels of case {pair.case}")  # another data set's map: the RV scored as the LV
    t0 = time.perf_counter()
    if pair.prediction is not None:
        pred, named, prov, odd = _read_prediction(pair, cine, t, label_map, predicted_map)
        ref_odd = _voxels_of(ref_arr, unknown)
        only = {who: [f"value {v} ({n} voxels)" for v, n in mine.items() if v not in theirs]
                for who, mine, theirs in (("predicted", odd, ref_odd), ("reference", ref_odd, odd))}
        if any(only.values()):  # a value one label set holds and the label map names not (a reader's extra class): not scored, said
            not_in_map = {k: v for k, v in only.items() if v}
        review = _review_of(prov) if "review" in prov else None  # labels of another tool carry none
        missing = [n for n in present if n not in named]
        left_out = set(prov.get("handed_over") or [])  # --min-confidence: not segmented, handed over for manual review
        handed = [n for n in present if n in named and n in left_out]
        present = [n for n in present if n in named]
        scored = [n for n in present if n not in left_out]
    else:
        result = _predict(vol, ref_arr, label_map, prompt, model, present)
        pred = result.labels if result is not None else np.zeros(vol.shape, np.uint8)
        missing, review = [], _review_of(result.provenance if result is not None else None)
        handed, scored = [], present
        if unknown:  # a reader's extra class (scar): scored as background, said (the --predicted path says it too)
            not_in_map = {"reference": [f"value {v} ({n} voxels)" for v, n in _voxels_of(ref_arr, unknown).items()]}
    row = _score_case(pair, pred, ref_arr, label_map, vol, scored)
    if vol.meta.get("spacing_given_by"):  # the image records none: the spacing its labels were segmented at
        row.update(pixel_spacing_mm=[float(v) for v in vol.spacing[1:]], spacing_from=vol.meta["spacing_given_by"])
    if pair.frame is not None:
        row["frame"] = pair.frame
    drawn = {n: int(np.count_nonzero(pred == v)) for n, v in label_map.values.items() if not (ref_arr == v).any() and (pred == v).any()}
    if drawn:  # a structure the reference has none of (a single ventricle's "RV", a slice without it): no Dice, so said here
        row["not_in_reference"] = drawn
    if pair.prediction is not None:
        from ._files import sha256_path
        from .edits import edited_by_hand

        row["prediction"], row["prediction_sha256"] = str(pair.prediction), sha256_path(pair.prediction)
        row["_model"] = tuple(prov.get(k) for k in MODEL_KEYS) if prov.get("model_sha256") else None
        if missing:
            row["not_predicted"] = missing  # structures the prediction does not name: not scored
        if handed:
            row["handed_over"] = handed  # left out below --min-confidence: not scored
        if edited_by_hand(prov):  # corrected in napari after the model: not the model's labels
            row["edited_by_hand"] = True
        if any(only.values()):
            row["not_in_label_map"] = not_in_map
    elif unknown:
        row["not_in_label_map"] = not_in_map
    row["seconds"] = round(time.perf_counter() - t0, 3)
    if review is not None:
        row["review"] = review
    row.update(kept_for_clinical(pred, ref_arr, vol))  # the labels packed, the image's grid: not its voxels
    row["_present"] = present
    return row


def _read_prediction(pair: Pair, cine, frame: int | None, label_map: LabelMap, predicted_map: LabelMap | None):
    """``pair.prediction`` on the grid of ``cine`` (its ``frame`` when the reference is a SEG of
    that phase) in ``label_map``'s values -> (array, the structures it names, the provenance of
    its medseg sidecar or {}, {value: voxels} of the values its map does not name). Its own label map (medseg sidecar, DICOM SEG) says which structures
    it holds; a file that names none is read with ``predicted_map`` (default ``label_map``)."""
    from .io import check_same_grid, read_label_volume, read_sidecar
    from .io.seg_reader import onto_image_stack
    from .io.writers import own_label_map

    lab = _on_given_spacing(onto_image_stack(cine, read_label_volume(pair.prediction)), cine, pair.prediction)
    own = own_label_map(pair.prediction, strict=predicted_map is None, flag="--predicted-label-map")  # a broken sidecar: the map given
    pmap = own[0] if own else (predicted_map or label_map)
    named = [n for n in label_map.names if n in pmap.values]
    if not named:
        raise LabelMapError(f"the predicted labels of case {pair.case} ({Path(pair.prediction).name}) hold {pmap.to_string()}: "
                            f"none of the structures evaluated ({label_map.to_string()})")
    if frame is not None:
        if lab.n_frames == cine.n_frames:  # labels of the whole cine: the reference's frame
            lab = lab.phase(frame)
        cine = cine.phase(frame)
    check_same_grid(cine, lab, f"predicted labels of case {pair.case}")
    missing, unknown = pmap.fit(lab.array)
    absent = [f"{n}={pmap[n]}" for n in named if n in missing]
    if unknown and absent:  # a map that does not fit (a typo, another tool's values): not a structure the model missed
        raise LabelMapError(f"the predicted labels of case {pair.case} ({Path(pair.prediction).name}) hold no {', '.join(absent)} "
                            f"but value(s) {', '.join(map(str, unknown[:8]))} that their label map ({pmap.to_string()}) does not name: "
                            "is --predicted-label-map right?")
    arr = pmap.remap(np.asarray(lab.array), label_map)
    arr = arr if lab.n_frames == cine.n_frames else np.broadcast_to(arr, cine.shape)
    prov = (read_sidecar(pair.prediction) or {}).get("provenance")
    return arr, named, (prov if isinstance(prov, dict) else {}), _voxels_of(lab.array, unknown)


def _given_spacing(cine, pair: Pair, ref):
    """An image without pixel spacing (a PNG, a video; one slice) as its labels were segmented
    from it: with the pixel spacing ``medseg segment`` / ``batch`` was given for the predicted
    labels or the reference (their sidecars: ``--pixel-spacing``), so Dice's HD95 is in mm and
    the clinical errors have volumes. Refused when the two record different ones, or the
    prediction's differs from the reference's own spacing; any other image as it is."""
    if cine.spacing_known or cine.n_slices != 1:
        return cine
    from .errors import GeometryError
    from .io.geometry import recorded_pixel_spacing
    from .io.volume import with_pixel_spacing

    pred = recorded_pixel_spacing(pair.prediction) if pair.prediction is not None else None
    given = recorded_pixel_spacing(pair.label)
    ref_mm = given or ((float(ref.spacing[1]), float(ref.spacing[2])) if ref.spacing_known else None)
    if pred is not None and ref_mm is not None and not np.allclose(pred, ref_mm, rtol=1e-4, atol=1e-9):
        how = "segmented with --pixel-spacing" if given else "recorded in the file"
        raise GeometryError(f"case {pair.case}: the predicted labels {Path(pair.prediction).name} were segmented with --pixel-spacing "
                            f"{pred[0]:g},{pred[1]:g} mm (their sidecar) but the reference {Path(pair.label).name} is at "
                            f"{ref_mm[0]:g},{ref_mm[1]:g} mm ({how}); the image {Path(pair.image).name} records none: segment it "
                            f"again with --pixel-spacing {ref_mm[0]:g},{ref_mm[1]:g}")
    if pred is None and given is None:
        return cine
    spaced = with_pixel_spacing(cine, pred or given, str(pair.image))
    by = f"{'predicted' if pred is not None else 'reference'} labels' sidecar (segment --pixel-spacing)"
    return spaced.with_array(spaced.array, meta={**spaced.meta, "spacing_given_by": by})


def _on_given_spacing(labels, cine, path):
    """Labels without pixel spacing (a PNG mask, labels of a PNG written as NIfTI) of an image
    given one by :func:`_given_spacing`: given the same (their pixels are the image's)."""
    from .io.volume import GIVEN_SPACING, with_pixel_spacing

    if cine.meta.get("spacing_from") != GIVEN_SPACING or labels.spacing_known or labels.n_slices != 1:
        return labels
    return with_pixel_spacing(labels, cine.spacing[1:], str(path))


def _voxels_of(arr: np.ndarray, values: list[int]) -> dict[int, int]:
    """{value: its voxel count in ``arr``} of ``values`` (those a label map does not name)."""
    return {int(v): int(np.count_nonzero(np.asarray(arr) == v)) for v in values}


def _evaluate_in_worker(pair: Pair, label_map: LabelMap, prompt: str | None, load: tuple[str, str | None, str] | None,
                        predicted_map: LabelMap | None) -> dict[str, Any]:
    from .batch.run import _cached_model

    model = _cached_model(*load) if pair.prediction is None and load is not None else None
    return _evaluate_pair(pair, label_map, prompt, model, predicted_map)


def _in_processes(pairs: list[Pair], label_map: LabelMap, prompt: str | None, load: tuple[str, str | None, str] | None, workers: int,
                  progress: Callable[[int, int], None] | None, predicted_map: LabelMap | None = None) -> list[dict[str, Any]]:
    """The pairs' rows from ``workers`` spawned processes, in the pairs' order; the first error
    (as it comes) stops the rest and is raised here."""
    import concurrent.futures as cf
    import multiprocessing as mp
    from concurrent.futures.process import BrokenProcessPool

    from ._batch_exec import _init_worker, cpu_budget

    rows: list[dict[str, Any] | None] = [None] * len(pairs)
    workers = min(workers, len(pairs))
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(max(1, cpu_budget() // workers),)) as pool:
        futures = {pool.submit(_evaluate_in_worker, pair, label_map, prompt, load, predicted_map): i for i, pair in enumerate(pairs)}
        try:
            for done, fut in enumerate(cf.as_completed(futures), 1):
                rows[futures[fut]] = fut.result()
                if progress:
                    progress(done, len(pairs))
        except BrokenProcessPool:
            raise MedsegError("a worker process died (killed, out of memory, or a crash); run again with fewer --workers") from None
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return rows  # type: ignore[return-value]


def _predict(vol, ref, label_map: LabelMap, prompt: str, model, present: list[str]):
    """The SegmentResult of one case (None when nothing can be prompted)."""
    from .segment import segment_volume

    lm = label_map.subset(present) if present else label_map
    if prompt == "auto":
        structs = tuple(s for s in label_map.names if s in model.config.structures)
        return segment_volume(vol, model, auto=True, label_map=label_map, auto_structures=structs)
    if not present:
        return None
    if prompt == "point":
        ps = point_prompts(ref, lm)
    else:
        ps = prompts_from_labels(ref, lm, key_slice=(prompt == "key-slice"))
    return segment_volume(vol, model, ps, label_map=label_map)


def _review_of(prov: dict[str, Any] | None) -> dict[str, Any]:
    """needs_review, the structures the review flags flag (:func:`flagged_structures`), their
    codes, the codes of flags that name no structure (``case_flags``: they flag the structures
    :func:`flagged_structures` gives them) and the volume confidences, from a segmentation's provenance (its sidecar's
    ``provenance``). Flags about structures it handed over (``handed_over``: left out below
    ``--min-confidence``, not segmented) are not flags of the segmentation: left out, and
    needs_review is then that of the flags that remain."""
    if prov is None or "review" not in prov:
        return {"needs_review": False, "structures": [], "codes": [], "case_flags": []}
    from .review import REVIEW_CODES, needs_review

    left = set(prov.get("handed_over") or [])
    flags = [f for f in prov["review"].get("flags") or [] if f.get("structure") not in left]
    conf = (prov.get("confidence") or {}).get("volume", {})
    names = conf or (prov.get("label_map") if isinstance(prov.get("label_map"), dict) else {})
    return {"needs_review": needs_review(flags) if left else bool(prov["review"].get("needs_review")),
            "structures": flagged_structures(flags, [n for n in names if n not in left]),
            "codes": sorted({f["code"] for f in flags if f.get("code")}),
            "case_flags": sorted({f["code"] for f in flags if not f.get("structure") and f.get("code") in REVIEW_CODES}), "confidence": conf}


def _score_case(pair: Pair, pred: np.ndarray, ref: np.ndarray, label_map: LabelMap, vol, present: list[str]) -> dict[str, Any]:
    dice, hd = {}, {}
    for name in present:
        v = label_map[name]
        ds, hs = [], []
        for t in range(ref.shape[0]):
            if not (ref[t] == v).any():
                continue
            d, h = dice_hd95(pred[t] == v, ref[t] == v, vol.spacing)
            ds.append(d)
            hs.append(h)
        dice[name] = float(np.mean(ds))
        hd[name] = float(np.nanmean(hs)) if not all(math.isnan(x) for x in hs) else math.nan
    # images without a physical pixel size (PNG, video) give HD95 in pixels, under its own key
    unit = "hd95_mm" if getattr(vol, "spacing_known", True) else "hd95_px"
    from ._files import sha256_path

    return {"case": pair.case, "phase": pair.phase, "image": str(pair.image), "label": str(pair.label), "image_sha256": sha256_path(pair.image),
            "label_sha256": sha256_path(pair.label), "dice": dice, unit: hd}


def _summarise(cases: list[dict], label_map: LabelMap, prompt: str, model, entire: list[Pair] = (), failed: list[Pair] = ()) -> dict[str, Any]:
    names = [n for n in label_map.names if any(n in c["dice"] for c in cases)]
    summary: dict[str, Any] = {
        "dice": {n: float(np.mean([c["dice"][n] for c in cases if n in c["dice"]])) for n in names},
        "n_cases": len(cases),
    }
    for unit in ("hd95_mm", "hd95_px"):
        if any(unit in c for c in cases):
            summary[unit] = {n: nanmean([c[unit][n] for c in cases if n in c.get(unit, {})]) for n in names}
    summary["dice_mean"] = float(np.mean(list(summary["dice"].values()))) if names else math.nan
    summary.update(clinical_errors(cases, label_map))
    reviewed = [c for c in cases if "review" in c]  # labels of another tool carry no review
    if reviewed:
        summary["review"] = review_stats(reviewed)
    handed = handed_over_summary(cases, entire, label_map)
    if handed:
        summary["handed_over"] = handed
    for key, rows in (("failed_in_batch", [p for p in failed if not p.absent]), ("not_in_predicted", [p for p in failed if p.absent])):
        if rows:  # not_in_predicted: --skip-missing, no labels in the folder
            summary[key] = {"n_cases": len(rows), "cases": [{"case": p.case, "phase": p.phase, "reason": p.failed} for p in rows]}
    if model is not None:
        settings = {"prompt": prompt, "label_map": label_map.to_dict(), **model.provenance()}
    else:
        settings = {"prompt": None, "predicted": True, "label_map": label_map.to_dict(), "models": _prediction_models(cases)}
    from ._runinfo import run_environment, utc_timestamp

    settings.update(run_environment(getattr(model, "device", None)), created=utc_timestamp())
    for c in cases:
        for k in ("_pred", "_ref", "_vol", "_model"):
            c.pop(k, None)
    return {"summary": summary, "cases": cases, "settings": settings}


def _prediction_models(cases: list[dict]) -> list[dict[str, Any]]:
    """The models and adapters the scored label files name in their sidecars (one entry per
    distinct combination, with its number of cases; files without a medseg sidecar: none)."""
    seen: dict[tuple, int] = {}
    for c in cases:
        if c.get("_model"):
            seen[c["_model"]] = seen.get(c["_model"], 0) + 1
    return [{**dict(zip(MODEL_KEYS, k)), "n_cases": n} for k, n in seen.items()]
