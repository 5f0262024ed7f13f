"""Cine timing as files give it: frame intervals no heart has are left out, with a note."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medseg.io import read_volume


def _cine(path, dt, unit="sec"):
    arr = np.random.default_rng(0).normal(100, 10, (32, 32, 2, 5)).astype(np.float32)
    img = nib.Nifti1Image(arr, np.diag([1.5, 1.5, 8.0, 1.0]))
    img.header.set_xyzt_units("mm", unit)
    img.header["pixdim"][4] = dt
    nib.save(img, path)
    return path


@pytest.mark.parametrize("dt, unit, step", [(0.03, "sec", 0.03), (40.0, "msec", 0.04), (1.2, "sec", 1.2),
                                            (1e6, "sec", None), (1e-9, "sec", None), (30.0, "sec", None)])
def test_frame_intervals_no_heart_has_are_left_out_with_a_note(tmp_path, capsys, dt, unit, step):
    from medseg.cli import run_cli

    p = _cine(tmp_path / "cine.nii.gz", dt, unit)
    vol = read_volume(p)
    if step is None:
        assert vol.frame_times_s is None and "no cardiac frame interval" in vol.meta["time_note"]
        assert run_cli(["info", str(p)]) == 0
        assert "frame times left out" in " ".join(capsys.readouterr().out.split())
    else:
        assert np.allclose(vol.frame_times_s, np.arange(5) * step) and "time_note" not in vol.meta
