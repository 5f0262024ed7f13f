"""`medseg batch` (not implemented yet)."""

from __future__ import annotations

import typer

from ..errors import NotImplementedYet
from ._app import app


@app.command("batch", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def batch_command(ctx: typer.Context) -> None:
    """Not implemented yet."""
    raise NotImplementedYet("'medseg batch' is not implemented yet")
