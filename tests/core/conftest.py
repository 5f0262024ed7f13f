"""Fixtures for core tests: a small cine phantom (the shipped model: ``model`` in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def phantom():
    from medseg.phantoms import cine_sax_phantom

    return cine_sax_phantom(n_frames=3, n_slices=6, shape=(112, 112), spacing=(10.0, 1.5, 1.5), seed=3)


@pytest.fixture()
def session(model, phantom):
    """A Session on the phantom with LV, myocardium and RV (tests/core/test_session*.py; a test
    file that defines its own ``session`` fixture uses that one)."""
    from medseg.session import Session

    return Session(phantom.image, model, phantom.label_map.subset(["lv", "myo", "rv"]))


@pytest.fixture(scope="module")
def study(tmp_path_factory, phantom):
    """A 3-D phantom frame as NIfTI with its labels (lv=1, myo=2, rv=3): the CLI tests'
    (tests/core/test_cli_*.py); a test file that defines its own ``study`` fixture uses that one."""
    import nibabel as nib
    import numpy as np

    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti

    d = tmp_path_factory.mktemp("study")
    vol = phantom.image.with_array(phantom.image.array[:1], frame_times_s=None)
    nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(d / "img.nii.gz"))
    write_labels(phantom.labels[:1], vol, d / "gt.nii.gz", phantom.label_map.subset(["lv", "myo", "rv"]))
    return d
