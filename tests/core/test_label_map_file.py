"""A --label-map JSON file that is empty, truncated, a list or holds NaN is refused in one line
naming the file (it said "label map JSON is malformed: Expecting value (line 1)", naming no
file)."""

from __future__ import annotations

import pytest

from medseg.errors import LabelMapError
from medseg.labels import LabelMap


@pytest.mark.parametrize("text, said", [("", "is empty"), ('{"lv": 1, "my', "is not valid JSON ("), ("[1]", "must hold an object"),
                                        ('{"lv": NaN}', "holds NaN"), ('\ufeff{"lv": 1}', None), ('{"labels": {"background": 0, "LV": 1}}', None)])
def test_a_label_map_file_is_named_in_what_is_wrong(text, said, tmp_path):
    path = tmp_path / "map.json"
    path.write_text(text, encoding="utf-8")
    if said is None:
        assert LabelMap.parse(str(path)).values == {"lv": 1}
        return
    with pytest.raises(LabelMapError, match=f"^label map file {path} .*{said[:12]}"):
        LabelMap.parse(str(path))
