"""A memory guard for the readers: an image whose decoded array cannot fit in memory is refused
with a one-line :class:`~medseg.errors.ImageReadError` before it is decoded or inflated, instead
of the process being killed for memory (a ~1 MB ``.nii.gz`` may declare 1024^3 float64 voxels).

The limit is the memory available now (``MemAvailable`` of ``/proc/meminfo``, else the free
physical pages, and no more than the headroom of the process's memory cgroup: a container or a
batch job's ``--mem`` limit kills the process long before the machine runs out; nor more than
the address space a virtual memory limit, ``ulimit -v``, leaves), or
``$MEDSEG_MAX_IMAGE_GB`` gigabytes (10^9 bytes) when that is set.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageReadError

#: the environment variable that sets the limit (gigabytes, 10^9 bytes)
ENV_VAR = "MEDSEG_MAX_IMAGE_GB"
#: bytes per voxel of the float32 working copy every image gets (intensities, preprocessing)
WORKING_ITEMSIZE = 4


def available_bytes() -> int | None:
    """The bytes an image may take: ``$MEDSEG_MAX_IMAGE_GB`` when set, else the memory
    available now (the machine's, no more than the memory cgroup's headroom); None when neither
    is known (no limit).

    Raises:
        ImageReadError: ``$MEDSEG_MAX_IMAGE_GB`` is not a positive number.
    """
    limit = env_limit_bytes()
    if limit is not None:
        return limit
    known = [n for n in (_machine_available(), cgroup_headroom(), address_space_headroom()) if n is not None]
    return min(known) if known else None


def address_space_headroom() -> int | None:
    """Bytes of address space the process's virtual memory limit (``ulimit -v``) still leaves:
    the limit less the process's ``VmSize``; None when there is no limit or it cannot be read."""
    from .._environ import address_space_limit

    limit = address_space_limit()
    if limit is None:
        return None
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return max(0, limit - size)


def _machine_available() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo``, else the free physical pages; None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    parts = line.split()
                    return int(parts[1]) * (1024 if parts[2:3] == ["kB"] else 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


#: a cgroup limit at or above this is "no limit" (v1 writes 2^63 rounded down to a page)
_NO_LIMIT = 1 << 60
#: (limit file, usage file, reclaimable page-cache key of memory.stat) of cgroup v2 and v1
_CGROUP_FILES = {"v2": ("memory.max", "memory.current", "inactive_file"),
                 "v1": ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")}


def cgroup_headroom(root: str | Path = "/sys/fs/cgroup", proc_cgroup: str | Path = "/proc/self/cgroup") -> int | None:
    """Bytes this process's memory cgroup still allows: its limit less what it uses, not counting
    inactive page cache (the kernel reclaims that first, as ``docker stats`` counts). None when
    no cgroup limits memory or nothing can be read. Both cgroup v2 (``0::/path``) and v1
    (``N:memory:/path``) are read, at the process's own path under ``root`` and, inside a
    container whose cgroup namespace mounts its own cgroup at the root, at ``root`` itself."""
    root = Path(root)
    try:
        lines = Path(proc_cgroup).read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        lines = []
    places: list[tuple[str, Path]] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        rel = parts[2].strip().lstrip("/")
        if parts[0] == "0" and parts[1] == "":
            places += [("v2", root / rel), ("v2", root)]
        elif "memory" in parts[1].split(","):
            places += [("v1", root / "memory" / rel), ("v1", root / "memory")]
    if not places:
        places = [("v2", root), ("v1", root / "memory")]
    found = [h for kind, d in places if (h := _headroom(d, *_CGROUP_FILES[kind])) is not None]
    return min(found) if found else None


def _headroom(folder: Path, limit_file: str, usage_file: str, cache_key: str) -> int | None:
    try:
        text = (folder / limit_file).read_text(encoding="ascii").strip()
        if text == "max":
            return None
        limit = int(text)
        usage = int((folder / usage_file).read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    if limit >= _NO_LIMIT or limit <= 0:
        return None
    cache = 0
    try:
        for line in (folder / "memory.stat").read_text(encoding="ascii").splitlines():
            key, _, value = line.partition(" ")
            if key == cache_key:
                cache = int(value)
                break
    except (OSError, ValueError):
        pass
    return max(0, limit - max(0, usage - cache))


def env_limit_bytes() -> int | None:
    """``$MEDSEG_MAX_IMAGE_GB`` in bytes, None when it is not set (or empty)."""
    text = os.environ.get(ENV_VAR, "").strip()
    if not text:
        return None
    try:
        gb = float(text)
    except ValueError:
        gb = math.nan
    if not (math.isfinite(gb) and gb > 0):
        raise ImageReadError(f"{ENV_VAR} must be a positive number of gigabytes (e.g. 16), got {text!r}")
    return max(1, int(gb * 1e9))


def decoded_bytes(shape: Iterable[Any], itemsize: int) -> int:
    """Bytes of an array of ``shape`` with ``itemsize``-byte voxels plus its float32 working copy
    (Python ints: no overflow for absurd header values)."""
    n = math.prod(int(s) for s in shape)
    return n * int(itemsize) + n * WORKING_ITEMSIZE


def check_decoded_size(path: Any, shape: Iterable[Any], itemsize: Any, what: str = "image") -> None:
    """Refuse an image whose decoded array (``shape``, ``itemsize`` bytes a voxel, or a numpy
    dtype) and its float32 working copy would need more memory than :func:`available_bytes`.

    Raises:
        ImageReadError: one line naming ``path``, the shape, the bytes needed and the limit.
    """
    shape = tuple(int(s) for s in shape)
    if isinstance(itemsize, (int, np.integer)):
        size, kind = int(itemsize), f"{int(itemsize)}-byte voxels"
    else:
        dtype = np.dtype(itemsize)
        size, kind = dtype.itemsize, dtype.name
    need = decoded_bytes(shape, size)
    limit = available_bytes()
    if limit is None or need <= limit:
        return
    raise ImageReadError(f"{path}: the {what} (shape {shape}, {kind}) would need {format_gb(need)} of memory, {over_limit(limit)}")


def over_limit(limit: int) -> str:
    """The end of a refusal: "more than the 9.8 GB available; set MEDSEG_MAX_IMAGE_GB to change
    the limit", or "more than the 0.5 GB MEDSEG_MAX_IMAGE_GB allows" when the variable sets it."""
    if env_limit_bytes() is not None:
        return f"more than the {format_gb(limit)} {ENV_VAR} allows"
    room = address_space_headroom()
    if room is not None and room <= limit:
        return f"more than the {format_gb(limit)} the virtual memory limit (ulimit -v) leaves; raise that limit"
    return f"more than the {format_gb(limit)} available; set {ENV_VAR} to change the limit"


def format_gb(n: int) -> str:
    """Bytes as gigabytes (10^9) with one decimal ("12.9 GB"); under 1 GB as MB or kB, absurd
    sizes in exponent form (exact for any int)."""
    if n < 10**9:
        return f"{n / 1e6:.1f} MB" if n >= 10**6 else f"{n / 1e3:.1f} kB"
    gb = Decimal(int(n)) / Decimal(10**9)
    return f"{gb:.1f} GB" if gb < 10**6 else f"{gb:.2e} GB"
