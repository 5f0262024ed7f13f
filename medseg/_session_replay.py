"""Replaying a provenance log onto a :class:`medseg.session.Session` (all or nothing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import MedsegError, PromptError
from .types import check_action, prompt_from_json

#: what a malformed log that the checks missed raises inside an operation (a replay names it)
_MALFORMED = (KeyError, TypeError, AttributeError, ValueError, IndexError, OverflowError)


#: the operations of a provenance log that ask the model for structures
ASKING_OPS = ("prompt", "propagate", "auto")


def structures_in_log(actions: Any) -> set[str]:
    """The structures a provenance log's ``actions`` asked the model for (prompted, propagated,
    zero-click), whether or not they were found; malformed entries are passed over."""
    named: set[str] = set()
    for a in actions if isinstance(actions, list) else ():
        if isinstance(a, dict) and a.get("op") in ASKING_OPS:
            prompt, group = a.get("prompt"), a.get("structures")
            named.update(n for n in (a.get("structure"), prompt.get("structure") if isinstance(prompt, dict) else None,
                                     *(group if isinstance(group, list) else ())) if isinstance(n, str) and n)
    return named


def check_log(actions: list[Any], shape: tuple[int, int, int, int], structures: Any, top: int = 255) -> None:
    """Check every action of a provenance log before any runs (:func:`medseg.types.check_action`
    on a (T, Z, Y, X) image of ``shape``, a session of ``structures`` (names) and labels up to
    ``top``): PromptError naming the first malformed action's number. Needs no model:
    ``medseg segment --replay`` runs it before the model loads, :meth:`SessionReplay.replay` first."""
    n = len(actions)
    for i, a in enumerate(actions):
        try:
            check_action(a, shape, structures, top)
        except (PromptError, *_MALFORMED) as e:
            what = str(e) if isinstance(e, PromptError) else f"{type(e).__name__}: {e}"
            raise PromptError(f"action {i + 1} of {n} in the log is malformed: {what}") from None


class SessionReplay:
    """:meth:`replay` for :class:`medseg.session.Session` (a mixin: it uses the session's
    operations, labels, log and undo history)."""

    def replay(self, actions: list[dict[str, Any]], progress: Callable[[int, int], None] | None = None) -> None:
        """Re-run a provenance log (the ``actions`` of :meth:`provenance`) on this session; all or
        nothing: every action is checked first (:func:`medseg.types.check_action`), and a log
        that fails part way leaves the labels, the undo history and the log as they were.
        PromptError (or the typed error of the action that failed) naming the action's number.

        ``progress(done, n)`` after each action, and again with the same ``done`` between the
        slices of a long one (a propagation, a zero-click pass), so a callback that raises (a
        cancel) stops the replay there too, all or nothing as any failure."""
        if not isinstance(actions, list):
            raise PromptError(f"a provenance log's actions must be a list, got {type(actions).__name__}")
        n = len(actions)
        check_log(actions, self.volume.shape, self.structures, int(np.iinfo(self.labels.dtype).max))
        saved = self._snapshot()
        self._replaying = True  # the undo history keeps every step (the log's undos found theirs when recorded)
        try:
            for i, a in enumerate(actions):
                try:
                    self._replay_one(a, (lambda _d, _t, i=i: progress(i, n)) if progress else None)
                except MedsegError as e:
                    raise type(e)(f"action {i + 1} of {n} in the log ({a['op']}): {e}") from None
                except _MALFORMED as e:  # what the checks missed
                    raise PromptError(f"action {i + 1} of {n} in the log is malformed ({type(e).__name__}: {e})") from None
                if progress:
                    progress(i + 1, n)
        except BaseException:
            self._snapshot(saved)
            raise
        finally:
            self._replaying = False

    def _snapshot(self, saved: tuple | None = None) -> tuple:
        """The labels, model results, locks, log and undo history (or, given ``saved``, put back)."""
        if saved is None:
            return (self.labels.copy(), dict(self.results), {k: s.locked for k, s in self.structures.items()},
                    len(self.log), list(self._undo), list(self._redo))
        self.labels[...] = saved[0]
        self.results.clear()
        self.results.update(saved[1])
        for k, locked in saved[2].items():
            self.structures[k].locked = locked
        del self.log[saved[3]:]
        self._undo[:], self._redo[:] = saved[4], saved[5]
        return saved

    def _replay_one(self, a: dict[str, Any], between: Callable[[int, int], None] | None = None) -> None:
        """One action of :meth:`replay`; ``between`` is called between the slices of a long one."""
        op = a["op"]
        if op == "prompt":
            self.apply_prompt(prompt_from_json(a["prompt"]), multimask=a.get("multimask", False))
        elif op == "propagate":
            self.propagate(a["structure"], a["frame"], a["slice"], a.get("through", "z"), a.get("direction", "both"), progress=between)
        elif op == "auto":
            with self.zero_click_region(a.get("us_region")):  # as recorded: a log from before regions ran on the whole screen
                self.auto(a.get("structures"), a.get("frames"), progress=between)
        elif op == "lock":
            self.lock(a["structure"], a["locked"])
        elif op == "clear":
            self.clear(a["structure"], a.get("frame"), a.get("slice"))
        elif op == "undo":
            self.undo()
        elif op == "redo":
            self.redo()
        elif op == "edit":
            from .edits import replay_edit

            replay_edit(self, a)
        elif op == "review":
            self.log.append(dict(a))
        else:
            raise PromptError(f"cannot replay unknown action {op!r}")
