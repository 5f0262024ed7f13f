"""Average the weights of checkpoints that share an image encoder (a "model soup").

    python benchmarks/weight_average.py [--encoder-too | --encoder-from-first] OUT.safetensors BASE.safetensors FINETUNED.safetensors [MORE ...]

Every tensor is the plain mean of the inputs' tensors (computed in float32, stored in the
inputs' dtype). Meant for fine-tunes of one starting point that only moved the prompt encoder
and mask decoder (benchmarks/finetune_onpolicy_cpu.py, benchmarks/gpu_onpolicy.py): their
image encoders are identical, which is checked, so an adapter fitted on that encoder stays
valid. The header is the last input's (it carries the fine-tune's entry) plus a
``weight_average`` entry with the sha256 of every input; benchmarks/stamp_checkpoint.py moves
both into the lineage. Greedy choice of the inputs (Wortsman et al., ICML 2022: add an input
only if the average improves) is done on the `end-check` training patients, never on the
validation patients; BENCHMARKS.md records what was tried. ``--encoder-too`` averages fine-tunes
that also moved part of the image encoder (``TOP_BLOCKS`` of benchmarks/finetune_onpolicy_cpu.py);
an adapter on that encoder must then be re-trained or at least re-validated.
``--encoder-from-first`` averages everything else of such fine-tunes but keeps BASE's image
encoder as it is, so an adapter fitted on it keeps its encoder (re-validate it all the same:
the decoder moved).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(out: str, inputs: list[str], encoder_too: bool = False, encoder_from_first: bool = False) -> None:
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from medseg._files import atomic_path, sha256_file

    if len(inputs) < 2:
        raise SystemExit("need at least two checkpoints to average")
    states, meta = [], None
    for p in inputs:
        with safe_open(p, framework="pt") as f:
            meta = dict(f.metadata())
            states.append({k: f.get_tensor(k) for k in f.keys()})
    keys = set(states[0])
    if any(set(s) != keys for s in states[1:]):
        raise SystemExit("the checkpoints do not have the same tensors (not one architecture)")
    for k in sorted(keys):
        if not (encoder_too or encoder_from_first) and k.startswith("image_encoder.") and any(not torch.equal(states[0][k], s[k]) for s in states[1:]):
            raise SystemExit(f"image encoders differ ({k}): average only fine-tunes of one encoder (or pass --encoder-too or --encoder-from-first)")
    avg = {k: states[0][k] if encoder_from_first and k.startswith("image_encoder.") else
           (sum(s[k].float() for s in states) / len(states)).to(states[0][k].dtype) for k in sorted(keys)}
    moved = sum(not torch.equal(states[0][k], s[k]) for k in keys for s in states[1:])
    info = json.loads(meta["info"])
    info["weight_average"] = {
        "what": "uniform average of the weights of these checkpoints" + (" (image encoders averaged too)" if encoder_too else
                                                                          " (the first's image encoder kept; prompt encoder + mask decoder averaged)" if encoder_from_first else
                                                                          " (same image encoder; prompt encoder + mask decoder averaged)"),
        "of_sha256": [sha256_file(p) for p in inputs],
        "script": "benchmarks/weight_average.py",
    }
    meta["info"] = json.dumps(info)
    with atomic_path(Path(out)) as tmp:
        save_file(avg, str(tmp), metadata=meta)
    print(f"{out}: mean of {len(inputs)} checkpoints ({moved} tensor pairs differed); sha256 {sha256_file(out)}")


if __name__ == "__main__":
    from _usage import check_args

    args = check_args(__doc__, 3)
    encoder_too, encoder_from_first = "--encoder-too" in args, "--encoder-from-first" in args
    args = [a for a in args if a not in ("--encoder-too", "--encoder-from-first")]
    if len(args) < 3 or (encoder_too and encoder_from_first):
        raise SystemExit(__doc__)
    main(args[0], args[1:], encoder_too, encoder_from_first)
