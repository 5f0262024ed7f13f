"""`medseg demo -o OUT`: the whole product on a generated study (no data, no download)."""

from __future__ import annotations

from pathlib import Path

import typer

from .._files import shown
from ._app import app, console


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("medseg_demo"), "-o", "--out", help="Output folder."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N (the GPU of that index); a GPU is used only when named."),
    seed: int = typer.Option(7, "--seed", help="Phantom seed."),
) -> None:
    """Segment and measure a synthetic cine study with the shipped default model."""
    from .._files import check_writable_folder
    from ..demo import run_demo
    from ..errors import ImageWriteError
    from ._options import check_device

    check_device(device)
    if out.exists() and not out.is_dir():
        raise ImageWriteError(f"{out} is a file; the demo writes a folder: choose another name")
    check_writable_folder(out)
    with console.status("running the demo on a synthetic short-axis cine..."):
        run_demo(out, device=device, seed=seed, log=lambda s: console.print(shown(s), markup=False, highlight=False))
