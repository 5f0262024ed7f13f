"""On-policy rounds of the decoder fine-tune on a lent GPU (frozen image encoder).

    python benchmarks/gpu_onpolicy.py PACK INIT OUT_DIR [--rounds 2] [--budget 120,90] [--workers 15]

The GPU version of benchmarks/finetune_onpolicy_cpu.py (read its docstring first), in rounds:
each round records the inference decodes of the current model on training cases, fine-tunes the
prompt encoder + mask decoder on them (plus `medseg train`'s own prompt simulation, drawn fresh
every step instead of a fixed replay file), and scores the result on the validation volumes.
Round 2 records the decodes of round 1's model: its own mistakes, as at inference (DAgger).

Everything comes from the pack (``medseg train --pack-only``), because the raw data do not fit
in what a lent GPU is sent: the ACDC volumes are rebuilt from the pack's slices (every slice of
every ED/ES frame is in it, on the 256 canvas, with the pack's pixel size), CAMUS and
Sunnybrook/HVSMR are the pack's 2-D training slices. So the inputs differ from the raw files by
the pack's resampling and JPEG coding (docs/training.md measured that at <= 0.002 Dice), and the
validation scores printed here are a guide for choosing a round, not the reported numbers:
`medseg evaluate` on the raw files is.

* Record: `segment_volume` (the code of `medseg evaluate`, without the confidence decodes) runs
  on CPU worker processes (the machine's cores; one decode is launch-bound on a GPU and no
  faster there). Splits as finetune_onpolicy_cpu.py: ACDC "record" patients (first 12 of each
  group; key slice + propagation, zero-click, a box on every slice), CAMUS training slices and
  Sunnybrook + HVSMR training slices (box). The workers return the prompt tensors, the ROI and
  the slice; the GPU re-crops and re-encodes them (the encoder is frozen, so this is the
  embedding the decoder saw) and crops the expert mask as the target.
* Train: sources and weights of finetune_onpolicy_cpu.py (``SOURCES``; "replay" = live
  `sample_batch` of the training split + 300 phantoms), lowres_loss, box jitter on recorded
  boxes, AdamW, warm-up, cosine to 5 %, batch ``BATCH``, at most ``MAX_SAMPLES`` per round.
* Validate: the 20 ACDC validation patients rebuilt from the pack, key slice and zero-click,
  3-D Dice per structure and LVEF MAE (voxel counts; ED = the frame with the larger expert LV).

Writes OUT_DIR/round{r}.safetensors and OUT_DIR/onpolicy.json (per round: records, samples,
seconds, validation) as each round ends, so a run stopped by a time limit keeps what it made.

The shipped default (step 5, docs/training.md) is round 2 of `ROUNDS=3 BUDGET=110,90,70 bash
benchmarks/gpu_onpolicy.sh` on one H200 (2026-12-04): 25,691 decodes recorded per round,
264,320 + 238,336 samples; the third round was cut off by the call's limit.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from finetune_onpolicy_cpu import PACK_MAP_VALUES, SOURCES, decoder_step  # noqa: E402

LR, BATCH, WARMUP, SEED, MAX_SAMPLES, PHANTOMS = 5e-5, 128, 50, 0, 400_000, 300
CARDIAC = "lv=1,myo=2,rv=3"  # the pack's default map, restricted to what ACDC labels
ACDC_DZ_MM = 10.0  # the pack keeps no slice spacing; it changes volumes, not Dice or EF


# -- cases from the pack -------------------------------------------------------------------
def build_cases(pack: str, path: Path) -> dict[str, int]:
    """Write every case the rounds use to one uncompressed .npz (workers memory-map it):
    ``img_{k}``/``lab_{k}`` (Z, S, S) uint8 and ``px_{k}`` per case, and ``groups`` naming
    which cases belong to which job source."""
    from medseg.training.pack import STRUCT_BITS, load_pack

    d = load_pack(pack)
    names = d["meta"]["volumes"]
    vol_of = d["volume"]
    arrays: dict[str, np.ndarray] = {}
    groups: dict[str, list[int]] = {"acdc_record": [], "acdc_val": [], "camus_train": [], "pack_train": []}
    present_bits: list[int] = []
    k = 0
    by_vol: dict[int, list[int]] = {}
    for i in range(len(vol_of)):
        by_vol.setdefault(int(vol_of[i]), []).append(i)
    for v, rows in sorted(by_vol.items()):
        name = names[v]
        ds = name.split("/")[0]
        rows = sorted(rows, key=lambda i: int(d["z"][i]))
        if ds == "acdc":
            pid = int(name.split("patient")[1][:3])
            pos = (pid - 1) % 20
            group = "acdc_record" if pos < 12 else "acdc_val" if pos >= 16 else None
            if group is None:
                continue
            zs = [int(d["z"][i]) for i in rows]
            if zs != list(range(zs[0], zs[0] + len(zs))):
                raise SystemExit(f"{name}: the pack lacks slices of this stack ({zs})")
            arrays[f"img_{k}"], arrays[f"lab_{k}"] = d["images"][rows], d["labels"][rows]
            arrays[f"px_{k}"] = np.float32(d["px_mm"][rows[0]])
            arrays[f"name_{k}"] = np.frombuffer(name.encode(), np.uint8)
            groups[group].append(k)
            present_bits.append(0)
            k += 1
            continue
        group = "camus_train" if ds == "camus" else "pack_train" if ds in ("sunnybrook", "hvsmr") else None
        for i in rows:
            if group is None or d["split"][i] != 0:
                continue
            lab = d["labels"][i]
            bits = 0
            for s, val in PACK_MAP_VALUES.items():
                if d["labelled"][i] & STRUCT_BITS[s] and (lab == val).any():
                    bits |= 1 << (val - 1)
            if not bits:
                continue
            arrays[f"img_{k}"], arrays[f"lab_{k}"] = d["images"][i][None], lab[None]
            arrays[f"px_{k}"] = np.float32(d["px_mm"][i] or 1.0)
            arrays[f"name_{k}"] = np.frombuffer(f"{name}/{int(d['z'][i])}".encode(), np.uint8)
            groups[group].append(k)
            present_bits.append(bits)
            k += 1
    arrays["present_bits"] = np.array(present_bits, np.int32)
    for g, ks in groups.items():
        arrays[f"group_{g}"] = np.array(ks, np.int64)
    np.savez(path, **arrays)
    return {g: len(ks) for g, ks in groups.items()}


# -- CPU workers: record decodes / score validation ----------------------------------------
_W: dict = {}


def _worker_init(cases_path: str) -> None:
    torch.set_num_threads(1)
    _W["cases"] = np.load(cases_path, mmap_mode="r")
    _W["models"] = {}


def _model(path: str):
    from medseg.models.registry import load_model

    if path not in _W["models"]:
        _W["models"].clear()
        _W["models"][path] = load_model(path, device="cpu")
    return _W["models"][path]


def _case(k: int):
    from medseg.io.volume import Volume

    c = _W["cases"]
    img, lab, px = np.asarray(c[f"img_{k}"]), np.asarray(c[f"lab_{k}"]), float(c[f"px_{k}"])
    dz = ACDC_DZ_MM if img.shape[0] > 1 else 1.0
    vol = Volume(img[None].astype(np.float32), np.diag([px, px, dz, 1.0]), modality="MR")
    return vol, lab[None]


def _segment(vol, ref, lmap, mode: str, loaded):
    from medseg.prompt_file import prompts_from_labels
    from medseg.segment import segment_volume

    if mode == "auto":
        structs = tuple(s for s in lmap.names if s in loaded.model.config.structures)
        return segment_volume(vol, loaded, auto=True, label_map=lmap, auto_structures=structs, confidence=False)
    return segment_volume(vol, loaded, prompts_from_labels(ref, lmap, key_slice=(mode == "key-slice")), label_map=lmap, confidence=False)


def _lmap_for(k: int, source: str):
    from medseg.labels import LabelMap

    if source.startswith("acdc"):
        return LabelMap.parse(CARDIAC)
    bits = int(_W["cases"]["present_bits"][k])
    return LabelMap({s: v for s, v in PACK_MAP_VALUES.items() if bits & (1 << (v - 1))})


def record_job(model_path: str, source: str, mode: str, ks: list[int]) -> dict[str, np.ndarray]:
    """Every single-prompt decode of ``segment_volume`` on cases ``ks``: the slice it was made
    on (normalised, as the predictor saw it), its ROI and prompt tensors, the expert labels."""
    import medseg.predictor as P
    import medseg.session as S

    loaded = _model(model_path)
    rec: dict[str, list] = {k: [] for k in ("slice", "roi", "box", "has_box", "structure", "mask", "has_mask", "value")}
    slices: list[np.ndarray] = []
    refs: list[np.ndarray] = []
    seen: dict[tuple, int] = {}
    state: dict = {}
    orig_set, orig_decode = S.Session._set_slice, P.SlicePredictor._decode

    def set_slice(self, t, z):
        state["tz"] = (t, z)
        return orig_set(self, t, z)

    def decode(self, roi, box, points, structure, mask_prompt, mask_logits, multimask):
        lm = state["lm"]
        if points or multimask or structure is None or structure not in lm.values:
            return orig_decode(self, roi, box, points, structure, mask_prompt, mask_logits, multimask)
        model, cap = self.model, {}
        ep = model.embed_prompts
        model.embed_prompts = lambda batch, **kw: (cap.__setitem__("kw", kw), ep(batch, **kw))[1]
        try:
            pred = orig_decode(self, roi, box, points, structure, mask_prompt, mask_logits, multimask)
        finally:
            del model.embed_prompts
        t, z = state["tz"]
        key = (state["k"], t, z)
        if key not in seen:
            seen[key] = len(slices)
            slices.append(self._image[0, 0].cpu().numpy().astype(np.float16))
            refs.append(state["ref"][t, z].astype(np.uint8))
        kw, mi = cap["kw"], cap["kw"].get("mask_inputs")
        low = 4 * model.config.embed_size
        rec["slice"].append(seen[key])
        rec["roi"].append(np.asarray(roi, np.float32))
        rec["box"].append(kw["boxes"][0].cpu().numpy().astype(np.float32))
        rec["has_box"].append(bool(kw["has_box"][0]))
        rec["structure"].append(int(kw["structure"][0]))
        rec["mask"].append(mi[0, 0].cpu().numpy().astype(np.float16) if mi is not None else np.zeros((low, low), np.float16))
        rec["has_mask"].append(mi is not None)
        rec["value"].append(lm.values[structure])
        return pred

    S.Session._set_slice, P.SlicePredictor._decode = set_slice, decode
    try:
        for k in ks:
            vol, ref = _case(k)
            lm = _lmap_for(k, source)
            state.update(k=k, ref=ref, lm=lm)
            _segment(vol, ref, lm, mode, loaded)
    finally:
        S.Session._set_slice, P.SlicePredictor._decode = orig_set, orig_decode
    if not slices:
        return {}
    out = {k: np.stack(v) for k, v in rec.items()}
    out["slices"], out["refs"] = np.stack(slices), np.stack(refs)
    return out


def score_job(model_path: str, mode: str, ks: list[int]) -> list[dict]:
    """3-D Dice per structure and LV voxel counts of validation cases ``ks``."""
    from medseg.evaluation import dice as dice_of
    from medseg.labels import LabelMap

    loaded = _model(model_path)
    lm = LabelMap.parse(CARDIAC)
    rows = []
    for k in ks:
        vol, ref = _case(k)
        pred = _segment(vol, ref, lm, mode, loaded).labels
        dice = {s: dice_of(pred == v, ref == v) for s, v in lm.values.items()}
        name = bytes(np.asarray(_W["cases"][f"name_{k}"])).decode()
        rows.append({"name": name, "dice": dice, "lv_pred": int((pred == 1).sum()), "lv_ref": int((ref == 1).sum())})
    return rows


def summarise(rows: list[dict]) -> dict:
    dice = {s: round(float(np.mean([r["dice"][s] for r in rows])), 4) for s in ("lv", "myo", "rv")}
    pats: dict[str, list[dict]] = {}
    for r in rows:
        pats.setdefault(r["name"].split("_frame")[0], []).append(r)
    err = []
    for frames in pats.values():
        if len(frames) != 2:
            continue
        ed, es = sorted(frames, key=lambda r: -r["lv_ref"])
        ef = lambda a, b: 100.0 * (a - b) / max(a, 1)  # noqa: E731
        err.append(abs(ef(ed["lv_pred"], es["lv_pred"]) - ef(ed["lv_ref"], es["lv_ref"])))
    return {"dice": dice, "mean": round(float(np.mean(list(dice.values()))), 4), "lvef_mae": round(float(np.mean(err)), 2), "n": len(rows)}


def _chunks(ks, n):
    return [list(ks[i:i + n]) for i in range(0, len(ks), n)]


def record_all(pool, model_path: str, groups: dict[str, np.ndarray], log) -> dict[str, dict]:
    jobs = [("acdc_key", "acdc_record", "key-slice", 1), ("acdc_auto", "acdc_record", "auto", 1), ("acdc_box", "acdc_record", "box", 1),
            ("camus_box", "camus_train", "box", 40), ("pack_box", "pack_train", "box", 20)]
    futs = []
    for source, group, mode, chunk in jobs:
        for ks in _chunks(groups[group], chunk):
            futs.append((source, pool.submit(record_job, model_path, source, mode, ks)))
    out: dict[str, list] = {}
    for source, f in futs:
        r = f.result()
        if r:
            out.setdefault(source, []).append(r)
    merged = {}
    for source, parts in out.items():
        offs = np.cumsum([0] + [len(p["slices"]) for p in parts])
        m = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        m["slice"] = np.concatenate([p["slice"] + o for p, o in zip(parts, offs[:-1])])
        merged[source] = m
        log(f"  {source}: {len(m['slice'])} decodes on {len(m['slices'])} slices")
    return merged


def score_all(pool, model_path: str, ks, modes=("key-slice", "auto")) -> dict:
    futs = {m: [pool.submit(score_job, model_path, m, c) for c in _chunks(ks, 1)] for m in modes}
    return {m: summarise([r for f in fs for r in f.result()]) for m, fs in futs.items()}


# -- GPU training --------------------------------------------------------------------------
def to_device(recs: dict[str, dict], dev) -> dict[str, dict]:
    out = {}
    for source, m in recs.items():
        out[source] = {
            "slices": torch.from_numpy(m["slices"]).to(dev)[:, None],  # (N, 1, S, S) float16
            "refs": torch.from_numpy(m["refs"]).to(dev),
            **{k: torch.from_numpy(np.ascontiguousarray(m[k])).to(dev) for k in ("slice", "roi", "box", "has_box", "structure", "mask", "has_mask", "value")},
        }
    return out


def train_round(init: str, out: str, recs: dict[str, dict], bank, budget_s: float, round_i: int, log) -> dict:
    from finetune_decoder_cpu import frozen_encoder_model

    from medseg.models.checkpoints import read_checkpoint_header, save_checkpoint
    from medseg.roi_ops import crop_rois
    from medseg.training.prompts import N_POINTS, jitter_boxes, sample_batch

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(SEED + round_i)
    g = torch.Generator(device=dev)
    g.manual_seed(SEED + 100 + round_i)
    rng = np.random.default_rng(SEED + round_i)
    names = [s for s in SOURCES if s == "replay" or s in recs]
    w = np.array([SOURCES[s] for s in names])
    w = w / w.sum()
    model, params, opt = frozen_encoder_model(init, LR)
    model = model.to(dev)
    size, b = model.config.img_size, BATCH
    bank_w = bank.weights(0)
    t0, step = time.perf_counter(), 0
    while (elapsed := time.perf_counter() - t0) < budget_s and step * b < MAX_SAMPLES:
        frac = min(1.0, max(elapsed / budget_s, step * b / MAX_SAMPLES))
        for pg in opt.param_groups:
            pg["lr"] = LR * min(1.0, (step + 1) / WARMUP) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        src = names[rng.choice(len(names), p=w)]
        with torch.no_grad():
            if src == "replay":
                idx = torch.multinomial(bank_w, b, replacement=True, generator=g)
                bt = sample_batch(bank, idx, size, model.config.embed_size, g=g)
                emb = model.encode(bt.images)
                pts, lbl, boxes, has_box, struct = bt.points, bt.point_labels.long(), bt.boxes, bt.has_box, bt.structure
                mask_in, has_mask, multimask, target = bt.mask_inputs, bt.has_mask, bt.multimask, bt.target
            else:
                d = recs[src]
                j = torch.randint(len(d["slice"]), (b,), device=dev, generator=g)
                si, rois = d["slice"][j], d["roi"][j]
                every = torch.arange(b, device=dev)  # ROI i from slice i
                emb = model.encode(crop_rois(d["slices"][si].float(), rois, size, batch_index=every))
                ref = (d["refs"][si] == d["value"][j].view(b, 1, 1).to(d["refs"].dtype)).float()[:, None]
                target = (crop_rois(ref, rois, size, batch_index=every) > 0.5).float()
                has_mask, boxes = d["has_mask"][j], d["box"][j]
                jittered = jitter_boxes(boxes, size).clamp(0, size)
                boxes = torch.where((~has_mask | (torch.rand(b, device=dev) < 0.5))[:, None], jittered, boxes)
                pts, lbl = torch.zeros(b, N_POINTS, 2, device=dev), torch.full((b, N_POINTS), -1, device=dev)
                has_box, struct = d["has_box"][j], d["structure"][j]
                mask_in, multimask = d["mask"][j].float()[:, None], torch.zeros(b, dtype=torch.bool, device=dev)
        prompts = {"points": pts, "point_labels": lbl, "boxes": boxes, "has_box": has_box, "structure": struct, "mask_inputs": mask_in, "has_mask": has_mask}
        loss = decoder_step(model, opt, params, emb, prompts, target, multimask)
        step += 1
        if step % 500 == 0:
            log(f"  step {step}  {elapsed:.0f} s  {step * b} samples  loss {float(loss):.4f}")
    _, base_info = read_checkpoint_header(init)
    info = {**base_info, f"gpu_onpolicy_round{round_i}": {
        "what": "prompt encoder + mask decoder on recorded inference decodes of training cases (rebuilt from the pack) + live training prompt simulation, frozen image encoder, GPU",
        "steps": step, "samples": step * b, "elapsed_s": round(time.perf_counter() - t0), "lr": LR, "batch": b, "sources": SOURCES,
        "records": {s: int(len(recs[s]["slice"])) for s in recs}, "seed": SEED, "script": "benchmarks/gpu_onpolicy.py"}}
    save_checkpoint(model.cpu(), out, info, half=True)
    return info[f"gpu_onpolicy_round{round_i}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pack")
    ap.add_argument("init")
    ap.add_argument("out")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--budget", default="120,90", help="training seconds per round (comma list)")
    ap.add_argument("--workers", type=int, default=15)
    ap.add_argument("--limit", type=int, default=0, help="cases per group (a quick check on the CPU)")
    ap.add_argument("--no-baseline", action="store_true")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    budgets = [float(x) for x in a.budget.split(",")]
    t_start = time.perf_counter()
    report: dict = {"settings": {"rounds": a.rounds, "budget": budgets, "workers": a.workers, "lr": LR, "batch": BATCH, "max_samples": MAX_SAMPLES}, "rounds": []}

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", flush=True)

    def save_report() -> None:
        tmp = out / "onpolicy.json.tmp"
        tmp.write_text(json.dumps(report, indent=1))
        tmp.replace(out / "onpolicy.json")

    cases = Path("/tmp/medseg_onpolicy_cases.npz")
    counts = build_cases(a.pack, cases)
    log(f"cases from the pack: {counts}")
    z = np.load(cases, mmap_mode="r")
    groups = {g: z[f"group_{g}"][: a.limit or None] for g in counts}
    from medseg.training.data import bank_from_pack

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    with ProcessPoolExecutor(a.workers, mp_context=get_context("spawn"), initializer=_worker_init, initargs=(str(cases),)) as pool:
        base = None if a.no_baseline else [pool.submit(score_job, a.init, m, c) for m in ("key-slice", "auto") for c in _chunks(groups["acdc_val"], 1)]
        bank = bank_from_pack(a.pack, PHANTOMS, SEED, dev)
        log(f"replay bank: {len(bank.split)} slices on {dev}")
        model_path = a.init
        for r in range(1, a.rounds + 1):
            log(f"round {r}: recording with {Path(model_path).name}")
            recs = record_all(pool, model_path, groups, log)
            if base is not None:
                n = len(groups["acdc_val"])
                report["baseline"] = {"key-slice": summarise([x for f in base[:n] for x in f.result()]), "auto": summarise([x for f in base[n:] for x in f.result()])}
                log(f"baseline (pack-rebuilt validation): {json.dumps(report['baseline'])}")
                save_report()
                base = None
            log(f"round {r}: training {budgets[min(r - 1, len(budgets) - 1)]:.0f} s")
            path = str(out / f"round{r}.safetensors")
            info = train_round(model_path, path, to_device(recs, dev), bank, budgets[min(r - 1, len(budgets) - 1)], r, log)
            del recs
            log(f"round {r}: {info['samples']} samples in {info['elapsed_s']} s; validating")
            val = score_all(pool, path, groups["acdc_val"])
            log(f"round {r}: {json.dumps(val)}")
            report["rounds"].append({"round": r, "train": info, "val": val})
            save_report()
            model_path = path
    log("done")


if __name__ == "__main__":
    main()
