"""``medseg segment IMAGE -o OUT --replay SIDECAR.json``: the session a label file's sidecar
records, replayed onto IMAGE and written as ``segment`` writes labels
(:mod:`medseg.replay_sidecar`)."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import console

#: ``segment``'s options that say what to segment: the sidecar says it for a replay
PROMPT_OPTIONS = ("prompts", "prompts_from", "label_map", "key_slice", "auto", "structures", "frames", "propagate", "through")


def replay_command(ctx: typer.Context, image: Path, out: Path, replay: Path | None, other_image: bool, model: str, adapter: str | None,
                   device: str, min_confidence: float | None, review_png: Path | None, series: str | None, modality: str | None) -> None:
    """The options of ``segment --replay`` checked (prompt options refused in one line), then
    :func:`run_replay` (a SIGTERM undoes what it was writing, as for ``segment``)."""
    from ..errors import PromptError
    from . import _options as o

    def given(name: str) -> bool:  # on the command line (typer's click is its own: its enum, by name)
        source = ctx.get_parameter_source(name)
        return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")

    if replay is None:
        raise PromptError("--other-image works with --replay SIDECAR.json")
    mixed = ["--" + n.replace("_", "-") for n in PROMPT_OPTIONS if given(n)]
    if mixed:
        raise PromptError(f"--replay takes the prompts, label map and settings from {replay.name}: leave out {', '.join(mixed)}")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise PromptError(f"--min-confidence must be in [0, 1], got {min_confidence}")
    if review_png is not None and review_png.suffix.lower() != ".png":
        raise PromptError(f"--review-png must name a .png file, got {review_png}")
    modality = o.parse_modality(modality)
    o.check_device(device)
    from .batch_cmd import EXIT_SIGTERM, _sigterm_as_interrupt, _Terminated

    with _sigterm_as_interrupt():
        try:
            run_replay(image, out, replay, other_image, model if given("model") else None, adapter if given("adapter") else None, device,
                       min_confidence, review_png, series, modality)
        except _Terminated:
            console.print("interrupted (SIGTERM): no output is left half-written", markup=False, highlight=False)
            raise typer.Exit(EXIT_SIGTERM) from None


def run_replay(image: Path, out: Path, replay: Path, other_image: bool, model: str | None, adapter: str | None, device: str,
               min_confidence: float | None, review_png: Path | None, series: str | None, modality: str | None) -> None:
    """Replay ``replay`` (a sidecar, or a label file medseg wrote) onto ``image`` and write
    ``out`` + sidecar; ``model`` / ``adapter`` None: the recorded ones. Everything that can be
    checked without the model (the sidecar, the image's sha256, every action against the image,
    the output) is checked before it loads."""
    import time

    from .._files import check_not_inputs, shown
    from ..errors import CheckpointError, MedsegError, PromptError
    from ..io import sidecar_path
    from ..io.readers import check_modality
    from ..models import load_model
    from ..replay_sidecar import check_image, check_recorded, identity_notes, model_choice, read_recorded_session, recorded_frame_pick, replay_sidecar
    from ..review import asked_in_log
    from .segment_cmd import _with_progress, finish_segment, read_image

    started = time.perf_counter()
    rec = read_recorded_session(replay)
    check_not_inputs({"output labels": out, "sidecar JSON": sidecar_path(out), "review sheet": review_png},
                     {"image": image, "replayed sidecar": rec.path})
    p = rec.provenance
    series = series or (p["series"] if isinstance(p.get("series"), str) else None)
    if modality is None and p.get("modality_from") == "--modality" and isinstance(p.get("modality"), str):
        modality = check_modality(p["modality"])  # as it was segmented
    vol = read_image(image, out, series, modality, _recorded_spacing(p))
    image_notes = check_image(rec, image, other_image)  # none: the image's sha256 is the one recorded
    try:
        notes = check_recorded(rec, vol, image_notes)
    except PromptError as e:  # an action outside this image, hand-edited or unknown
        raise PromptError(f"--replay {shown(rec.path.name)}: {e}") from None
    model_spec, adapter_spec, more = model_choice(rec, model, adapter)
    same_image = not image_notes
    if not same_image and (pick := recorded_frame_pick(rec)) is not None:  # ED and ES of another image: not carried
        more.append(f"ED frame {pick['ed']} and ES frame {pick['es']} were found on the recorded image: replayed as those frame "
                    "numbers, not found again on this one (the sidecar records no frame_pick)")
    try:
        loaded = load_model(model_spec, device=device, adapter=adapter_spec)
    except CheckpointError as e:
        if adapter is None and adapter_spec:  # the recorded adapter, by name
            raise CheckpointError(f"{rec.path.name} records adapter {adapter_spec!r}: {e}; give --adapter NAME_OR_FOLDER") from None
        raise
    cut = rec.min_confidence if min_confidence is None else min_confidence
    if min_confidence is not None and min_confidence != rec.min_confidence:
        more.append(f"--min-confidence {min_confidence:g} given: the session was recorded with {'none' if rec.min_confidence is None else f'{rec.min_confidence:g}'}")
    n = len(rec.actions)
    console.print(f"replaying {n} action{'s' * (n != 1)} of a {rec.made_by} session from {shown(rec.path)} "
                  f"(model {loaded.model_id}{', adapter ' + loaded.adapter_id if loaded.adapter_id else ''}"
                  f"{f', --min-confidence {cut:g}' if cut is not None else ''})", markup=False, highlight=False)
    for note in notes + more + identity_notes(rec, loaded):
        console.print(f"note: {shown(note)}", markup=False, highlight=False)
    try:
        result = _with_progress(lambda cb: replay_sidecar(vol, loaded, rec, progress=cb, min_confidence=min_confidence,
                                                           frame_pick=same_image))
    except MedsegError as e:  # an action that fails as it runs (the session's own error, naming the action)
        raise type(e)(f"--replay {shown(rec.path.name)}: {e}") from None
    source = {"replayed_from": str(rec.path.resolve()), "replayed_from_sha256": rec.sha256}
    finish_segment(image, out, vol, result, source, review_png, series, cut, set(asked_in_log(rec.actions)), started)


def _recorded_spacing(prov: dict) -> tuple[float, float] | None:
    """The ``--pixel-spacing`` a replayed segmentation was made with (its provenance's
    ``pixel_spacing_mm``), to write the replayed labels with it too; None when none was given."""
    if prov.get("spacing_from") != "--pixel-spacing":
        return None
    from ._options import parse_pixel_spacing

    got = prov.get("pixel_spacing_mm")
    text = ",".join(str(v) for v in got) if isinstance(got, list) and all(isinstance(v, (int, float)) for v in got) else str(got)
    return parse_pixel_spacing(text, "the replayed sidecar's pixel_spacing_mm")
