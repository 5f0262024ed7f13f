"""What medseg does about the process it runs in on a locked-down machine (a cluster node): a
home folder that cannot be written, a console that cannot encode every character, a virtual
memory limit. The command line calls these (and a batch's worker processes); the library
itself leaves the process alone."""

from __future__ import annotations

import logging
import sys

#: parts of the format strings of matplotlib's warnings about a config or cache folder it cannot
#: write (a read-only or missing HOME, XDG_CACHE_HOME or MPLCONFIGDIR): it then uses a temporary
#: folder it removes at exit, and says so in two lines per process
_MPL_DIR_WARNINGS = ("mkdir -p failed for path", "is not a writable directory", "Matplotlib created a temporary cache directory")


class _MatplotlibDirFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING and isinstance(record.msg, str)
                    and any(s in record.msg for s in _MPL_DIR_WARNINGS))


def quiet_matplotlib_dirs() -> None:
    """Drop matplotlib's warnings that its config/cache folder cannot be written (matplotlib
    need not be imported yet; it is not imported here). Plots are drawn as before, matplotlib
    keeping its font cache in a temporary folder; ``MPLCONFIGDIR`` set to a writable folder
    keeps it between runs (~0.6 s less per process)."""
    log = logging.getLogger("matplotlib")
    if not any(isinstance(f, _MatplotlibDirFilter) for f in log.filters):
        log.addFilter(_MatplotlibDirFilter())


def escape_unencodable_output() -> None:
    r"""Let stdout and stderr write any text: where their encoding is not UTF-8
    (``PYTHONIOENCODING=ascii``, a Latin-1 locale) and a character it cannot encode would raise
    UnicodeEncodeError (``errors="strict"``), write it as a backslash escape (``\u60a3``) instead."""
    import codecs

    for stream in (sys.stdout, sys.stderr):
        encoding, errors = getattr(stream, "encoding", None), getattr(stream, "errors", None)
        if not encoding or errors != "strict" or not hasattr(stream, "reconfigure"):
            continue
        try:
            if codecs.lookup(encoding).name != "utf-8":
                stream.reconfigure(errors="backslashreplace")
        except (LookupError, ValueError, OSError):
            pass


def address_space_limit() -> int | None:
    """The process's virtual memory limit in bytes (``ulimit -v``), None when there is none."""
    try:
        import resource
    except ImportError:  # not Unix
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY or soft <= 0 else int(soft)


#: what the message of an allocation that failed says (torch's CPU allocator, the dynamic loader)
_OOM_TEXT = ("failed to map segment", "can't allocate memory", "Cannot allocate memory")


def out_of_memory_message(e: BaseException) -> str | None:
    """One line for an error that means the process ran out of memory (a MemoryError, torch's
    CPU allocator, a shared library such as torch's that cannot be mapped under ``ulimit -v``),
    naming the virtual memory limit when one is set; None for any other error."""
    text = " ".join(str(e).split()) or type(e).__name__
    if not (isinstance(e, MemoryError) or any(s in text for s in _OOM_TEXT)):
        return None
    from .io.limits import format_gb

    limit = address_space_limit()
    if limit is not None:
        return (f"out of memory: {text} (the virtual memory limit, ulimit -v, is {format_gb(limit)}; torch alone maps "
                "several GB of address space: raise the limit, or lift it and cap resident memory instead, e.g. Slurm's --mem)")
    return f"out of memory: {text} (give the job more memory)"
