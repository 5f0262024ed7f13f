"""``medseg demo``: the whole product on a generated study, with no data and no download.

Writes a synthetic short-axis cine (NIfTI) with its ground truth, segments ED and ES with the
shipped default model (one box per structure on the key slice + propagation, and zero-click),
measures both results and the truth, and prints how close they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def run_demo(out: str | Path, device: str = "cpu", seed: int = 7, log: Callable[[str], None] = print) -> dict[str, Any]:
    from ._files import write_json_atomic
    from .evaluation import dice
    from .io import write_labels
    from .measure import measure_ed_es
    from .models import load_model
    from .phantoms import cine_sax_phantom
    from .prompt_file import prompts_from_labels
    from .segment import segment_volume

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ph = cine_sax_phantom(n_frames=20, n_slices=10, shape=(192, 192), spacing=(10.0, 1.5, 1.5), seed=seed)
    ed, es = ph.info["ed_frame"], ph.info["es_frame"]
    lm = ph.label_map.subset(["lv", "myo", "rv"])
    write_labels(ph.labels, ph.image, out / "truth_labels.nii.gz", lm, provenance={"source": "medseg.phantoms.cine_sax_phantom", "seed": seed})
    _write_image(ph.image, out / "cine.nii.gz")
    log(f"study: synthetic SAX cine {ph.image.shape} (T, Z, Y, X), spacing {tuple(round(s, 2) for s in ph.image.spacing)} mm -> {out / 'cine.nii.gz'}")
    log("modes: key-slice = one box per structure on one slice (drawn from the truth), propagated through the stack; "
        "auto = zero-click, no prompts at all. Truth = the phantom's exact labels; Dice = overlap with them (1 = identical).")
    loaded = load_model("default", device=device)
    results: dict[str, Any] = {"model": loaded.provenance()}
    for mode in ("key-slice", "auto"):
        t0 = time.perf_counter()
        masks, provs = {}, {}
        for phase, t in (("ED", ed), ("ES", es)):
            vol = ph.image.with_array(ph.image.array[t : t + 1], frame_times_s=None)
            if mode == "auto":
                res = segment_volume(vol, loaded, auto=True, label_map=lm, auto_structures=("lv", "myo", "rv"))
            else:
                res = segment_volume(vol, loaded, prompts_from_labels(ph.labels[t : t + 1], lm, key_slice=True), label_map=lm)
            masks[phase], provs[phase] = res.labels[0], res.provenance
            write_labels(res.labels, vol, out / f"{mode}_{phase}.nii.gz", lm, provenance=res.provenance)
        secs = time.perf_counter() - t0
        _review_sheet(ph.image.with_array(ph.image.array[[ed, es]], frame_times_s=None), masks, provs, lm, out / f"{mode}_review.png", mode)
        rep = measure_ed_es(masks["ED"], masks["ES"], ph.image.affine, lm)
        truth = measure_ed_es(ph.labels[ed], ph.labels[es], ph.image.affine, lm)
        scores = {n: round(dice(np.stack([masks["ED"], masks["ES"]]) == v, np.stack([ph.labels[ed], ph.labels[es]]) == v), 3) for n, v in lm.values.items()}
        results[mode] = {"seconds": round(secs, 2), "dice": scores, "lvef_pct": rep["lv"]["ef_pct"], "lvef_truth_pct": truth["lv"]["ef_pct"],
                         "lv_mass_g": rep["lv_mass_g"], "lv_mass_truth_g": truth["lv_mass_g"],
                         "wall_thickening_pct": rep["wall_thickening_pct"]["global"], "wall_thickening_truth_pct": truth["wall_thickening_pct"]["global"]}
        log(f"{mode:9s}: ED+ES in {secs:.1f} s; Dice " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
            + f"; LVEF {rep['lv']['ef_pct']:.1f}% (truth {truth['lv']['ef_pct']:.1f}%), LV mass {rep['lv_mass_g']:.0f} g (truth {truth['lv_mass_g']:.0f} g)"
            + f", wall thickening {rep['wall_thickening_pct']['global']:.0f}% (truth {truth['wall_thickening_pct']['global']:.0f}%)")
    write_json_atomic(out / "demo_summary.json", results)
    log(f"outputs: {out}/ (labels + provenance sidecars, review sheets *_review.png, demo_summary.json)")
    for line in next_steps(out):
        log(line)
    return results


def next_steps(out: Path) -> list[str]:
    """What to try after the demo: segment the written cine yourself, measure a result."""
    return [f"next: segment it yourself in napari (the napari extra): python -m medseg_napari {out / 'cine.nii.gz'}",
            f"      measure a result: medseg measure --ed {out / 'key-slice_ED.nii.gz'} --es {out / 'key-slice_ES.nii.gz'} -o {out / 'report.json'}"]


def _review_sheet(vol, masks: dict[str, np.ndarray], provs: dict[str, dict], lm, path: Path, mode: str) -> None:
    """One review sheet for ED (t0) and ES (t1), from the two phases' provenance."""
    from .review import review_png

    frame = {"ED": 0, "ES": 1}
    flags = [{**f, "frame": frame[ph]} if f.get("frame") is not None else {**f, "message": f"{ph} {f.get('message', '')}"}
             for ph, p in provs.items() for f in p["review"]["flags"]]
    slices = [{**s, "frame": frame[ph]} for ph, p in provs.items() for s in p["confidence"]["slices"]]
    prov = {"review": {"flags": flags}, "confidence": {"slices": slices}}
    review_png(vol, np.stack([masks["ED"], masks["ES"]]), lm, prov, path, title=f"demo, {mode}: t0 = ED, t1 = ES")


def _write_image(vol, path: Path) -> None:
    """The phantom image as NIfTI (x, y, z, t) with the Volume's affine."""
    import nibabel as nib

    from ._files import atomic_path
    from .io.geometry import medseg_to_nifti

    arr = medseg_to_nifti(vol.array.astype(np.float32), 4)
    img = nib.Nifti1Image(arr, vol.affine)
    img.header.set_xyzt_units("mm", "sec")
    if vol.frame_times_s is not None and len(vol.frame_times_s) > 1:  # the frame interval (it read 1 s, the default)
        img.header["pixdim"][4] = float(np.mean(np.diff(vol.frame_times_s)))
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
