"""Session under seeded random sequences of operations (prompts, clicks, propagation, auto,
clears, locks, hand edits, undo/redo bursts), checked after every step against what the
session's docstrings promise: undo/redo give back the labels exactly, a new operation clears
the redo stack, every changed voxel lies in the returned Change, a locked structure is never
overwritten, failed operations change nothing, the provenance stays JSON and its replay on a
fresh session reproduces the labels bit for bit. The named regression tests below are the
shortest sequences the random search found for each bug."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from medseg.errors import MedsegError
from medseg.session import Session
from medseg.types import Box, Point, SlicePrompt

STRUCTS = ("lv", "myo", "rv")


def small_cine():
    """The smallest study on which the shipped model draws real masks (Dice > 0.9 for a
    box prompt): 3 frames x 3 slices of 64 x 64 pixels."""
    from medseg.phantoms import cine_sax_phantom

    return cine_sax_phantom(n_frames=3, n_slices=3, shape=(64, 64), spacing=(10.0, 2.5, 2.5), seed=3)


# -- the random operations ----------------------------------------------------------------
def _rand_box(rng, ph, t, z) -> Box:
    """A box around a true structure (jittered, float corners), partly outside, degenerate or far off."""
    ny, nx = ph.labels.shape[-2:]
    v = int(rng.integers(1, 4))
    b = Box.from_mask(ph.labels[t, z] == v) or Box(20.0, 20.0, 40.0, 40.0)
    y0, x0, y1, x1 = (c + rng.normal(0, 2.0) for c in b.as_tuple())
    kind = rng.random()
    if kind < 0.15:  # partly outside the image (dragged past the edge)
        dy, dx = rng.choice([-1, 1]) * rng.uniform(0.5, 1.0) * (y1 - y0 + 1), rng.choice([-1, 1]) * rng.uniform(0, 0.8) * (x1 - x0 + 1)
        y0, y1, x0, x1 = y0 + dy, y1 + dy, x0 + dx, x1 + dx
    elif kind < 0.25:  # degenerate: a line or a point
        if rng.random() < 0.5:
            y1 = y0
        else:
            y1, x1 = y0, x0
    elif kind < 0.28:  # entirely outside: refused
        y0, y1 = ny + 5.0, ny + 15.0
    y0, y1 = min(y0, y1), max(y0, y1)
    x0, x1 = min(x0, x1), max(x0, x1)
    return Box(float(y0), float(x0), float(y1), float(x1))


def _rand_point(rng, ph, t, z, v=None, inside=True) -> tuple[float, float]:
    ny, nx = ph.labels.shape[-2:]
    v = int(rng.integers(1, 4)) if v is None else v
    ys, xs = np.nonzero(ph.labels[t, z] == v)
    if inside and ys.size and rng.random() < 0.8:
        i = int(rng.integers(ys.size))
        return float(ys[i] + rng.uniform(-0.5, 0.5)), float(xs[i] + rng.uniform(-0.5, 0.5))
    return float(rng.uniform(0, ny - 1)), float(rng.uniform(0, nx - 1))


def random_op(rng, s: Session, ph) -> tuple[str, dict[str, Any]]:
    """One random operation (name, arguments)."""
    nt, nz = s.volume.n_frames, s.volume.n_slices
    name = str(rng.choice(STRUCTS))
    if "scar" in s.structures and rng.random() < 0.2:
        name = "scar"
    t, z = int(rng.integers(nt)), int(rng.integers(nz))
    ops = ("prompt", "click", "propagate", "auto", "clear", "lock", "paint", "undo", "redo", "roundtrip", "review")
    w = np.array([24, 14, 12, 3, 7, 8, 12, 9, 5, 5, 1], float)
    op = str(rng.choice(ops, p=w / w.sum()))
    if op == "prompt":
        box = _rand_box(rng, ph, t, z) if rng.random() < 0.85 else None
        pts = [Point(*_rand_point(rng, ph, t, z), bool(rng.random() < 0.75) or (i == 0 and box is None)) for i in range(int(rng.integers(0 if box else 1, 3)))]
        return op, {"prompt": SlicePrompt(name, t, z, box=box, points=tuple(pts)), "multimask": bool(rng.random() < 0.1)}
    if op == "click":
        return op, {"structure": name, "frame": t, "slice_": z, "yx": _rand_point(rng, ph, t, z, STRUCTS.index(name) + 1 if name in STRUCTS else None), "positive": bool(rng.random() < 0.7)}
    if op == "propagate":
        v = s.structure(name).value
        where = np.argwhere((s.labels == v).any(axis=(2, 3)))
        if len(where) and rng.random() < 0.8:
            t, z = (int(i) for i in where[rng.integers(len(where))])
        return op, {"structure": name, "frame": t, "slice_": z, "through": str(rng.choice(["z", "t", "zt"])), "direction": str(rng.choice(["both", "up", "down"]))}
    if op == "auto":
        names = None if rng.random() < 0.4 else [str(n) for n in rng.choice(STRUCTS, int(rng.integers(1, 4)), replace=False)]
        frames = None if rng.random() < 0.3 else sorted(int(f) for f in rng.choice(nt, int(rng.integers(1, nt + 1)), replace=False))
        return op, {"structures": names, "frames": frames}
    if op == "clear":
        return op, {"name": name, "frame": t if rng.random() < 0.5 else None, "slice_": z if rng.random() < 0.5 else None}
    if op == "lock":
        return op, {"name": name, "locked": bool(not s.structure(name).locked if rng.random() < 0.8 else rng.random() < 0.5)}
    if op == "paint":
        return op, {"blobs": [_blob(rng, s) for _ in range(int(rng.integers(0, 3)))]}
    if op in ("undo", "redo", "roundtrip"):
        return op, {"k": int(rng.integers(1, 5))}
    return op, {"structure": name, "frame": t, "slice_": z}


def _blob(rng, s: Session) -> tuple[int, int, np.ndarray, int]:
    """(frame, slice, mask, value): a random disc or rectangle painted with a label (0 = eraser)."""
    nt, nz, ny, nx = s.labels.shape
    yy, xx = np.mgrid[:ny, :nx]
    cy, cx, r = rng.uniform(0, ny), rng.uniform(0, nx), rng.uniform(1, 12)
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r if rng.random() < 0.6 else (abs(yy - cy) <= r) & (abs(xx - cx) <= r / 2)
    value = int(rng.choice([0, 1, 2, 3, 4]))  # 4: the custom structure, or a value the label map does not know
    return int(rng.integers(nt)), int(rng.integers(nz)), mask, value


# -- the checks -----------------------------------------------------------------------------
@dataclass
class Tracker:
    """What the session should hold: the labels and locks after each undoable step, and where
    undo stands among them."""

    session: Session
    buffer: np.ndarray
    initial: np.ndarray
    states: list[tuple[np.ndarray, dict[str, bool]]] = field(default_factory=list)
    pos: int = 0
    ops: int = 0
    errors: int = 0
    trace: list[str] = field(default_factory=list)
    script: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    dropped: int = 0  # oldest steps the undo budget dropped

    def note_dropped(self) -> None:
        """Forget the oldest states as the session's undo budget dropped their steps."""
        k = getattr(self.session, "undo_dropped", 0) - self.dropped
        if k:
            assert 0 < k <= self.pos, f"{k} undo steps dropped with {self.pos} done"
            del self.states[:k]
            self.pos -= k
            self.dropped += k

    def locks(self) -> dict[str, bool]:
        return {n: st.locked for n, st in self.session.structures.items()}

    def state(self) -> tuple[np.ndarray, dict[str, bool]]:
        return self.session.labels.copy(), self.locks()

    def check_state(self, want: tuple[np.ndarray, dict[str, bool]], what: str) -> None:
        s = self.session
        assert s.labels is self.buffer, f"{what}: the session no longer writes the caller's buffer"
        assert np.array_equal(s.labels, want[0]), f"{what}: labels differ at {_where(s.labels, want[0])}"
        assert self.locks() == want[1], f"{what}: locks {self.locks()} != {want[1]}"
        assert s.can_undo == (self.pos > 0), f"{what}: can_undo {s.can_undo} with {self.pos} steps done"
        assert s.can_redo == (self.pos < len(self.states) - 1), f"{what}: can_redo {s.can_redo}, {len(self.states) - 1 - self.pos} steps undone"


def _where(a: np.ndarray, b: np.ndarray) -> list[tuple[int, ...]]:
    return [tuple(int(i) for i in w) for w in np.argwhere(a != b)[:5]]


def check_change(change, before: np.ndarray, after: np.ndarray, what: str) -> None:
    """Every voxel that changed lies inside the Change's box of its (frame, slice), and every
    slice named changed."""
    diff = before != after
    changed = {(int(t), int(z)) for t, z in np.argwhere(diff.any(axis=(2, 3)))}
    missing = changed - set(change.regions)
    assert not missing, f"{what}: slices {sorted(missing)} changed but the Change names only {sorted(change.regions)}"
    for (t, z), (y0, x0, y1, x1) in change.regions.items():
        d = diff[t, z].copy()
        d[y0:y1, x0:x1] = False
        assert not d.any(), f"{what}: voxels of ({t}, {z}) changed outside the Change's box {(y0, x0, y1, x1)}: {np.argwhere(d)[:3].tolist()}"


def run_op(tr: Tracker, op: str, args: dict[str, Any]) -> None:
    """Run one operation and check it (see the module docstring)."""
    s = tr.session
    tr.trace.append(f"{op} {_short(args)}")
    tr.script.append((op, args))
    before, locks = s.labels.copy(), tr.locks()
    n_log, undo_top, n_undo = len(s.log), (s._undo[-1] if s._undo else None), len(s._undo)
    if op in ("undo", "redo", "roundtrip"):
        return _undo_redo(tr, op, args["k"])
    if op == "paint":
        for t, z, mask, value in args["blobs"]:
            s.labels[t, z][mask] = value
        painted = s.labels.copy()
        change = s.record_edits(before)
        assert np.array_equal(s.labels, painted), "record_edits changed the labels"
        if np.array_equal(before, painted):
            assert change.empty and len(s.log) == n_log, "an edit of nothing was logged"
    else:
        try:
            change = _call(s, op, args)
        except MedsegError as e:
            tr.errors += 1
            tr.refused.append(f"{op}: {str(e)[:70]}")
            if op == "auto" and args["structures"] is None and not all(locks.values()):
                raise AssertionError(f"auto of the unlocked structures refused: {e}") from None
            assert np.array_equal(s.labels, before), f"failed {op} left labels changed at {_where(s.labels, before)}"
            assert tr.locks() == locks and len(s.log) == n_log and len(s._undo) == n_undo, f"failed {op} left state behind"
            assert (s._undo[-1] if s._undo else None) is undo_top
            tr.trace[-1] += "  -> refused"
            return
    tr.ops += 1
    after = s.labels.copy()
    check_change(change, before, after, op)
    if op in ("prompt", "click", "propagate", "clear", "lock"):
        want = args["prompt"].structure if op == "prompt" else args.get("structure", args.get("name"))
        assert change.structure == want, f"{op}: Change names {change.structure!r}, not {want!r}"
    if op != "paint":  # a user's own paint may go anywhere; no model operation overwrites a locked structure
        for n, was_locked in locks.items():
            v = s.structure(n).value
            if was_locked:
                assert np.array_equal(before == v, after == v), f"{op} changed locked {n} at {_where(before == v, after == v)}"
    pushed = len(s._undo) != n_undo or (s._undo[-1] if s._undo else None) is not undo_top
    if not np.array_equal(before, after) or tr.locks() != locks:
        assert pushed, f"{op} changed the labels or locks without an undo step"
    if pushed:
        del tr.states[tr.pos + 1:]
        tr.states.append(tr.state())
        tr.pos += 1
        tr.note_dropped()
    tr.check_state(tr.states[tr.pos], op)
    if pushed:
        assert not s.can_redo, f"{op} after undo left the redo stack"
    json.dumps(s.log, allow_nan=False)


def _call(s: Session, op: str, a: dict[str, Any]):
    if op == "prompt":
        return s.apply_prompt(a["prompt"], multimask=a["multimask"])
    if op == "click":
        return s.add_click(a["structure"], a["frame"], a["slice_"], *a["yx"], positive=a["positive"])
    if op == "propagate":
        return s.propagate(a["structure"], a["frame"], a["slice_"], a["through"], a["direction"])
    if op == "auto":
        return s.auto(a["structures"], a["frames"])
    if op == "clear":
        return s.clear(a["name"], a["frame"], a["slice_"])
    if op == "lock":
        return s.lock(a["name"], a["locked"])
    if op == "review":
        n = len(s.log)
        s.mark_reviewed(a["structure"], a["frame"], a["slice_"], "looked at")
        assert len(s.log) == n + 1
        from medseg._session_undo import Change

        return Change("review", a["structure"])
    raise AssertionError(op)


def _undo_redo(tr: Tracker, op: str, k: int) -> None:
    s = tr.session
    for direction in (("undo", "redo") if op == "roundtrip" else (op,)):
        for _ in range(k):
            before = s.labels.copy()
            n_log = len(s.log)
            change = s.undo() if direction == "undo" else s.redo()
            can = tr.pos > 0 if direction == "undo" else tr.pos < len(tr.states) - 1
            if can:
                tr.pos += -1 if direction == "undo" else 1
                assert len(s.log) == n_log + 1 and s.log[-1] == {"op": direction}
            else:
                assert change.empty and len(s.log) == n_log, f"{direction} with nothing to {direction} was logged"
            tr.ops += 1
            check_change(change, before, s.labels, direction)
            tr.check_state(tr.states[tr.pos], direction)


def _short(args: dict[str, Any]) -> str:
    out = []
    for k, v in args.items():
        if k == "blobs":
            v = [(t, z, int(m.sum()), val) for t, z, m, val in v]
        elif isinstance(v, SlicePrompt):
            v = v.to_json()
        out.append(f"{k}={v}")
    return ", ".join(out)


def check_replay(tr: Tracker, model, ph) -> None:
    """The provenance, through JSON, replayed on a fresh session that starts from the same
    initial labels (in a buffer of its own) gives the same labels and locks, and the same undo
    and redo depth."""
    s = tr.session
    prov = json.loads(json.dumps(s.provenance(), allow_nan=False))
    buf = tr.initial.copy()
    again = Session(ph.image, model, s.label_map, labels=buf)
    again.replay(prov["actions"])
    assert again.labels is buf
    assert np.array_equal(again.labels, s.labels), f"replay differs at {_where(again.labels, s.labels)}"
    assert {n: st.locked for n, st in again.structures.items()} == tr.locks(), "replay: locks differ"
    if not tr.dropped:  # a replay keeps every step
        assert (len(again._undo), len(again._redo)) == (len(s._undo), len(s._redo)), "replay: undo/redo depth differs"


def run_sequence(model, ph, seed: int, n_ops: tuple[int, int] = (6, 15), replay: bool = True, replay_undone: bool = True) -> Tracker:
    """One random sequence; raises AssertionError (with the trace) at the first broken promise.
    ``replay``: check the replay of the final labels; ``replay_undone``: and again once every
    step was undone (the log then ends in undos). The caller's buffer is uint8 or uint16, a
    strided view or not, empty or holding labels; some sequences run with an undo budget that
    keeps only the last few steps."""
    import os

    rng, var = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    if var.random() < 0.15:  # a dropped frame: one slice without signal (stepped over, prompts refused)
        t, z = (int(i) for i in var.integers(0, ph.image.shape[:2]))
        arr = ph.image.array.copy()
        arr[t, z] = 0
        ph = SimpleNamespace(image=ph.image.with_array(arr), labels=ph.labels)
    extra = var.random() < 0.15  # a custom structure the model has no token for
    dtype = np.uint16 if var.random() < 0.25 else np.uint8
    base = np.zeros((*ph.image.shape[:-1], 2 * ph.image.shape[-1]), dtype) if var.random() < 0.25 else None
    buf = base[..., ::2] if base is not None else np.zeros(ph.image.shape, dtype)  # napari's layer data may be a view
    budget = "0.05" if var.random() < 0.2 else None  # MB: two prompt steps
    if rng.random() < 0.3:  # labels the caller brought: a mask loaded earlier, or the truth on some slices
        sel = rng.random(ph.labels.shape[:2]) < 0.5
        buf[sel] = np.where(np.isin(ph.labels[sel], (1, 2, 3)), ph.labels[sel], 0)
    tr = Tracker(Session(ph.image, model, "lv=1,myo=2,rv=3", labels=buf), buf, buf.copy())
    if extra:
        tr.session.add_structure("scar", 4)
    tr.states.append(tr.state())
    old = os.environ.pop("MEDSEG_UNDO_MB", None)
    try:
        if budget:
            os.environ["MEDSEG_UNDO_MB"] = budget
        for _ in range(int(rng.integers(n_ops[0], n_ops[1] + 1))):
            op, args = random_op(rng, tr.session, ph)
            run_op(tr, op, args)
        if replay:
            check_replay(tr, model, ph)
        _undo_redo(tr, "undo", tr.pos)  # back to the start (or the oldest step kept): the initial labels, unlocked
        assert np.array_equal(buf, tr.initial) and not any(tr.locks().values()) or tr.dropped
        if base is not None:
            assert not base[..., 1::2].any(), "the session wrote outside the caller's view"
        if replay and replay_undone:
            check_replay(tr, model, ph)  # the undos are in the log: replay undoes too
    except AssertionError as e:
        raise AssertionError(f"seed {seed} ({np.dtype(dtype).name}{', view' if base is not None else ''}{', scar' if extra else ''}"
                             f"{', blank slice' if isinstance(ph, SimpleNamespace) else ''}"
                             f"{', undo budget ' + budget + ' MB' if budget else ''}): {e}\n  " + "\n  ".join(tr.trace)) from None
    finally:
        os.environ.pop("MEDSEG_UNDO_MB", None)
        if old is not None:
            os.environ["MEDSEG_UNDO_MB"] = old
    return tr


# -- the tests --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cine():
    return small_cine()


def test_the_small_cine_gets_real_masks(model, cine):
    s = Session(cine.image, model, "lv=1,myo=2,rv=3")
    for v, name in enumerate(STRUCTS, 1):
        s.apply_prompt(SlicePrompt(name, 0, 1, box=Box.from_mask(cine.labels[0, 1] == v)))
        got, true = s.labels[0, 1] == v, cine.labels[0, 1] == v
        assert 2 * (got & true).sum() / (got.sum() + true.sum()) > 0.85


SEEDS = list(range(16))


@pytest.mark.slow
def test_random_sequences_keep_the_sessions_promises(model, cine):
    """16 sequences (some 250 operations; a search of 440 seeds, 7,600 operations, ran clean
    with the fixes below), the replay checked on each and, for every fourth, again once all
    was undone."""
    trackers = [run_sequence(model, cine, seed, replay_undone=seed % 4 == 0) for seed in SEEDS]
    assert sum(t.ops for t in trackers) > 150 and sum(t.errors for t in trackers) < sum(t.ops for t in trackers) / 3


# -- what the random search found (shortest sequences) ------------------------------------------
def _replayed(s: Session, model, ph, initial: np.ndarray | None = None) -> Session:
    again = Session(ph.image, model, s.label_map, labels=None if initial is None else initial.copy())
    again.replay(json.loads(json.dumps(s.provenance()))["actions"])
    return again


def test_a_box_dragged_to_many_decimals_replays_bit_for_bit(model, cine):
    """Found by the random search, shrunk to one prompt. napari's box corners carry many decimals, the log keeps three: the
    replay predicted from another box and its mask differed by a pixel (by 5 with multimask)."""
    box = Box(20.623532741740117, 23.096111119478557, 42.68238243717972, 33.91420540057448)
    s = Session(cine.image, model, "lv=1,myo=2,rv=3")
    s.apply_prompt(SlicePrompt("myo", 0, 1, box=box, points=(Point(33.999339285393305, 30.861251200389244),
                                                              Point(41.0305759926331, 35.79024693413258, False))))
    assert np.array_equal(_replayed(s, model, cine).labels, s.labels)


def test_auto_leaves_a_locked_structure_out_by_default(model, cine):
    """Found by the random search, shrunk to: lock lv; auto(). The default zero-click pass took every structure the model knows,
    the locked one too, and was refused at its first write: with a structure accepted, auto
    could not run at all. Named explicitly, a locked structure is refused before the model runs."""
    from medseg.errors import PromptError

    s = Session(cine.image, model, "lv=1,myo=2,rv=3")
    s.apply_prompt(SlicePrompt("lv", 0, 1, box=Box.from_mask(cine.labels[0, 1] == 1)))
    s.lock("lv")
    lv = s.labels == 1
    s.auto(frames=[0])
    assert s.log[-1]["structures"] == ["myo", "rv"] and (s.labels[0] == 2).any()
    assert np.array_equal(s.labels == 1, lv)
    n = len(s.log)
    with pytest.raises(PromptError, match="lv is locked"):
        s.auto(["lv", "myo"])
    assert len(s.log) == n
    for name in ("myo", "rv"):
        s.lock(name)
    with pytest.raises(PromptError, match="every structure"):
        s.auto()
