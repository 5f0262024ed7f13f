"""`medseg segment` (not implemented yet)."""

from __future__ import annotations

import typer

from ..errors import NotImplementedYet
from ._app import app


@app.command("segment", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def segment_command(ctx: typer.Context) -> None:
    """Not implemented yet."""
    raise NotImplementedYet("'medseg segment' is not implemented yet")
