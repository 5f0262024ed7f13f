"""`medseg evaluate` (not implemented yet)."""

from __future__ import annotations

import typer

from ..errors import NotImplementedYet
from ._app import app


@app.command("evaluate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def evaluate_command(ctx: typer.Context) -> None:
    """Not implemented yet."""
    raise NotImplementedYet("'medseg evaluate' is not implemented yet")
