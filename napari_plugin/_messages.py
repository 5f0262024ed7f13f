"""The one line a dock shows for an error (no Qt, no napari): worded as ``medseg`` on the
command line words it (``medseg.cli._app.run_cli``), so the panels and the CLI say one thing.

The docks showed ``f"{type(e).__name__}: {e}"``: "PromptError: 'lv' is empty ...",
"MeasurementError: the label layer is empty ...", where the CLI says only the message.
"""

from __future__ import annotations


def error_line(e: BaseException) -> str:
    """``e`` as one status line: a medseg error (bad input, a file it cannot use) by its message
    alone; running out of memory and a file the system refuses (permissions, a full disk) as the
    CLI says them; anything else as ``unexpected <type>: <message>`` (a bug: the type helps a report)."""
    from medseg._environ import out_of_memory_message
    from medseg._files import shown
    from medseg.errors import MedsegError

    text = shown(" ".join(str(e).split()))
    if isinstance(e, MedsegError):
        return text or type(e).__name__
    if (oom := out_of_memory_message(e)) is not None:
        return shown(oom)
    if isinstance(e, OSError) and e.filename and e.strerror:
        return f"cannot write or read {shown(e.filename)}: {e.strerror}"
    return f"unexpected {type(e).__name__}: {text}" if text else f"unexpected {type(e).__name__}"
