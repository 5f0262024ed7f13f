"""Reading back a JSON file that medseg wrote or a user edited (a label file's sidecar, a batch's
``summary.json``, a REPORT.json, a prompts file, an adapter's ``medseg.json``): one reader that
says in a few words what is wrong with a file it cannot give, rather than a traceback.

Text is UTF-8, with or without a byte-order mark (Windows Notepad writes one), or UTF-16/32 with
theirs (PowerShell's ``Out-File``). Refused, each with its reason: a folder or missing file, an
unreadable one, an empty one, bytes that are not such text, JSON that is malformed or truncated,
``NaN`` / ``Infinity`` (no JSON numbers; other tools cannot read them) unless the caller reads
them (``allow_nan``: a label sidecar a script edited with Python's ``json.dump``, an adapter card
an earlier release wrote), JSON nested too deep, and a value of another kind than the caller expects (a list where
an object belongs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import MedsegError

#: a JSON file larger than this is no file of medseg's (a sidecar is a few KB, a summary of 10 000 cases ~10 MB)
MAX_BYTES = 512 << 20

#: the start of the reason for JSON that Python parses but medseg does not read
NOT_READ = "is not a JSON file medseg reads"

_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number", float: "a number",
          type(None): "null"}


def kind_of(value: Any) -> str:
    """``value``'s JSON kind in words: ``"a list"``, ``"null"``, ``"an object"``, ..."""
    return _KINDS.get(type(value), type(value).__name__)


def _no_constant(name: str) -> Any:
    raise ValueError(f"holds {name}, which is not a JSON number")


def json_text_problem(raw: bytes, allow_nan: bool = False) -> tuple[Any, str | None]:
    """``raw`` (a file's bytes) parsed as JSON, and None; or None and why it is no JSON (see the
    module). ``allow_nan``: NaN and Infinity read as floats, for a caller that checks each value
    itself and names the field (a prompt's frame, an adapter's lora_alpha)."""
    if not raw.strip():
        return None, "is empty"
    try:
        text = raw.decode(json.detect_encoding(raw))
    except UnicodeDecodeError:
        return None, "is not valid JSON (not UTF-8 text)"
    try:
        return json.loads(text, **({} if allow_nan else {"parse_constant": _no_constant})), None
    except json.JSONDecodeError as e:
        # at the end of the text, or a string that runs to it: cut short (a full disk, a copy stopped)
        early = "; it ends there: a truncated file?" if e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated string") else ""
        return None, f"is not valid JSON ({e.msg.removesuffix(' at')} at line {e.lineno}, column {e.colno}{early})"
    except RecursionError:
        return None, f"{NOT_READ} (JSON nested too deep)"
    except ValueError as e:  # NaN / Infinity, an integer of thousands of digits
        return None, str(e) if str(e).startswith("holds ") else f"{NOT_READ} (a number of thousands of digits)"


def json_file_problem(path: str | os.PathLike, expect: type | tuple[type, ...] | None = dict,
                      allow_nan: bool = False) -> tuple[Any, str | None]:
    """The JSON value of the file ``path`` and None; or None and why it cannot be given, in
    words that follow the file's name (``"is empty"``, ``"is not valid JSON (Expecting ','
    delimiter at line 3, column 5)"``, ``"holds a list, not an object"``). ``expect``: the
    kind(s) of value wanted (None: any); ``allow_nan``: see :func:`json_text_problem`."""
    p = Path(path)
    try:
        if p.is_dir():
            return None, "is a folder, not a file"
        if not p.exists():
            return None, "does not exist"
        if p.stat().st_size > MAX_BYTES:
            return None, f"is too large for a JSON file of medseg's ({p.stat().st_size} bytes)"
        raw = p.read_bytes()
    except (OSError, ValueError) as e:
        return None, f"cannot be read ({getattr(e, 'strerror', None) or type(e).__name__})"
    obj, problem = json_text_problem(raw, allow_nan)
    if problem is None and expect is not None and not isinstance(obj, expect):
        wanted = " or ".join(dict.fromkeys(_KINDS.get(t, t.__name__) for t in (expect if isinstance(expect, tuple) else (expect,))))
        return None, f"holds {kind_of(obj)}, not {wanted}"
    return obj, problem


def read_json_file(path: str | os.PathLike, what: str = "", expect: type | tuple[type, ...] | None = dict,
                   error: type[MedsegError] = MedsegError, allow_nan: bool = False) -> Any:
    """The JSON value of the file ``path``; ``error`` (a MedsegError) in one line naming the file
    (after ``what``, e.g. ``"--replay "``) and what is wrong with it (:func:`json_file_problem`)."""
    from ._files import shown

    obj, problem = json_file_problem(path, expect, allow_nan)
    if problem is not None:
        raise error(f"{what}{shown(path)} {problem}")
    return obj
