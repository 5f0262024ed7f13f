"""``python -m medseg``: the command line."""

from medseg.cli import main

main()
