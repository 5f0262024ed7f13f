"""Specific Character Set (0008,0005) of the DICOM SEG and SR medseg writes (medseg.io.dicom_charset).

Synthetic short-axis stacks (3 slices, one phase) whose headers are written in Latin-1, UTF-8,
GB18030, Korean and Japanese ISO 2022 (escape sequences, first value empty as Japanese scanners
write it); the SEG and SR are read back with pydicom and their PatientName compared with the
source's, their declared character set with the bytes written.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from io_synth import write_cine_series
from pydicom import dcmread

from medseg.io import read_volume
from medseg.io.seg_writer import write_dicom_seg

JAPANESE = ["", "ISO 2022 IR 87"]
CASES = {
    "latin1": ("ISO_IR 100", "Müller^Jürgen", "Kardio-MRT Untersuchung"),
    "utf8": ("ISO_IR 192", "山田^太郎", "心臓MRI検査"),
    "gb18030": ("GB18030", "王^小明", "心脏磁共振"),
    "korean": (["", "ISO 2022 IR 149"], "Hong^Gildong=洪^吉洞=홍^길동", "심장 MRI"),
    "japanese": (JAPANESE, "Yamada^Tarou=山田^太郎=やまだ^たろう", "心臓ＭＲＩ"),
}


def _stack(folder, charset, name, study, **extra):
    """A 3-slice series whose headers declare ``charset`` (None: no Specific Character Set)."""
    write_cine_series(folder, n_slices=3, n_phases=1, rows=8, cols=8)
    for path in folder.glob("*.dcm"):
        ds = dcmread(path)
        if charset is not None:
            ds.SpecificCharacterSet = charset
        ds.PatientName, ds.StudyDescription = name, study
        for key, value in extra.items():
            setattr(ds, key, value)
        ds.save_as(path, enforce_file_format=True)
    return folder


def _seg(folder, out, **kw):
    vol = read_volume(folder)
    labels = np.zeros(vol.array.shape[-3:], np.uint8)
    labels[:, 2:5, 2:5] = 1
    return write_dicom_seg(labels, vol, out, "lv=1", **kw)


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a value its character set cannot decode: pydicom warns
        ds = dcmread(path, stop_before_pixels=True)
        ds.decode()
    return ds


def _charset(ds):
    value = ds.get("SpecificCharacterSet")
    return None if value is None else value if isinstance(value, str) else list(value)


@pytest.mark.parametrize("case", list(CASES))
def test_seg_keeps_the_source_character_set_and_name(tmp_path, case):
    charset, name, study = CASES[case]
    seg = _read(_seg(_stack(tmp_path / case, charset, name, study), tmp_path / "seg.dcm"))
    assert _charset(seg) == charset
    assert str(seg.PatientName) == name and seg.StudyDescription == study


def test_seg_of_a_japanese_study_writes_its_iso_2022_escapes(tmp_path):
    """highdicom refused ``\\ISO 2022 IR 87`` (its first value empty): no SEG for such a study."""
    charset, name, study = CASES["japanese"]
    out = _seg(_stack(tmp_path / "jp", charset, name, study), tmp_path / "seg.dcm")
    assert b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=" in out.read_bytes()  # JIS X 0208, as the source wrote it


def test_seg_text_the_source_character_set_cannot_hold_is_kept_in_utf8(tmp_path):
    """An adapter named in CJK, a Latin-1 study: pydicom wrote '??' under ISO_IR 100."""
    src = _stack(tmp_path / "de", "ISO_IR 100", "Müller^Jürgen", "Herz")
    seg = _read(_seg(src, tmp_path / "seg.dcm", algorithm_parameters={"adapter_id": "心臓"}))
    params = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmParameters
    assert _charset(seg) == "ISO_IR 192" and params == "adapter_id=心臓"
    assert str(seg.PatientName) == "Müller^Jürgen"


def test_seg_of_an_undeclared_source_declares_what_medseg_adds(tmp_path):
    """No Specific Character Set in the source: an ASCII SEG stays undeclared, a Latin adapter name
    makes it ISO_IR 100 (it was written undeclared), a CJK one ISO_IR 192 (it was '??')."""
    src = _stack(tmp_path / "plain", None, "Doe^John", "Cardiac")
    assert "SpecificCharacterSet" not in _read(_seg(src, tmp_path / "a.dcm"))
    seg = _read(_seg(src, tmp_path / "b.dcm", algorithm_parameters={"adapter_id": "Herz-München"}))
    assert _charset(seg) == "ISO_IR 100"
    seg = _read(_seg(src, tmp_path / "c.dcm", algorithm_parameters={"adapter_id": "心臓"}))
    params = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmParameters
    assert _charset(seg) == "ISO_IR 192" and params == "adapter_id=心臓"


def test_seg_of_undeclared_latin1_text_keeps_its_bytes(tmp_path):
    """An old export's undeclared Latin-1 name is written back byte for byte, still undeclared."""
    src = _stack(tmp_path / "old", None, "Müller^Jürgen", "Herz")
    out = _seg(src, tmp_path / "seg.dcm")
    assert "SpecificCharacterSet" not in dcmread(out, stop_before_pixels=True)
    assert b"M\xfcller^J\xfcrgen" in out.read_bytes()


def test_seg_leaves_out_the_source_site(tmp_path):
    """highdicom copied InstitutionName into the SEG's Contributing Equipment (docs/io.md: written nowhere)."""
    src = _stack(tmp_path / "site", "ISO_IR 100", "Müller^Jürgen", "Herz",
                 InstitutionName="Klinikum München", StationName="MRT01")
    raw = _seg(src, tmp_path / "seg.dcm").read_bytes()
    assert b"Klinikum" not in raw and b"MRT01" not in raw


def test_sr_of_a_japanese_study(tmp_path):
    """highdicom refused the SR as it refused the SEG; now it keeps the source's ISO 2022 and name."""
    from medseg.io.sr_writer import SRContext, build_measurement_sr, save_sr

    charset, name, study = CASES["japanese"]
    headers = [dcmread(p, stop_before_pixels=True) for p in sorted(_stack(tmp_path / "jp", charset, name, study).glob("*.dcm"))]
    report = {"lv": {"edv_ml": 150.0, "esv_ml": 60.0, "sv_ml": 90.0, "ef_pct": 60.0}}
    sr, _ = build_measurement_sr(report, SRContext(headers, "MR", str(headers[0].StudyInstanceUID)))
    back = _read(save_sr(sr, tmp_path / "sr.dcm"))
    assert _charset(back) == JAPANESE and str(back.PatientName) == name and back.StudyDescription == study


def test_plot_text_the_default_font_lacks_is_drawn_in_an_installed_font(tmp_path):
    """matplotlib draws with the default font's families only: a CJK name was written as escapes
    (``\\u5c71``) even where a CJK font is installed. U+1D81 is not in DejaVu Sans, but in the
    STIX fonts matplotlib ships; a private-use character, which no fallback means, stays escaped."""
    from matplotlib.text import Text

    from medseg.measure.plots import _figure, _save, drawable_string

    assert drawable_string("d \u1d81") == "d \u1d81"
    fig = _figure(2, 1)
    title = fig.add_subplot(1, 1, 1).set_title("d \u1d81 \ue000")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _save(fig, tmp_path / "t.png")
    assert "d \u1d81 \\ue000" in [t.get_text() for t in fig.findobj(Text)]
    assert len(title.get_fontfamily()) > 1  # the default's families, then the fallback
    assert not [w for w in caught if "missing from font" in str(w.message)]


def test_subjects_row_found_for_a_case_folder_named_on_a_mac():
    """A folder named on a Mac (NFD: u + combining diaeresis) and the id typed in Excel (NFC) look
    alike: the row was not found (no BSA, listed as matching no case)."""
    import unicodedata

    from medseg.subjects import Subject, subject_for

    rows = (Subject("Müller_01", height_cm=180.0), Subject("Lefèvre", height_cm=170.0))
    assert subject_for(unicodedata.normalize("NFD", "Müller_01"), rows).id == "Müller_01"
    assert subject_for(unicodedata.normalize("NFD", "Lefèvre_ed"), rows).id == "Lefèvre"
    nfd_rows = (Subject(unicodedata.normalize("NFD", "Jürgen"), weight_kg=70.0),)  # and the other way round
    assert subject_for("Jürgen", nfd_rows) is nfd_rows[0]


def test_prompts_file_entry_found_for_a_case_folder_named_on_a_mac(tmp_path):
    import json
    import unicodedata

    from medseg.prompt_file import load_prompts_file

    path = tmp_path / "prompts.json"
    prompts = [{"structure": "lv", "frame": 0, "slice": 1, "box": [2, 2, 6, 6]}]
    path.write_text(json.dumps({"label_map": {"lv": 1}, "cases": {"Müller_01": {"prompts": prompts}}}, ensure_ascii=False), encoding="utf-8")
    assert len(load_prompts_file(path, case=unicodedata.normalize("NFD", "Müller_01")).prompts) == 1


@pytest.mark.parametrize("bold_first", [True, False])
def test_fallback_charmap_is_the_regular_weight_whatever_the_cache_order(bold_first, monkeypatch):
    """A family's characters were those of its first upright file in matplotlib's font cache, in
    no fixed order: where STIXGeneralBol.ttf came first, U+1D81 (drawn by STIXGeneral.ttf, the
    file matplotlib draws normal text with) counted as undrawable and was written as an escape."""
    from matplotlib import font_manager

    from medseg.measure import fonts

    stix = [e for e in font_manager.fontManager.ttflist if e.name == "STIXGeneral" and e.style == "normal"]
    if len({fonts._weight(e.weight) for e in stix}) < 2:
        pytest.skip("matplotlib's STIXGeneral regular and bold are not both in its font cache")
    others = [e for e in font_manager.fontManager.ttflist if e not in stix]
    ordered = sorted(stix, key=lambda e: -fonts._weight(e.weight) if bold_first else fonts._weight(e.weight))
    monkeypatch.setattr(font_manager.fontManager, "ttflist", ordered + others)
    fonts._charmaps.cache_clear()
    try:
        assert 0x1D81 in dict(fonts._installed_charmaps())["STIXGeneral"]
    finally:
        fonts._charmaps.cache_clear()
