"""The ``medseg`` command line (typer + rich). Each command is a thin function over the
library; every :class:`medseg.errors.MedsegError` becomes one line on stderr and exit code 1."""

from __future__ import annotations

import sys

from ._app import app, run_cli  # noqa: F401  (app: the typer application)

# Commands register themselves on ``app`` when their module is imported.
from . import info_cmd, segment_cmd, batch_cmd, evaluate_cmd, measure_cmd, models_cmd, train_cmd, adapt_cmd, bench_cmd, demo_cmd  # noqa: E402,F401


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    sys.exit(run_cli(argv))
