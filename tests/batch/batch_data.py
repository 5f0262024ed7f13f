"""Tiny cine short-axis phantom studies for the batch tests (and benchmarks/batch_50.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

MAP = "lv=1,myo=2,rv=3"


@contextlib.contextmanager
def stubbed_confidence(fake: Callable) -> Iterator[None]:
    """The confidence scoring replaced by ``fake`` (fixed confidences per case, as the
    --min-confidence tests need them) on one torch thread; both restored after."""
    import pytest
    import torch

    import medseg.confidence

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(medseg.confidence, "score_session", fake)
            yield
    finally:
        torch.set_num_threads(before)


def batch_prompted(inp: Path, out: Path, *extra: str) -> int:
    """`medseg batch INP -o OUT --prompts-from INP --label-map MAP ...`: each case's boxes from its own labels."""
    from medseg.cli import run_cli

    return run_cli(["batch", str(inp), "-o", str(out), "--prompts-from", str(inp), "--label-map", MAP, *extra])


def write_case(folder: Path, case: str, seed: int, shape: tuple[int, int] = (96, 96), n_slices: int = 6,
               drop: str | None = None) -> tuple[Path, Path]:
    """``<case>.nii.gz`` (image, (1, n_slices, *shape)) + ``<case>_gt.nii.gz`` (labels lv=1,myo=2,rv=3).

    ``drop``: a structure removed from the reference labels.
    """
    import nibabel as nib

    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.labels import LabelMap
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=1, n_slices=n_slices, shape=shape, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / f"{case}.nii.gz"
    nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 3), ph.image.affine), str(image))
    labels = ph.labels.copy()
    if drop:
        labels[labels == LabelMap.parse(MAP)[drop]] = 0
    ref = folder / f"{case}_gt.nii.gz"
    write_labels(labels, ph.image, ref, MAP)
    return image, ref


def read_labels(path: Path) -> np.ndarray:
    from medseg.io import read_label_volume

    return np.asarray(read_label_volume(path).array)
