"""medseg in a job on a locked-down cluster node: a home folder matplotlib cannot write, a console
that cannot encode every character, a virtual memory limit, a CPU budget set by the scheduler,
no display. Each case: one line and a non-zero exit, or the work done quietly."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import types
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli


@pytest.fixture(scope="module")
def study(tmp_path_factory, phantom):
    """One phantom frame as NIfTI named in CJK (``患者01.nii.gz``), with labels medseg wrote."""
    d = tmp_path_factory.mktemp("study")
    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti

    vol = phantom.image.with_array(phantom.image.array[:1], frame_times_s=None)
    nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(d / "患者01.nii.gz"))
    write_labels(phantom.labels[:1], vol, d / "gt.nii.gz", phantom.label_map.subset(["lv", "myo", "rv"]))
    return d


def test_info_prints_a_cjk_name_on_an_ascii_console(study, monkeypatch):
    # PYTHONIOENCODING=ascii or a Latin-1 locale: stdout cannot encode the name; it was "unexpected UnicodeEncodeError"
    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="strict")
    monkeypatch.setattr(sys, "stdout", out)
    assert run_cli(["info", str(study / "患者01.nii.gz")]) == 0
    out.flush()
    text = out.buffer.getvalue().decode("ascii")
    assert "\\u60a3\\u800501.nii.gz" in text and "n_slices" in text


def test_plots_escape_characters_no_font_draws_and_do_not_warn(tmp_path):
    from matplotlib.text import Text

    from medseg.measure.plots import _figure, _save

    fig = _figure(2, 1)
    fig.add_subplot(1, 1, 1).set_title("caf\u00e9 \ue000")  # é is in the default font; U+E000 (private use) in none
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _save(fig, tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 0
    assert not [w for w in caught if "missing from font" in str(w.message)]
    assert "caf\u00e9 \\ue000" in [t.get_text() for t in fig.findobj(Text)]


def test_measure_plots_say_nothing_when_matplotlib_cannot_write_its_folder(study, tmp_path):
    # MPLCONFIGDIR (as a read-only HOME's ~/.config) that cannot be made a folder: matplotlib warned in two lines per process
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    env = {**os.environ, "MPLCONFIGDIR": str(blocker / "matplotlib"), "OMP_NUM_THREADS": "1"}
    env.pop("MEDSEG_DEBUG", None)
    code = "import sys; from medseg.cli import main; main(sys.argv[1:])"
    r = subprocess.run([sys.executable, "-c", code, "measure", str(study / "gt.nii.gz"), "-o", str(tmp_path / "r.json"),
                        "--plots", str(tmp_path / "plots")], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "matplotlib" not in r.stderr.lower() and "mkdir" not in r.stderr
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) and (tmp_path / "r.json").is_file()


@pytest.mark.parametrize("error", [ImportError("libtorch_cpu.so: failed to map segment from shared object"),
                                   MemoryError("Unable to allocate 2.5 GiB for an array")])
def test_out_of_memory_under_ulimit_v_is_one_line_naming_the_limit(study, monkeypatch, capsys, error):
    from medseg import _environ

    def fail(*a, **k):
        raise error

    monkeypatch.setattr(_environ, "address_space_limit", lambda: 2_048_000_000)
    monkeypatch.setattr("medseg.io.read_volume", fail)
    monkeypatch.delenv("MEDSEG_DEBUG", raising=False)
    assert run_cli(["info", str(study / "患者01.nii.gz")]) == 71  # EX_OSERR: the machine, not the input
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unexpected" not in err
    assert err.startswith("error: out of memory: ") and "ulimit -v, is 2.0 GB" in err


def test_memory_guard_counts_the_address_space_ulimit_v_leaves(monkeypatch):
    from medseg import _environ
    from medseg.errors import ImageReadError
    from medseg.io import limits

    monkeypatch.delenv(limits.ENV_VAR, raising=False)
    with open("/proc/self/status", encoding="ascii") as f:
        size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    monkeypatch.setattr(_environ, "address_space_limit", lambda: size + 300_000_000)  # ~0.3 GB left
    with pytest.raises(ImageReadError, match=r"virtual memory limit \(ulimit -v\) leaves"):
        limits.check_decoded_size("big.nii.gz", (300, 512, 512), np.float32)  # 0.6 GB with its working copy
    monkeypatch.setattr(_environ, "address_space_limit", lambda: None)
    assert limits.address_space_headroom() is None


@pytest.mark.parametrize(("omp", "cpus", "workers", "threads"), [("4", 16, 2, 2), (None, 16, 2, 8), ("", 3, 2, 1), ("32", 4, 2, 2)])
def test_batch_workers_share_the_cpus_omp_num_threads_allows(tmp_path, monkeypatch, omp, cpus, workers, threads):
    # PBS sets OMP_NUM_THREADS to the job's CPUs on a node that pins none: 2 workers took 8 threads each on 4 CPUs
    from medseg import _batch_exec
    from medseg.batch import BatchOptions, run_batch

    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    seen = []
    monkeypatch.setattr(_batch_exec, "run_local", lambda cases, options, n, emit: seen.append((options.threads, n)))
    run_batch([], BatchOptions(out_dir=str(tmp_path / "out")), workers=workers)
    assert seen == [(threads, workers)]


def test_napari_entry_without_a_display_says_so_in_one_line(monkeypatch, capsys):
    import medseg_napari.__main__ as entry

    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")

    def window(*a, **k):
        raise AssertionError("would open a Qt window (Qt aborts the process without a display)")

    monkeypatch.setitem(sys.modules, "napari", types.SimpleNamespace(run=window))
    monkeypatch.setattr("medseg_napari._scripting.open_study", window)
    assert entry.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: no display") and "DISPLAY" in err
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")  # a platform chosen: no refusal
    assert entry.no_display() is False


def test_environment_variables_are_documented_in_one_place():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Environment variables", 1)[1].split("\n## ", 1)[0]
    for var in ("MEDSEG_HOME", "MEDSEG_MAX_IMAGE_GB", "MEDSEG_DEBUG", "MEDSEG_ALLOW_TRITON", "OMP_NUM_THREADS", "MPLCONFIGDIR"):
        assert var in section


def test_mha_reads_with_no_writable_temporary_folder(tmp_path, monkeypatch):
    # TMPDIR, /tmp, /var/tmp and the working folder read-only: ITK's messages cannot be caught in a
    # temporary file; the read went on to "unexpected UnboundLocalError"
    import tempfile

    import SimpleITK as sitk

    from medseg.io import read_volume

    sitk.WriteImage(sitk.GetImageFromArray(np.arange(4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8)), str(tmp_path / "x.mha"))

    def no_temp(*a, **k):
        raise FileNotFoundError(2, "No usable temporary directory found")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_temp)
    assert read_volume(tmp_path / "x.mha").array.shape == (1, 4, 8, 8)


def test_medseg_home_with_a_tilde_is_the_home_folder(tmp_path, monkeypatch):
    """A job script's quoted MEDSEG_HOME="~/medseg" (the shell leaves the ~) was searched as a
    folder named "~" in the working folder: the user's adapters and checkpoints were not found.
    It is expanded, as `adapt` already expanded it."""
    import shutil
    from pathlib import Path

    from medseg.adapters import adapter_origin, list_adapters
    from medseg.models.registry import asset_dirs

    shipped = Path(__file__).resolve().parents[2] / "adapters" / "cmr-lge"
    shutil.copytree(shipped, tmp_path / "medseg" / "adapters" / "mine")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MEDSEG_HOME", "~/medseg")
    monkeypatch.chdir(tmp_path)
    assert asset_dirs("adapters")[0] == tmp_path / "medseg" / "adapters"
    row = next(r for r in list_adapters() if r["name"] == "mine")
    assert row["source"] == str(tmp_path / "medseg" / "adapters" / "mine") and row.get("sha256")
    assert "$MEDSEG_HOME/adapters" in adapter_origin("mine")
