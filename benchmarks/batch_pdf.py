"""`medseg batch --measure --pdf`: what a study page costs beside the measurement.

    OMP_NUM_THREADS=1 python benchmarks/batch_pdf.py WORK_DIR [--data /work/shared/data/acdc/training]

Writes the expert labels of ACDC validation patients 017-020 and 037 (ED and ES frames, each a
case ``patientNNN_frameNN``; sidecars naming the image, as ``batch`` writes them) into WORK_DIR,
then times, per case, the batch's measurement (``medseg.batch.measure_rows._measure``) without
and with its page, and per study row (``stack_study_rows``: ED + ES of the patient) the same.
Prints the seconds a case / study and the difference: the page. Not a test.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")


def main() -> None:
    from medseg.batch import BatchOptions, stack_study_rows
    from medseg.batch.measure_rows import _measure
    from medseg.batch.pages import page_path
    from medseg.io import read_label_volume, read_volume, write_labels

    ap = argparse.ArgumentParser()
    ap.add_argument("work", type=Path)
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/acdc/training"))
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for pid in ("017", "018", "019", "020", "037"):
        for gt in sorted((args.data / f"patient{pid}").glob("*_gt.nii.gz")):
            img = gt.with_name(gt.name.replace("_gt", ""))
            case = img.name.replace(".nii.gz", "")
            out = work / f"{case}.nii.gz"
            write_labels(read_label_volume(gt).array, read_volume(img), out, "rv=1,myo=2,lv=3", provenance={"input": str(img)})
            results.append({"case": case, "status": "ok", "output": str(out), "input": str(img)})
    opts = BatchOptions(out_dir=str(work), measure=True)
    _measure(Path(results[0]["output"]), opts, results[0]["case"], page=work / "warm-up.pdf")  # imports, fonts
    t = {}
    for label, page in (("case, no page", False), ("case, page", True)):
        t0 = time.perf_counter()
        for r in results:
            res = _measure(Path(r["output"]), opts, r["case"], page=page_path(work, r["case"]) if page else None)
            assert not page or res.get("pdf"), res.get("pdf_note")
        t[label] = (time.perf_counter() - t0) / len(results)
    for label, pages in (("study, no page", None), ("study, page", work)):
        t0 = time.perf_counter()
        rows = stack_study_rows(results, pages=pages)
        assert pages is None or all(r.get("pdf") for r in rows), [r.get("measure_note") for r in rows]
        t[label] = (time.perf_counter() - t0) / len(rows)
    for k, v in t.items():
        print(f"{k}: {v:.2f} s")
    sizes = sorted(p.stat().st_size // 1000 for p in (work / "pdf").iterdir())
    print(f"page per case: {t['case, page'] - t['case, no page']:.2f} s; per study row: {t['study, page'] - t['study, no page']:.2f} s; "
          f"{sizes[0]}-{sizes[-1]} kB")


if __name__ == "__main__":
    main()
