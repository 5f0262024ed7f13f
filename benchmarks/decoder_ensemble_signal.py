"""Decoder-ensemble disagreement as a confidence signal, on CAMUS (docs/confidence.md, stop 24).

    python benchmarks/decoder_ensemble_signal.py ../shared/data OUT.json OTHER1.safetensors [OTHER2 ...]

OTHER files must share the default's image encoder (the defaults of steps 3 and 4: `git show
fc73158:checkpoints/medseg_default.safetensors`, `git show 904ea1f:...`); their decoders decode
the default's cached embedding of each written mask's ROI, prompted with the mask's tight box
and with the 2 jittered boxes of medseg.confidence, and their Dice with the written mask (on the
ROI's low-resolution grid) is the signal. Box prompts on the 50 CAMUS validation patients (200
images). Prints the Spearman correlation of every signal with the real Dice per structure, then
the volume flag of benchmarks/confidence_signals.py (out of fold by patient) with the shipped
signals and with the ensemble's added. Writes the raw per-image records to OUT.json.
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import confidence_signals  # noqa: E402
from make_pairs import camus  # noqa: E402

from medseg.evaluation import dice  # noqa: E402


def features(session, others: dict, name: str, t: int, z: int) -> dict | None:
    from medseg.confidence import _jittered_boxes, slice_signals
    from medseg.types import Box

    sig = slice_signals(session, name, t, z)
    if sig is None:
        return None
    iou, agree, area = sig
    mask = session.labels[t, z] == session.structure(name).value
    res = session.results.get((name, t, z))
    roi = np.asarray(res.roi) if res is not None else None
    boxes = [Box.from_mask(mask)] + _jittered_boxes(mask, 2, seed=zlib.crc32(f"{name}/{t}/{z}".encode()))
    out = {"iou": iou, "agree2": agree, "area": area}
    for tag, pr in others.items():
        pr.set_image(session._norm[t, z], key=("ensemble", t, z))
        pr.embedding = session.predictor.embedding  # same encoder: reuse the default's cached embedding
        m, ref = pr.predict_boxes(boxes, structure=name, roi=roi, reference=mask)
        d = [dice(a, ref) for a in m]
        out[f"{tag}_tight"], out[f"{tag}_j2"] = d[0], float(np.mean(d[1:]))
    return out


def main(root: Path, out: Path, others: list[str]) -> None:
    from scipy.stats import spearmanr

    from medseg.io import read_label_volume, read_volume
    from medseg.labels import LabelMap
    from medseg.models import load_model
    from medseg.predictor import SlicePredictor
    from medseg.prompt_file import prompts_from_labels
    from medseg.segment import _run_prompts
    from medseg.session import Session

    model = load_model("default")
    preds = {f"other{i}": SlicePredictor(load_model(p)) for i, p in enumerate(others)}
    for p in preds.values():
        enc, ref = p.loaded.model.image_encoder.state_dict(), model.model.image_encoder.state_dict()
        if any(not np.array_equal(enc[k].cpu().numpy(), ref[k].cpu().numpy()) for k in ref):
            raise SystemExit("an OTHER checkpoint has another image encoder than the default: its decoder cannot reuse the embedding")
    lm = LabelMap.parse("lv=1,myo=2,la=3")
    slices, vols = [], []
    for row in camus(root):
        vol, ref = read_volume(row["image"]), np.asarray(read_label_volume(row["label"]).array)
        s = Session(vol, model, lm)
        _run_prompts(s, prompts_from_labels(ref, lm, key_slice=False), False, "z", None)
        case = f"{row['case']}/{row.get('phase', '')}/{Path(str(row['image'])).name}"
        for name, v in lm.values.items():
            first = len(slices)
            for t, z in s.iter_structure_slices(name):
                f = features(s, preds, name, t, z)
                if f is not None:
                    slices.append({**f, "case": case, "mode": "box", "structure": name, "dice": dice(s.labels[t, z] == v, ref[t, z] == v)})
            if (s.labels == v).any() or (ref == v).any():
                vols.append({"case": case, "mode": "box", "structure": name, "dice": dice(s.labels == v, ref == v), "slice_ids": list(range(first, len(slices)))})
    out.write_text(json.dumps({"slices": slices, "vols": vols}))
    y = np.array([s["dice"] for s in slices])
    keys = ["iou", "agree2"] + [k for k in slices[0] if k.startswith("other")]
    for st in lm.names:
        sel = np.array([s["structure"] == st for s in slices])
        print(st, {k: round(float(spearmanr(np.array([s[k] for s in slices])[sel], y[sel]).statistic), 2) for k in keys})
    confidence_signals.COMBOS = [("iou", "agree2")] + [("iou", "agree2", f"{t}_tight") for t in preds] + [("iou", "agree2", *(f"{t}_tight" for t in preds))]
    confidence_signals.analyse({"slices": slices, "vols": vols})


if __name__ == "__main__":
    from _usage import check_args

    check_args(__doc__, 3)
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])
