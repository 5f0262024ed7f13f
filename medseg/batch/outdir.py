"""The output folder of a batch: one batch at a time (:func:`out_dir_lock`), and the clean-up of
what killed runs left there (:func:`remove_stale_temp_files`, :func:`remove_write_probes`).

Two batches writing one OUT_DIR at once removed each other's temporary files as stale (a case
of the other run then failed), could pair one run's sidecar with the other's labels where they
shared a case id, and each rewrote ``summary.*`` with its own cases only: the second now
refuses, in one line."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from .._files import stale_temp_files_of
from ..errors import ImageWriteError
from .cases import dicom_seg_dir, handed_over_path, output_path, review_png_path

#: the lock file in OUT_DIR (hidden: never a case; removed when the batch ends, left unlocked
#: by a batch killed outright, which the next one takes over)
LOCK_NAME = ".medseg-batch.lock"


class OutputFolderBusy(ImageWriteError):
    """Another batch is writing to the output folder."""


@contextlib.contextmanager
def out_dir_lock(out_dir: str | os.PathLike, shared: bool = False, name: str | None = None) -> Iterator[None]:
    """Hold ``out_dir``'s batch lock (``fcntl.flock`` on :data:`LOCK_NAME`) while the block runs.

    The operating system releases the lock of a process that dies (``kill -9``, out of memory),
    so a killed batch never blocks the next one. Where locks are not available (Windows, a file
    system without them) the block runs without one.

    Args:
        shared: the shards of one ``--shard K/N`` run hold it together (``LOCK_SH``): they run
            side by side, and a batch of the whole folder (``LOCK_EX``) is refused while any
            does, and refuses them. A shared holder leaves the file in place (another may hold it).
        name: another lock file in ``out_dir`` than :data:`LOCK_NAME` (one shard's own lock).
    Raises:
        OutputFolderBusy: another process holds the lock (its process id and host named, when
            it is a batch of the whole folder).
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path = Path(out_dir) / (name or LOCK_NAME)
    fd = _acquire(path, fcntl, shared)
    try:
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                if not shared and os.stat(path).st_ino == os.fstat(fd).st_ino:  # not another batch's, in an OUT_DIR made anew
                    path.unlink()  # while still held: a batch that opened this file retries on a new one
            os.close(fd)


def folder_identity(folder: str | os.PathLike) -> tuple[int, int] | None:
    """(device, inode) of ``folder``, None when it is gone: a batch stops when its output folder
    was removed (or replaced) while it ran, instead of writing a summary of outputs now gone."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _acquire(path: Path, fcntl, shared: bool = False) -> int | None:
    """The locked file's descriptor, or None where the file system has no locks."""
    import errno
    import socket

    while True:
        try:
            fd = open_lock_file(path, os.O_RDWR | os.O_CREAT)
        except PermissionError:  # left by another user's batch, killed: a read-only descriptor locks it too
            fd = open_lock_file(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None  # ENOLCK, EOPNOTSUPP: no locks here; run as before
            who = (f"another medseg batch{holder}" if holder else
                   "another medseg batch (or the shards of a --shard run)" if not shared else "a medseg batch of the whole folder")
            raise OutputFolderBusy(f"{who} is writing to {path.parent}: wait for it to end, or choose another output folder") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:  # the batch before removed it as it ended: lock the new one
            same = False
        if same:
            with contextlib.suppress(OSError):  # who holds it, for the message of a batch refused (shards: no one process)
                os.ftruncate(fd, 0)
                if not shared:
                    os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            return fd
        os.close(fd)


def open_lock_file(path: Path, flags: int) -> int:
    """``os.open`` of a lock file in OUT_DIR that never follows a symbolic link: the lock file is
    truncated and given the holder's process id, so a link planted under its name (an OUT_DIR in a
    shared folder) made a batch overwrite the file it points to. ImageWriteError (one line) for a link."""
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError:
        if not os.path.islink(path):
            raise
        try:
            to = f" (to {os.readlink(path)})"
        except OSError:
            to = ""
        raise ImageWriteError(f"{path} is a symbolic link{to}, not the lock file medseg writes there: "
                              "medseg does not write through it; remove the link (and check who placed it)") from None


#: OUT_DIR's folders a batch writes case files into and removes them from (``<case>_seg``: ``--dicom-seg``)
OWN_FOLDERS = ("handed_over", "measured", "shards")


def check_own_folders(out_dir: str | os.PathLike) -> None:
    """Refuse, in one line, an output folder whose own sub-folders (:data:`OWN_FOLDERS`, a case's
    ``<case>_seg``) are symbolic links: a batch removes ``<case>.json`` there for every case and
    writes its records and SEG files into them, so a link planted in a shared output folder made
    it delete and write files in the folder the link names."""
    try:
        entries = [e for e in os.scandir(out_dir) if e.is_symlink() and (e.name in OWN_FOLDERS or e.name.endswith("_seg"))]
    except OSError:
        return  # check_out_dir says why
    if entries:
        e = entries[0]
        try:
            to = f" (to {os.readlink(e.path)})"
        except OSError:
            to = ""
        raise ImageWriteError(f"{e.path} is a symbolic link{to}: a batch writes and removes case files in its {e.name} folder and "
                              "does not follow a link there; remove the link (and check who placed it), or choose another output folder")


def _read_holder(fd: int) -> str:
    """`` (process 1234 on host)`` from the lock file, or "" when it holds nothing readable yet."""
    try:
        pid, host = os.pread(fd, 256, 0).decode(errors="replace").split()[:2]
    except (OSError, ValueError):
        return ""
    return f" (process {pid} on {host})"


def remove_stale_temp_files(out_dir: str | Path, case_ids: Sequence[str], own_files: bool = True) -> list[Path]:
    """Remove the temporary files a killed run left in ``out_dir`` (:func:`medseg._files.atomic_path`'s
    names, for the batch's own outputs unless ``own_files`` is False (a shard: another shard may
    be writing the summary) and for these cases' outputs, skipped ones too; other hidden files
    are left alone). Returns the files removed."""
    import re

    from ..io import sidecar_path

    out = Path(out_dir)
    names = ["summary.csv", "summary.json", "cohort.csv", "cohort.png"] if own_files else []
    for cid in case_ids:
        labels = output_path(out, cid)
        names += [labels.name, sidecar_path(labels).name, review_png_path(out, cid).name]
    stale = stale_temp_files_of(out, names)
    stale += stale_temp_files_of(out / "handed_over", [handed_over_path(out, cid).name for cid in case_ids])
    stale += stale_temp_files_of(out / "measured", [f"{cid}.json" for cid in case_ids])  # --measure's stored rows (measure_rows)
    any_temp = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp")  # a case's SEG folder holds its SEG files alone
    for cid in case_ids:
        if (seg := dicom_seg_dir(out, cid)).is_dir():
            stale += [p for p in seg.iterdir() if any_temp.match(p.name)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def remove_write_probes(out_dir: str | Path, older_than_s: float = 0.0) -> list[Path]:
    """Remove the files that prove a folder writable (``.medseg-write-test-*``:
    :func:`medseg.batch.check_out_dir`, :func:`medseg._files.check_writable_folder`, which each
    case checks its outputs with) from ``out_dir`` and its ``handed_over`` folder. Such a file
    lives for a moment; one is left only by a process killed in that moment (the workers a batch
    ends on Ctrl-C, a crash or a full disk), so the batch removes them when it ends, however it
    ends. ``older_than_s``: only probes at least that old (a shard's: the other shards' are live
    while they check). Returns the files removed."""
    import time

    from .cases import WRITE_PROBE_PREFIX

    gone = []
    for folder in (Path(out_dir), Path(out_dir) / "handed_over"):
        try:
            probes = [folder / n for n in os.listdir(folder) if n.startswith(WRITE_PROBE_PREFIX)]
        except OSError:
            continue
        for p in probes:
            try:
                if older_than_s and time.time() - p.stat().st_mtime < older_than_s:
                    continue
                p.unlink()
            except OSError:
                continue
            gone.append(p)
    return gone
