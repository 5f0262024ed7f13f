"""``~`` and ``~user`` in the paths the command line takes, expanded in one place.

The shell expands ``~`` only at the start of a word: ``--out=~/x``, ``'~/x'`` and paths from a
script or a config reach medseg as they are. :func:`expand_user_paths` wraps every command (the
app registers them through it, :mod:`._app`), so every ``pathlib.Path`` argument or option, and
the few ``str`` options that name a file or folder (``--model``, ``--adapter``, ``--init-from``),
are expanded before the command runs. Other strings (label maps, structure names, series) are
left as they are."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import PurePath
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def expand_user(path: str | PurePath) -> Any:
    """``path`` with a leading ``~`` or ``~user`` replaced by that home folder, of the same type
    (``str`` or ``Path``); any other path unchanged. Raises :class:`medseg.errors.MedsegError`
    for a ``~user`` that names no user (nothing would be read or written under ``./~user``)."""
    text = os.fspath(path)
    if not text.startswith("~"):
        return path
    full = os.path.expanduser(text)
    if full.startswith("~"):
        from ..errors import MedsegError

        user = text[1:].split("/", 1)[0].split(os.sep, 1)[0]
        raise MedsegError(f"{text}: there is no user {user!r} (~{user} names that user's home folder; ~ alone is yours, {os.path.expanduser('~')})")
    return type(path)(full) if isinstance(path, PurePath) else full


def _model_spec(text: str) -> str:
    """``--model``: ``default``, ``NAME=PATH`` (the path expanded) or a checkpoint path."""
    if text.startswith("~") or "=" not in text:
        return expand_user(text)
    name, _, path = text.partition("=")
    return f"{name}={expand_user(path)}"


#: ``str`` parameters (by the command function's parameter name) that name a file or folder:
#: a name (of a model, of a shipped adapter) never starts with ``~``, so only paths change
_PATH_TEXT: dict[str, Callable[[str], str]] = {"model": _model_spec, "adapter": expand_user, "init_from": expand_user}


def _expanded(name: str, value: Any) -> Any:
    if isinstance(value, PurePath):
        return expand_user(value)
    if isinstance(value, list | tuple) and any(isinstance(v, PurePath) for v in value):  # a repeated option (--image)
        return type(value)(expand_user(v) if isinstance(v, PurePath) else v for v in value)
    if isinstance(value, str) and name in _PATH_TEXT:
        return _PATH_TEXT[name](value)
    return value


def expand_user_paths(command: F) -> F:
    """``command`` with ``~`` expanded in every path it is given (see the module docstring);
    typer reads the parameters and help of ``command`` itself (``functools.wraps``)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        return command(*args, **{k: _expanded(k, v) for k, v in kwargs.items()})

    return run  # type: ignore[return-value]
