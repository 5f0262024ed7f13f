"""Workers of the medseg docks that forget their job once it ends.

napari registers every worker made by ``create_worker`` in its window's task-status list
(``TaskStatusManager``), holding ``worker.quit`` and through it the worker, its function, its
arguments and the slots connected to its signals, for as long as the viewer is open (napari
0.5-0.6 never drops a finished task). A day of studies in one viewer kept every study's
session alive that way (its image, label buffers, undo history and embeddings): some 30 MB a
small study, never freed after its layers were removed. :func:`start_worker` hands napari a
worker that holds only an emptied box once it finished, and then takes the worker out of that
list (:func:`_forget_task`): the worker, its signals and its progress bar (some 30 KB of Python
objects, three workers a study) are freed too.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def start_worker(fn: Callable[..., Any], *args: Any, progress: Any, on_done: Callable[[Any], None],
                 on_error: Callable[[BaseException], None], on_finished: Callable[[], None], **kwargs: Any) -> Any:
    """Start a napari worker running ``fn(*args, **kwargs)`` (a generator function: a generator
    worker, its yields a progress bar); ``on_done(result)``, ``on_error(exception)``, then
    ``on_finished()`` on the main thread. The function, its arguments and the two callbacks
    are dropped when the worker finishes. Returns the worker (started)."""
    import weakref

    from napari import current_viewer
    from napari.qt.threading import create_worker

    job: dict[str, Any] = {"call": (fn, args, kwargs), "done": on_done, "error": on_error}

    if inspect.isgeneratorfunction(fn):
        def run() -> Any:
            f, a, k = job.pop("call")
            return (yield from f(*a, **k))
    else:
        def run() -> Any:
            f, a, k = job.pop("call")
            return f(*a, **k)

    def finished() -> None:
        job.clear()
        _forget_task(window, worker_ref())
        _unless_closed(on_finished)

    window = getattr(current_viewer(), "window", None)  # where create_worker registers it
    worker = create_worker(run, _progress=progress, _ignore_errors=True)
    worker_ref = weakref.ref(worker)  # (a closure holding the worker itself would keep it: a cycle through Qt)
    worker.returned.connect(lambda result: _unless_closed(job["done"], result) if "done" in job else None)
    worker.errored.connect(lambda e: _unless_closed(job["error"], e) if "error" in job else None)
    worker.finished.connect(finished)
    worker.start()
    return worker


def _unless_closed(callback: Callable[..., Any], *args: Any) -> None:
    """``callback(*args)``, unless the dock it updates went with its window: a viewer closed while
    a job ran (an embedding of the slice shown) raised "wrapped C/C++ object of type QComboBox
    has been deleted" when the job came back."""
    try:
        callback(*args)
    except RuntimeError as e:
        if "has been deleted" not in str(e):
            raise


def _forget_task(window: Any, worker: Any) -> None:
    """Take the finished ``worker`` out of the napari window's task-status list, where napari
    keeps every worker (through its ``quit``) for the viewer's life, and drop its closed
    progress bar. napari has no public call for it: another napari (no such list) is left as is."""
    if worker is None:
        return
    worker.pbar = None
    tasks = getattr(getattr(window, "_task_status_manager", None), "_tasks", None)
    if not isinstance(tasks, dict):
        return
    for key, item in list(tasks.items()):
        if getattr(getattr(item, "_cancel_callback", None), "__self__", None) is worker:
            tasks.pop(key, None)
