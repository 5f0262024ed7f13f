"""Save and load actions of the segmentation widget: the labels written in the source geometry,
a saved session replayed (a mixin of :class:`medseg_napari._qt.segment_widget.SegmentWidget`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from qtpy.QtWidgets import QFileDialog

from .._controller import run_with_progress
from .._messages import error_line
from .._session_files import replay_length
from . import _prompt_layers as pl
from ._segment_close import save_failed_line


class SessionFilesMixin:
    """Save labels, load (replay) a session, and the file dialogs of the Session box."""

    def save(self, path: str | Path) -> list[Path]:
        """Write the labels now, on the calling thread (scripts); the button saves in a worker
        (:meth:`save_in_background`)."""
        c = self._saveable()
        files = c.save(path)
        self.status("Saved " + ", ".join(p.name for p in files))
        return files

    def _saveable(self) -> Any:
        """The session's controller, when there is something to save; else a one-line error."""
        c = self.controller
        if c is None:
            raise RuntimeError("no session to save")
        if self._live_binding() is None:
            raise ValueError(self.ui.status.text())
        if not c.labels.any():
            raise ValueError("nothing to save yet: no structure is labelled")
        return c

    def save_in_background(self, path: str | Path) -> None:
        """Save labels button: the labels scored and written in a worker (napari's progress bar;
        a 300-slice CT took 11 s, the viewer frozen, when written on the main thread)."""
        if self._busy:
            self.status("Wait for the running operation to finish, then save.", error=True)
            return
        c, b = self._saveable(), self.binding
        c.saving = True
        self._run_job(_save, c, path, desc="medseg: saving labels", on_done=lambda files: self._saved(files, b, path))

    def _saved(self, files: list[Path] | SaveFailed, b: pl.Binding, path: str | Path) -> None:
        """The save is written, also when its study was closed meanwhile (it said "the result of
        its save was discarded" over the files it had written); or it failed: the error, and for
        a study closed meanwhile a warning naming it and what is lost (its close did not warn)."""
        closed = not any(x is b for x in self.bindings.values())
        if isinstance(files, SaveFailed):
            e = files.error
            self.status(save_failed_line(b, path, e) if closed else error_line(e), error=True)
            return
        text = "Saved " + ", ".join(p.name for p in files)
        if closed:
            self.status(f"{text} (the session on {b.image.name} was closed meanwhile).")
            return
        self._job_done(text, b, "save")

    def load_session(self, path: str | Path) -> None:
        c = self.controller
        if c is None:
            self.status("Start a session on the image first, then load the saved session.", error=True)
            return
        b = self.binding
        # cancellable between actions: the replay runs into a buffer of its own, so the labels,
        # the session and its undo history stay as they were
        self._run_job(run_with_progress, c.load_session, path, desc="medseg: replaying session", total=replay_length(path),
                      cancel=self._cancellable("Replaying the session", "action"), on_done=lambda warns: self._loaded(warns, b))

    def _loaded(self, warns: list[str], b: pl.Binding) -> None:
        if not any(x is b for x in self.bindings.values()):
            self._job_done("", b, "replay")
            return
        pl.set_label_colours(b.labels, b.controller.label_map, {s.name: s.colour for s in b.controller.structures.values()})
        b.controller.mark_rows(b.labels.metadata)  # a loaded session's rows are its own, not the panel's default ones
        self._job_done("Session replayed." + (" " + " ".join(warns) if warns else ""), b, "replay")
        self._show_structures()

    def _ask_path(self, save: bool) -> None:
        if self.controller is None:
            self.status("Start a session first.", error=True)
            return
        if save:
            path, _ = QFileDialog.getSaveFileName(self, "Save labels", "labels.nii.gz", "NIfTI (*.nii.gz *.nii);;DICOM SEG (*.dcm)")
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Load session", "", "medseg session (*.json)")
        if not path:
            return
        try:
            self.save_in_background(path) if save else self.load_session(path)
        except ValueError as e:
            self.status(str(e), error=True)


class SaveFailed(NamedTuple):
    """A save's failure, handed back as its worker's result (a worker returning an exception
    raises it: its errored signal would not say which study's save it was)."""

    error: Exception


def _save(controller: Any, path: str | Path) -> list[Path] | SaveFailed:
    """The worker's save; ``controller.saving`` until it is written or failed (a study closed
    meanwhile says its labels are being saved, not that they are lost). A failure is returned,
    not raised: :meth:`SessionFilesMixin._saved` words it with the study it was of."""
    try:
        return controller.save(path)
    except Exception as e:  # a full disk, a folder gone or refused; a bug as "unexpected <type>: ..."
        return SaveFailed(e.with_traceback(None))  # (its frames would keep the closed study's session)
    finally:
        controller.saving = False
