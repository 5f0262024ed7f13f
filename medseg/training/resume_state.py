"""What ``adapt`` and ``train`` keep in ``state.pt`` beyond weights and optimizer: the random
draws' state, so that a resumed run goes on with the draws the run it continues would have
made (it repeated the first session's batches, augmentations and prompts), and state.pt read
back in one line when it is damaged."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

#: what torch.load raises on a file cut short or empty (EOFError, which click took for Ctrl-D: "aborted",
#: exit 130), on one not written by torch.save (UnpicklingError) or cut inside its zip (RuntimeError, OSError)
_DAMAGED = (EOFError, RuntimeError, OSError, ValueError, KeyError, IndexError, pickle.PickleError, zipfile.BadZipFile)


def rng_state(gen: torch.Generator) -> dict[str, torch.Tensor]:
    """The state of the run's generator and of torch's global generators (host; the GPU's for a
    CUDA generator), as tensors: state.pt stays loadable with ``weights_only=True``."""
    state = {"gen": gen.get_state(), "torch": torch.get_rng_state()}
    if gen.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(gen.device)
    return state


def restore_rng(saved: Any, gen: torch.Generator) -> bool:
    """Put back what :func:`rng_state` saved (the ``rng`` entry of a state); False (nothing
    changed) for a state of an older medseg, which did not save it."""
    if not isinstance(saved, dict) or not all(isinstance(saved.get(k), torch.Tensor) for k in ("gen", "torch")):
        return False
    gen.set_state(saved["gen"].cpu())
    torch.set_rng_state(saved["torch"].cpu())
    if gen.device.type == "cuda" and isinstance(saved.get("cuda"), torch.Tensor):
        torch.cuda.set_rng_state(saved["cuda"].cpu(), gen.device)
    return True


def load_state(path: Path, device: str | torch.device) -> dict[str, Any]:
    """``path`` (a state.pt) read with ``weights_only=True``.

    Raises:
        MedsegError: the file is empty, cut short or not a state torch.save wrote (an unreadable
            one still raises PermissionError, reported as such)."""
    from .._files import shown
    from ..errors import MedsegError

    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except PermissionError:
        raise
    except _DAMAGED as e:  # also what is not damage (out of memory on the device, a type weights_only refuses): said
        why = " ".join(str(e).split())[:160] or type(e).__name__
        raise MedsegError(f"{shown(path)} is damaged or unreadable ({why}): run again without --resume, or from a copy") from None
    if not isinstance(state, dict):
        raise MedsegError(f"{shown(path)} holds a {type(state).__name__}, not a training state: run again without --resume, or from a copy")
    return state
