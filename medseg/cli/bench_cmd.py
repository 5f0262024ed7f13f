"""`medseg bench -o BENCH.json`: default model vs the SAM ViT-B architecture, one process."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import app, console, print_json


@app.command("bench")
def bench_command(
    out: Path = typer.Option(..., "-o", "--out", help="Benchmark JSON to write."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N (the GPU of that index); a GPU is used only when named."),
    repeats: int = typer.Option(20, "--repeats", help="Timed runs of the default encoder (median reported)."),
    sam_repeats: int = typer.Option(3, "--sam-repeats", help="Timed runs of the SAM ViT-B encoder."),
    model: str = typer.Option("default", "--model", help="Model to time against SAM ViT-B: default, sam_vit_b=PATH, medsam_vit_b=PATH, or a checkpoint path."),
    no_study: bool = typer.Option(False, "--no-study", help="Skip the whole-study timing."),
) -> None:
    """Time the default model against SAM ViT-B; write BENCH.json.

    Encoder time per slice, decoder time per prompt, and a whole ACDC-sized study (--no-study skips it)."""
    from .._files import _NOT_JSON, check_not_inputs, write_json_atomic
    from ..bench import run_bench
    from ..errors import MedsegError
    from ._options import check_device

    if repeats < 1 or sam_repeats < 0:
        raise MedsegError(f"--repeats must be >= 1 and --sam-repeats >= 0, got {repeats} and {sam_repeats}")
    check_device(device)
    check_not_inputs({"BENCH.json": out}, {})  # a folder it cannot write is refused before the minutes of timing
    if out.suffix.lower() in _NOT_JSON:  # `-o bench.csv` wrote JSON into a file a spreadsheet then opened as a broken table
        raise MedsegError(f"{out}: the benchmark (-o) is JSON; name it .json")
    with console.status("benchmarking (SAM ViT-B at 1024 px takes a while on a CPU)..."):
        result = run_bench(device=device, repeats=repeats, sam_repeats=sam_repeats, model=model, with_study=not no_study)
    write_json_atomic(out, result)
    print_json({k: v for k, v in result.items() if k not in ("machine", "study")})
