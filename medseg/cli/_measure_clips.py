"""`medseg measure A4C_CLIP --a2c A2C_CLIP`: biplane disks from two apical clips, each view's
ED and ES found in its own clip (:func:`medseg.measure.echo_clips.measure_echo_biplane_clips`).
Helpers of :mod:`medseg.cli.measure_cmd`: the forms checked, each file read as one view over
the cycle (``--clip``: a 3-D file's third axis as time, for both), and the report's frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import MedsegError


def check_clip_forms(labels: Path | None, a2c_clip: Path | None) -> None:
    """``--a2c`` goes with LABELS (the 4-chamber clip) and is another file."""
    if a2c_clip is None:
        return
    if labels is None:
        raise MedsegError("--a2c is the 2-chamber clip beside LABELS (the 4-chamber clip): medseg measure A4C_CLIP --a2c A2C_CLIP; "
                          "with --ed/--es give the 2-chamber frames as --a2c-ed and --a2c-es")
    from ._echo_pairs import same_file

    if same_file(Path(labels), Path(a2c_clip)):
        raise MedsegError(f"LABELS and --a2c are the same file ({Path(labels).name}): give the 4-chamber clip as LABELS and the "
                          "2-chamber clip as --a2c")
    _check_names(Path(labels), Path(a2c_clip))
    _check_sources(Path(labels), Path(a2c_clip))


def _check_names(a4c: Path, a2c: Path) -> None:
    """Refuse clips whose names say the other view, or other studies (as the four-file form does)."""
    from .._nfc import nfc
    from ..batch.case_names import file_view

    named = {}
    for path, want, where in ((a4c, "4ch", "LABELS (the 4-chamber clip)"), (a2c, "2ch", "--a2c (the 2-chamber clip)")):
        if (found := file_view(path.name)) is None:  # [<study>_]<view>..., the view as batch's case names say it
            continue
        study, view = found
        if view != want:
            raise MedsegError(f"{path.name} is named the {view[0]}-chamber view, but was given as {where}: check the options")
        if study is not None:
            named[path] = nfc(study)
    if len(set(named.values())) > 1:
        raise MedsegError(f"the clips are named for different studies ({', '.join(sorted(set(named.values())))}): give one study's views")


def _check_sources(a4c: Path, a2c: Path) -> None:
    """Refuse label files that medseg segmented from one image (their sidecars' ``input_sha256``
    and series: :func:`medseg.cli._echo_pairs.same_source`): one clip segmented twice
    (``segment --auto`` and ``--frames ed,es``) gave a "biplane" EF of one view, also when picked
    as ``--series 3`` and as ``--series ...50405``; two series of one DICOM study folder are two
    images. Files without a sidecar, or one that names no input, are not checked."""
    from ._echo_pairs import same_source

    if (src := same_source(a4c, a2c)) is not None:
        raise MedsegError(f"{a4c.name} and {a2c.name} were both segmented from {src} (their sidecars say): biplane disks "
                          "need the 4-chamber clip's labels as LABELS and the 2-chamber clip's as --a2c")


def run_biplane_clips(vol4: Any, vol2: Any, path4: Path, path2: Path, lmap: Any, body: dict, clip: bool) -> tuple[dict, dict, dict, Any]:
    """(report, phase ("A4C ED", "A4C ES") -> (1, Y, X) labels of the 4-chamber view, phase ->
    its frame, the 4-chamber clip's Volume): :func:`medseg.measure.echo_clips.measure_echo_biplane_clips`."""
    from ..measure.echo_clips import measure_clip_volumes
    from .measure_cmd import _require_lv

    vol4, vol2 = _as_view_clip(vol4, path4, "LABELS", clip), _as_view_clip(vol2, path2, "--a2c", clip)
    for vol, path in ((vol4, path4), (vol2, path2)):
        _require_lv([vol], lmap, f"{path}: ")
    report, labels, frames = measure_clip_volumes(vol4, vol2, (path4.name, path2.name), label_map=lmap, **body)
    return report, labels, frames, vol4


def _as_view_clip(vol: Any, path: Path, option: str, clip: bool) -> Any:
    """``vol`` as one view over the cycle ((T, 1, Y, X), T > 1), or a one-line error saying
    what it is and what measures it."""
    from .measure_cmd import _as_clip

    if clip:
        vol = _as_clip(vol, path)
    if vol.n_slices == 1 and vol.n_frames > 1:
        return vol
    if vol.n_slices == 1:
        raise MedsegError(f"{option} {path.name} is one frame, not a clip: biplane disks from two clips need each view over the "
                          "cycle; single frames are given as --ed/--es --a2c-ed/--a2c-es")
    if vol.n_frames == 1:
        raise MedsegError(f"{option} {path.name} is a 3-D file of {vol.n_slices} slices: if its third axis is time (one view over "
                          "the cycle, e.g. CAMUS *_half_sequence.nii.gz), add --clip (it applies to both clips)")
    raise MedsegError(f"{option} {path.name} is a cine of {vol.n_frames} frames of {vol.n_slices} slices, not one apical view "
                      "over the cycle")
