"""The Specific Character Set (0008,0005) of the DICOM objects medseg writes (SEG, SR).

A SEG or SR copies the source images' patient and study text (PatientName, StudyDescription)
and adds medseg's own (the model and adapter names in a SEG's AlgorithmParameters). highdicom
copies the source's Specific Character Set, but refuses some values real scanners write (the
Japanese ``\\ISO 2022 IR 87``, first value empty as the standard allows, and the Korean
``ISO 2022 IR 149``), and pydicom wrote text the character set cannot hold as ``?`` with a
warning medseg silenced (an adapter named ``心臓`` in a Latin-1 study). highdicom is given
:data:`BUILD_CHARACTER_SET`, the source headers' text is read in their own character set
(:func:`decode_text`), and :func:`fit_character_set` then declares, in the object built, the
source's character set when it holds every text value, else ISO_IR 100 (Latin-1), else ISO_IR 192
(UTF-8, which holds any): text is never lost and always matches its declaration.
pydicom is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

#: the text value representations (encoded in the Specific Character Set; the others are ASCII)
TEXT_VRS = ("SH", "LO", "ST", "LT", "UT", "UC", "PN")

#: what an object is declared in when the source's character set cannot hold its text, in order
FALLBACKS = (["ISO_IR 100"], ["ISO_IR 192"])


def declared_character_set(ds: Any) -> list[str]:
    """A header's Specific Character Set values, stripped ([] when it declares none; a first
    value left empty, as in ``\\ISO 2022 IR 87``, stays "": the default repertoire)."""
    value = ds.get("SpecificCharacterSet")
    if value is None:
        return []
    values = [str(v).strip() for v in ([value] if isinstance(value, str) else value)]
    return values if any(values) else []


#: what highdicom's SEG and SR constructors are given (they would copy the source's, and refuse
#: some): :func:`fit_character_set` declares the one the object's text is written in once built
BUILD_CHARACTER_SET = "ISO_IR 192"


def decode_text(ds: Any) -> Any:
    """``ds`` (a source header) with every text value read as text in its own character set, so
    that copied into a SEG or SR it is written in the character set that object declares."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.decode()
    return ds


def fit_character_set(ds: Any, source: Any) -> list[str]:
    """Declare in ``ds`` (a SEG or SR just built) the character set its text is written in (module
    doc): the ``source`` header's when it holds every text value of ``ds`` (none, as before, when
    the source declares none and the text is ASCII or the source's own undeclared bytes), else
    the first of :data:`FALLBACKS` that does. Returns the values declared ([]: none)."""
    from pydicom.charset import python_encoding

    own = declared_character_set(source)
    texts = set(_texts(ds))
    # none declared: pydicom read (and writes back) the source's text as Latin-1, its bytes unchanged
    undeclared_latin1 = not own and not all(v.isascii() for v, _ in _texts(source))
    if not own:
        first = [[]]
    elif all(v in python_encoding for v in own):
        first = [own]
    else:  # a term pydicom does not know (it read the text as Latin-1): a fallback
        first = []
    chosen = next((c for c in (*first, *FALLBACKS) if all(_fits(v, vr, c, undeclared_latin1) for v, vr in texts)), FALLBACKS[-1])
    if chosen:
        ds.SpecificCharacterSet = chosen[0] if len(chosen) == 1 else list(chosen)
    elif "SpecificCharacterSet" in ds:
        del ds.SpecificCharacterSet
    return chosen


def _texts(ds: Any) -> Iterator[tuple[str, str]]:
    """(value, VR) of every non-empty text value of ``ds``, its sequences' items included."""
    for elem in ds.iterall():
        if elem.VR in TEXT_VRS and elem.value not in (None, ""):
            for v in elem.value if _multi(elem.value) else [elem.value]:
                if text := v.decode("latin-1") if isinstance(v, bytes) else str(v):
                    yield text, elem.VR


def _multi(value: Any) -> bool:
    from pydicom.multival import MultiValue

    return isinstance(value, (list, MultiValue))


def _fits(text: str, vr: str, terms: list[str], undeclared_latin1: bool = False) -> bool:
    """Whether ``text`` written in the character set ``terms`` reads back unchanged ([]: none
    declared: ASCII, or Latin-1 where the source's own text is undeclared Latin-1)."""
    if not terms:
        return text.isascii() or undeclared_latin1 and all(ord(c) < 256 for c in text)
    from pydicom.charset import convert_encodings, decode_bytes, encode_string
    from pydicom.valuerep import PersonName

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a value that does not fit: pydicom warns as it puts '?' in
        try:
            encodings = convert_encodings(terms)
            if vr == "PN":
                return str(PersonName(PersonName(text).encode(encodings), encodings)) == text
            return decode_bytes(encode_string(text, encodings), encodings, set()) == text
        except (UnicodeError, ValueError, LookupError):
            return False
