"""On-policy fine-tune of the prompt encoder + mask decoder on the CPU (frozen image encoder).

    python benchmarks/finetune_onpolicy_cpu.py ../shared/data INIT.safetensors OUT.safetensors [SECONDS] [WORKDIR] [PACK]

`medseg train` prompts the next slice of a propagation with the *expert's* neighbouring mask; at
inference the neighbour is the model's own result, errors included, and its box prompts come
from the ROI rule of medseg.predictor. This script trains the decoder on what it really sees:

1. **Record.** `medseg evaluate` runs with INIT on *training* cases only (60 of the 80 ACDC
   training patients, make_pairs split "record": key slice + propagation, zero-click and a box
   on every slice; CAMUS patients 1-300: box) and every single-prompt decode is kept: the ROI's
   image embedding (the encoder is frozen, so it stays valid), the prompt tensors exactly as the
   decoder received them (box, mask prompt, structure token), the expert's mask on the same ROI
   grid and the case it came from. About 27,000 decodes, 4 GB in WORKDIR (float16), 15 minutes
   on the 2-core CPU. The other 20 training patients (split "end-check") are never recorded:
   benchmarks/fit_end_check.py fits the RV end check on them, because on recorded patients the
   decoder has learned where the RV ends and the check has nothing left to learn from.
2. **Replay.** 11,968 samples of `medseg train`'s own prompt simulation (every data set,
   structure and prompt mode, augmented, training split + 300 phantoms), encoded once by the
   frozen encoder (398 s). Without it the fine-tune forgot what the recorded cases do not show
   (a first run without replay: HVSMR pulmonary artery box Dice 0.79 -> 0.00).
3. **Train.** The prompt encoder and mask decoder (4.07 M parameters) learn the expert mask from
   those inputs: BCE + Dice on the 64 x 64 logit grid against the area-averaged expert mask
   (token 0, or the best of tokens 1-3 for a single generic click), plus MSE of the predicted
   IoU; AdamW lr 5e-5, 50-step warm-up, cosine to 5 %, batch 32, gradient clipping at 1, 1,200 s
   (4,282 steps, 137,024 samples, ~114 samples/s). Sources drawn with weights key-slice 0.27,
   zero-click 0.12, ACDC box 0.09, CAMUS box 0.12, Sunnybrook + HVSMR box 0.02, replay 0.38.
   Recorded box prompts get the
   jitter of `medseg train` (5 % of the side per coordinate, at most 12 px) always when there
   is no mask prompt and half of the time with one, so the model does not learn to expect
   exact boxes (without it, box Dice with 10 % jitter fell below the previous model's).

Validation patients are never recorded (the splits of docs/training.md). The settings below
made candidate 2 (not shipped yet); docs/training.md has its numbers.

``TOP_BLOCKS=K`` (environment; default 0) also trains the image encoder's last K transformer
blocks and its neck: the recording and the replay then keep the tokens that enter those K
blocks (16 x 16 x 160, float16) instead of the embedding, and each step runs the K blocks and
the neck before the decoder (the blocks below stay frozen, so their output stays valid). A
decode whose embedding was not encoded within the same case (none in practice) is not recorded.
BENCHMARKS.md has the run with K = 2 (stop 23). ``SEED=N`` (environment; default 0) changes
the training draws only, so a second run on the same WORKDIR skips recording and replay (for a
soup of several runs, benchmarks/weight_average.py).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

LR, BATCH, WARMUP = 5e-5, 32, 50
SEED = int(os.environ.get("SEED", "0"))  # draws of the sampler and the jitter; the recordings in WORKDIR do not depend on it
SOURCES = {"acdc_key": 0.27, "acdc_auto": 0.12, "acdc_box": 0.09, "camus_box": 0.12, "pack_box": 0.02, "replay": 0.38}
N_REPLAY, PHANTOMS = 12_000, 300
ACDC_MAP, CAMUS_MAP = "rv=1,myo=2,lv=3", "lv=1,myo=2,la=3"
PACK_MAP_VALUES = {"lv": 1, "myo": 2, "rv": 3, "la": 4, "ra": 5, "aorta": 6, "pa": 7}
PACK_DATASETS = ("sunnybrook", "hvsmr")
TOP_BLOCKS = int(os.environ.get("TOP_BLOCKS", "0"))


def encode_with_features(model, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The embedding of ``x01`` and the tokens that enter the encoder's last ``TOP_BLOCKS`` blocks."""
    enc = model.image_encoder
    x = enc.patch_embed(model.preprocess(x01))
    if enc.pos_embed is not None:
        x = x + enc.pos_embed
    k = len(enc.blocks) - TOP_BLOCKS
    for blk in enc.blocks[:k]:
        x = blk(x)
    feat = x
    for blk in enc.blocks[k:]:
        x = blk(x)
    return enc.neck(x.permute(0, 3, 1, 2)), feat


def top_encode(model, feat: torch.Tensor) -> torch.Tensor:
    """The embedding from the tokens ``encode_with_features`` kept (the trainable part)."""
    enc = model.image_encoder
    x = feat
    for blk in enc.blocks[len(enc.blocks) - TOP_BLOCKS:]:
        x = blk(x)
    return enc.neck(x.permute(0, 3, 1, 2))


def pack_slices(pack: str, datasets: tuple[str, ...]):
    """(name, Volume, reference, present structures) of every training-split slice of
    ``datasets`` in the pack: data that has no label files for `medseg evaluate` (Sunnybrook's
    DICOM contours, HVSMR's 3-D volumes) reach the recording as the single 2-D slices the pack
    holds (intensities already in [0, 1], the pack's pixel size)."""
    from medseg.io.volume import Volume
    from medseg.training.pack import STRUCT_BITS, load_pack

    d = load_pack(pack)
    names = d["meta"]["volumes"]
    for i in range(len(d["volume"])):
        name = names[d["volume"][i]]
        if name.split("/")[0] not in datasets or d["split"][i] != 0:
            continue
        lab = d["labels"][i]
        present = [s for s, v in PACK_MAP_VALUES.items() if d["labelled"][i] & STRUCT_BITS[s] and (lab == v).any()]
        px = float(d["px_mm"][i]) or 1.0
        vol = Volume(d["images"][i][None, None].astype(np.float32), np.diag([px, px, 1.0, 1.0]), modality="MR")
        yield f"{name}/{int(d['z'][i])}", vol, lab[None, None], present


def record(root: Path, init: str, work: Path, pack: str = "_gpu/pack.npz") -> None:
    """Step 1: one .npz of decodes per source in ``work`` (skipped when it exists)."""
    import make_pairs

    import medseg.evaluation as E
    import medseg.predictor as P
    import medseg.session as S
    from medseg.labels import LabelMap
    from medseg.models.registry import load_model
    from medseg.roi_ops import crop_rois

    state: dict = {"ref": None, "lm": None, "tz": None}
    rec: dict[str, list] = {}
    orig_set, orig_predict, orig_decode = S.Session._set_slice, E._predict, P.SlicePredictor._decode

    def set_slice(self, t, z):
        state["tz"] = (t, z)
        return orig_set(self, t, z)

    def predict(vol, ref, label_map, prompt, model, present):
        state["ref"], state["lm"] = ref, label_map
        if "feats" in state:
            state["feats"].clear()
        return orig_predict(vol, ref, label_map, prompt, model, present)

    def decode(self, roi, box, points, structure, mask_prompt, mask_logits, multimask):
        lm = state["lm"]
        if points or multimask or structure is None or lm is None or structure not in lm.values:
            return orig_decode(self, roi, box, points, structure, mask_prompt, mask_logits, multimask)
        model, cap = self.model, {}
        ep, dc = model.embed_prompts, model.decode
        model.embed_prompts = lambda batch, **kw: (cap.__setitem__("kw", kw), ep(batch, **kw))[1]
        model.decode = lambda emb, sparse, dense: (cap.__setitem__("emb", emb), dc(emb, sparse, dense))[1]
        try:
            pred = orig_decode(self, roi, box, points, structure, mask_prompt, mask_logits, multimask)
        finally:
            del model.embed_prompts, model.decode
        kw, (t, z) = cap["kw"], state["tz"]
        if "feats" in state:
            got = state["feats"].get(id(cap["emb"]))
            if got is None or got[0] is not cap["emb"]:
                return pred  # an embedding not encoded during this case: nothing to train the top blocks on
            emb_rec = got[1]
        else:
            emb_rec = cap["emb"][0].to(torch.float16).numpy()
        ref = (state["ref"][t, z] == lm.values[structure]).astype(np.float32)
        r = np.asarray(roi, np.float32)
        tgt = crop_rois(torch.from_numpy(ref)[None, None], torch.from_numpy(r[None]), model.config.img_size)[0, 0] > 0.5
        mi = kw.get("mask_inputs")
        low = 4 * model.config.embed_size
        rec["emb"].append(emb_rec)
        rec["mask"].append(mi[0, 0].to(torch.float16).numpy() if mi is not None else np.zeros((low, low), np.float16))
        rec["has_mask"].append(mi is not None)
        rec["box"].append(kw["boxes"][0].numpy().astype(np.float32))
        rec["has_box"].append(bool(kw["has_box"][0]))
        rec["structure"].append(int(kw["structure"][0]))
        rec["target"].append(np.packbits(tgt.numpy().ravel()))
        pair = state["pairs"][state["i"]]
        rec["case"].append(f"{pair.case}/{pair.phase or ''}")
        return pred

    S.Session._set_slice, E._predict, P.SlicePredictor._decode = set_slice, predict, decode
    loaded = load_model(init)
    if TOP_BLOCKS:  # keep the tokens entering the top blocks of every encode, by embedding object
        feats = state["feats"] = {}

        def encode(x01):
            emb, feat = encode_with_features(loaded.model, x01)
            if len(emb) == 1:
                feats[id(emb)] = (emb, feat[0].to(torch.float16).numpy())
            return emb

        loaded.model.encode = encode
    jobs = {"acdc_key": (make_pairs.acdc(root, "record"), ACDC_MAP, "key-slice"),
            "acdc_auto": (make_pairs.acdc(root, "record"), ACDC_MAP, "auto"),
            "acdc_box": (make_pairs.acdc(root, "record"), ACDC_MAP, "box"),
            "camus_box": (make_pairs.camus(root, "adapt-train"), CAMUS_MAP, "box"),
            "pack_box": (None, ",".join(f"{k}={v}" for k, v in PACK_MAP_VALUES.items()), "box")}
    try:
        for name, (rows, lmap, mode) in jobs.items():
            out = work / f"{name}.npz"
            if out.exists():
                continue
            rec.clear()
            rec.update({k: [] for k in ("emb", "mask", "has_mask", "box", "has_box", "structure", "target", "case")})
            t0 = time.perf_counter()
            if rows is None:  # Sunnybrook + HVSMR training slices of the pack, one box per structure
                lm, n = LabelMap.parse(lmap), 0
                for case, vol, ref, present in pack_slices(pack, PACK_DATASETS):
                    n += 1
                    state["pairs"], state["i"] = [E.Pair(Path(case), Path(case), case, None)], 0
                    if present:
                        E._predict(vol, ref, lm, mode, loaded, present)
                np.savez(work / f"{name}.tmp.npz", **{k: np.stack(v) for k, v in rec.items()})
                (work / f"{name}.tmp.npz").replace(out)
                print(f"{name}: {len(rec['emb'])} decodes from {n} slices of {', '.join(PACK_DATASETS)} in {time.perf_counter() - t0:.0f} s", flush=True)
                continue
            pairs = [E.Pair(Path(r["image"]), Path(r["label"]), r["case"], r["phase"] or None) for r in rows]
            state["pairs"], state["i"] = pairs, 0
            res = E.evaluate_pairs(pairs, LabelMap.parse(lmap), mode, loaded, progress=lambda i, n: state.__setitem__("i", min(i, n - 1)))
            np.savez(work / f"{name}.tmp.npz", **{k: np.stack(v) for k, v in rec.items()})
            (work / f"{name}.tmp.npz").replace(out)
            print(f"{name}: {len(rec['emb'])} decodes from {len(pairs)} cases in {time.perf_counter() - t0:.0f} s "
                  f"(Dice {json.dumps({k: round(v, 3) for k, v in res['summary']['dice'].items()})})", flush=True)
    finally:
        S.Session._set_slice, E._predict, P.SlicePredictor._decode = orig_set, orig_predict, orig_decode
        loaded.model.__dict__.pop("encode", None)  # the TOP_BLOCKS feature capture


@torch.no_grad()
def replay(pack: str, init: str, work: Path) -> None:
    """Step 2: ``N_REPLAY`` samples of `medseg train`'s own prompt simulation (every data set,
    structure and prompt mode, augmented; training split + phantoms), encoded once by the frozen
    encoder, so the fine-tune keeps what the recorded cases do not show (HVSMR's great vessels,
    clicks, echo SAX...)."""
    from medseg.models.checkpoints import load_checkpoint
    from medseg.training.data import bank_from_pack
    from medseg.training.prompts import sample_batch

    out = work / "replay.npz"
    if out.exists():
        return
    model, _, _ = load_checkpoint(init)
    model = model.float().eval()
    g = torch.Generator()
    g.manual_seed(SEED + 1)
    bank = bank_from_pack(pack, PHANTOMS, SEED, "cpu")
    w = bank.weights(0)
    keys = ("emb", "points", "point_labels", "box", "has_box", "structure", "mask", "has_mask", "multimask", "target")
    rec: dict[str, list] = {k: [] for k in keys}
    t0 = time.perf_counter()
    for _ in range(N_REPLAY // 64):
        idx = torch.multinomial(w, 64, replacement=True, generator=g)
        bt = sample_batch(bank, idx, model.config.img_size, model.config.embed_size, g=g)
        emb = encode_with_features(model, bt.images)[1] if TOP_BLOCKS else model.encode(bt.images)
        for k, v in (("emb", emb.half()), ("points", bt.points), ("point_labels", bt.point_labels.to(torch.int8)), ("box", bt.boxes),
                     ("has_box", bt.has_box), ("structure", bt.structure), ("mask", bt.mask_inputs[:, 0].half()), ("has_mask", bt.has_mask),
                     ("multimask", bt.multimask)):
            rec[k].append(v.numpy())
        rec["target"].append(np.packbits(bt.target[:, 0].numpy().astype(bool).reshape(64, -1), axis=1))
    np.savez(work / "replay.tmp.npz", **{k: np.concatenate(v) for k, v in rec.items()})
    (work / "replay.tmp.npz").replace(out)
    print(f"replay: {N_REPLAY // 64 * 64} samples in {time.perf_counter() - t0:.0f} s", flush=True)


def lowres_loss(low: torch.Tensor, iou: torch.Tensor, target: torch.Tensor, multimask: torch.Tensor) -> torch.Tensor:
    """PromptLoss on the logit grid: BCE + Dice of token 0 (best of tokens 1-3 for a single
    generic click) against the area-averaged expert mask, plus MSE of every token's IoU."""
    f = torch.nn.functional
    soft = f.avg_pool2d(target, target.shape[-1] // low.shape[-1]).expand_as(low)
    prob = torch.sigmoid(low)
    bce = f.binary_cross_entropy_with_logits(low, soft, reduction="none").mean((2, 3))
    dice = 1 - (2 * (prob * soft).sum((2, 3)) + 1) / (prob.sum((2, 3)) + soft.sum((2, 3)) + 1)
    seg = bce + dice
    seg_loss = torch.where(multimask, seg[:, 1:].min(1).values, seg[:, 0])
    with torch.no_grad():
        hp, ht = low > 0, soft > 0.5
        union = (hp | ht).sum((2, 3)).float()
        iou_true = torch.where(union > 0, (hp & ht).sum((2, 3)).float() / union.clamp(min=1), torch.ones_like(union))
    return seg_loss.mean() + f.mse_loss(iou, iou_true)


def decoder_step(model, opt, params, emb: torch.Tensor, prompts: dict, target: torch.Tensor, multimask: torch.Tensor) -> torch.Tensor:
    """One optimiser step of the prompt encoder + decoder on frozen-encoder embeddings ``emb``
    with the prompt tensors ``prompts`` (``embed_prompts``' keywords): lowres_loss, gradient
    clipping at 1. Returns the (detached) loss."""
    sparse, dense = model.embed_prompts(len(emb), **prompts)
    low, iou = model.decode(emb, sparse, dense)
    loss = lowres_loss(low, iou, target, multimask)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return loss.detach()


def train(init: str, out: str, budget_s: float, work: Path) -> None:
    """Step 3: fine-tune the prompt encoder + decoder on the recorded decodes and the replay."""
    from finetune_decoder_cpu import frozen_encoder_model

    from medseg.models.checkpoints import read_checkpoint_header, save_checkpoint
    from medseg.training.prompts import N_POINTS, jitter_boxes

    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    srcs = [dict(np.load(work / f"{n}.npz")) for n in SOURCES]
    weights = np.array(list(SOURCES.values()))
    weights = weights / weights.sum()
    model, params, opt = frozen_encoder_model(init, LR)
    if TOP_BLOCKS:
        enc = model.image_encoder
        top = [*enc.blocks[len(enc.blocks) - TOP_BLOCKS:], enc.neck]
        for m in top:
            m.train()
            for q in m.parameters():
                q.requires_grad_(True)
        params = [q for q in model.parameters() if q.requires_grad]
        opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.01)
    size, b = model.config.img_size, BATCH
    t0, step = time.perf_counter(), 0
    while (elapsed := time.perf_counter() - t0) < budget_s:
        for g in opt.param_groups:
            g["lr"] = LR * min(1.0, (step + 1) / WARMUP) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * elapsed / budget_s)))
        d = srcs[rng.choice(len(srcs), p=weights)]
        j = np.sort(rng.choice(len(d["emb"]), b, replace=len(d["emb"]) < b))
        has_mask = torch.from_numpy(d["has_mask"][j])
        boxes = torch.from_numpy(d["box"][j])
        if "multimask" in d:  # replay: already augmented as medseg train does
            multimask = torch.from_numpy(d["multimask"][j])
            points, labels = torch.from_numpy(d["points"][j]), torch.from_numpy(d["point_labels"][j]).long()
        else:
            multimask = torch.zeros(b, dtype=torch.bool)
            points, labels = torch.zeros(b, N_POINTS, 2), torch.full((b, N_POINTS), -1)  # padding slots, as inference
            jittered = jitter_boxes(boxes, size).clamp(0, size)
            boxes = torch.where((~has_mask | (torch.rand(b) < 0.5))[:, None], jittered, boxes)
        prompts = {"points": points, "point_labels": labels, "boxes": boxes, "has_box": torch.from_numpy(d["has_box"][j]),
                   "structure": torch.from_numpy(d["structure"][j]), "mask_inputs": torch.from_numpy(d["mask"][j].astype(np.float32))[:, None],
                   "has_mask": has_mask}
        target = torch.from_numpy(np.unpackbits(d["target"][j], axis=1).reshape(b, 1, size, size).astype(np.float32))
        emb = torch.from_numpy(d["emb"][j].astype(np.float32))
        if TOP_BLOCKS:
            emb = top_encode(model, emb)
        loss = decoder_step(model, opt, params, emb, prompts, target, multimask)
        step += 1
        if step % 200 == 0:
            print(f"step {step}  {elapsed:.0f} s  {step * b} samples  loss {float(loss.detach()):.4f}", flush=True)
    _, base_info = read_checkpoint_header(init)
    what = (f"prompt encoder + mask decoder + the image encoder's last {TOP_BLOCKS} blocks and neck" if TOP_BLOCKS else
            "prompt encoder + mask decoder") + " on recorded inference decodes of training cases + replay of the training prompt simulation, " + \
        ("rest of the image encoder frozen" if TOP_BLOCKS else "frozen image encoder") + ", CPU"
    info = {**base_info, "finetune_onpolicy": {"what": what, "top_blocks": TOP_BLOCKS,
                                               "steps": step, "samples": step * b, "elapsed_s": round(time.perf_counter() - t0), "lr": LR,
                                               "batch": b, "sources": SOURCES, "seed": SEED, "script": "benchmarks/finetune_onpolicy_cpu.py"}}
    save_checkpoint(model, out, info, half=True)
    print(json.dumps(info["finetune_onpolicy"]))


if __name__ == "__main__":
    from _usage import check_args

    check_args(__doc__, 3)
    root, init, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    budget = float(sys.argv[4]) if len(sys.argv) > 4 else 1200.0
    work = Path(sys.argv[5]) if len(sys.argv) > 5 else Path("work_data/onpolicy")
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    pack = sys.argv[6] if len(sys.argv) > 6 else "_gpu/pack.npz"
    record(root, init, work, pack)
    replay(pack, init, work)
    train(init, out, budget, work)
