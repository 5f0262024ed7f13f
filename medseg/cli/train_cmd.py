"""`medseg train` (not implemented yet)."""

from __future__ import annotations

import typer

from ..errors import NotImplementedYet
from ._app import app


@app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train_command(ctx: typer.Context) -> None:
    """Not implemented yet."""
    raise NotImplementedYet("'medseg train' is not implemented yet")
