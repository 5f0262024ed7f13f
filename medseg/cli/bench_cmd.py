"""`medseg bench` (not implemented yet)."""

from __future__ import annotations

import typer

from ..errors import NotImplementedYet
from ._app import app


@app.command("bench", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_command(ctx: typer.Context) -> None:
    """Not implemented yet."""
    raise NotImplementedYet("'medseg bench' is not implemented yet")
