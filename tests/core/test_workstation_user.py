"""A scientist on a lab workstation (maybe a GPU or two) segmenting long 4-D cine series:
device selection checked before any work, the GPU the user named being the one measured, and
batch workers fitted to the machine's CPUs."""

from __future__ import annotations

import pytest
import torch

from medseg.cli import run_cli
from medseg.errors import CheckpointError
from medseg.models.registry import check_device


@pytest.fixture
def one_gpu(monkeypatch):
    """A machine with one CUDA GPU, as torch sees it (no GPU is used: only the checks run)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_the_gpus_a_one_gpu_machine_has_are_taken(one_gpu, device):
    assert check_device(device) == device


def test_a_gpu_index_past_the_machines_gpus_is_refused_before_any_work(one_gpu):
    """``--device cuda:1`` on a one-GPU workstation passed the check and failed at the model's
    loading with torch's "invalid device ordinal" (every case of a batch, one after another)."""
    with pytest.raises(CheckpointError) as e:
        check_device("cuda:1")
    assert str(e.value) == "--device cuda:1: this machine has 1 CUDA GPU (cuda:0)"


@pytest.mark.parametrize("device", ["cuda:abc", "cuda:", "cuda:-1", "cuda:0:1"])
def test_a_malformed_gpu_index_is_named_as_such(one_gpu, device):
    """``cuda:abc`` passed the check (and on a machine without a GPU read "no CUDA GPU")."""
    with pytest.raises(CheckpointError, match=r"unknown device .*allowed: cpu, cuda, cuda:N"):
        check_device(device)


def test_segment_with_a_gpu_index_past_the_gpus_says_so_in_one_line(one_gpu, tmp_path, capsys):
    import nibabel as nib
    import numpy as np

    img = tmp_path / "img.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((64, 64, 2)).astype(np.float32), np.eye(4)), str(img))
    out = tmp_path / "seg.nii.gz"
    assert run_cli(["segment", str(img), "-o", str(out), "--auto", "--device", "cuda:2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: --device cuda:2: this machine has 1 CUDA GPU (cuda:0)"
    assert not out.exists()


def test_bench_measures_and_names_the_gpu_it_was_given(monkeypatch):
    """``bench --device cuda:1`` waited for, measured and named cuda:0 (torch's calls without a
    device): timings of asynchronous work on cuda:1, another card's name and its peak memory."""
    from medseg import bench

    seen: list[tuple[str, object]] = []
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: seen.append(("name", d)) or "GPU")
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d=None: seen.append(("peak", d)) or 0)
    assert bench._machine("cuda:1")["gpu"] == "GPU"
    assert bench._peak_mb("cuda:1") == 0.0
    assert seen == [("name", torch.device("cuda:1")), ("peak", torch.device("cuda:1"))]


def test_bench_waits_for_the_gpu_it_was_given(monkeypatch):
    from medseg import bench

    seen: list[object] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: seen.append(d))
    bench._sync("cuda:1")()
    bench._sync("cpu")()
    assert seen == [torch.device("cuda:1")]


def test_batch_workers_beyond_the_cases_leave_no_cpu_idle(tmp_path, monkeypatch):
    """``batch --workers 8`` of 2 cases on 8 CPUs started 2 processes of one torch thread each
    (8 // 8), leaving 6 CPUs idle: the CPUs are shared among the processes that start."""
    import os

    from medseg import _batch_exec
    from medseg.batch import BatchOptions, CaseSpec, run_batch

    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    seen = []
    monkeypatch.setattr(_batch_exec, "run_local", lambda cases, options, n, emit: seen.append((options.threads, n)))
    cases = [CaseSpec(case=f"p{i}", input=str(tmp_path / f"p{i}.nii.gz")) for i in range(2)]
    run_batch(cases, BatchOptions(out_dir=str(tmp_path / "out"), auto=True), workers=8)
    assert seen == [(4, 2)]


def test_batch_says_when_its_workers_outnumber_the_cpus(tmp_path, monkeypatch, capsys):
    """``batch --workers 8`` on a 2-core workstation ran 8 processes of one torch thread each,
    8 models in memory, without a word; 2 workers (one per CPU) say nothing."""
    import os

    import nibabel as nib
    import numpy as np

    from medseg import batch

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(batch, "run_batch", lambda cases, options, **k: [])
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(5):
        nib.save(nib.Nifti1Image(np.zeros((32, 32, 3), np.float32), np.eye(4)), str(folder / f"p{i}.nii.gz"))
    run_cli(["batch", str(folder), "--auto", "-o", str(tmp_path / "out"), "--workers", "8"])
    out = " ".join(capsys.readouterr().err.split())
    assert "note: --workers 8 starts 5 processes on 2 CPUs: they share them, one torch thread each" in out
    run_cli(["batch", str(folder), "--auto", "-o", str(tmp_path / "out2"), "--workers", "2"])
    assert "note: --workers" not in capsys.readouterr().err


def test_napari_entry_checks_the_device_before_a_window_opens(one_gpu, monkeypatch, capsys):
    """``python -m medseg_napari --device cuda:1``: argparse refused cuda:N (the CLI takes it), and
    ``--device cuda`` without a GPU was said only later, in the widget's status line."""
    import sys
    import types

    import medseg_napari.__main__ as entry

    def window(*a, **k):
        raise AssertionError("would open a window")

    monkeypatch.setitem(sys.modules, "napari", types.SimpleNamespace(run=window))
    monkeypatch.setattr("medseg_napari._scripting.open_study", window)
    assert entry.main(["--device", "cuda:1"]) == 1
    assert capsys.readouterr().err.strip() == "error: --device cuda:1: this machine has 1 CUDA GPU (cuda:0)"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert entry.main(["--device", "cuda"]) == 1
    assert capsys.readouterr().err.strip() == "error: --device cuda was requested but no CUDA GPU is available here"


@pytest.mark.gui  # a napari viewer: needs a display (skips without one)
def test_open_study_on_a_gpu_index_selects_it():
    """``open_study(device="cuda:1")`` set a text the device list lacks: the list stayed on cpu
    and the session ran there, without a word (a display: run under ``xvfb-run -a``)."""
    napari = pytest.importorskip("napari")
    from medseg_napari.__main__ import no_display

    if no_display():  # Qt would abort the process
        pytest.skip("no display: run under xvfb-run -a")
    from medseg_napari._controller import guard_triton_import
    from medseg_napari._scripting import open_study

    guard_triton_import()  # as the widget does: a test after this one that loads torch's triton would crash under Mesa

    viewer = napari.Viewer(show=False)
    try:
        _, seg, _ = open_study(None, viewer=viewer, device="cuda:1", start=False)
        assert seg.ui.device.currentText() == "cuda:1"
    finally:
        viewer.close()


def test_evaluate_says_when_its_workers_outnumber_the_cpus(tmp_path, monkeypatch, capsys):
    import os

    import nibabel as nib
    import numpy as np

    from medseg import evaluation, models
    from medseg.errors import MedsegError

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(models, "load_model", lambda *a, **k: None)

    def stop(*a, **k):
        raise MedsegError("stopped here")

    monkeypatch.setattr(evaluation, "evaluate_pairs", stop)
    folder = tmp_path / "pairs"
    folder.mkdir()
    lab = np.zeros((32, 32, 3), np.uint8)
    lab[10:20, 10:20] = 1
    for i in range(3):
        nib.save(nib.Nifti1Image(np.random.default_rng(i).random((32, 32, 3)).astype(np.float32), np.eye(4)), str(folder / f"p{i}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, np.eye(4)), str(folder / f"p{i}_gt.nii.gz"))
    argv = ["evaluate", "--pairs", str(folder), "--label-map", "lv=1", "--prompt", "box", "-o", str(tmp_path / "r.json")]
    assert run_cli([*argv, "--workers", "4"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "note: --workers 4 starts 3 processes on 2 CPUs" in err and "stopped here" in err
    assert run_cli([*argv, "--workers", "2"]) == 1
    assert "note: --workers" not in capsys.readouterr().err


def test_a_cpu_run_on_a_machine_with_a_gpu_says_so(tmp_path, monkeypatch, capsys):
    """``--device`` defaults to cpu: on a GPU workstation a 30-frame cine took its ~4 minutes on
    the CPU, with no word of the GPU; a run naming the cpu where there is no GPU says nothing."""
    import nibabel as nib
    import numpy as np

    from medseg import models, segment

    def stop(*a, **k):
        raise CheckpointError("stopped here")

    monkeypatch.setattr(models, "load_model", lambda *a, **k: None)
    monkeypatch.setattr(segment, "segment_volume", stop)
    img = tmp_path / "img.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((64, 64, 2)).astype(np.float32), np.eye(4)), str(img))
    argv = ["segment", str(img), "-o", str(tmp_path / "seg.nii.gz"), "--auto"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run_cli(argv) == 1
    assert "note: a CUDA GPU" not in capsys.readouterr().err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert run_cli(argv) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "note: a CUDA GPU is available here and this run uses the cpu: --device cuda runs on the GPU" in err and "stopped here" in err


@pytest.mark.parametrize("device", ["mps", "mps:0"])
def test_a_mac_s_metal_device_is_named_as_unsupported(device, tmp_path, capsys):
    """A scientist on an Apple-silicon laptop tries ``--device mps`` (torch's name for it): it
    read "unknown device 'mps'", as for a typo. It says that Metal is not supported and that
    the cpu is the way on a Mac, before any work."""
    with pytest.raises(CheckpointError, match=r"^--device mps(:0)? \(Apple's Metal\) is not supported: on a Mac medseg runs on the cpu"):
        check_device(device)
    assert run_cli(["demo", "-o", str(tmp_path / "d"), "--device", device]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "(leave --device out)" in err and not (tmp_path / "d").exists()
