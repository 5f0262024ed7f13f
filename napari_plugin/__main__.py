"""Console entry: ``python -m medseg_napari [IMAGE] [--model NAME] [--device cpu|cuda|cuda:N]``.

Opens napari with the image read by medseg's reader, the segmentation and measurement
widgets docked and a session started (no image: the synthetic cine phantom).
"""

from __future__ import annotations

import argparse
import sys


def no_display() -> bool:
    """Whether Qt has nothing to open a window on: Linux (or another X11 system) with neither
    ``DISPLAY`` nor ``WAYLAND_DISPLAY`` set and no ``QT_QPA_PLATFORM`` chosen (Qt aborted the
    process with a core dump, a cluster node's usual state)."""
    import os

    if sys.platform.startswith(("win", "darwin")) or os.environ.get("QT_QPA_PLATFORM"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medseg_napari",
                                 description="Open a study in napari with medseg's segmentation and measurement widgets.")
    ap.add_argument("image", nargs="?", help="DICOM folder, NIfTI, MHA/NRRD, PNG or echo video (default: cine phantom)")
    ap.add_argument("--model", default="default", help="model name or checkpoint path (default: default)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    args = ap.parse_args(argv)
    from medseg.errors import MedsegError
    from medseg.models.registry import check_device

    try:  # before a window opens: "cuda" without a GPU was said only in the widget's status line, "cuda:1" refused
        check_device(args.device)
    except MedsegError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if no_display():
        print("error: no display to open napari on (DISPLAY and WAYLAND_DISPLAY are not set): run it on a desktop, "
              "over ssh -X, or in a remote desktop session", file=sys.stderr)
        return 2
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
