"""The words of a methods section (:mod:`medseg.methods`): the segmentation paragraph, the
measurement paragraph (a batch run with ``--measure`` only), the facts behind them and the Cite
list, each from a :class:`medseg.methods.Run` and the code's constants."""

from __future__ import annotations

from collections import Counter
from typing import Any

#: structure names in words (medseg's own names, :data:`medseg.labels.STRUCTURE_NAMES`)
_WORDS = {"lv": "LV", "myo": "myocardium", "rv": "RV", "la": "LA", "ra": "RA", "aorta": "aorta", "pa": "pulmonary artery"}
_THROUGH = {"z": "through the slices", "t": "through the frames", "zt": "through the slices and frames"}


def compose(run: Any) -> str:
    """The whole METHODS.md text of ``run``."""
    paragraphs = [segmentation_paragraph(run)]
    if run.kind == "batch" and run.settings.get("measure"):
        paragraphs.append(measurement_paragraph(run))
    where = "medseg batch (summary.json, each case's sidecar JSON" + (", cohort.csv)" if run.cohort is not None else ")") \
        if run.kind == "batch" else "the sidecar JSON of one medseg output"
    head = f"# Methods\n\n_Written by medseg from {where}; check it against your protocol before you use it._\n"
    facts = "\n".join(f"- {f}" for f in fact_lines(run))
    cites = "\n".join(f"- {c}" for c in cite_lines(run))
    return f"{head}\n" + "\n\n".join(paragraphs) + f"\n\n## Facts behind it\n\n{facts}\n\n## Cite\n\n{cites}\n"


def _n(k: int, one: str, many: str | None = None) -> str:
    return f"{k} {one if k == 1 else many or one + 's'}"


def _cases(k: int) -> str:
    """A batch counts cases, as its summary does (one image file or folder each): a study whose
    frames, phases or views are separate images is several cases (cohort.csv's study rows join them)."""
    return _n(k, "case")


def _join(items: list[str]) -> str:
    items = [i for i in items if i]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def _short(sha: Any) -> str:
    return f"sha256 {str(sha)[:12]}..." if sha else "no sha256 recorded"


def model_words(model: tuple[Any, ...]) -> str:
    mid, msha, aid, asha = model
    adapter = f' with the LoRA adapter "{aid}" ({_short(asha)})' if aid else " without an adapter"
    return f'the model "{mid}" ({_short(msha)}){adapter}'


def prompting_words(p: tuple[Any, ...], settings: dict[str, Any]) -> str:
    """One way of prompting (:func:`medseg.methods._prompting`) in words (the frames segmented:
    :func:`frames_words`)."""
    mode, kinds, source, through, frames = p[:5]
    what = _join(["bounding box" if k == "box" else "click" for k in kinds]) or "prompt"
    src = (" from the reference labels" if source == "reference" else " from a prompts file" if source == "file" or settings.get("prompts") else "")
    axes = _join([_THROUGH.get(t, t) for t in through])
    per_frame = " of each frame (cine)" if frames else ""
    if mode == "auto":
        text = "no prompt: zero-click, the model's structure tokens alone"
    elif mode == "auto+prompts":
        text = f"zero-click first, then {what}es{src}" if what.endswith("box") else f"zero-click first, then {what}s{src}"
    elif mode == "key":
        text = f"one {what} per structure on a single slice{per_frame}{src}, the model's mask then propagated {axes}"
    elif mode == "every":
        text = f"a {what}{src} on every slice that holds the structure, without propagation"
    elif mode == "chosen":
        text = f"{what} prompts{src} on the slices chosen by the user, without propagation"
    elif mode == "propagated":
        text = f"{what} prompts{src} on several slices, propagated {axes}"
    else:
        text = "no prompt recorded"
    return text


def frames_chosen(p: tuple[Any, ...]) -> bool:
    """Whether ``--frames`` chose some frames of a cine (a study's prompting ``p``): ED and ES
    found on it, or frames given by number. ``ed``/``es`` named but never looked for is a
    one-frame image, segmented whole (that frame is ED and ES): "only frames ed,es" was said of
    11 one-frame cases of a batch."""
    asked, picked = p[5], p[6]
    return bool(asked) and (bool(picked) or not {f.strip() for f in str(asked).split(",")} & {"ed", "es"})


def frames_words(studies: list[Any]) -> str:
    """Which frames were segmented, when ``--frames`` chose some of a cine (:func:`frames_chosen`),
    and the one-frame cases it was given for, segmented whole; "" when it chose none."""
    n = len(studies)
    chosen = Counter((s.prompting[5], s.prompting[6]) for s in studies if frames_chosen(s.prompting))
    whole = sum(bool(s.prompting[5]) and not frames_chosen(s.prompting) for s in studies)  # (cases without --frames: not said)
    said = []
    for i, ((asked, picked), k) in enumerate(chosen.most_common()):
        found = " (end-diastole and end-systole found by a zero-click LV pass)" if picked else ""
        if n == 1 or k == n:  # (one kind then)
            said.append(f"Only frames {asked} of {'the cine' if n == 1 else 'each case'} were segmented{found}")
        else:
            said.append(f"{'Only frames' if i == 0 else 'frames'} {asked}{' were segmented' if i == 0 else ''} in {k} of the {_cases(n)}{found}")
    if whole:
        other = "the other " if whole == n - sum(chosen.values()) else ""
        said.append(f"{other}{_n(whole, 'one-frame case')} {'was' if whole == 1 else 'were'} segmented whole")
    return "; ".join(said) + "." if chosen else ""


def segmentation_paragraph(run: Any) -> str:
    n = len(run.studies)
    if not n:
        return f"No case of this run has labels medseg wrote ({_failure_words(run) or 'nothing was segmented'})."
    names = sorted({s for st in run.studies for s in st.structures}, key=lambda s: list(_WORDS).index(s) if s in _WORDS else 99)
    versions = Counter(s.version for s in run.studies)
    version = _join([f"{v}" + (f" ({_cases(k)})" if len(versions) > 1 else "") for v, k in versions.most_common()])
    how = "`medseg batch`" if run.kind == "batch" else command_words(run.studies[0].command)
    devices = _join(sorted({str(s.device) for s in run.studies if s.device}))
    where = f" in {_cases(n)} (one image file or folder each)" if run.kind == "batch" else ""
    out = [f"The {_join([_WORDS.get(s, s) for s in names])} {'were' if len(names) > 1 else 'was'} segmented{where} with medseg "
           f"{version} ({how}{', on ' + devices if devices else ''})."]
    models = Counter(s.model for s in run.studies)
    if len(models) == 1:
        out.append(f"{'Each case was' if n > 1 else 'It was'} segmented with {model_words(next(iter(models)))}.")
    else:
        out.append("The cases were not all segmented with the same weights (a resumed run with other options): "
                   + "; ".join(f"{_cases(k)} with {model_words(m)}" for m, k in models.most_common()) + ".")
    arch = _architecture(run)
    if arch:
        out.append(arch)
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for s in run.studies:  # a cine's prompts on each frame and a one-frame study's alike: one way of prompting (frames: below)
        groups.setdefault((*s.prompting[:4], False), []).append(s)
    ways = [(prompting_words((*p[:4], any(s.prompting[4] for s in g)), run.settings), len(g))
            for p, g in sorted(groups.items(), key=lambda kv: -len(kv[1]))]
    out.append(f"Prompts: {ways[0][0]}." if len(ways) == 1 else
               "Prompting differed between cases: " + "; ".join(f"{_cases(k)}: {w}" for w, k in ways) + ".")
    out.append(frames_words(run.studies))
    out += _post_processing(run)
    out.append(_review_words(run))
    failures = _failure_words(run)
    if failures:
        out.append(failures[0].upper() + failures[1:] + ".")
    return " ".join(s for s in out if s)


def command_words(command: str) -> str:
    """How one study's labels were made: "`medseg segment`", "medseg's napari plugin"."""
    return "medseg's napari plugin" if command == "napari" else f"`medseg {command or 'segment'}`"


def _architecture(run: Any) -> str:
    from ._methods_cite import architecture_refs, model_card

    named = {m[0]: architecture_refs(m[0], model_card(m[0], m[1])) for m in {s.model for s in run.studies}}
    sam = [k for k, refs in named.items() if refs]
    if not sam:
        return ""
    which = "The model is a promptable network" if len(named) == 1 else f"The models {_join([repr(str(k)) for k in sam])} are promptable networks"
    return f"{which} built from Segment Anything modules{' (MedSAM)' if any(len(named[k]) > 1 for k in sam) else ''} (see Cite)."


def _post_processing(run: Any) -> list[str]:
    """The rules that shaped the masks of this run's studies (those whose structures they touch
    only) and the slices its action logs record them removing."""
    from . import propagation

    out = []
    walked = [s for s in run.studies if s.prompting[0] in ("key", "propagated") and "z" in "".join(s.prompting[3])]
    if walked:
        out.append(f"Propagation to the next slice stopped where the predicted IoU fell below {propagation.MIN_SCORE:g} or the area shrank below "
                   f"{propagation.MIN_AREA_RATIO:g} or grew beyond {propagation.MAX_AREA_RATIO:g} times the previous slice's.")
    thr = Counter(s.thresholds for s in run.studies)
    for t, k in thr.items():
        if t:
            cut = _join([f"{_WORDS.get(name, name)} at logit {v:g}" for name, v in t])
            where = "" if len(run.studies) == 1 else " in every case" if k == len(run.studies) else f" in {k} of {_cases(len(run.studies))}"
            out.append(f"Masks were cut at a threshold fitted for this model ({cut}, instead of 0){where}.")
    modelled = [s for s in run.studies if s.prompting[0] in ("key", "propagated", "auto", "auto+prompts")]
    rules = _rule_words(modelled)
    if rules:
        modes = {s.prompting[0] for s in modelled}
        when = _join([w for w, on in (("propagation", bool(modes & {"key", "propagated"})), ("zero-click", bool(modes & {"auto", "auto+prompts"}))) if on])
        out.append(f"After {when.replace(' and ', ' or ')}, " + "; ".join(rules) + ".")
    filled, probed = sum(s.filled for s in run.studies), sum(s.probed for s in run.studies)
    if filled:
        out.append(f"Zero-click carried {_n(filled, 'slice')} of a structure missed on some frames over from the nearest frame that had it.")
    if probed:
        out.append(f"An RV zero-click found on no slice of a frame was looked for with clicks around the myocardium ({_n(probed, 'finding')}).")
    if (rules or filled or probed) and any(s.undone for s in modelled):  # the log keeps an undone operation's entry
        out.append("These slice counts are those the action log records, operations undone afterwards (napari) included.")
    mc = {s.min_confidence for s in run.studies if s.min_confidence is not None} | ({run.settings["min_confidence"]} if run.settings.get("min_confidence") is not None else set())
    if mc:
        gone = sum(bool(s.handed_over) for s in run.studies)
        which = f"{_cases(gone)} with some left out, {_cases(run.handed_over)} handed over whole" if run.kind == "batch" else \
            f"here: {_join([_WORDS.get(str(h), str(h)) for h in run.studies[0].handed_over])}" if gone else "none here"
        out.append(f"Structures whose volume confidence fell below {_join([f'{v:g}' for v in sorted(mc)])} were left out for manual segmentation "
                   f"({which}).")
    return out


def _rule_words(modelled: list[Any]) -> list[str]:
    """The anatomical rules (:mod:`medseg.enclosure`, :mod:`medseg.end_check`) as they apply to
    the studies propagated or zero-clicked: only where their structures were segmented. The
    action log records the slices a rule removed, not those the LV rule added (myocardium
    propagated on around the LV, an LV prompted inside a basal ring): those are described, not counted."""
    from . import enclosure, end_check

    rules = []
    if any({"lv", "myo"} <= set(s.structures) for s in modelled):
        k = sum(s.removed.get("lv_outside_myo", 0) for s in modelled)
        rules.append(f"the LV was kept inside the myocardium: a model-written LV slice beyond the myocardium was removed ({_removed(k)}) unless "
                     "the myocardium, propagated on, enclosed it, and where model-written myocardium went on past the LV at the base, an LV prompted "
                     "with a box was kept in each ring that enclosed it (the slices these two steps added are not recorded)")
    if any("rv" in s.structures and {"lv", "myo"} & set(s.structures) for s in modelled):
        k = sum(s.removed.get("rv_beyond_heart", 0) for s in modelled)
        rules.append(f"RV slices more than {_n(enclosure.BESIDE_MARGIN, 'slice')} beyond the LV and myocardium were removed ({_removed(k)})")
    w = end_check.weights()
    checked = sum(s.removed.get("rv_end_check", 0) for s in modelled)
    if checked or (w is not None and any({"rv", "lv", "myo"} <= set(s.structures) and w.get("model_sha256") in (None, s.model[1]) for s in modelled)):
        rules.append(f"a learned check of the RV's end slices removed {_n(checked, 'slice')}")
    return rules


def _removed(k: int) -> str:
    return _n(k, "slice") if k else "none in this run"


def _review_words(run: Any) -> str:
    n = len(run.studies)
    flagged = [s for s in run.studies if s.flagged]
    vols, slices = sum(s.flagged_volumes for s in flagged), sum(s.flagged_slices for s in flagged)
    parts = [p for p in (_n(vols, "structure volume") if vols else "", _n(slices, "slice") if slices else "") if p]
    what = f" ({_join(parts)})" if parts else ""
    if run.kind == "segment":
        text = f"The confidence and anatomy checks of medseg flagged it for review{what}." if flagged else \
            "The confidence and anatomy checks of medseg did not flag it for review."
    else:
        text = f"The confidence and anatomy checks of medseg {'flagged' if flagged else 'did not flag'} the 1 case segmented for review{what}." \
            if n == 1 else f"The confidence and anatomy checks of medseg flagged {len(flagged)} of the {_cases(n)} segmented for review{what}."
        total = run.counts.get("n_needs_review")
        if isinstance(total, int) and total != len(flagged):  # summary.json's count: a case handed over whole needs review too
            also = ", those handed over included" if run.handed_over else ""  # (a case whose sidecar is unreadable: as its row says)
            text += f" In all, {total} of the {_cases(int(run.counts.get('n_cases', 0)))} need review (summary.json{also})."
    edited = [s for s in run.studies if s.edited]
    if edited:
        kept = f", {run.kept} of them kept as corrected (not segmented again) by --resume" if run.kept else ""
        whose = "The labels were" if run.kind == "segment" else f"The labels of {_cases(len(edited))} were"
        text += f" {whose} edited by hand after medseg wrote them{kept}."
    elif all(s.edit_known for s in run.studies):
        text += " No labels had been edited by hand after medseg wrote them when this text was written."
    else:
        text += " Whether the labels were edited since medseg wrote them cannot be told (their sidecar records no digest of them)."
    return text


def _failure_words(run: Any) -> str:
    parts = []
    n_failed = sum(run.failed.values())
    if n_failed:
        top = "; ".join(f"{r} ({k})" if k > 1 else r for r, k in run.failed.most_common(3))
        parts.append(f"{_cases(n_failed)} failed ({top}{'; ...' if len(run.failed) > 3 else ''})")
    if run.handed_over:
        parts.append(f"{_cases(run.handed_over)} handed over for manual segmentation, every structure below --min-confidence")
    skipped = sum(run.not_segmented.values())
    if skipped:
        parts.append(f"{_cases(skipped)} not segmented ({run.not_segmented.most_common(1)[0][0]}{'; ...' if len(run.not_segmented) > 1 else ''})")
    if run.unreadable:
        parts.append(f"{_cases(len(run.unreadable))} with a sidecar that could not be read left out of this text ({', '.join(run.unreadable[:3])})")
    return "; ".join(parts)


def measurement_paragraph(run: Any) -> str:
    from ._methods_facts import measurement_sentences

    return " ".join(measurement_sentences(run))


def fact_lines(run: Any) -> list[str]:
    from ._methods_facts import fact_lines as lines

    return lines(run)


def cite_lines(run: Any) -> list[str]:
    from ._methods_facts import cite_lines as lines

    return lines(run)
