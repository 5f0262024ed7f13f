"""Echo views that are one and the same: `medseg measure` refuses them.

The four-file form (``--ed --es --a2c-ed --a2c-es``) and the two clips (``LABELS --a2c``) each
take distinct views. One file given twice (by the same or another path), two files holding the
same labels, or two label files whose medseg sidecars say they were segmented from one image,
read as a plausible EF of one view ("biplane" from one 4-chamber view: EF 30.6 %, unflagged;
ED and ES one file: EF 7.3 %). Name checks (:func:`check_echo_names`)
catch only what names say.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import MedsegError


def same_source(a: Path, b: Path, same_frame: bool = False) -> str | None:
    """"<image name>[, series <uid>]" when the medseg sidecars of label files ``a`` and ``b`` say
    both were segmented from one image (``input_sha256`` and the series read, ``series_uid``; a
    sidecar of an earlier medseg without it: the ``--series`` text); two series of one DICOM
    study folder are two images. ``same_frame``: and of one frame of it (a cine written as one
    DICOM SEG per frame records each file's ``frame``: its ED and ES are two phases of one view).
    None otherwise, or when a file has no sidecar, one that names no input, or one that cannot be
    read (the label map's reading says so)."""
    from ..io import read_sidecar

    found = []
    for path in (a, b):
        try:
            prov = (read_sidecar(path) or {}).get("provenance")
        except MedsegError:
            return None
        if not isinstance(prov, dict) or not isinstance(prov.get("input_sha256"), str):
            return None
        uid = prov["series_uid"] if isinstance(prov.get("series_uid"), str) else ""
        found.append((prov["input_sha256"], uid, str(prov.get("series") or ""), Path(str(prov.get("input") or "?")).name, prov.get("frame")))
    (sha_a, uid_a, text_a, name, frame_a), (sha_b, uid_b, text_b, _, frame_b) = found
    if same_frame and frame_a != frame_b:
        return None
    by_uid = bool(uid_a and uid_b)  # both read by this medseg: the series read, whatever --series said
    if sha_a == sha_b and (uid_a == uid_b if by_uid else text_a == text_b):
        return f"{name}, series {uid_a}" if by_uid else name
    return None


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (``a.png`` and ``./dir/../a.png``, a link, a hard link)."""
    if Path(a).resolve() == Path(b).resolve():
        return True
    try:
        return Path(a).samefile(b)
    except OSError:
        return False


#: what each four-file option takes
_TAKES = {"--ed": "the 4-chamber ED labels", "--es": "the 4-chamber ES labels", "--a2c-ed": "the 2-chamber ED labels",
          "--a2c-es": "the 2-chamber ES labels"}
#: the view each four-file option takes (its ED and ES may be two frames of one clip)
_VIEW = {"--ed": "4ch", "--es": "4ch", "--a2c-ed": "2ch", "--a2c-es": "2ch"}


def check_distinct_views(paths: tuple[Path | None, ...], vols: list[Any]) -> None:
    """Refuse two of the echo options (``paths``: --ed, --es, --a2c-ed, --a2c-es; None: not
    given) that are one view: the same file, the same labels (``vols``: their Volumes, in the
    given options' order) or, by their sidecars, segmented from one image. One line naming the
    two options and what the second takes."""
    import numpy as np

    given = [(opt, Path(p)) for opt, p in zip(_TAKES, paths) if p is not None]
    arrays = [np.asarray(v.array) for v in vols]
    for i, (opt_a, a) in enumerate(given):
        for j in range(i + 1, len(given)):
            opt_b, b = given[j]
            if same_file(a, b):
                why = f"are the same file ({a.name})"
            elif i < len(arrays) and j < len(arrays) and np.array_equal(arrays[i], arrays[j]):
                why = f"hold the same labels ({a.name}, {b.name}: one view copied?)"
            elif (src := same_source(a, b, same_frame=_VIEW[opt_a] == _VIEW[opt_b])) is not None:  # ED, ES of one clip: two phases
                why = f"were both segmented from {src} ({a.name}, {b.name}: their sidecars say so)"
            else:
                continue
            raise MedsegError(f"{opt_a} and {opt_b} {why}: each option takes its own view and phase; give {_TAKES[opt_b]} as {opt_b}")


#: the apical view and phase each echo option takes
ECHO_OPTIONS = {"--ed": ("4ch", "ED"), "--es": ("4ch", "ES"), "--a2c-ed": ("2ch", "ED"), "--a2c-es": ("2ch", "ES")}


def check_echo_names(paths: dict[str, Path | None]) -> None:
    """Refuse echo views whose file names (``<study>_<4CH|2CH>_<ED|ES>``, ``_gt`` etc. after it, as CAMUS and
    ``medseg batch`` name them) say another view or phase than the option they were given to,
    or other studies: a 2-chamber ES given as --es read as a plausible EF, unflagged."""
    from ..batch import case_id, labels_echo_view

    named = {opt: (p, labels_echo_view(case_id(p) or p.name)) for opt, p in paths.items() if p is not None}
    for opt, (p, ev) in named.items():
        if ev is not None and ev[1:] != ECHO_OPTIONS[opt]:
            view, phase = ev[1:]
            raise MedsegError(f"{p.name} is named the {view[0]}-chamber {phase} view, but was given as {opt} "
                              f"(the {ECHO_OPTIONS[opt][0][0]}-chamber {ECHO_OPTIONS[opt][1]} view): check the options")
    from .._nfc import nfc

    studies = {nfc(ev[0]) for _, ev in named.values() if ev is not None}  # one study's views copied from a Mac (NFD) and not (NFC)
    if len(studies) > 1:
        raise MedsegError(f"the echo views are named for different studies ({', '.join(sorted(studies))}): give one study's views")
