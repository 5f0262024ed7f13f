"""The measurement panel's basal-rule choice (a CT user's walkthrough: the panel always applied
the short-axis SCMR basal rule, wrong for axial CT labels; `medseg measure --no-basal-rule`
had the choice). Widget tests run headless (``xvfb-run -a``)."""

from __future__ import annotations

import numpy as np
import pytest
from napari_helpers import gui_ready

T_OUT = 60_000  # ms


def _ct_like_labels() -> np.ndarray:
    """8 axial slices: the LV on 1-7, its myocardium on 1-5 only, the LA on 7 (the rule trims 6 and 7)."""
    lab = np.zeros((1, 8, 40, 40), np.uint8)
    yy, xx = np.mgrid[:40, :40]
    r = np.hypot(yy - 20, xx - 20)
    lab[0, 1:6][:, (r >= 6) & (r < 9)] = 2
    lab[0, 1:8][:, r < 6] = 1
    lab[0, 7][(r >= 9) & (r < 13)] = 4  # the left atrium beside it: the base is the high end
    return lab


@pytest.mark.gui
@pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
def test_the_basal_rule_checkbox_counts_every_lv_slice_when_unticked(make_napari_viewer, qtbot):
    from medseg_napari._qt.measure_widget import MeasureWidget

    lab = _ct_like_labels()
    viewer = make_napari_viewer(show=True)
    viewer.add_labels(lab, name="ct labels", scale=(1, 1.0, 1.0, 1.0))
    w = MeasureWidget(viewer)
    viewer.window.add_dock_widget(w, name="medseg: measurement", area="right")
    w.labels_combo.setCurrentText("ct labels")
    w.label_map.setText("lv=1,myo=2,la=4")
    assert w.basal_rule.isChecked()  # the short-axis default, as medseg measure

    def measured() -> dict:
        w.measure()
        qtbot.waitUntil(lambda: w.measure_btn.isEnabled() and w.report is not None, timeout=T_OUT)
        return w.report

    ruled = measured()
    w.basal_rule.setChecked(False)
    assert w.report is None  # the shown numbers were measured with the other setting
    every = measured()
    assert every["volumes_ml"]["lv"] == pytest.approx((lab == 1).sum() * 1e-3) and every["volumes_ml"]["lv"] > ruled["volumes_ml"]["lv"]
    assert any(f["code"] == "basal_rule_off" and f["severity"] == "info" for f in every["flags"])
    assert not any(f["code"] == "basal_rule_off" for f in ruled["flags"])
    assert any("basal rule" in w.flags.item(i).text() for i in range(w.flags.count()))
