"""One batch split over the tasks of a cluster's array job (``medseg batch ... --shard K/N``):
each task runs every N-th case of the folder's sorted case list, all of them writing into one
OUT_DIR, and the task that ends last writes the whole batch's ``summary.*`` and ``cohort.*``.

* **Which cases.** Shard K of N runs cases K-1, K-1+N, K-1+2N, ... of the sorted case list
  (:func:`medseg.batch.discover_cases`): as even as the cases allow, and every case in exactly
  one shard as long as each task sees the same folder. Each shard records the digest of the
  whole list (:func:`cases_digest`); shards that saw different lists are not merged.
* **Side by side.** The shards hold OUT_DIR's batch lock together (shared); a batch of the whole
  folder is refused while any runs, and refuses them. The same shard twice is refused too (its
  own lock, ``shards/.K-of-N.lock``). A shard removes the temporary files of its own cases only.
* **Its record.** ``OUT_DIR/shards/K-of-N.json`` (atomic): the shard's rows (what
  ``summary.json`` holds of a case, with its measurements), its status (``running``, ``done``,
  ``interrupted``, ``stopped``), the digests of the case list and of the settings, the host and
  process, rewritten as ``summary.*`` is rewritten by a whole batch.
* **The merge.** A shard that ends (``done``, failed cases or not) takes the merge lock and, when
  all N records are ``done`` with its case list and settings, writes ``summary.csv``/``.json``
  and with ``--measure`` ``cohort.csv``/``.png`` from their rows (study rows measured as a whole
  batch measures them): the same tables as one batch over the folder. Otherwise it says which
  shards it waits for. ``medseg batch`` of the whole folder with ``--resume`` afterwards (as a
  job after the array) writes them too, from the outputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MedsegError
from .cases import BatchOptions, CaseSpec, Result

#: the folder of OUT_DIR that holds the shards' records
SHARDS_DIR = "shards"
#: a summary row's status values (:func:`medseg.batch.run_case`)
_STATUSES = ("ok", "skipped", "failed", "handed_over")
_SHARD_TEXT = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"3/50"`` -> Shard(3, 50).

        Raises:
            MedsegError: not ``K/N`` with 1 <= K <= N (a Slurm array numbered from 0 is named).
        """
        m = _SHARD_TEXT.match(text or "")
        if not m:
            raise MedsegError(f"--shard must be K/N (shard K of N, e.g. 3/50), got {text!r}")
        k, n = int(m.group(1)), int(m.group(2))
        if n < 1:
            raise MedsegError(f"--shard {text}: N must be 1 or more")
        if k == 0:
            raise MedsegError(f"--shard {text}: shards are numbered 1 to {n}; for a Slurm array 0-{n - 1} give "
                              f"--shard $((SLURM_ARRAY_TASK_ID + 1))/{n}")
        if k > n:
            raise MedsegError(f"--shard {text}: K must be 1 to {n}")
        return cls(k, n)

    @property
    def name(self) -> str:
        """``"03-of-50"`` (zero-padded: the records sort in shard order)."""
        width = len(str(self.count))
        return f"{self.index:0{width}d}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def pick(self, cases: Sequence[CaseSpec]) -> list[CaseSpec]:
        """This shard's cases of the sorted list: every ``count``-th from ``index - 1``."""
        return list(sorted(cases, key=lambda c: c.case)[self.index - 1 :: self.count])


def cases_digest(cases: Sequence[CaseSpec]) -> str:
    """sha256 of the whole case list (ids and the inputs' names): shards that saw different
    folders differ, one folder mounted at two paths on a cluster's nodes does not."""
    import hashlib

    text = "\n".join(f"{c.case}\0{Path(c.input).name}" for c in sorted(cases, key=lambda c: c.case))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def settings_digest(options: BatchOptions) -> str:
    """sha256 of the settings that shape the outputs and tables: shards run with other settings
    are not merged into one summary. Not in it, as ``--resume`` ignores them too: ``--resume``,
    threads, the device, the names or paths of the weights and prompts file (their contents are),
    and OUT_DIR's path (one folder mounted at two paths on a cluster's nodes)."""
    import hashlib

    from .weights import weights_sha256

    unshaping = ("resume", "threads", "threads_by_host", "device", "model", "adapter", "prompts", "out_dir")
    d = {k: v for k, v in dataclasses.asdict(options).items() if k not in unshaping}
    d["weights"] = weights_sha256(options.model, options.adapter)
    d["signature"] = options.signature(None)  # the prompts file's content, not only its path
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def record_path(out_dir: str | os.PathLike, shard: Shard) -> Path:
    return Path(out_dir) / SHARDS_DIR / f"{shard.name}.json"


@dataclass
class ShardRun:
    """What a shard did: its rows, and whether it wrote the batch's summary (``merged``) or which
    shards that waits for (``waiting``: their numbers and why)."""

    results: list[Result]
    merged: bool = False
    waiting: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    n_cases: int = 0  # the whole batch's


class ShardRecords:
    """Writes one shard's record (``OUT_DIR/shards/K-of-N.json``)."""

    def __init__(self, options: BatchOptions, shard: Shard, all_cases: Sequence[CaseSpec], picked: Sequence[CaseSpec]):
        from .._runinfo import utc_timestamp

        self.options, self.shard = options, shard
        self.path = record_path(options.out_dir, shard)
        self.head = {"medseg_shard_record": 1, "shard": shard.index, "of": shard.count, "cases_sha256": cases_digest(all_cases),
                     "settings_sha256": settings_digest(options), "n_cases_all": len(all_cases), "cases": [c.case for c in picked],
                     "host": _host(), "pid": os.getpid(), "started": utc_timestamp()}

    def write(self, rows: Sequence[Result], status: str) -> None:
        from .._files import write_json_atomic
        from .._runinfo import utc_timestamp

        self.path.parent.mkdir(exist_ok=True)
        files = {r["case"]: outputs_stamp(self.options.out_dir, r["case"]) for r in rows}
        write_json_atomic(self.path, {**self.head, "status": status, "updated": utc_timestamp(), "results": list(rows), "outputs": files})


def outputs_stamp(out_dir: str | os.PathLike, case: str) -> list[list[int] | None]:
    """Size and modification time (ns) of a case's label file, sidecar and handed-over record
    (None for one that is not there): a row whose case was written again since (labels corrected
    in napari, a batch of the whole folder) no longer matches, and is not merged."""
    from ..io import sidecar_path
    from .cases import handed_over_path, output_path

    def stamp(path: Path) -> list[int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return [st.st_size, st.st_mtime_ns]

    labels = output_path(out_dir, case)
    return [stamp(labels), stamp(sidecar_path(labels)), stamp(handed_over_path(out_dir, case))]


def run_shard(all_cases: Sequence[CaseSpec], options: BatchOptions, shard: Shard,
              run: Callable[[list[CaseSpec], ShardRecords], list[Result]]) -> ShardRun:
    """Run ``shard`` of ``all_cases`` (``run(picked, records)``: the batch's runner, in the shared
    lock, writing the shard's record instead of the summary), then merge when it is the last.

    Raises:
        OutputFolderBusy: a batch of the whole folder, or this same shard, is writing to OUT_DIR.
    """
    from .outdir import out_dir_lock

    picked = shard.pick(all_cases)
    with out_dir_lock(options.out_dir, shared=True), _shard_lock(options.out_dir, shard):
        records = ShardRecords(options, shard, all_cases, picked)
        check_split(options.out_dir, shard)
        records.write([], "running")
        results = run(picked, records)
        with _merge_lock(options.out_dir):
            return merge(options, shard, all_cases, results)


def merge(options: BatchOptions, shard: Shard, all_cases: Sequence[CaseSpec], own: list[Result]) -> ShardRun:
    """The whole batch's summary (and cohort) from the N records, when all are ``done`` with this
    case list and these settings; else which shards it waits for."""
    from .cohort import write_cohort_with_studies, write_summary

    want_cases, want_settings = cases_digest(all_cases), settings_digest(options)
    here = {c.case: c.absolute().input for c in all_cases}  # another node may mount INPUT_DIR elsewhere: its rows name this node's inputs
    rows: list[Result] = []
    waiting: list[tuple[int, str]] = []
    for k in range(1, shard.count + 1):
        if k == shard.index:
            rows += own
            continue
        rec = _read_record(record_path(options.out_dir, Shard(k, shard.count)))
        why = ("not started" if rec is None else "record unreadable" if not isinstance(rec.get("results"), list) else
               "saw another case list" if rec.get("cases_sha256") != want_cases else
               "run with other settings" if rec.get("settings_sha256") != want_settings else
               "" if rec.get("status") == "done" else str(rec.get("status") or "unknown"))
        if why == "running" and not _still_running(options.out_dir, Shard(k, shard.count)):
            why = "killed while running, no process holds it: run it again with --resume"
        if not why and not _rows_fit(rec["results"], Shard(k, shard.count).pick(all_cases)):
            why = "record unreadable"  # edited by hand or damaged: run that shard again with --resume
        elif not why and not _outputs_same(options.out_dir, rec):
            why = "outputs written again since it ended: run it again with --resume"
        if why:
            waiting.append((k, why))
        else:
            rows += [{**r, "input": here.get(r["case"], r["input"])} for r in rec["results"]]
    done = ShardRun(own, n_cases=len(all_cases), waiting=waiting)
    if waiting:
        return done
    rows.sort(key=lambda r: f"{r['case']}\0{r['input']}")  # as one batch orders them (its cohort.csv rows)
    write_summary(options.out_dir, rows, options)
    if options.measure:
        try:
            write_cohort_with_studies(options, rows)
        except OSError as e:
            from ..errors import OutputDiskFull

            raise OutputDiskFull(f"cannot write cohort.csv in {options.out_dir} ({e.strerror or e}): every shard is done; "
                                 "run this shard again with --resume to measure again") from None
    done.merged = True
    return done


def _rows_fit(rows: list[Any], cases: Sequence[CaseSpec]) -> bool:
    """Whether a record's rows are one summary row (a dict naming its case, status and input;
    measures and cohort row dicts) for each of the shard's ``cases``."""

    def fits(r: Any) -> bool:
        return (isinstance(r, dict) and isinstance(r.get("case"), str) and r.get("status") in _STATUSES and isinstance(r.get("input"), str)
                and all(isinstance(r.get(k, {}), dict) for k in ("measures", "cohort_row")))

    return all(fits(r) for r in rows) and sorted(r["case"] for r in rows) == sorted(c.case for c in cases)


def _outputs_same(out_dir: str, rec: dict[str, Any]) -> bool:
    """Whether the outputs of a record's cases are still those its rows were made from."""
    stamps = rec.get("outputs")
    return isinstance(stamps, dict) and all(stamps.get(r["case"]) == outputs_stamp(out_dir, r["case"]) for r in rec["results"])


def waiting_text(waiting: Sequence[tuple[int, str]], count: int) -> str:
    """``"shards 2, 7 (running), 9 (not started) of 50"``, grouped by why."""
    by: dict[str, list[int]] = {}
    for k, why in waiting:
        by.setdefault(why, []).append(k)
    parts = []
    for why, ks in by.items():
        shown = ", ".join(map(str, ks[:8])) + (f" and {len(ks) - 8} more" if len(ks) > 8 else "")
        parts.append(f"{shown} ({why})")
    return f"shard{'s' if len(waiting) > 1 else ''} {'; '.join(parts)} of {count}"


def _read_record(path: Path) -> dict[str, Any] | None:
    """A shard's record; None when there is none (not started), {} when it cannot be read (empty,
    truncated, not JSON, nested thousands deep, not an object: "record unreadable")."""
    from .._json_files import json_file_problem

    if not path.exists():
        return None
    rec, problem = json_file_problem(path, allow_nan=True)  # a NaN is read, as json.loads read it
    return rec if problem is None else {}


def check_split(out_dir: str, shard: Shard) -> None:
    """Refuse a shard while records of another N are in OUT_DIR (two splits of one folder would
    run some cases twice at once): they are removed, or another folder chosen."""
    folder = Path(out_dir) / SHARDS_DIR
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
    except OSError:
        return
    others = sorted({m.group(1) for n in names if (m := re.match(r"^\d+-of-(\d+)\.json$", n)) and int(m.group(1)) != shard.count})
    if others:
        raise MedsegError(f"{folder} holds the records of a split into {' and '.join(others)} shards, not {shard.count}: "
                          f"use --shard K/{others[0]}, or remove {folder} once no shard of it runs")


@contextlib.contextmanager
def _shard_lock(out_dir: str, shard: Shard) -> Iterator[None]:
    """This shard's own lock: the same shard started twice (a requeued array task whose first
    run still writes) is refused."""
    from .outdir import OutputFolderBusy, out_dir_lock

    folder = Path(out_dir) / SHARDS_DIR
    folder.mkdir(exist_ok=True)
    for attempt in range(4):  # (another shard's merge may be asking for a moment whether this one runs: _still_running)
        try:
            lock = out_dir_lock(folder, name=f".{shard.name}.lock")
            lock.__enter__()
            break
        except OutputFolderBusy:
            if attempt == 3:
                raise OutputFolderBusy(f"shard {shard} is already running into {out_dir} (another process): wait for it to end") from None
            time.sleep(0.25)
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def _still_running(out_dir: str, shard: Shard) -> bool:
    """Whether a process holds ``shard``'s own lock: a record left ``running`` by a task killed
    with SIGKILL (out of memory, a node lost) has none. True where locks cannot tell."""
    try:
        import fcntl
    except ImportError:  # Windows
        return True
    try:
        fd = os.open(Path(out_dir) / SHARDS_DIR / f".{shard.name}.lock", os.O_RDONLY)
    except FileNotFoundError:  # a shard holds it while it runs (and removes it as it ends)
        return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False  # (released as it is closed)
    except OSError:  # held; or ENOLCK: no locks here
        return True
    finally:
        os.close(fd)


@contextlib.contextmanager
def _merge_lock(out_dir: str) -> Iterator[None]:
    """Shards that end together merge one after the other (blocking ``flock``; none where the
    file system has no locks)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    from .outdir import open_lock_file

    path = Path(out_dir) / SHARDS_DIR / ".merge.lock"
    fd = open_lock_file(path, os.O_RDWR | os.O_CREAT)  # never through a symbolic link planted under its name
    try:
        with contextlib.suppress(OSError):  # ENOLCK: no locks here
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _host() -> str:
    import socket

    return socket.gethostname()
