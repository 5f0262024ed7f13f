"""Console entry: ``python -m medseg_napari [IMAGE] [--model NAME] [--device cpu|cuda]``.

Opens napari with the image read by medseg's reader, the segmentation and measurement
widgets docked and a session started (no image: the synthetic cine phantom).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medseg_napari",
                                 description="Open a study in napari with medseg's segmentation and measurement widgets.")
    ap.add_argument("image", nargs="?", help="DICOM folder, NIfTI, MHA/NRRD, PNG or echo video (default: cine phantom)")
    ap.add_argument("--model", default="default", help="model name or checkpoint path (default: default)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args(argv)
    try:
        import napari
    except ImportError:
        print('napari is not installed: pip install "medseg[napari,qt]"', file=sys.stderr)
        return 2
    from ._scripting import open_study

    try:
        open_study(args.image, model=args.model, device=args.device)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
