"""The shared typer app, the error boundary, and small CLI helpers."""

from __future__ import annotations

import errno
import os
import re
import sys
from typing import Any

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from .._files import shown
from ..errors import DISK_ERRNOS, Interrupted, MedsegError, OutputDiskFull
from ._paths import expand_user_paths

#: below this terminal width rich's option table cut option names (``--interpolate-mi…``) and
#: paths in the help; click's plain layout wraps them instead
_RICH_HELP_MIN_COLUMNS = 80


class _PlainWhenNarrow:
    """A command's help in rich's panels on a terminal at least :data:`_RICH_HELP_MIN_COLUMNS`
    wide, in click's plain layout on a narrower one (``COLUMNS=60``). ``medseg --help`` keeps
    rich's panels: its command table wraps, where click's plain list cuts each line short."""

    rich_markup_mode: Any

    def format_help(self, ctx: Any, formatter: Any) -> None:
        import shutil

        if shutil.get_terminal_size().columns >= _RICH_HELP_MIN_COLUMNS:
            return super().format_help(ctx, formatter)  # type: ignore[misc]
        mode, self.rich_markup_mode = self.rich_markup_mode, None
        try:
            return super().format_help(ctx, formatter)  # type: ignore[misc]
        finally:
            self.rich_markup_mode = mode


class _Command(_PlainWhenNarrow, typer.core.TyperCommand):
    pass


class _Typer(typer.Typer):
    """``typer.Typer`` whose commands get ``~`` expanded in every path they are given, however
    it reached them (``--out=~/x``, quoted, from a script): :func:`._paths.expand_user_paths`;
    their help fits a narrow terminal (:class:`_PlainWhenNarrow`)."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", _Command)

        def decorator(f: Any) -> Any:
            help_text = kwargs.get("help") if kwargs.get("help") is not None else f.__doc__
            register = super(_Typer, self).command(*args, **{**kwargs, "help": reflowed(help_text)})
            register(expand_user_paths(_refuse_empty_options(f)))
            return f  # the module keeps the plain function

        return decorator


def reflowed(text: str | None) -> str | None:
    """A command's help with each paragraph on one line. typer 0.29 keeps the docstring's line
    breaks inside a paragraph in rich's panel (no longer in the first one only), and rich then
    wraps each source line again: ragged lines at 80 columns ("--predicted names labels made" /
    "before."). Paragraphs (blank-line separated) and click's ``\\b`` blocks are kept."""
    if not text:
        return text
    import inspect

    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


#: text options (by parameter name) whose empty value (``--label-map "$MAP"``, MAP unset) was read as
#: the option left out: the labels read with medseg's default map (ACDC's lv=3 taken as the RV), the
#: base model without its adapter, a DICOM folder's first series
_NOT_EMPTY = ("label_map", "predicted_label_map", "model", "adapter", "init_from", "modality", "series", "scheduler")


def _refuse_empty_options(command: Any) -> Any:
    """``command`` refusing, in one line, an empty or blank value of a :data:`_NOT_EMPTY` option."""
    import functools

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        for name in _NOT_EMPTY:
            if isinstance(kwargs.get(name), str) and not kwargs[name].strip():
                raise MedsegError(f"--{name.replace('_', '-')} is empty: give a value, or leave the option out")
        _note_label_map_files(kwargs)
        return command(*args, **kwargs)

    return run


def _note_label_map_files(kwargs: dict) -> None:
    """A note for each ``--label-map`` / ``--predicted-label-map`` file of another tool (ITK-SNAP,
    nnU-Net) whose labels name no medseg structure and are left out of the map (papillary muscles, scar)."""
    if any(isinstance(kwargs.get(n), str) for n in ("label_map", "predicted_label_map")):
        from ..label_files import notes

        for note in notes(kwargs.get("label_map")) + notes(kwargs.get("predicted_label_map")):
            console.print(f"note: {shown(note)}", markup=False, highlight=False, soft_wrap=True)


app = _Typer(
    name="medseg",
    help="Promptable cardiac image segmentation: segment, measure, adapt, evaluate.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
class _Console(Console):
    """rich's Console, whose text lines stay whole where it does not draw on a terminal: piped or
    logged (a batch's log, CI), rich broke every message at column 80, mid-sentence and mid-number
    ("25.0 \\n% of the good ones"), so a grep for a case name or a flag missed half of them. On a
    terminal rich wraps words at its width as before; tables and progress bars are untouched."""

    def print(self, *objects: Any, soft_wrap: bool | None = None, **kwargs: Any) -> None:
        if soft_wrap is None and not self.is_terminal and all(isinstance(o, str) for o in objects):
            soft_wrap = True
        super().print(*objects, soft_wrap=soft_wrap, **kwargs)


console = _Console(stderr=True)
stdout = _Console()


def progress_bar(*columns: Any) -> Any:
    """A rich progress bar on stderr that leaves nothing behind: drawn on a terminal only (piped
    or logged, a transient bar printed an empty line, e.g. before the ``error:`` line). Into a
    file or a pipe (a cluster job's log, ``2> log``, ``| tee``) it prints a plain line now and
    then instead (:class:`_LoggedProgress`), so that a log shows how far a long run got."""
    from rich.progress import Progress

    if console.is_terminal:
        return Progress(*columns, console=console, transient=True)
    logged = _stderr_is_file_or_pipe()
    return _logged_progress_class()(*columns, console=console, transient=True, disable=True, log_lines=logged)


#: a logged run's progress line: the first after this many seconds, then every as many until
#: ten minutes have passed, then every five minutes
LOG_EVERY_S = 60.0
_clock = __import__("time").monotonic


def _stderr_is_file_or_pipe() -> bool:
    """Whether stderr is a real file descriptor that is no terminal (not a test's captured
    stream, which has none)."""
    try:
        return not os.isatty(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        return False


def _logged_progress_class() -> Any:
    from rich.progress import Progress

    class _LoggedProgress(Progress):
        """rich's Progress, not drawn; with ``log_lines`` each update prints the task as one
        plain line (its text columns: ``12/100``, ``0:14:32``, the description; no bar) when
        :data:`LOG_EVERY_S` has passed since the last (five minutes after the first ten)."""

        def __init__(self, *columns: Any, log_lines: bool = False, **kwargs: Any) -> None:
            super().__init__(*columns, **kwargs)
            self._log_lines, self._start, self._last = log_lines, _clock(), _clock()

        def update(self, task_id: Any, **kwargs: Any) -> None:
            super().update(task_id, **kwargs)
            if self._log_lines:
                self._log(task_id)

        def advance(self, task_id: Any, advance: float = 1) -> None:
            super().advance(task_id, advance)
            if self._log_lines:
                self._log(task_id)

        def _log(self, task_id: Any) -> None:
            from rich.progress import SpinnerColumn, TimeElapsedColumn, TimeRemainingColumn

            now = _clock()
            every = LOG_EVERY_S if now - self._start < 600 else 5 * LOG_EVERY_S
            if now - self._last < every:
                return
            self._last = now
            with self._lock:
                task = self._tasks[task_id]
            parts = []
            for column in self.columns:  # the text columns (12/100, the description); times below
                if isinstance(column, (SpinnerColumn, TimeElapsedColumn, TimeRemainingColumn)):
                    continue
                text = Text.from_markup(column.format(task=task)) if isinstance(column, str) else column(task)  # as rich renders it
                if isinstance(text, Text) and text.plain.strip():
                    parts.append(text.plain.strip())
            times = [f"{_hms(now - self._start)} elapsed"]
            if task.total and 0 < task.completed < task.total:
                times.append(f"about {_hms((now - self._start) * (task.total - task.completed) / task.completed)} left")
            self.console.print(shown(f"  ... {' '.join(parts)} ({', '.join(times)})"), markup=False, highlight=False, soft_wrap=True)

    return _LoggedProgress


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__
        from .._runinfo import software_versions
        from ..models.registry import shipped_sha256

        v = software_versions()  # for a methods section; `medseg models --json`: every model's and adapter's sha256
        stdout.print(f"medseg {__version__}\npython {v['python_version']}, torch {v['torch_version']}, numpy {v['numpy_version']}\n"
                     f"default model sha256 {shipped_sha256()}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version, help="Print medseg's version and exit."),
) -> None:
    """Promptable cardiac image segmentation: segment, measure, adapt, evaluate."""


def run_cli(argv: list[str] | None = None) -> int:
    """Run the app; turn library errors into one line + exit code. Returns the exit code."""
    from .._environ import escape_unencodable_output, quiet_matplotlib_dirs

    escape_unencodable_output()  # PYTHONIOENCODING=ascii, a Latin-1 locale: a CJK case id printed as \u60a3, not an error
    quiet_matplotlib_dirs()  # a read-only HOME: plots drawn, without matplotlib's two-line warning per process
    try:
        rv = app(args=argv, standalone_mode=False)  # returns the exit code of typer.Exit
    except Interrupted as e:  # a command that said what the interruption left
        console.print(shown(str(e)), markup=False, highlight=False, soft_wrap=True)
        return 130
    except MedsegError as e:
        console.print(f"[bold red]error:[/] {escape(_one_line(e))}", highlight=False, soft_wrap=True)
        return EXIT_IOERR if isinstance(e, OutputDiskFull) else 1
    except typer.Exit as e:
        return _exit(e, argv)
    except typer.Abort as e:
        if isinstance(e.__cause__, EOFError):  # typer turns any EOFError into Abort, as if Ctrl-D had answered a prompt:
            return _unexpected(e.__cause__)  # medseg asks nothing on stdin, so it is a file read cut short (a torch.load)
        console.print("aborted")
        return 130
    except KeyboardInterrupt:
        _say_interrupted(argv)
        return 130
    except Exception as e:  # click usage errors and unexpected failures
        if _is_usage_error(e):  # click's, or the copy of click that typer >= 0.29 vendors
            e.show()  # type: ignore[attr-defined]
            return int(e.exit_code)  # type: ignore[attr-defined]
        if type(e).__name__ == "Exit" and isinstance(getattr(e, "exit_code", None), int):
            return _exit(e, argv)
        return _unexpected(e)
    if rv == 130:  # Ctrl-C: typer turns KeyboardInterrupt into Exit(130), which click returns here
        _say_interrupted(argv)
    return rv if isinstance(rv, int) else 0


def _unexpected(e: BaseException) -> int:
    """An error that is no MedsegError reported in one line; its exit code (out of memory, a disk
    error, else :data:`EXIT_BUG`). MEDSEG_DEBUG=1 raises it instead."""
    if os.environ.get("MEDSEG_DEBUG"):
        raise e
    from .._environ import out_of_memory_message

    if (oom := out_of_memory_message(e)) is not None:  # MemoryError; torch's libraries under a tight `ulimit -v`
        console.print(f"[bold red]error:[/] {escape(shown(oom))}", highlight=False, soft_wrap=True)
        return EXIT_OSERR
    if isinstance(e, OSError) and e.filename and e.strerror:  # a full disk, a file too large, permissions
        console.print(f"[bold red]error:[/] cannot write or read {escape(shown(e.filename))}: {escape(e.strerror)}", highlight=False, soft_wrap=True)
        return EXIT_IOERR if e.errno in _DISK_ERRNOS else 1
    if isinstance(e, OSError) and e.errno in _DISK_ERRNOS:  # a write that names no file (the disk filled during it)
        console.print(f"[bold red]error:[/] cannot write the output: {escape(e.strerror or os.strerror(e.errno))} "
                      "(nothing was left half-written)", highlight=False, soft_wrap=True)
        return EXIT_IOERR
    console.print(
        f"[bold red]error:[/] unexpected {type(e).__name__}: {escape(_one_line(e) if str(e).strip() or not isinstance(e, EOFError) else 'a file ended early')} "
        "(set MEDSEG_DEBUG=1 for a traceback)",
        highlight=False,
        soft_wrap=True,
    )
    return EXIT_BUG


def _say_interrupted(argv: list[str] | None) -> None:
    """What Ctrl-C left: a batch goes on with --resume; another command wrote nothing half-way."""
    command = _command_name(argv)
    console.print("interrupted: outputs written so far are complete; the same command with --resume goes on" if command == "batch" else
                  f"interrupted: {'medseg ' + command if command else 'medseg'} left no output half-written", highlight=False)


def _command_name(argv: list[str] | None) -> str | None:
    """The medseg command being run (``batch``, ``segment``, ...), from the arguments (None: the process's)."""
    return next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), None)


#: the exit code of an unexpected error (a bug in medseg, not bad input): sysexits' EX_SOFTWARE, so a
#: workflow manager tells it from the 1 of an input it should not retry
EXIT_BUG = 70
#: out of memory (sysexits' EX_OSERR): the machine, not the input; a workflow manager may retry with more memory
EXIT_OSERR = 71
#: the disk filled, went read-only or failed while writing (EX_IOERR): nothing half-written; retry once there is room
EXIT_IOERR = 74

#: errors of a write that fills or cannot touch the disk: a one-line message, not "unexpected"
_DISK_ERRNOS = (*DISK_ERRNOS, errno.EFBIG, errno.EIO)


def _exit(e: BaseException, argv: list[str] | None) -> int:
    """A typer/click Exit's code; Ctrl-C (typer turns KeyboardInterrupt into Exit(130)) says so."""
    code = int(getattr(e, "exit_code", 0) or 0)
    if code == 130:
        _say_interrupted(argv)
    return code


def _is_usage_error(e: BaseException) -> bool:
    """A click ``ClickException`` (missing option, unknown option, bad value): click's own or
    ``typer._click``'s, told apart by class name since typer 0.29 no longer raises click's."""
    return any(c.__name__ == "ClickException" for c in type(e).__mro__) and callable(getattr(e, "show", None))


#: C0 control characters and DEL (an ESC in a DICOM header would reach the terminal as an escape sequence)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: a lone surrogate: a byte of a file name that is not UTF-8, as Python decodes it
_SURROGATE = re.compile("[\ud800-\udfff]")


def plain(value: Any) -> Text:
    """A table cell or line from text a file supplied (a DICOM header, a sidecar, a path): no
    rich markup read into it (``[/]`` raised, ``[red]`` vanished) and no control characters."""
    return Text(_CONTROL.sub(" ", shown(value) if _SURROGATE.search(str(value)) else str(value)))


def _one_line(e: BaseException) -> str:
    """The message on one line, a file name's non-UTF-8 bytes escaped (:func:`medseg._files.shown`:
    the console cannot write a lone surrogate)."""
    text = str(e).strip() or type(e).__name__
    return shown(" ".join(text.split()))


def print_json(obj: Any) -> None:
    import json

    from .._files import _jsonable

    sys.stdout.write(json.dumps(_jsonable(obj), indent=2) + "\n")
