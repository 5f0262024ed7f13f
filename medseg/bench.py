"""``medseg bench``: the default model and the SAM ViT-B architecture (random weights, same
code path) timed side by side in one process on the same inputs."""

from __future__ import annotations

import platform
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .types import Box


def _time(fn: Callable[[], Any], repeats: int, warmup: int = 2, sync: Callable[[], None] = lambda: None) -> float:
    """Median milliseconds of ``fn`` over ``repeats`` runs after ``warmup``."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def _encoder_decoder_ms(loaded, repeats: int, sync) -> tuple[float, float]:
    from .predictor import SlicePredictor

    rng = np.random.default_rng(0)
    img = rng.random((216, 256), dtype=np.float32)
    p = SlicePredictor(loaded)
    p.set_image(img, key="bench")
    box = Box(80, 90, 140, 160)
    roi = p._box_roi(box)
    crop = torch.rand(1, 1, loaded.config.img_size, loaded.config.img_size, device=loaded.device)
    with torch.inference_mode():
        enc = _time(lambda: loaded.model.encode(crop), repeats, sync=sync)
    p.embedding(roi)  # cached from here on: decode timing excludes the encoder
    dec = _time(lambda: p.predict(box=box, structure="lv"), max(repeats, 20), sync=sync)
    return enc, dec


def _study_seconds(loaded, repeats: int = 3) -> tuple[float, dict[str, Any]]:
    """An ACDC-sized study: ED + ES, 10 slices, lv/myo/rv, key-slice box + propagation. The
    first run (cold: first calls into scipy, thread pools) and then the median of ``repeats``
    more; the VM this was developed on changes speed by a third within minutes, so one run
    says little."""
    from .phantoms import cine_sax_phantom
    from .prompt_file import prompts_from_labels
    from .segment import segment_volume

    ph = cine_sax_phantom(n_frames=2, n_slices=10, shape=(216, 256), spacing=(10.0, 1.5, 1.5), seed=1)
    lm = ph.label_map.subset(["lv", "myo", "rv"])
    prompts = prompts_from_labels(ph.labels, lm, key_slice=True)
    runs, totals, confs = [], [], []
    for _ in range(1 + max(0, repeats)):
        t0 = time.perf_counter()
        res = segment_volume(ph.image, loaded, prompts, label_map=lm)
        totals.append(time.perf_counter() - t0)
        runs.append(res.seconds)  # prompting + propagation, without the confidence/review pass
        confs.append(res.confidence_seconds)
    warm = slice(1, None) if len(runs) > 1 else slice(None)
    dice = {}
    for n, v in lm.values.items():
        a, b = res.labels == v, ph.labels == v
        dice[n] = round(float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1)), 4)
    return float(np.median(runs[warm])), {
        "shape": list(ph.image.shape), "structures": lm.names, "mode": "key-slice", "dice_vs_phantom_truth": dice,
        "first_run_seconds": round(runs[0], 3), "runs_seconds": [round(r, 3) for r in runs[warm]],
        "confidence_seconds": round(float(np.median(confs[warm])), 3),
        "total_seconds_with_confidence_and_review": round(float(np.median(totals[warm])), 3)}


def _sync(device: str) -> Callable[[], None]:
    """Wait for the work queued on ``device``: the GPU it names (torch's call without one waits
    for the current GPU, cuda:0, not the cuda:1 that runs the work); nothing on the CPU."""
    if device.startswith("cuda"):
        return lambda: torch.cuda.synchronize(torch.device(device))
    return lambda: None


def _peak_mb(device: str) -> float:
    """Peak memory: of the GPU ``device`` names (``cuda:1``'s own, not the current GPU's), else
    of this process."""
    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated(torch.device(device)) / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_bench(device: str = "cpu", repeats: int = 20, sam_repeats: int = 3, model: str = "default", with_study: bool = True, batch: int = 64) -> dict[str, Any]:
    """Time encoder and decoder of the default model vs the SAM ViT-B architecture."""
    from .models import load_model
    from .models.network import build_network, count_parameters, sam_config
    from .models.registry import LoadedModel

    cuda = device.startswith("cuda")
    sync = _sync(device)
    loaded = load_model(model, device=device)
    torch.manual_seed(0)
    sam = LoadedModel(build_network(sam_config("vit_b", "sam_vit_b")).eval().to(device), "sam_vit_b(random)", "random", device=device)
    enc_d, dec_d = _encoder_decoder_ms(loaded, repeats, sync)
    enc_s, dec_s = _encoder_decoder_ms(sam, sam_repeats, sync)
    out: dict[str, Any] = {
        "encoder_ms_per_slice": {"default": round(enc_d, 2), "sam_vit_b": round(enc_s, 2)},
        "decode_ms_per_prompt": {"default": round(dec_d, 2), "sam_vit_b": round(dec_s, 2)},
        "speedup_vs_sam_vit_b": round(enc_s / enc_d, 1),
        "parameters": {"default": count_parameters(loaded.model), "sam_vit_b": count_parameters(sam.model)},
        "input_px": {"default": loaded.config.img_size, "sam_vit_b": 1024},
        "device": device,
        "machine": _machine(device),
    }
    del sam
    if with_study:
        secs, info = _study_seconds(loaded)
        out["study_seconds"] = round(secs, 3)
        out["study"] = info
    if cuda:
        x = torch.rand(batch, 1, loaded.config.img_size, loaded.config.img_size, device=device)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            ms = _time(lambda: loaded.model.encode(x), 10, sync=sync)
        out["batch_slices_per_s"] = {"default": round(batch / ms * 1000, 1), "batch": batch, "dtype": "bfloat16"}
    out["peak_memory_mb"] = _peak_mb(device)
    return out


def _machine(device: str) -> dict[str, Any]:
    import os

    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info
