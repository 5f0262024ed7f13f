"""Saved sessions, before they are replayed (Qt-free)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from medseg.errors import MedsegError

from ._controller import read_session_file


def replay_length(path: str | os.PathLike) -> int:
    """The number of actions a saved session (label sidecar or bare provenance) replays: the
    total of the replay's progress bar (0, an indeterminate bar, for a file that is no session;
    the replay itself then says why)."""
    try:
        doc = read_session_file(path)
    except MedsegError:
        return 0
    prov = doc.get("provenance", doc)
    actions = prov.get("actions") if isinstance(prov, Mapping) else None
    return len(actions) if isinstance(actions, list) else 0
