"""Lists of slice or frame numbers as short text: "12-53, 60" for 12, 13, ..., 53, 60."""

from __future__ import annotations

from collections.abc import Iterable


def compact_ranges(numbers: Iterable[int], most: int | None = None) -> str:
    """``numbers`` (any order, repeats ignored) as comma-separated runs: three or more
    consecutive numbers as ``first-last``, others one by one ("0, 1, 4-9, 12"); ``most`` runs
    at most, then ", ..." (a status line stays one line). "" for no numbers."""
    ns = sorted({int(n) for n in numbers})
    runs: list[list[int]] = []
    for n in ns:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    parts = [f"{r[0]}-{r[-1]}" if len(r) >= 3 else ", ".join(map(str, r)) for r in runs]
    if most is not None and len(parts) > most:
        return ", ".join(parts[:most]) + ", ..."
    return ", ".join(parts)
