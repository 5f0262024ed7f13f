"""Stamp a fine-tuned checkpoint before it becomes the default: record its lineage.

    python benchmarks/stamp_checkpoint.py SRC.safetensors DST.safetensors BEFORE[,BEFORE2...] DATE [KEY=JSON ...]

The fine-tune scripts copy the header of the checkpoint they started from and add their own
entry (``finetune_onpolicy``, ``gpu_onpolicy_round1``, ...). This moves every such entry that
is not yet in ``lineage`` there, with ``DATE`` and the sha256 of BEFORE (the file the step
started from; one BEFORE per new entry, in header order, for a run of several steps such as the
rounds of benchmarks/gpu_onpolicy.py), moves the inherited ``validation`` block of the previous step into that step's
lineage entry (it does not describe the new weights), and adds KEY=JSON pairs (for example the
validation measured for the new file). The weights are copied byte for byte.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STEP_KEYS = ("finetune_onpolicy", "gpu_onpolicy_round", "weight_average")


def main(src: str, dst: str, before: str, date: str, extra: list[str]) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    from medseg._files import atomic_path, sha256_file

    with safe_open(src, framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    info = json.loads(meta["info"])
    lineage = info.setdefault("lineage", [])
    recorded = {json.dumps({k: v for k, v in e.items() if k not in ("date", "sha256_before", "validation")}, sort_keys=True) for e in lineage}
    befores = [sha256_file(b) for b in before.split(",")]
    added = []
    for key in list(info):
        if not key.startswith(STEP_KEYS):
            continue
        entry = {k: v for k, v in info[key].items() if k not in ("date", "sha256_before")}
        if json.dumps(entry, sort_keys=True) in recorded:
            continue
        lineage.append({**entry, "date": date, "sha256_before": befores[min(len(added), len(befores) - 1)]})
        added.append(key)
    if added and "validation" in info and len(lineage) > len(added):
        lineage[-len(added) - 1]["validation"] = info.pop("validation")
    for kv in extra:
        k, _, v = kv.partition("=")
        info[k] = json.loads(v)
    meta["info"] = json.dumps(info)
    with atomic_path(Path(dst)) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    print(f"{dst}: lineage += {added}; sha256 {sha256_file(dst)}")


if __name__ == "__main__":
    from _usage import check_args

    check_args(__doc__, 4)
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
