"""Text in medseg's figures (PNGs, the study PDF) that the default font cannot draw: drawn in an
installed font that can (a CJK case id where a CJK font is installed: matplotlib draws with the
default font's families only), else written as an escape (``\\u60a3``: a cluster node without CJK
fonts), so no character is an empty box and matplotlib warns of none. matplotlib is imported
inside the functions."""

from __future__ import annotations

import functools
from typing import Any


def drawable_string(s: str, prop: Any = None) -> str:
    r"""``s`` with each character that neither the fonts of ``prop`` (a FontProperties; None: the
    default) nor an installed fallback (:func:`fallback_families`) can draw written as an escape
    (``\u60a3``), as :func:`_drawable_text` writes a figure's: text wrapped or shortened to a
    width is measured as it will be drawn."""
    if s.isascii():
        return s
    from matplotlib import font_manager

    prop = prop if prop is not None else font_manager.FontProperties()
    extra = set(fallback_families(s, prop))
    have = _chain_charmap(prop).union(*(cmap for name, cmap in _installed_charmaps() if name in extra))
    return "".join(c if c.isspace() or ord(c) in have else (f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}") for c in s)


def _chain_charmap(prop: Any) -> set[int]:
    """The characters the fonts of ``prop`` draw (the fallback chain matplotlib draws with)."""
    from matplotlib import font_manager

    fonts = getattr(font_manager.fontManager, "_find_fonts_by_props", None)
    paths = fonts(prop) if fonts else [font_manager.findfont(prop)]
    return set().union(*(font_manager.get_font(p).get_charmap() for p in paths))


#: fonts never taken as a fallback: matplotlib's Last Resort draws a placeholder box for any character
NO_FALLBACK_FONTS = ("Last Resort",)


def fallback_families(s: str, prop: Any = None) -> list[str]:
    """The installed fonts (family names) that draw the characters of ``s`` the fonts of ``prop``
    cannot (a CJK name where Noto Sans CJK, IPA or Droid Sans Fallback is installed: matplotlib
    draws with the families of the default font only, and wrote these as escapes), fewest first
    found; [] when there are none or none is needed. Private-use characters take no fallback."""
    if s.isascii():
        return []
    from matplotlib import font_manager

    have = _chain_charmap(prop if prop is not None else font_manager.FontProperties())
    missing = {ord(c) for c in s if not c.isspace() and ord(c) not in have and not _private_use(ord(c))}
    out = []
    for name, cmap in _installed_charmaps() if missing else ():
        if missing & cmap:
            out.append(name)
            missing -= cmap
        if not missing:
            break
    return out


def _private_use(code: int) -> bool:
    return 0xE000 <= code <= 0xF8FF or code >= 0xF0000


def _installed_charmaps() -> tuple[tuple[str, frozenset[int]], ...]:
    """(family name, characters it draws) of each installed upright font matplotlib knows, once
    per process (and again when a font is added)."""
    from matplotlib import font_manager

    return _charmaps(len(font_manager.fontManager.ttflist))


@functools.lru_cache(maxsize=1)
def _charmaps(_n_fonts: int) -> tuple[tuple[str, frozenset[int]], ...]:
    from matplotlib import font_manager

    out: dict[str, frozenset[int]] = {}
    # the regular weight of each family first: matplotlib draws normal text in it, and a family's
    # bold file may lack characters its regular one has (STIXGeneralBol.ttf lacks U+1D81, which
    # STIXGeneral.ttf draws); the cache lists a family's files in no fixed order
    for entry in sorted(font_manager.fontManager.ttflist, key=lambda e: abs(_weight(e.weight) - 400)):
        if entry.name in out or entry.name.startswith(NO_FALLBACK_FONTS) or entry.style != "normal":
            continue
        try:
            out[entry.name] = frozenset(font_manager.get_font(entry.fname).get_charmap())
        except (OSError, RuntimeError, ValueError):  # a font file FreeType cannot read
            continue
    return tuple(out.items())


def _weight(weight: Any) -> int:
    """A font entry's weight as a number (matplotlib keeps 400, or a name such as "normal")."""
    from matplotlib import font_manager

    return weight if isinstance(weight, int) else int(font_manager.weight_dict.get(str(weight), 400))
