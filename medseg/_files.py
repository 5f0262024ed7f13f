"""Atomic output writing and hashing. Every output goes to a temporary name in the target
folder and is renamed into place only when complete, so a crash never leaves a half file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_path(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a folder's files (relative names + contents, sorted): the input
    hash recorded in provenance."""
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    h = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        h.update(str(f.relative_to(p)).encode())
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    The temporary name keeps ``target``'s suffixes (``suffix`` overrides them), so writers that
    pick the format from the extension (``.nii.gz``, ``.png``) still work. On an exception
    the temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    if target.is_dir():  # a library caller's output folder: os.replace's IsADirectoryError named the temporary file
        from .errors import ImageWriteError

        raise ImageWriteError(f"{target} is a folder; the output is a file: give a file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else "".join(target.suffixes)
    # the temporary name stays within the 255 bytes a file name may have whenever ``target``'s does
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(target), suffix=f".tmp{suffix[-32:]}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


#: characters of the target's name kept in its temporary name (the rest is told apart by the hash)
_TMP_NAME_CHARS = 48


def _tmp_prefix(target: Path) -> str:
    """``.<name, first 48 characters>.<sha256 of the whole name, 8 hex digits>.``: two long names
    that share their first characters (case ids of a cohort) get temporary names of their own,
    so that removing one's stale temporary files never touches the other's."""
    # the name's bytes as the file system has them: a name that is not UTF-8 (Python gives it as a
    # surrogate-escaped str, ``caf\udce9``) hashes as its bytes instead of raising UnicodeEncodeError
    return f".{target.name[:_TMP_NAME_CHARS]}.{hashlib.sha256(os.fsencode(target.name)).hexdigest()[:8]}."


#: the random part ``tempfile.mkstemp`` puts after the prefix, then ``.tmp`` and the target's suffixes
_TMP_RANDOM = r"[a-z0-9_]{8}\.tmp"


def _tmp_prefixes(target_name: str) -> tuple[str, ...]:
    """The prefixes of a target's temporary names: this version's, and that of versions that kept
    the first 64 characters of the name and no hash (only where the whole name fit: unambiguous)."""
    return (_tmp_prefix(Path(target_name)), *((f".{target_name}.",) if len(target_name) <= 64 else ()))


def is_temp_of(name: str, target_name: str) -> bool:
    """Whether the file ``name`` is a temporary file :func:`atomic_path` made for a target named
    ``target_name`` in the same folder."""
    import re

    return any(name.startswith(p) and re.match(_TMP_RANDOM, name[len(p):]) for p in _tmp_prefixes(target_name))


def stale_temp_files(target: str | os.PathLike) -> list[Path]:
    """Temporary files :func:`atomic_path` left beside ``target`` when its process was killed."""
    target = Path(target)
    return stale_temp_files_of(target.parent, [target.name])


def stale_temp_files_of(folder: str | os.PathLike, target_names: Iterable[str]) -> list[Path]:
    """Temporary files :func:`atomic_path` left in ``folder`` for any of ``target_names`` (the
    folder is listed once; only names of medseg's own temporary pattern for those targets)."""
    import re

    try:
        hidden = sorted(n for n in os.listdir(folder) if n.startswith(".") and ".tmp" in n)
    except OSError:
        return []
    if not hidden:
        return []
    prefixes = [p for t in dict.fromkeys(target_names) for p in _tmp_prefixes(t)]
    return [Path(folder) / n for n in hidden if any(n.startswith(p) and re.match(_TMP_RANDOM, n[len(p):]) for p in prefixes)]


def write_text_atomic(target: str | os.PathLike, text: str) -> Path:
    r"""Write ``text`` as UTF-8 atomically (:func:`atomic_path`). A file name that is not UTF-8
    (Linux names are bytes; Python gives the byte 0xE9 of ``caf\xe9`` as the surrogate ``\udce9``)
    is written as its original bytes (``errors="surrogateescape"``): a path in a CSV cell names the
    file again when read back with ``errors="surrogateescape"``. JSON text is ASCII: ``json.dumps``
    escapes the surrogate as ``\udce9``, which ``json.loads`` gives back as the same str, one that
    opens the file."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")
    return Path(target)


#: what a terminal line or a plot cannot show as it is: C0 controls, DEL, C1 controls, and lone
#: surrogates (U+DC80..U+DCFF: the bytes of a file name that is not UTF-8, as Python decodes it)
_UNSHOWN = "[\x00-\x1f\x7f-\x9f\ud800-\udfff]"
_NAMED_CONTROLS = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(text: Any) -> str:
    r"""``text`` (a path, a case id, or a message naming them) as a console line or a plot title
    can show it, on one line and unambiguous: a byte of a file name that is not UTF-8 (Python's
    surrogate escape ``\udce9``) as ``\xe9`` (``ls -b`` writes the same byte in octal, ``\351``); newline, carriage return and
    tab as ``\n``, ``\r``, ``\t`` (a case named ``new<newline>line`` broke the batch's console line);
    other control characters as ``\x1b`` (an ESC would drive the terminal); another lone surrogate
    as ``\ud800``. For display only: files keep their names, and outputs record them as they are
    (:func:`write_text_atomic`). Applying it twice changes nothing.

    Example: ``shown(os.fsdecode(b"caf\xe9.nii.gz"))`` -> ``'caf\\xe9.nii.gz'``.
    """
    import re

    def one(m: re.Match[str]) -> str:
        c = m.group()
        if c in _NAMED_CONTROLS:
            return _NAMED_CONTROLS[c]
        code = ord(c)
        if 0xDC80 <= code <= 0xDCFF:
            return f"\\x{code - 0xDC00:02x}"
        return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"

    return re.sub(_UNSHOWN, one, str(text))


#: a cell a spreadsheet would run as a formula (CSV injection: a file or case named "=HYPERLINK(...)")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: a cell that is ``'`` + one of these is a guarded one: read back without the ``'`` (:func:`csv_cell`)
_GUARDED_START = (*_FORMULA_START, "'")


def csv_text(fields: list[str], rows: Any) -> str:
    """CSV of ``rows`` (dicts; missing fields empty, extra keys ignored) under the header
    ``fields``, with text cells that a spreadsheet would take for a formula quoted by a leading
    ``'`` (numbers, negative ones too, are written as they are). A text that starts with ``'``
    and one of those characters (or a second ``'``) gets one more ``'``, so that every medseg
    reader (:func:`csv_cell`) gives back each cell as it was: ``-case`` -> ``'-case`` -> ``-case``.
    A boolean is ``TRUE``/``FALSE`` (R's read.csv reads ``True`` as text; pandas and spreadsheets
    read both), a NaN or None an empty cell (NA in R, NaN in pandas; not the text ``nan``)."""
    import csv
    import io
    import math

    def safe(v: Any) -> Any:
        kind = getattr(getattr(v, "dtype", None), "kind", "")  # numpy's bool and float32 too
        if isinstance(v, bool) or kind == "b":
            return "TRUE" if v else "FALSE"
        if (isinstance(v, float) or kind == "f") and math.isnan(v):
            return ""
        if isinstance(v, str) and v.startswith(_FORMULA_START):
            try:
                float(v)
            except ValueError:
                return "'" + v
        if isinstance(v, str) and v[:1] == "'" and v[1:2] and v[1] in _GUARDED_START:
            return "'" + v
        return v

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([safe(f) for f in fields])
    for row in rows:
        w.writerow([safe(row.get(f, "")) for f in fields])
    return buf.getvalue()


def csv_cell(cell: str) -> str:
    """A CSV cell as :func:`csv_text` was given it: a cell that is ``'`` followed by ``=``, ``+``,
    ``-``, ``@``, a tab, a carriage return or ``'`` (the formula guard) reads without that ``'``
    (``'-case`` -> ``-case``); any other cell as it is."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] and cell[1] in _GUARDED_START else cell


def read_medseg_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a CSV medseg wrote (:func:`csv_text`: UTF-8, commas; ``summary.csv``,
    ``cohort.csv``, ``evaluate --csv``) as header -> cell dicts, the formula guard undone
    (:func:`csv_cell`); cells a row lacks are empty. Raises OSError, UnicodeDecodeError and
    csv.Error as :mod:`csv` does."""
    import csv

    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        rows = list(csv.reader(f))
    header = [csv_cell(h) for h in rows[0]] if rows else []
    return [{h: csv_cell(row[i]) if i < len(row) else "" for i, h in enumerate(header)} for row in rows[1:] if row]


def decode_spreadsheet_csv(raw: bytes) -> str:
    """A spreadsheet's CSV export as text: UTF-16 or UTF-8 with their byte-order marks, UTF-8,
    else the Windows code page (cp1252) older spreadsheets save in, else Latin-1."""
    return _decode_spreadsheet(raw)[0]


def _decode_spreadsheet(raw: bytes) -> tuple[str, str]:
    """:func:`decode_spreadsheet_csv`'s text and the encoding it was read in."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass  # an odd number of bytes: none of a spreadsheet's
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1"), "latin-1"


def spreadsheet_csv_rows(text: str) -> list[list[str]]:
    """The rows of a CSV text as spreadsheets write it: the separator (comma, semicolon or tab,
    as European Excel saves) found from the first non-empty line, ``"`` quoting with a doubled
    ``""`` inside a quoted cell read as one ``"``, cells in quotes that hold a separator or a line
    break kept whole, and the formula guard of medseg's own CSVs undone (:func:`csv_cell`).
    Empty lines are empty rows (``[]``): row ``i`` is line ``i + 1`` of a file without line breaks
    in its cells. Raises csv.Error (a cell over the csv module's size limit)."""
    import csv
    import io

    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        sniffed = csv.Sniffer().sniff(first, delimiters=",;\t")
        delimiter, skip_space = sniffed.delimiter, sniffed.skipinitialspace
    except csv.Error:  # one column, or an empty file
        delimiter, skip_space = ",", False
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', doublequote=True, skipinitialspace=skip_space)
    return [[csv_cell(c) for c in row] for row in reader]


def read_spreadsheet_csv(path: str | os.PathLike, what: str, notes: list[str] | None = None) -> list[list[str]]:
    """The rows of the CSV file ``path`` (``what`` names it in messages: "subjects file", "pairs
    file"), as a spreadsheet saves it: :func:`decode_spreadsheet_csv`, :func:`spreadsheet_csv_rows`.
    ``notes``: a file that is not UTF-8 (nor UTF-16), read in the Windows code page, adds a line
    saying so to it (a Mac's "CSV" is Mac Roman: its ``ü`` reads as ``Ÿ``).

    Raises:
        MedsegError: one line naming the file: not found, unreadable, an Excel or other workbook
            (not CSV), binary (NUL characters) or not CSV text, Excel's ``sep=`` line, or a row
            with more cells than the header (:func:`_check_row_lengths`).
    """
    import csv

    from .errors import MedsegError

    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise MedsegError(f"{what} not found: {p}") from None
    except OSError as e:
        raise MedsegError(f"cannot read the {what} {p}: {e.strerror or e}") from None
    if raw[:4] in (b"PK\x03\x04", b"\xd0\xcf\x11\xe0"):
        raise MedsegError(f"{p} is a spreadsheet workbook, not CSV: save it as CSV (comma or semicolon separated)")
    text, encoding = _decode_spreadsheet(raw)
    if "\x00" in text:
        raise MedsegError(f"{p}: not a readable CSV text file (it holds NUL characters: a binary file?)")
    first = text.lstrip().split("\n", 1)[0].strip().strip('"').lower()
    if first.startswith("sep=") and len(first) <= 5:
        raise MedsegError(f"{p}: line 1 is Excel's separator hint {first!r}: delete that line (medseg finds the separator itself)")
    try:
        rows = spreadsheet_csv_rows(text)
    except csv.Error as e:
        raise MedsegError(f"{p}: not a readable CSV text file ({e})") from None
    _check_row_lengths(p, rows)
    if notes is not None and encoding in ("cp1252", "latin-1"):
        name = "the Windows code page (cp1252)" if encoding == "cp1252" else "Latin-1"
        notes.append(f"{p} is not UTF-8: read in {name}; if a name reads wrongly, save it as 'CSV UTF-8'")
    return rows


def _check_row_lengths(p: Path, rows: list[list[str]]) -> None:
    """Refuse a row with more cells (up to its last non-empty one) than the header has names:
    its cells would be read under the wrong columns (``172,5`` unquoted in a comma-separated
    file is the cells 172 and 5: the height 172 and the weight 5 kg)."""
    from .errors import MedsegError

    def width(row: list[str]) -> int:
        return max((i + 1 for i, c in enumerate(row) if c.strip()), default=0)

    names = width(rows[0]) if rows else 0
    for i, row in enumerate(rows[1:], start=2):
        if width(row) > names:
            raise MedsegError(f"{p}, line {i}: {width(row)} cells under a header of {names}: a comma inside a cell (a decimal "
                              "comma, 172,5, in a comma-separated file?); save the file with semicolons as separator, or put "
                              "such cells in quotes")


def write_json_atomic(target: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (NaN written as null) atomically."""
    return write_text_atomic(target, json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n")


def _jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays and NaN/inf floats into strict-JSON values."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def resolved(path: str | os.PathLike) -> Path:
    """``Path.resolve()``, or the absolute path for a symlink loop (which Python 3.11 raises on)."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError):
        return Path(os.path.abspath(path))


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return resolved(a) == resolved(b)


def check_not_inputs(outputs: dict[str, Any], inputs: dict[str, Any]) -> None:
    """Refuse, in one line, an output that would replace one of the command's input files, two
    outputs that are one file, an output that is a folder, and outputs whose folder cannot be
    written (:func:`check_writable_folder`) (``{what: path or None}``; None entries are ignored).

    Raises:
        ImageWriteError: e.g. ``medseg segment img.nii.gz -o img.nii.gz`` (it used to replace the
            image with its labels), or a sidecar ``seg.json`` that is the prompts file.
    """
    from .errors import ImageWriteError

    outs = [(k, Path(v)) for k, v in outputs.items() if v is not None]
    ins = [(k, Path(v)) for k, v in inputs.items() if v is not None]
    for i, (what, out) in enumerate(outs):
        for src, inp in ins:
            if _same_file(out, inp):
                raise ImageWriteError(f"{out}: the {what} would replace the {src} ({inp}); choose another name")
            if inp.is_dir() and _inside(out, inp):  # a DICOM folder: a file there becomes part of the study
                raise ImageWriteError(f"{out}: the {what} would be written into the {src} folder {inp} (and read back as part of it); "
                                      "write it outside that folder")
        for other, out2 in outs[i + 1:]:
            if _same_file(out, out2):
                raise ImageWriteError(f"{out} is both the {what} and the {other}; choose different names")
        if out.is_dir():
            raise ImageWriteError(f"{out} is a folder; the {what} is a file: give a file name")
    for folder in dict.fromkeys(out.parent for _, out in outs):
        check_writable_folder(folder)


#: endings of a table file that is not the plain CSV medseg writes, and of its JSON report
_NOT_CSV = (".json", ".xlsx", ".xls", ".xlsm", ".ods")
_NOT_JSON = (".csv", ".tsv", ".xlsx", ".xls", ".xlsm", ".ods")


def check_table_names(report: str | os.PathLike, csv_path: str | os.PathLike | None) -> None:
    """Refuse, in one line and before any work, a JSON report (``-o``) named as a table
    (``.csv``, ``.xlsx``, ...) and a ``--csv`` named as JSON or a workbook: ``measure -o
    results.csv`` wrote JSON into it, ``--csv results.xlsx`` a CSV that Excel calls damaged.

    Raises:
        ImageWriteError: naming the file and the ending to use.
    """
    from .errors import ImageWriteError

    if Path(report).suffix.lower() in _NOT_JSON:
        raise ImageWriteError(f"{report}: the report (-o) is JSON; name it .json (the table: --csv FILE.csv)")
    if csv_path is not None and Path(csv_path).suffix.lower() in _NOT_CSV:
        raise ImageWriteError(f"{csv_path}: --csv writes a plain CSV table (comma-separated text); name it .csv "
                              "(a spreadsheet opens it; the JSON is -o)")


def check_plots_folder(plots: str | os.PathLike | None, files: dict[str, Any]) -> None:
    """Refuse, in one line and before any work, a ``--plots`` folder that is a file or one of the
    command's output files (``{what: path or None}``)."""
    from .errors import ImageWriteError

    if plots is None:
        return
    plots = Path(plots)
    for what, f in files.items():
        if f is not None and _same_file(plots, Path(f)):
            raise ImageWriteError(f"{plots} is both the plots folder and the {what}: choose different names")
    if plots.exists() and not plots.is_dir():
        raise ImageWriteError(f"{plots} is a file; --plots names a folder: choose another name")


def _inside(path: Path, folder: Path) -> bool:
    try:
        resolved(path).relative_to(resolved(folder))
    except ValueError:
        return False
    return True


def check_writable_folder(folder: str | os.PathLike) -> None:
    """Refuse, in one line and before any work, a folder outputs cannot be written to: its
    nearest existing ancestor is a file or rejects a new file (read-only, no permission, a
    pseudo file system). Nothing is left behind: the folder is not created, the probe file is
    removed at once."""
    from .errors import ImageWriteError

    folder = Path(folder)
    base = folder
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise ImageWriteError(f"cannot write into {folder}: {base} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=base, prefix=".medseg-write-test-"):
            pass
    except OSError as e:
        raise ImageWriteError(f"cannot write into {folder}: {base} is not writable ({e.strerror or e})") from None
