"""`medseg demo -o OUT`: the whole product on a generated study (no data, no download)."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import app, console


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("medseg_demo"), "-o", "--out", help="Output folder."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    seed: int = typer.Option(7, "--seed", help="Phantom seed."),
) -> None:
    """Segment and measure a synthetic cine study with the shipped default model."""
    from ..demo import run_demo

    with console.status("running the demo on a synthetic short-axis cine..."):
        run_demo(out, device=device, seed=seed, log=lambda s: console.print(s, highlight=False))
