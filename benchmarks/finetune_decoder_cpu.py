"""Fine-tune the prompt encoder + mask decoder of a trained checkpoint on the CPU (frozen encoder).

    python benchmarks/finetune_decoder_cpu.py PACK INIT.safetensors OUT.safetensors [SECONDS]

How the shipped default was made from the GPU-trained base (docs/training.md): 2,820 s on the
2-core CPU, 50,848 samples (~18 samples/s), batch 32, AdamW lr 3e-5 (50-step warm-up, cosine to
5 %), weight decay 0.01, seed 1, the pack of `medseg train` plus 300 phantoms, training slices
only (split 0; the validation patients are never drawn). The prompt simulation is the one of
`medseg train` (medseg.training.prompts) with a larger share of propagation (mask-prompt)
samples: box 0.30, ROI clicks 0.10, slice clicks 0.08, zero-click 0.14, mask 0.38, and the
correction-click second pass on half of the steps. The image encoder runs without gradients,
which is what makes this affordable on a CPU (the whole model trains at ~9 samples/s here).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import medseg.training.prompts as prompts  # noqa: E402
from medseg.models.checkpoints import load_checkpoint, read_checkpoint_header, save_checkpoint  # noqa: E402
from medseg.training.data import bank_from_pack  # noqa: E402
from medseg.training.loop import TrainConfig, train_step  # noqa: E402
from medseg.training.losses import PromptLoss  # noqa: E402

LR, BATCH, WARMUP, SEED, PHANTOMS = 3e-5, 32, 50, 1, 300
MODE_PROBS = (0.30, 0.10, 0.08, 0.14, 0.38)  # box, roi_points, full_points, auto, mask


def frozen_encoder_model(init: str, lr: float):
    """The checkpoint ``init`` in float32 training mode with its image encoder frozen (eval
    mode, no gradients), the parameters left to train (prompt encoder + mask decoder) and
    their AdamW optimiser."""
    model, _, _ = load_checkpoint(init)
    model = model.float().train()
    model.image_encoder.eval()
    for q in model.image_encoder.parameters():
        q.requires_grad_(False)
    params = [q for q in model.parameters() if q.requires_grad]
    return model, params, torch.optim.AdamW(params, lr=lr, weight_decay=0.01)


def main(pack: str, init: str, out: str, budget_s: float) -> None:
    torch.manual_seed(SEED)
    gen = torch.Generator()
    gen.manual_seed(SEED)
    prompts.MODE_PROBS = MODE_PROBS
    bank = bank_from_pack(pack, PHANTOMS, SEED, "cpu")
    bank.train_weights = bank.weights(0)
    model, params, opt = frozen_encoder_model(init, LR)
    # medseg train's step (prompt simulation, loss, correction-click pass, clipping): the frozen
    # encoder builds no autograd graph, so only the prompt encoder and decoder are trained
    cfg = TrainConfig(device="cpu", batch_size=BATCH, correction_prob=0.5, bf16=False)
    loss_fn = PromptLoss()
    t0, step = time.perf_counter(), 0
    while (elapsed := time.perf_counter() - t0) < budget_s:
        for g in opt.param_groups:
            g["lr"] = LR * min(1.0, (step + 1) / WARMUP) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * elapsed / budget_s)))
        logs = train_step(model, loss_fn, bank, cfg, opt, gen)
        step += 1
        if step % 50 == 0:
            print(f"step {step}  {elapsed:.0f} s  {step * BATCH} samples  loss {float(logs['loss']):.4f}", flush=True)
    _, base_info = read_checkpoint_header(init)
    info = {**base_info, "finetune": {"what": "prompt encoder + mask decoder, frozen image encoder, CPU", "steps": step, "samples": step * BATCH,
                                      "elapsed_s": round(time.perf_counter() - t0), "lr": LR, "batch": BATCH, "mode_probs": dict(zip(prompts.MODES, MODE_PROBS)),
                                      "seed": SEED, "script": "benchmarks/finetune_decoder_cpu.py"}}
    save_checkpoint(model, out, info, half=True)
    print(json.dumps(info["finetune"]))


if __name__ == "__main__":
    from _usage import check_args

    check_args(__doc__, 3)
    main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 2820.0)
