"""``SegmentResult.confidence`` (``ConfidenceReport.to_json()``) shown in a notebook or printed
listed every slice of every structure: 6,847 characters for a 3-frame phantom (54 slices),
3,663 for one ACDC stack (27), hundreds of lines as IPython pretty-prints it, thousands for a
cine. Now one line; code that uses it as a dict gets the same as before."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest

from medseg.confidence import REPR_FLAGS, ConfidenceDict, ConfidenceReport, SliceConfidence


def _cine_report() -> ConfidenceReport:
    """A 30-frame, 10-slice cine of three structures (900 slices), two slices flagged in lv and
    one volume flag in myo, as :func:`medseg.confidence.score_session` makes them."""
    rep = ConfidenceReport(thresholds={"slice": 0.3, "volume": 0.92})
    for n in ("lv", "myo", "rv"):
        for t in range(30):
            for z in range(10):
                rep.slices.append(SliceConfidence(n, t, z, 0.91234567, 0.95, 0.94, 800 + z))
        rep.volume[n] = 0.8403 if n == "myo" else 0.9512345
    rep.flags = [{"code": "needs_review", "level": "slice", "structure": "lv", "frame": t, "slice": 9, "confidence": 0.2871, "threshold": 0.3,
                  "message": f"lv on frame {t}, slice 9: confidence 0.29 < 0.30"} for t in (0, 12)]
    rep.flags.append({"code": "needs_review", "level": "volume", "structure": "myo", "confidence": 0.8403, "threshold": 0.92,
                      "message": "myo: volume confidence 0.84 < 0.92"})
    return rep


def test_a_cine_s_confidence_prints_on_one_line():
    conf = _cine_report().to_json()
    text = repr(conf)
    assert "\n" not in text and len(text) < 300 and str(conf) == text
    assert text == ("ConfidenceDict(volume={'lv': 0.9512, 'myo': 0.8403, 'rv': 0.9512}, needs_review=True, thresholds={'slice': 0.3, 'volume': 0.92}, "
                    "slices=900, flagged=['lv frame 0 slice 9 0.2871 < 0.3', 'lv frame 12 slice 9 0.2871 < 0.3', 'myo volume 0.8403 < 0.92'])")


def test_many_flags_are_cut_with_a_count():
    conf = _cine_report().to_json()
    conf["flags"] = [{**conf["flags"][0], "frame": t} for t in range(REPR_FLAGS + 4)]
    assert repr(conf).endswith(f"'lv frame {REPR_FLAGS - 1} slice 9 0.2871 < 0.3', '... 4 more'])")
    assert "ConfidenceDict(volume=None, needs_review=None, thresholds=None, slices=0, flagged=[])" == repr(ConfidenceDict())


def test_code_that_uses_it_as_a_dict_gets_the_same():
    rep = _cine_report()
    conf = rep.to_json()
    plain = json.loads(json.dumps(conf))
    assert isinstance(conf, dict) and conf == plain and dict(conf) == plain
    assert json.dumps(conf, sort_keys=True) == json.dumps(plain, sort_keys=True)
    assert list(conf) == ["volume", "slices", "thresholds", "needs_review", "flags"]
    assert conf["slices"][0] == {"structure": "lv", "frame": 0, "slice": 0, "iou_pred": 0.9123, "agreement": 0.95, "confidence": 0.94, "area_px": 800}
    assert conf.get("volume")["myo"] == 0.8403 and conf["needs_review"] is True and len(conf["flags"]) == 3
    for back in (pickle.loads(pickle.dumps(conf)), copy.deepcopy(conf), copy.copy(conf)):
        assert type(back) is ConfidenceDict and back == conf


def test_ipython_shows_the_one_line():
    pretty = pytest.importorskip("IPython.lib.pretty")
    conf = _cine_report().to_json()
    assert pretty.pretty(conf) == repr(conf)
    assert "ConfidenceDict(" in pretty.pretty({"confidence": conf}) and "iou_pred" not in pretty.pretty({"confidence": conf})


def test_segment_volume_s_confidence_on_a_phantom(phantom, model):
    """In a notebook: ``segment_volume(...).confidence`` and ``print(...)`` of it; the
    provenance holds the same dict, and the sidecar JSON the same data."""
    from medseg.segment import segment_volume

    ph = phantom
    vol = ph.image.with_array(ph.image.array[:1], frame_times_s=None)
    res = segment_volume(vol, model, auto=True, label_map=ph.label_map.subset(["lv", "myo", "rv"]))
    conf = res.confidence
    assert res.provenance["confidence"] is conf and isinstance(conf, ConfidenceDict)
    text = repr(conf)
    assert "\n" not in text and len(text) < 300 and f"slices={len(conf['slices'])}" in text and len(conf["slices"]) >= 12
    assert text.startswith(f"ConfidenceDict(volume={conf['volume']!r}, needs_review={conf['needs_review']!r}, thresholds={conf['thresholds']!r}")
    assert json.loads(json.dumps(res.provenance))["confidence"] == conf
    assert all(np.isfinite(v) for v in conf["volume"].values())


def test_the_confidence_step_counts_its_slices_in_the_progress(phantom, model):
    """A long cine spends a third of its time scoring the confidence; its progress said
    ``0/?`` all that time (``segment``'s bar stood still). It counts each slice scored."""
    from medseg.segment import segment_volume

    vol = phantom.image.with_array(phantom.image.array[:2], frame_times_s=None)
    seen: list[tuple[int, int | None, str]] = []
    res = segment_volume(vol, model, auto=True, label_map=phantom.label_map.subset(["lv", "myo", "rv"]),
                         progress=lambda d, t, what=None: seen.append((d, t, what or "")))
    counted = [(d, t) for d, t, what in seen if what == "confidence (jittered decodes), slices"]
    assert counted and counted[-1] == (len(res.confidence["slices"]), len(res.confidence["slices"]))
    assert sorted(d for d, _ in counted) == list(range(1, len(counted) + 1))


def test_a_confidence_dict_edited_into_another_shape_still_prints():
    conf = ConfidenceDict({"volume": {"lv": 0.9}, "slices": 12, "flags": "none"})
    assert repr(conf) == repr(dict(conf))
