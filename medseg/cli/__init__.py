"""The ``medseg`` command line (typer + rich). Each command is a thin function over the
library; every :class:`medseg.errors.MedsegError` becomes one line on stderr and exit code 1."""

from __future__ import annotations

import sys

# Commands register themselves on ``app`` when their module is imported.
from . import adapt_cmd, batch_cmd, bench_cmd, compare_cmd, demo_cmd, evaluate_cmd, info_cmd, measure_cmd, models_cmd, segment_cmd, train_cmd  # noqa: E402,F401
from ._app import app, run_cli  # noqa: F401  (app: the typer application)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    sys.exit(run_cli(argv))
