"""A study closed (its image or labels layer removed) while its labels are being saved: the close
says "its labels are being saved" (no warning: nothing is lost yet). When that save then failed
(a full disk, a folder gone or refused), the dock said only the bare error ("cannot write into
…: … is a file, not a folder"), naming neither the study nor that its labels were gone with it; it is now a
warning (red, and a napari notification) naming the study, the file it meant to write and what
is lost, as a close with unsaved labels says it. A save that succeeds stays a plain line.
Headless (``xvfb-run -a``)."""

from __future__ import annotations

import errno
import shutil
import threading

import numpy as np
import pytest
from napari_helpers import gui_ready, start_widget

pytestmark = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
T_OUT = 60_000  # ms


def _study(viewer, qtbot, models, cine, name="cine"):
    from medseg_napari._layers import image_layer_kwargs

    viewer.add_image(np.array(cine.array), **image_layer_kwargs(cine, name))
    w = start_widget(viewer, qtbot, models, name)
    b = w.binding
    t, z = b.current_index(viewer)
    b.points.add(np.array([[t, z, 48, 48]], float))
    qtbot.waitUntil(lambda: not w.busy and (b.controller.labels == b.controller.spec("lv").value).any(), timeout=T_OUT)
    return w, b


def _gated(b) -> threading.Event:
    """The session's save waits for the returned event: still running when the study is closed."""
    gate, save = threading.Event(), b.controller.save
    b.controller.save = lambda path: gate.wait(30) and save(path)
    return gate


def _ended(w, qtbot) -> tuple[str, bool]:
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    qtbot.wait(100)  # the job's signals delivered, the notification raised
    return w.ui.status.text(), bool(w.ui.status.styleSheet())


def test_a_save_failing_after_its_study_closed_warns_that_the_labels_are_lost(make_napari_viewer, qtbot, model_provider,
                                                                              small_cine, tmp_path, notes):
    viewer = make_napari_viewer()
    w, b = _study(viewer, qtbot, model_provider, small_cine[0])
    out = tmp_path / "out"
    out.mkdir()
    gate = _gated(b)
    w.save_in_background(str(out / "cine_labels.nii.gz"))
    viewer.layers.remove(b.image)
    assert w.ui.status.text() == "Session on cine closed: its labels layer went with it; its labels are being saved."
    shutil.rmtree(out)
    out.write_text("not a folder")  # the folder it writes into is gone: the save cannot write there
    gate.set()
    text, warn = _ended(w, qtbot)
    assert text == (f"Session on cine closed, and saving its labels to {out / 'cine_labels.nii.gz'} failed (cannot write into "
                    f"{out}: {out} is a file, not a folder): its labels of LV are lost, never saved (Save labels before closing a study to keep them).")
    assert warn and notes == [f"medseg: {text}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_save_of_a_closed_study_saved_before_names_the_file_that_keeps_them(make_napari_viewer, qtbot, model_provider,
                                                                                     small_cine, tmp_path, notes):
    viewer = make_napari_viewer()
    w, b = _study(viewer, qtbot, model_provider, small_cine[0])
    w.save(tmp_path / "first_labels.nii.gz")
    t, z = b.current_index(viewer)
    b.controller.labels[t, z, 10:14, 10:14] = b.controller.spec("myo").value  # painted after that save

    gate, b.controller.save = _held_failure(errno.ENOSPC, "No space left on device")
    w.save_in_background(str(tmp_path / "second_labels.nii.gz"))
    viewer.layers.remove(b.labels)
    gate.set()
    text, warn = _ended(w, qtbot)
    assert text == (f"Session on cine closed, and saving its labels to {tmp_path / 'second_labels.nii.gz'} failed (cannot write or read "
                    f"{tmp_path / 'second_labels.nii.gz'}: No space left on device): the changes to its labels of LV, MYO since "
                    "first_labels.nii.gz are lost (first_labels.nii.gz keeps the labels as they were then).")
    assert warn and notes == [f"medseg: {text}"]


def test_a_failed_save_of_a_closed_study_with_nothing_unsaved_says_what_keeps_them(make_napari_viewer, qtbot, model_provider,
                                                                                   small_cine, tmp_path, notes):
    viewer = make_napari_viewer()
    w, b = _study(viewer, qtbot, model_provider, small_cine[0])
    w.save(tmp_path / "first_labels.nii.gz")  # saved, unchanged since: closing it loses nothing

    gate, b.controller.save = _held_failure(errno.EACCES, "Permission denied")
    w.save_in_background(str(tmp_path / "copy_labels.nii.gz"))
    viewer.layers.remove(b.image)
    gate.set()
    text, warn = _ended(w, qtbot)
    assert text == (f"Session on cine closed, and saving its labels to {tmp_path / 'copy_labels.nii.gz'} failed (cannot write or read "
                    f"{tmp_path / 'copy_labels.nii.gz'}: Permission denied); nothing is lost: first_labels.nii.gz keeps its labels as they are.")
    assert warn and notes == [f"medseg: {text}"]


def test_a_failed_save_of_an_open_study_and_a_save_after_the_close_read_as_before(make_napari_viewer, qtbot, model_provider,
                                                                                  small_cine, tmp_path, notes):
    viewer = make_napari_viewer()
    w, b = _study(viewer, qtbot, model_provider, small_cine[0])
    out = tmp_path / "file"
    out.write_text("a file, not a folder")
    w.save_in_background(str(out / "cine_labels.nii.gz"))  # the study stays open: the error alone, as before
    text, warn = _ended(w, qtbot)
    assert text == f"cannot write into {out}: {out} is a file, not a folder"
    assert warn and notes == [f"medseg: {text}"]
    assert w.binding is b and not b.controller.saving

    notes.clear()
    gate = _gated(b)  # written after the close: a plain line, no notification
    w.save_in_background(str(tmp_path / "cine_labels.nii.gz"))
    viewer.layers.remove(b.image)
    gate.set()
    assert _ended(w, qtbot) == ("Saved cine_labels.nii.gz, cine_labels.json (the session on cine was closed meanwhile).", False)
    assert notes == []


def _held_failure(code: int, text: str):
    """A save that waits for the returned event, then fails with OSError ``code`` (a full disk, a refused folder)."""
    gate = threading.Event()

    def save(path):
        gate.wait(30)
        raise OSError(code, text, str(path))

    return gate, save
