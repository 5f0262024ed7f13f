"""``~`` that the shell did not expand (``--out=~/x``, quoted, from a script) names the home folder
in every path the CLI takes: nothing is read from or written to a folder named ``~``."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import app, run_cli
from medseg.cli._paths import _expanded, expand_user


@pytest.fixture()
def home(tmp_path, monkeypatch, phantom):
    """A fake $HOME holding data/img.nii.gz and data/gt.nii.gz (lv=1, myo=2, rv=3); the working
    directory an empty folder beside it."""
    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti

    h, cwd = tmp_path / "home", tmp_path / "cwd"
    (h / "data").mkdir(parents=True)
    cwd.mkdir()
    vol = phantom.image.with_array(phantom.image.array[:1], frame_times_s=None)
    nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(h / "data" / "img.nii.gz"))
    write_labels(phantom.labels[:1], vol, h / "data" / "gt.nii.gz", phantom.label_map.subset(["lv", "myo", "rv"]))
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.chdir(cwd)
    return h


def test_segment_then_measure_with_unexpanded_tilde_read_and_write_under_home(home, capsys):
    cwd = Path.cwd()
    rc = run_cli(["segment", "~/data/img.nii.gz", "--out=~/segout/seg.nii.gz", "--prompts-from", "~/data/gt.nii.gz",
                  "--label-map", "lv=1,myo=2,rv=3", "--key-slice"])
    assert rc == 0, capsys.readouterr().err
    assert (home / "segout" / "seg.nii.gz").is_file() and (home / "segout" / "seg.json").is_file()
    assert str(home / "segout" / "seg.nii.gz") in "".join(capsys.readouterr().err.split())  # says where it wrote (rich wraps)
    prov = json.loads((home / "segout" / "seg.json").read_text())["provenance"]
    assert prov["input"] == str((home / "data" / "img.nii.gz").resolve())
    assert prov["reference"] == str((home / "data" / "gt.nii.gz").resolve())

    rc = run_cli(["measure", "~/segout/seg.nii.gz", "-o", "~/report/m.json", "--csv=~/report/m.csv"])
    assert rc == 0, capsys.readouterr().err
    assert (home / "report" / "m.json").is_file() and (home / "report" / "m.csv").is_file()
    assert run_cli(["info", "~/segout/seg.nii.gz", "--json"]) == 0
    assert list(cwd.iterdir()) == []  # no ./~ folder, nothing else either


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("out", Path("~/x/seg.nii.gz"), Path("HOME/x/seg.nii.gz")),
    ("out", Path("rel/~/x"), Path("rel/~/x")),                             # ~ only at the start
    ("image", [Path("~/a.nii.gz"), Path("b.nii.gz")], [Path("HOME/a.nii.gz"), Path("b.nii.gz")]),  # a repeated option
    ("model", "sam_vit_b=~/w/sam.pth", "sam_vit_b=HOME/w/sam.pth"),
    ("model", "~/ckpt/m.safetensors", "HOME/ckpt/m.safetensors"),
    ("model", "default", "default"),
    ("adapter", "~/adapters/a1", "HOME/adapters/a1"),
    ("init_from", "~/adapters/a1", "HOME/adapters/a1"),
    ("label_map", "~lv=1", "~lv=1"),                                       # not a path: untouched
    ("structures", "~/lv", "~/lv"),
    ("series", None, None),
])
def test_expanded_paths_only(tmp_path, monkeypatch, name, value, expected):
    monkeypatch.setenv("HOME", str(tmp_path))

    def real(v):
        return v.replace("HOME", str(tmp_path)) if isinstance(v, str) else Path(str(v).replace("HOME", str(tmp_path)))

    want = [real(v) for v in expected] if isinstance(expected, list) else expected if expected is None else real(expected)
    assert _expanded(name, value) == want


def test_tilde_of_an_unknown_user_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    from medseg.errors import MedsegError

    with pytest.raises(MedsegError, match="no user 'no_such_user_medseg'"):
        expand_user("~no_such_user_medseg/x.nii.gz")
    monkeypatch.chdir(tmp_path)
    assert run_cli(["info", "~no_such_user_medseg/x.nii.gz"]) == 1
    assert "no user 'no_such_user_medseg'" in capsys.readouterr().err and list(tmp_path.iterdir()) == []


def test_every_command_expands_its_paths():
    """Commands registered on ``app`` are wrapped by ``expand_user_paths`` (a new command too)."""
    assert app.registered_commands
    for info in app.registered_commands:
        assert getattr(info.callback, "__wrapped__", None) is not None, info.name
