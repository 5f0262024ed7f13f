"""``-h`` / ``--help`` and a one-line usage error for the benchmarks that read ``sys.argv`` themselves."""

from __future__ import annotations

import sys


def check_args(doc: str | None, n_min: int, argv: list[str] | None = None) -> list[str]:
    """The script's arguments (``sys.argv[1:]`` by default). With ``-h`` or ``--help``: print the
    script's docstring and exit 0; with fewer than ``n_min`` arguments: the docstring on stderr
    and exit 2 (as argparse does), not an IndexError's traceback."""
    args = sys.argv[1:] if argv is None else list(argv)
    text = (doc or "").strip()
    if any(a in ("-h", "--help") for a in args):
        print(text)
        raise SystemExit(0)
    if len(args) < n_min:
        print(f"{text}\n\nerror: expected at least {n_min} argument(s), got {len(args)}", file=sys.stderr)
        raise SystemExit(2)
    return args
