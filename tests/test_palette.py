"""The structure colours stay apart for colour-vision-deficient readers, and every output takes them
from the one palette (``medseg.labels.STRUCTURE_COLOURS``). benchmarks/palette_cvd.py has the
full numbers (docs/bench/palette_cvd.json)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from skimage.color import deltaE_ciede2000, rgb2lab

from medseg.labels import DEFAULT_LABEL_MAP, STRUCTURE_COLOURS

#: Machado, Oliveira and Fernandes 2009, severity 1.0, on linear sRGB
MACHADO = {
    "normal": np.eye(3),
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]]),
}
#: structures that touch in the images (LVOT, RVOT, valves, septa, great arteries)
ADJACENT = [("lv", "myo"), ("myo", "rv"), ("lv", "rv"), ("lv", "la"), ("myo", "la"), ("rv", "ra"), ("la", "ra"), ("lv", "aorta"),
            ("myo", "aorta"), ("rv", "pa"), ("aorta", "pa"), ("aorta", "la"), ("aorta", "ra"), ("la", "pa"), ("rv", "aorta")]
SET1 = {"lv": "#e41a1c", "myo": "#4daf4a", "rv": "#377eb8", "la": "#ff7f00", "ra": "#984ea3", "aorta": "#a65628", "pa": "#f781bf"}
GREYS = np.repeat(np.linspace(0, 1, 51)[:, None], 3, axis=1)


def _rgb(hexa: str) -> np.ndarray:
    return np.array([int(hexa[i:i + 2], 16) / 255 for i in (1, 3, 5)])


def _seen(srgb: np.ndarray, vision: str) -> np.ndarray:
    lin = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    out = np.clip(lin @ MACHADO[vision].T, 0, 1)
    return np.where(out <= 0.0031308, 12.92 * out, 1.055 * out ** (1 / 2.4) - 0.055)


def _de(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.broadcast_arrays(a, b)
    return deltaE_ciede2000(rgb2lab(a.reshape(-1, 1, 3)), rgb2lab(b.reshape(-1, 1, 3))).ravel()


def _apart(palette: dict[str, str], pairs, vision: str) -> float:
    return min(float(_de(_seen(_rgb(palette[a]), vision), _seen(_rgb(palette[b]), vision))[0]) for a, b in pairs)


def _over_grey(colour: str, vision: str, alpha: float) -> float:
    """Smallest CIEDE2000 of ``colour`` at ``alpha`` over a grey against that grey, greys 0..1."""
    return float(_de(_seen(alpha * _rgb(colour) + (1 - alpha) * GREYS, vision), _seen(GREYS, vision)).min())


def test_simulation_is_machado_severity_one():
    """Pure red as a deutan sees it: Machado 2009's matrix (colorspacious 1.1.2 gives the same), not the identity."""
    assert _seen(np.array([1.0, 0, 0]), "deuteranopia") == pytest.approx([0.64006, 0.56581, 0.0], abs=1e-4)
    assert _seen(np.array([0.2, 0.5, 0.7]), "normal") == pytest.approx([0.2, 0.5, 0.7])


@pytest.mark.parametrize("vision", list(MACHADO))
def test_touching_structures_stay_apart(vision):
    """Every touching pair >= 25 CIEDE2000 (Set1's LV red and MYO green were 9.6 for deutans, RV blue
    and RA purple 4.2, LV and aorta 3.1 for protans); LV, MYO and RV >= 30 and no closer than any
    other touching pair."""
    assert _apart(STRUCTURE_COLOURS, ADJACENT, vision) >= 25
    main = _apart(STRUCTURE_COLOURS, itertools.combinations(("lv", "myo", "rv"), 2), vision)
    assert main >= 30 and main >= _apart(STRUCTURE_COLOURS, ADJACENT, vision)


@pytest.mark.parametrize("vision", list(MACHADO))
def test_every_colour_reads_over_greyscale(vision):
    """Over the grey that matches it worst: a contour line (opaque) >= 15, napari's label fill
    (opacity 0.5) >= 10; and two touching fills over the same grey >= 10 apart."""
    for name, colour in STRUCTURE_COLOURS.items():
        assert _over_grey(colour, vision, 1.0) >= 15, name
        assert _over_grey(colour, vision, 0.5) >= 10, name
    for a, b in ADJACENT:
        fills = [_seen(0.5 * _rgb(STRUCTURE_COLOURS[n]) + 0.5 * GREYS, vision) for n in (a, b)]
        assert _de(*fills).min() >= 10, (a, b)


def test_the_old_set1_palette_fails_the_check():
    """The check can fail: ColorBrewer Set1 (medseg's colours before) does, for deutans."""
    assert _apart(SET1, [("lv", "myo")], "deuteranopia") < 15
    assert _apart(SET1, ADJACENT, "deuteranopia") < 25 and _over_grey(SET1["pa"], "deuteranopia", 1.0) < 15


def test_one_palette_for_every_structure_medseg_names():
    assert set(STRUCTURE_COLOURS) == set(DEFAULT_LABEL_MAP.values)
    assert len(set(STRUCTURE_COLOURS.values())) == len(STRUCTURE_COLOURS)


def test_napari_layers_take_the_palette_and_custom_colours_stay_off_it():
    from medseg_napari._controller import default_structures
    from medseg_napari._layers import CUSTOM_COLOURS, colour_for, label_colour_dict

    lut = label_colour_dict(DEFAULT_LABEL_MAP)
    assert {v: lut[v] for v in DEFAULT_LABEL_MAP.values.values()} == {v: STRUCTURE_COLOURS[n] for n, v in DEFAULT_LABEL_MAP.values.items()}
    assert all(s.colour == STRUCTURE_COLOURS[s.name] for s in default_structures())
    assert colour_for("lv") == STRUCTURE_COLOURS["lv"] and colour_for("scar", 5) in CUSTOM_COLOURS
    for c in CUSTOM_COLOURS:  # a custom structure never looks like one of medseg's
        assert min(_apart({"a": c, "b": s}, [("a", "b")], "normal") for s in STRUCTURE_COLOURS.values()) >= 20, c


def test_review_sheet_contours_and_legend_take_the_palette():
    from matplotlib.colors import to_hex

    from medseg.measure.sheets import review_sheet_figure

    lab = np.zeros((1, 1, 40, 40), np.uint8)
    lab[0, 0, 5:35, 5:35] = DEFAULT_LABEL_MAP["myo"]
    lab[0, 0, 12:28, 12:28] = DEFAULT_LABEL_MAP["lv"]
    lab[0, 0, 5:35, 36:39] = DEFAULT_LABEL_MAP["rv"]
    fig = review_sheet_figure(np.random.default_rng(0).random((1, 1, 40, 40)), lab, DEFAULT_LABEL_MAP)
    drawn = {to_hex(line.get_color()) for ax in fig.axes for line in ax.get_lines()}
    legend = {t.get_text().lower(): to_hex(h.get_color()) for lg in fig.legends for t, h in zip(lg.get_texts(), lg.legend_handles)}
    want = {n: STRUCTURE_COLOURS[n] for n in ("lv", "myo", "rv")}
    assert drawn == set(want.values()) and legend == want


def test_dicom_seg_and_its_napari_layer_take_the_palette(tmp_path, monkeypatch):
    """The SEG's recommended display colours (CIELab) are the palette's, and napari's reader
    colours the layer it opens from that SEG with the palette."""
    import highdicom as hd
    import pydicom
    from medseg_napari._reader import get_reader

    from medseg.io import read_volume, write_labels

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "io"))
    import io_synth

    io_synth.write_cine_series(tmp_path / "cine", n_slices=3, n_phases=1)
    vol = read_volume(tmp_path / "cine")
    lab = np.zeros(vol.shape, np.uint8)
    lab[..., 0:2, 3:8, 2:6] = DEFAULT_LABEL_MAP["myo"]
    lab[..., 1, 4:6, 3:5] = DEFAULT_LABEL_MAP["lv"]
    lab[..., 2, 2:9, 6:9] = DEFAULT_LABEL_MAP["rv"]
    seg_path = next(p for p in write_labels(lab, vol, tmp_path / "seg.dcm", DEFAULT_LABEL_MAP) if p.suffix == ".dcm")
    for item in pydicom.dcmread(seg_path).SegmentSequence:
        hexa = STRUCTURE_COLOURS[item.TrackingID]
        want = hd.color.CIELabColor.from_rgb(*(int(hexa[i:i + 2], 16) for i in (1, 3, 5))).value
        assert tuple(item.RecommendedDisplayCIELabValue) == tuple(want), item.TrackingID
    data, kwargs, kind = get_reader(str(seg_path))(str(seg_path))[0]
    assert kind == "labels"
    for name in ("lv", "myo", "rv"):
        value = DEFAULT_LABEL_MAP[name]
        assert np.allclose(kwargs["colormap"].map(np.array([value]))[0][:3], _rgb(STRUCTURE_COLOURS[name]), atol=1e-3), name


@pytest.mark.parametrize("where", ["overlay", "review_sheet"])
def test_a_structure_the_palette_does_not_name_is_drawn_apart_from_every_palette_colour(where, tmp_path, monkeypatch):
    """A custom label-map name ("scar") gets a neutral colour >= 15 CIEDE2000 from every palette
    colour under every vision, and from the white figure (matplotlib's "yellow", drawn before,
    was 6.2 from MYO's for protans)."""
    from matplotlib.colors import to_hex, to_rgb

    from medseg.measure import plots, sheets

    lmap = "lv=1,myo=2,scar=3"
    lab = np.zeros((1, 1, 40, 40), np.uint8)
    lab[0, 0, 5:35, 5:35], lab[0, 0, 12:28, 12:28], lab[0, 0, 30:34, 8:14] = 2, 1, 3
    image = np.random.default_rng(0).random((1, 1, 40, 40))
    if where == "overlay":
        figs = []
        monkeypatch.setattr(plots, "_save", lambda fig, path: figs.append(fig) or Path(path))
        plots.overlay_png({"ED": lab[0]}, lmap, tmp_path / "o.png", image=image[0])
        fig = figs[0]
        legend = {t.get_text().lower(): to_hex(h.get_color()) for ax in fig.axes for lg in [ax.get_legend()]
                  for t, h in zip(lg.get_texts(), lg.legend_handles)}
    else:
        fig = sheets.review_sheet_figure(image, lab, lmap)
        legend = {t.get_text().lower(): to_hex(h.get_color()) for lg in fig.legends for t, h in zip(lg.get_texts(), lg.legend_handles)}
    drawn = {to_hex(line.get_color()) for ax in fig.axes for line in ax.get_lines()}
    scar = legend["scar"]
    assert drawn == {STRUCTURE_COLOURS["lv"], STRUCTURE_COLOURS["myo"], scar}
    for vision in MACHADO:
        seen = _seen(np.array(to_rgb(scar)), vision)
        for name, colour in STRUCTURE_COLOURS.items():
            assert _de(seen, _seen(_rgb(colour), vision))[0] >= 15, (vision, name)
        assert _de(seen, _seen(np.ones(3), vision))[0] >= 15, (vision, "white")


@pytest.mark.parametrize("vision", list(MACHADO))
def test_napari_positive_and_negative_clicks_stay_apart(vision):
    """Positive and negative clicks differ in symbol, and in colour under every vision (lime and
    red, before, were 19.4 apart for deutans), each readable over any grey."""
    from medseg_napari._qt._prompt_layers import NEGATIVE_COLOUR, NEGATIVE_SYMBOL, POSITIVE_COLOUR, POSITIVE_SYMBOL

    assert POSITIVE_SYMBOL != NEGATIVE_SYMBOL
    assert _apart({"pos": POSITIVE_COLOUR, "neg": NEGATIVE_COLOUR}, [("pos", "neg")], vision) >= 40
    for colour in (POSITIVE_COLOUR, NEGATIVE_COLOUR):
        assert _over_grey(colour, vision, 1.0) >= 15, colour


@pytest.mark.parametrize("vision", list(MACHADO))
def test_review_sheet_flag_and_napari_fallback_box_stay_off_the_palette(vision):
    """The review sheet's flagged-slice frame (red #d00000 before: 1.8 from LV's red for deutans)
    >= 25 from every structure colour and from white; napari's box colour for a structure with no
    colour ("yellow" before: 6.2 from MYO's) >= 15 from every structure colour and over any grey."""
    from medseg_napari._layers import BOX_FALLBACK_COLOUR

    from medseg.measure.sheets import FLAG_COLOUR

    for name, colour in STRUCTURE_COLOURS.items():
        assert _apart({"flag": FLAG_COLOUR, "s": colour}, [("flag", "s")], vision) >= 25, name
        assert _apart({"box": BOX_FALLBACK_COLOUR, "s": colour}, [("box", "s")], vision) >= 15, name
    assert _apart({"flag": FLAG_COLOUR, "white": "#ffffff"}, [("flag", "white")], vision) >= 25
    assert _over_grey(BOX_FALLBACK_COLOUR, vision, 1.0) >= 15


def test_review_sheet_frames_flagged_slices_in_the_flag_colour():
    from matplotlib.colors import to_hex

    from medseg.measure.sheets import FLAG_COLOUR, review_sheet_figure

    lab = np.zeros((1, 2, 40, 40), np.uint8)
    lab[0, :, 12:28, 12:28] = DEFAULT_LABEL_MAP["lv"]
    review = {"flags": [{"code": "low_confidence", "structure": "lv", "frame": 0, "slice": 1}]}
    fig = review_sheet_figure(np.random.default_rng(0).random((1, 2, 40, 40)), lab, DEFAULT_LABEL_MAP, review)
    edges = {ax.get_title().split()[1]: {to_hex(s.get_edgecolor()) for s in ax.spines.values()} for ax in fig.axes}
    assert edges["z1"] == {FLAG_COLOUR} and FLAG_COLOUR not in edges["z0"]
