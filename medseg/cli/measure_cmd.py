"""`medseg measure` (not implemented yet)."""

from __future__ import annotations

import typer

from ..errors import NotImplementedYet
from ._app import app


@app.command("measure", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def measure_command(ctx: typer.Context) -> None:
    """Not implemented yet."""
    raise NotImplementedYet("'medseg measure' is not implemented yet")
