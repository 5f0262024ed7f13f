"""Peak memory and time of the heavy paths (BENCHMARKS.md, "Large inputs"): `measure` of a
320 x 512 x 512 CT's labels and of a 30-frame cine's, `segment` of the 30-frame cine (a box per
structure on one slice of frame 0, then "zt") and of the CT (key slice, 7 structures), and
`batch --auto --measure` over the ED and ES frames of 6 ACDC patients (RSS of each case).

    python benchmarks/memory_paths.py WORK_DIR [--only measure,cine,ct,batch] [--tree DIR]
        [--data ../shared/data]

WORK_DIR receives the inputs (made once, from medseg.phantoms) and the outputs. Each command
runs in its own process under a sampler that reads its RSS (and its workers') every 0.25 s:
peak RSS, wall seconds and, for batch, the RSS when each case's labels appear. ``--tree DIR``
runs the commands with DIR (a copy of the repository, e.g. an older commit from ``git
archive`` of medseg/, with a link to checkpoints/ beside it, where the shipped weights are
looked for) first on the import path, to compare before and after on the same machine state.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

LABEL_MAP = "lv=1,myo=2,rv=3,la=4,ra=5,aorta=6,pa=7"


def make_inputs(work: Path) -> None:
    """The CT phantom rendered at 1.4 mm and each voxel repeated to 320 x 512 x 512 at 0.7 mm
    (int16 image, uint8 labels), and a 30-frame x 12-slice cine phantom of 208 x 208 with its
    labels and a prompts file (a box per structure on slice 6 of frame 0)."""
    import nibabel as nib
    import numpy as np

    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom, ct_phantom

    if not (work / "ct320_labels.nii.gz").is_file():
        ph = ct_phantom(shape=(160, 256, 256), spacing=(1.4, 1.4, 1.4), seed=101)
        aff = ph.image.affine.copy()
        aff[:3, :3] /= 2
        up = lambda a: a.repeat(2, 0).repeat(2, 1).repeat(2, 2)  # noqa: E731
        nib.save(nib.Nifti1Image(medseg_to_nifti(up(ph.labels[0].astype(np.uint8))[None], 3), aff), str(work / "ct320_labels.nii.gz"))
        img = nib.Nifti1Image(medseg_to_nifti(up(ph.image.array[0].astype(np.int16))[None], 3), aff)
        img.header["descrip"] = b"CT"
        nib.save(img, str(work / "ct320.nii.gz"))
    if not (work / "cine30_gt.nii.gz").is_file():
        ph = cine_sax_phantom(n_frames=30, n_slices=12, shape=(208, 208), spacing=(10.0, 1.5, 1.5), seed=1)
        nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 4), ph.image.affine), str(work / "cine30.nii.gz"))
        nib.save(nib.Nifti1Image(medseg_to_nifti(ph.labels.astype(np.uint8), 4), ph.image.affine), str(work / "cine30_gt.nii.gz"))
        prompts = []
        for name in ("lv", "myo", "rv"):
            r, c = np.nonzero(ph.labels[0, 6] == ph.label_map[name])
            prompts.append({"structure": name, "frame": 0, "slice": 6, "box": [int(r.min()), int(c.min()), int(r.max()), int(c.max())],
                            "propagate": True})
        (work / "cine_prompts.json").write_text(json.dumps({"format": "medseg-prompts/1", "label_map": {"lv": 1, "myo": 2, "rv": 3},
                                                            "prompts": prompts}))


def run(cmd: list[str], tree: Path | None, watch: Path | None = None) -> dict:
    """Run ``medseg CMD`` in a new process; its peak RSS (MB, with its worker processes) and wall
    seconds, and for ``watch`` (a folder) the RSS when each new label file appears there."""
    import glob

    import psutil

    env = dict(os.environ, OMP_NUM_THREADS="1")
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    code = "import sys; from medseg.cli import app; sys.argv[0] = 'medseg'; app()"
    t0 = time.time()
    p = subprocess.Popen([sys.executable, "-c", code, *cmd], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc, peak, seen, cases = psutil.Process(p.pid), 0, set(), []
    while p.poll() is None:
        try:
            rss = sum(q.memory_info().rss for q in [proc, *proc.children(recursive=True)]) >> 20
        except psutil.Error:
            continue
        peak = max(peak, rss)
        if watch is not None:
            for f in sorted(set(glob.glob(str(watch / "*.nii.gz"))) - seen):
                seen.add(f)
                cases.append((Path(f).name, rss))
        time.sleep(0.25)
    out = p.stdout.read()
    if p.returncode != 0:
        print(out[-2000:])
    return {"cmd": " ".join(cmd), "rc": p.returncode, "wall_s": round(time.time() - t0, 1), "peak_rss_mb": peak, "cases": cases}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--only", default="measure,cine,ct,batch")
    ap.add_argument("--tree", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = ap.parse_args()
    w = args.work
    w.mkdir(parents=True, exist_ok=True)
    make_inputs(w)
    tag = "tree" if args.tree else "here"
    jobs: dict[str, tuple[list[str], Path | None]] = {}
    only = set(args.only.split(","))
    if "measure" in only:
        jobs["measure CT 320 labels"] = (["measure", str(w / "ct320_labels.nii.gz"), "--no-basal-rule", "-o", str(w / f"m_ct_{tag}.json")], None)
        jobs["measure cine 30 frames"] = (["measure", str(w / "cine30_gt.nii.gz"), "--label-map", "lv=1,myo=2,rv=3", "-o",
                                           str(w / f"m_cine_{tag}.json")], None)
    if "cine" in only:
        jobs["segment cine 30 frames, zt"] = (["segment", str(w / "cine30.nii.gz"), "--prompts", str(w / "cine_prompts.json"), "--propagate",
                                               "--through", "zt", "-o", str(w / f"seg_cine_{tag}.nii.gz")], None)
    if "ct" in only:
        jobs["segment CT 320, key slice, 7 structures"] = (["segment", str(w / "ct320.nii.gz"), "--prompts-from", str(w / "ct320_labels.nii.gz"),
                                                            "--key-slice", "--label-map", LABEL_MAP, "-o", str(w / f"seg_ct_{tag}.nii.gz")], None)
    acdc = args.data / "acdc" / "training"
    if "batch" in only and acdc.is_dir():
        src = w / "batch_in"
        src.mkdir(exist_ok=True)
        for n in range(81, 87):
            for f in sorted((acdc / f"patient{n:03d}").glob(f"patient{n:03d}_frame??.nii.gz")):
                if not (src / f.name).exists():
                    (src / f.name).symlink_to(f)
        out = w / f"batch_{tag}"
        jobs["batch --auto --measure, 12 ACDC frames"] = (["batch", str(src), "-o", str(out), "--auto", "--measure", "--workers", "1"], out)
    for name, (cmd, watch) in jobs.items():
        r = run(cmd, args.tree, watch)
        print(f"{name}: peak RSS {r['peak_rss_mb']} MB, {r['wall_s']} s (rc {r['rc']})", flush=True)
        if r["cases"]:
            print("  RSS (MB) as each case's labels appear: " + ", ".join(f"{rss}" for _, rss in r["cases"]), flush=True)


if __name__ == "__main__":
    main()
