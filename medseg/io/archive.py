"""ZIP archives as input: a ``.zip`` is read like the folder (or the one image file) it holds.

Cardiac data often arrive zipped (UK Biobank: a subject's CMR as one ZIP of DICOM files, one
series per short-axis slice, with a ``manifest.csv``; a PACS or web portal's ``study.zip``; a
collaborator's ``case.zip`` holding one NIfTI). :func:`extracted` inflates the archive's members
into a private temporary folder made for this read, the existing readers read it there, and
the folder is removed afterwards: nothing is left on disk.

Member names are never used as paths: each name is split into its folders (``/`` or ``\\``;
empty, ``.`` and ``..`` parts dropped) and each part becomes a safe name of its own (letters,
digits, ``_``, ``-`` and ``.`` only; two parts that would clash get a number), so a ``../`` or
absolute name cannot write outside the folder. Left out: folders, symbolic links and other
non-regular members, hidden files (``.DS_Store``, ``__MACOSX/``), nested zips. An encrypted
member is refused. Before anything is inflated the members' declared sizes are checked against
the readers' memory guard (:func:`medseg.io.limits.available_bytes`) and the free space of the
temporary folder; no member is inflated past its declared size (a member that holds more, or
whose CRC fails, is refused).

What is read: the folder, when a member is DICOM (by its ending or the ``DICM`` marker; a
single top folder, ``case/...``, is descended into), else the one image file (``.nii.gz``,
``.mhd`` beside its ``.raw``, ...). ``Volume.meta["path"]`` is the zip, and each file in
``meta["files"]`` (DICOM) a reference ``/abs/study.zip!member/name.dcm``, which
:func:`local_files` inflates again where a source header is needed (DICOM SEG, SR). Error
messages name the zip and its members, never the temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..errors import ImageReadError, MedsegError

#: the file ending of an archive medseg reads (``medseg.io.readers.EXTENSIONS`` kind "archive")
ENDING = ".zip"
#: between an archive and a member in a reference: ``study.zip!IM_0001.dcm``
SEPARATOR = "!"
#: members of one archive medseg inflates at most (a UK Biobank CMR zip holds a few thousand)
MAX_MEMBERS = 100_000
#: folder levels of a member kept (deeper members are left out; the readers search 3-6 levels)
MAX_DEPTH = 16
#: the prefix of the private temporary folders (one left behind by a killed process can be removed)
TEMP_PREFIX = "medseg-zip-"
_CHUNK = 1 << 20
_UNSAFE = re.compile(r"[^\w.-]")
T = TypeVar("T")


def is_archive(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a ZIP archive (by its ending; it need not exist)."""
    name = Path(path).name.lower()
    return name.endswith(ENDING) and len(name) > len(ENDING)


def folder_like(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder, or a zip read as the folder it holds (``--series`` applies);
    not a zip that holds one image file (a NIfTI, a PNG: read as that file, so a ``medseg batch``
    case of it ignores ``--series`` as an image-file case does)."""
    p = Path(path)
    return p.is_dir() or (is_archive(p) and p.is_file() and not _holds_one_image_file(p))


def _holds_one_image_file(archive: Path) -> bool:
    """Whether a zip holds no DICOM and one image file, which :func:`extracted` reads as that file:
    told from the member names and, for members without a known ending, their first 132 bytes (the
    ``DICM`` marker); nothing is inflated. False for a zip that cannot be read (its reader says why)."""
    from .readers import is_bare_dicom

    try:
        with _open(archive) as zf:
            kinds = [(info, _kind(parts[-1])) for parts, info in _members(archive, zf)]
            if sum(k is not None for _, k in kinds) != 1 or any(k == "dicom" for _, k in kinds):
                return False
            for info, k in kinds:
                if k is None:
                    with zf.open(info) as f:
                        head = f.read(132)
                    if (len(head) == 132 and head[128:] == b"DICM") or is_bare_dicom(head):
                        return False
            return True
    except (MedsegError, OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error):
        return False


def split_reference(text: str) -> tuple[Path, str] | None:
    """(archive, member) of a reference ``ARCHIVE.zip!member``; None for any other text (a plain
    path, even one that holds ``.zip!``, is no reference when it exists)."""
    if Path(text).exists():
        return None
    first = None
    for m in re.finditer(re.escape(ENDING + SEPARATOR), text, re.IGNORECASE):
        archive, member = Path(text[: m.end() - 1]), text[m.end():]
        if archive.is_file():
            return archive, member
        first = first or (archive, member)
    return first


@dataclass
class Extracted:
    """An archive inflated into ``root``; ``target`` is what to read (a folder or one file)."""

    archive: Path
    root: Path
    target: Path
    names: dict[str, str] = field(default_factory=dict)  # temporary path -> member name ("" for the root)

    def shown(self, temp: str, base: str) -> str:
        """How a temporary path is named to a user (``base``: the archive as given, or absolute)."""
        member = self.names.get(temp)
        if member is None:
            return temp
        return base if not member or temp == str(self.target) else f"{base}{SEPARATOR}{member}"

    def rewrite(self, text: str, base: str | None = None) -> str:
        """``text`` with each temporary path named as the archive and its member."""
        base = str(self.archive) if base is None else base
        root = str(self.root)

        def one(m: re.Match[str]) -> str:
            s, tail = m.group(0), ""
            while s not in self.names and len(s) > len(root):
                if s.endswith("."):  # the full stop after a path
                    s, tail = s[:-1], "." + tail
                else:  # one level up ("\\" too: a Windows path)
                    cut = max(s.rfind("/"), s.rfind("\\"))
                    s, tail = s[:cut], "/" + s[cut + 1:] + tail
            return self.shown(s, base) + tail

        text = re.sub(re.escape(root) + r"(?:[/\\][\w.-]+)*", one, text)
        return text.replace(self.root.name, self.archive.name)  # a folder's own name (a series listing's "folder")

    def rewrite_all(self, obj: T, base: str | None = None) -> T:
        """``obj`` (dicts, lists, tuples of strings and other values) with :meth:`rewrite` applied to every string."""
        if isinstance(obj, str):
            return self.rewrite(obj, base) if self.root.name in obj else obj  # type: ignore[return-value]
        if isinstance(obj, dict):
            return {k: self.rewrite_all(v, base) for k, v in obj.items()}  # type: ignore[return-value]
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.rewrite_all(v, base) for v in obj)  # type: ignore[return-value]
        return obj


def read_archive(path: Path, read: Callable[[Path], Any]) -> Any:
    """``read`` the folder or file the archive holds (:func:`extracted`); a Volume it returns
    gets ``meta["path"]`` the archive, its member paths as references (module doc) and its
    array in memory (not mapped from a file that is removed). Errors name the archive.

    Raises:
        ImageReadError: a damaged, empty, encrypted or oversized archive, or one holding no image.
    """
    from .volume import Volume

    with extracted(path) as x:
        try:
            got = read(x.target)
        except MedsegError as e:
            raise type(e)(x.rewrite(str(e))) from None
        if not isinstance(got, Volume):
            return x.rewrite_all(got)
        meta = {**x.rewrite_all(got.meta, str(path.absolute())), "path": str(path)}
        if x.target.is_file():
            meta["archive_member"] = x.names[str(x.target)]
        return got.with_array(_in_memory(got.array), meta=meta)


def through_archive(path: Path, fn: Callable[[Path], T]) -> T:
    """``fn(path)``, or for an archive ``fn`` of the folder it holds with the result's and
    errors' temporary paths named as the archive (``medseg info``'s series and study lists)."""
    return read_archive(Path(path), fn) if is_archive(path) and Path(path).is_file() else fn(path)


def _in_memory(array: np.ndarray) -> np.ndarray:
    """``array``, copied when it is mapped from a file (an uncompressed NIfTI's memmap)."""
    import mmap

    base: Any = array
    while base is not None:
        if isinstance(base, (np.memmap, mmap.mmap)):
            return np.array(array)
        base = getattr(base, "base", None)
    return array


def _private_folder() -> Path:
    """A new private temporary folder, ``medseg-zip-<pid>-*``; first the ones of this user's
    processes that are gone (killed, SIGKILL or out of memory, while reading: each held a whole
    study's files) are removed."""
    base = Path(tempfile.gettempdir())
    try:  # POSIX only: on Windows os.kill(pid, 0) would send a Ctrl-C event
        left = [] if os.name != "posix" else [q for q in base.glob(f"{TEMP_PREFIX}*-*") if not q.is_symlink() and q.is_dir() and q.stat().st_uid == os.getuid()]
    except OSError:
        left = []
    for q in left:
        pid = q.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(q, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


@contextlib.contextmanager
def extracted(path: str | os.PathLike) -> Iterator[Extracted]:
    """The archive inflated into a private temporary folder (module doc), removed on exit.

    Raises:
        ImageReadError: no such file, not a ZIP (truncated, damaged), no member to read, an
            encrypted member, sizes beyond the memory guard or the free disk space, a member
            whose data are damaged (CRC) or hold more than it declares.
    """
    archive = Path(path)
    root = _private_folder()
    try:
        with _open(archive) as zf:
            members = _members(archive, zf)
            _check_sizes(archive, members, root)
            names = {str(root): ""}
            placed = _Layout(root, names)
            files = [(placed.file(parts), info) for parts, info in members]
            for dest, info in files:
                _inflate(archive, zf, info, dest)
        yield Extracted(archive, root, _target(archive, root, [d for d, _ in files], names), names)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def local_files(paths: Iterable[str]) -> Iterator[dict[str, Path]]:
    """Each of ``paths`` as a file on disk: a plain path as itself, an archive reference
    (``study.zip!IM_0001.dcm``, :func:`split_reference`) inflated into a private temporary
    folder, removed on exit (DICOM SEG and SR writers reading the source headers).

    Raises:
        ImageReadError: the archive is gone or damaged, or no longer holds the member.
    """
    out: dict[str, Path] = {}
    by_archive: dict[Path, list[tuple[str, str]]] = {}
    for p in dict.fromkeys(paths):
        split = split_reference(p)
        if split is None:
            out[p] = Path(p)
        else:
            by_archive.setdefault(split[0], []).append((p, split[1]))
    root = _private_folder() if by_archive else None
    try:
        for n, (archive, refs) in enumerate(by_archive.items()):
            assert root is not None
            folder = root / str(n)
            folder.mkdir()
            with _open(archive) as zf:
                infos = []
                for ref, member in refs:
                    try:
                        infos.append((ref, zf.getinfo(member)))
                    except KeyError:
                        raise ImageReadError(f"{archive} no longer holds {member} (the image was read from it): was the zip changed?") from None
                _check_sizes(archive, [((i.filename,), i) for _, i in infos], folder)
                for k, (ref, info) in enumerate(infos):
                    out[ref] = folder / f"{k:06d}_{_safe((_parts(info.filename) or ('image',))[-1])}"
                    _inflate(archive, zf, info, out[ref])
        yield out
    finally:
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _open(archive: Path) -> Iterator[zipfile.ZipFile]:
    if not archive.exists():
        raise ImageReadError(f"no such file: {archive}")
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as e:
        raise ImageReadError(f"{archive}: not a readable ZIP archive (truncated or damaged: {_first_line(e)})") from None
    except (OSError, EOFError, ValueError) as e:
        raise ImageReadError(f"{archive}: cannot open the ZIP archive: {getattr(e, 'strerror', None) or _first_line(e)}") from None
    with zf:
        yield zf


def _members(archive: Path, zf: zipfile.ZipFile) -> list[tuple[tuple[str, ...], zipfile.ZipInfo]]:
    """The members to inflate, as (name parts, info), sorted by name; refusing an archive
    with none, too many, or an encrypted one."""
    infos = zf.infolist()
    if not infos:
        raise ImageReadError(f"{archive}: the ZIP archive is empty")
    if len(infos) > MAX_MEMBERS:
        raise ImageReadError(f"{archive}: the ZIP archive holds {len(infos):,} members, more than the {MAX_MEMBERS:,} medseg reads from one: unzip it")
    kept = []
    for info in sorted(infos, key=lambda i: i.filename):
        parts = _parts(info.filename)
        if not parts or _left_out(info, parts):
            continue
        if info.flag_bits & 0x1:
            raise ImageReadError(f"{archive}: {info.filename} is encrypted: medseg reads no password-protected ZIP; unzip it with its password first")
        kept.append((parts, info))
    if not kept:
        raise ImageReadError(f"{archive}: the ZIP archive holds no files (only folders, links, hidden files or nested archives)")
    return kept


def _parts(name: str) -> tuple[str, ...]:
    """A member name's folders and file name (``/`` or ``\\``; empty, ``.`` and ``..`` parts dropped)."""
    return tuple(q for q in re.split(r"[/\\]", name) if q not in ("", ".", ".."))


def _left_out(info: zipfile.ZipInfo, parts: tuple[str, ...]) -> bool:
    """Folders, links and other non-regular members, hidden files (macOS's ``__MACOSX/``, ``.DS_Store``),
    nested archives and members deeper than :data:`MAX_DEPTH`."""
    mode = info.external_attr >> 16
    if info.is_dir() or (stat.S_IFMT(mode) and not stat.S_ISREG(mode)):
        return True
    return any(q.startswith(".") for q in parts) or parts[0] == "__MACOSX" or is_archive(parts[-1]) or len(parts) > MAX_DEPTH


def _check_sizes(archive: Path, members: list[tuple[tuple[str, ...], zipfile.ZipInfo]], folder: Path) -> None:
    """Refuse, before anything is inflated, members whose declared sizes together exceed the
    readers' memory guard or the free space of the temporary folder."""
    from .limits import available_bytes, format_gb, over_limit

    total = sum(info.file_size for _, info in members)
    limit = available_bytes()
    if limit is not None and total > limit:
        raise ImageReadError(f"{archive}: its files would inflate to {format_gb(total)}, {over_limit(limit)}")
    free = shutil.disk_usage(folder).free
    if total > free:
        raise ImageReadError(f"{archive}: its files would inflate to {format_gb(total)}, more than the {format_gb(free)} free in "
                             f"the temporary folder {folder.parent}: set TMPDIR to a folder with room, or unzip it")


def _inflate(archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path) -> None:
    """Inflate one member into ``dest``, never past its declared size."""
    written = 0
    try:
        with zf.open(info) as src, open(dest, "xb") as out:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > info.file_size:
                    raise ImageReadError(f"{archive}: {info.filename} holds more than the {info.file_size:,} bytes it declares: a damaged or hostile ZIP")
                out.write(chunk)
    except zipfile.BadZipFile as e:
        raise ImageReadError(f"{archive}: {info.filename} is damaged ({_first_line(e)})") from None
    except (zlib.error, EOFError) as e:
        raise ImageReadError(f"{archive}: {info.filename} is damaged (its data do not inflate: {_first_line(e)})") from None
    except NotImplementedError as e:
        raise ImageReadError(f"{archive}: {info.filename} cannot be inflated ({_first_line(e)}): unzip it with another tool") from None
    except RuntimeError as e:  # zipfile's "password required"
        raise ImageReadError(f"{archive}: {info.filename} cannot be read ({_first_line(e)})") from None
    except OSError as e:
        raise ImageReadError(f"{archive}: {info.filename} could not be inflated into the temporary folder: {e.strerror or e}") from None


def _target(archive: Path, root: Path, files: list[Path], names: dict[str, str]) -> Path:
    """What the archive holds to read: the folder when a member is DICOM (a single top folder
    descended into), else its one image file; one-line errors for none or several."""
    from .readers import has_dicm_marker

    kinds = {p: _kind(p.name) for p in files}
    if any(k == "dicom" or (k is None and has_dicm_marker(p)) for p, k in kinds.items()):
        folder = root
        while len(entries := list(folder.iterdir())) == 1 and entries[0].is_dir():
            folder = entries[0]
        return folder
    images = [p for p, k in kinds.items() if k is not None]
    if len(images) == 1:
        return images[0]
    shown = ", ".join(names[str(p)] for p in (images or files)[:3]) + (", ..." if len(images or files) > 3 else "")
    if images:
        raise ImageReadError(f"{archive}: holds {len(images)} image files ({shown}): medseg reads one image (or one DICOM study) "
                             "from a zip; unzip it, or zip each image on its own (medseg batch takes each zip as a case)")
    raise ImageReadError(f"{archive}: holds no image medseg reads ({len(files)} file(s): {shown}); "
                         "a zip must hold DICOM files or one image file (.nii.gz, .mha, .nrrd, .png, ...)")


def _kind(name: str) -> str | None:
    """The reader kind of a file name by its ending (``medseg.io.readers.EXTENSIONS``), else None."""
    from .readers import EXTENSIONS

    return next((EXTENSIONS[e] for e in sorted(EXTENSIONS, key=len, reverse=True) if name.lower().endswith(e)), None)


class _Layout:
    """Safe names in the temporary folder for the members' folders and files (module doc)."""

    def __init__(self, root: Path, names: dict[str, str]) -> None:
        self.root, self.names = root, names
        self.dirs: dict[tuple[str, ...], Path] = {(): root}
        self.used: dict[Path, set[str]] = {root: set()}

    def file(self, parts: tuple[str, ...]) -> Path:
        folder = self.root
        for n in range(1, len(parts)):
            key = parts[:n]
            if key not in self.dirs:
                self.dirs[key] = sub = folder / self._free(folder, parts[n - 1])
                sub.mkdir()
                self.used[sub] = set()
                self.names[str(sub)] = "/".join(key)
            folder = self.dirs[key]
        dest = folder / self._free(folder, parts[-1])
        self.names[str(dest)] = "/".join(parts)
        return dest

    def _free(self, folder: Path, part: str) -> str:
        """A safe name for ``part`` not yet used in ``folder`` (compared case-blind, in NFC: a Mac's file system)."""
        name = _safe(part)
        used = self.used[folder]
        candidate, n = name, 1
        while unicodedata.normalize("NFC", candidate).lower() in used:
            candidate, n = f"{n}_{name}", n + 1
        used.add(unicodedata.normalize("NFC", candidate).lower())
        return candidate


def _safe(part: str) -> str:
    """A member name part as one safe file name: letters, digits, ``_``, ``-``, ``.``; no leading
    dot; at most ~100 bytes (the start and the end, with its file ending, kept)."""
    name = _UNSAFE.sub("_", part)
    try:
        size = len(os.fsencode(name))
    except UnicodeError:
        name, size = name.encode("ascii", "replace").decode().replace("?", "_"), len(name)
    if size > 100:
        name = name.encode("ascii", "replace").decode().replace("?", "_")
        name = name[:60] + name[-40:] if len(name) > 100 else name
    return name if name and not name.startswith(".") else "_" + name


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__
