"""Plain helpers shared by the Session tests (tests/core/test_session*.py)."""

from __future__ import annotations

from medseg.types import Box


def box_of(lab, v):
    """The bounding box of label value ``v`` in the 2-D label slice ``lab``."""
    return Box.from_mask(lab == v)
