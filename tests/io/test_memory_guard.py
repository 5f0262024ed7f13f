"""The readers' memory guard (medseg.io.limits): an image whose decoded array would not fit in
memory is refused in one line before it is decoded or inflated (decompression bombs: a small
.nii.gz / compressed MHA declaring GBs, a Deflated-transfer-syntax DICOM of zeros)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from io_synth import write_cine_series, write_enhanced_mr, write_us_clip
from pydicom.uid import DeflatedExplicitVRLittleEndian

from medseg.errors import ImageReadError
from medseg.io import limits, read_volume
from medseg.io.limits import ENV_VAR, available_bytes, check_decoded_size

HUGE = (32767, 32767, 32767)  # NIfTI-1's largest dims: 2.8e14 float64 voxels, more than any machine holds


@pytest.fixture(autouse=True)
def _no_env_limit(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def _one_line_memory_error(e: pytest.ExceptionInfo, path: Path, says: str = "would need") -> str:
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and ENV_VAR in msg and says in msg, msg
    return msg


def _nifti_bomb(path: Path, shape: tuple[int, ...], body: int = 4096) -> Path:
    """A .nii.gz with a real header declaring ``shape`` float64 and only ``body`` bytes of data."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.float64)
    hdr.set_zooms((1.0,) * len(shape))
    hdr["vox_offset"] = 352
    with gzip.open(path, "wb") as f:
        f.write(hdr.binaryblock + b"\0" * 4 + bytes(body))
    return path


def _small_nifti(path: Path) -> Path:
    nib.save(nib.Nifti1Image(np.arange(8 * 9 * 5, dtype=np.int16).reshape(8, 9, 5), np.diag([1.2, 1.3, 6.0, 1.0])), str(path))
    return path


def _small_mha(path: Path, size: str | None = None) -> Path:
    """A compressed MHA (zeros); ``size`` ("X Y Z") rewrites the header's DimSize to declare more."""
    sitk.WriteImage(sitk.GetImageFromArray(np.arange(6 * 7 * 8, dtype=np.float64).reshape(6, 7, 8)), str(path), useCompression=True)
    if size:
        path.write_bytes(path.read_bytes().replace(b"DimSize = 8 7 6", f"DimSize = {size}".encode()))
    return path


def _deflated(src: Path, dst: Path) -> Path:
    ds = pydicom.dcmread(src)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(dst, enforce_file_format=True)
    return dst


def _dicom_deflate_bomb(path: Path) -> Path:
    """An enhanced MR of 6 frames 2048 x 2048 of zeros, deflated: ~50 MB inflate from ~50 kB."""
    write_enhanced_mr(path.with_name("src.dcm"), n_slices=3, n_phases=2)
    ds = pydicom.dcmread(path.with_name("src.dcm"))
    ds.Rows = ds.Columns = 2048
    ds.PixelData = bytes(6 * 2048 * 2048 * 2)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    assert path.stat().st_size < 200_000
    return path


# -- the check itself -------------------------------------------------------------------
def test_message_is_one_exact_line(monkeypatch):
    monkeypatch.setattr(limits, "available_bytes", lambda: 9_800_000_000)
    with pytest.raises(ImageReadError) as e:
        check_decoded_size("scan.nii.gz", (1024, 1024, 1024), np.float64)
    assert str(e.value) == ("scan.nii.gz: the image (shape (1024, 1024, 1024), float64) would need 12.9 GB of memory, "
                            "more than the 9.8 GB available; set MEDSEG_MAX_IMAGE_GB to change the limit")
    check_decoded_size("scan.nii.gz", (1024, 1024, 512), np.float64)  # 6.4 GB fits
    check_decoded_size("scan.nii.gz", (0, 1024, 1024), np.float64)  # empty: the reader's own error


def test_absurd_shapes_do_not_overflow(monkeypatch):
    monkeypatch.setattr(limits, "available_bytes", lambda: 10**10)
    with pytest.raises(ImageReadError, match=r"would need \d\.\d\de\+\d+ GB of memory") as e:
        check_decoded_size("x.nii", (2**62,) * 7, 8)
    assert "8-byte voxels" in str(e.value) and "\n" not in str(e.value)


def test_env_variable_sets_the_limit(monkeypatch):
    assert available_bytes() is None or available_bytes() > 0  # the memory available (Linux: MemAvailable)
    monkeypatch.setenv(ENV_VAR, "2.5")
    assert available_bytes() == 2_500_000_000
    with pytest.raises(ImageReadError, match=r"would need 3\.0 GB of memory, more than the 2\.5 GB MEDSEG_MAX_IMAGE_GB allows$"):
        check_decoded_size("a.mha", (1000, 1000, 500), 2)  # 5e8 voxels: 1 GB native + 2 GB float32
    monkeypatch.setenv(ENV_VAR, "")  # empty: as if unset
    assert available_bytes() != 2_500_000_000


def _cgroup(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)


def test_cgroup_v2_headroom_not_counting_inactive_cache(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("0::/user.slice/job42\n")
    _cgroup(tmp_path / "fs/user.slice/job42", {"memory.max": "4000000000\n", "memory.current": "1500000000\n",
                                               "memory.stat": "anon 900000000\nfile 600000000\ninactive_file 500000000\n"})
    assert limits.cgroup_headroom(tmp_path / "fs", proc) == 4_000_000_000 - (1_500_000_000 - 500_000_000)
    (tmp_path / "fs/user.slice/job42/memory.max").write_text("max\n")  # no limit
    assert limits.cgroup_headroom(tmp_path / "fs", proc) is None


def test_cgroup_v1_headroom_and_namespaced_root(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("9:name=systemd:/\n4:memory:/process_api/abc\n0::/\n")
    # a container's cgroup namespace: its own cgroup is mounted at the root, the path in /proc is not there
    _cgroup(tmp_path / "fs/memory", {"memory.limit_in_bytes": "2000000000\n", "memory.usage_in_bytes": "1200000000\n",
                                      "memory.stat": "cache 300000000\ntotal_inactive_file 200000000\n"})
    assert limits.cgroup_headroom(tmp_path / "fs", proc) == 2_000_000_000 - 1_000_000_000
    (tmp_path / "fs/memory/memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "unlimited"
    assert limits.cgroup_headroom(tmp_path / "fs", proc) is None
    assert limits.cgroup_headroom(tmp_path / "nothing", tmp_path / "no_such_file") is None


def test_a_cgroup_limit_below_the_machine_refuses(tmp_path, monkeypatch):
    """A batch job given 1 GB on a 24 GB machine: the image that needs 1.5 GB is refused in one line."""
    monkeypatch.setattr(limits, "cgroup_headroom", lambda: 1_000_000_000)
    assert available_bytes() <= 1_000_000_000
    with pytest.raises(ImageReadError, match=r"would need 1\.5 GB of memory, more than the 1\.0 GB available"):
        check_decoded_size("a.mha", (500, 500, 1000), 2)
    monkeypatch.setattr(limits, "cgroup_headroom", lambda: None)
    check_decoded_size("a.mha", (500, 500, 1000), 2)


@pytest.mark.parametrize("value", ["abc", "-1", "0", "nan", "inf"])
def test_invalid_env_value_is_one_line(tmp_path, monkeypatch, value):
    f = _small_nifti(tmp_path / "a.nii.gz")
    monkeypatch.setenv(ENV_VAR, value)
    with pytest.raises(ImageReadError) as e:
        read_volume(f)
    assert "\n" not in str(e.value) and ENV_VAR in str(e.value) and repr(value) in str(e.value)


# -- NIfTI / MHA / NRRD: the header is checked before the data is read -------------------
def test_nifti_bomb_is_refused_before_the_inflate(tmp_path):
    f = _nifti_bomb(tmp_path / "bomb.nii.gz", HUGE)
    assert f.stat().st_size < 10_000
    with pytest.raises(ImageReadError) as e:
        read_volume(f)
    msg = _one_line_memory_error(e, f)
    assert "(shape (32767, 32767, 32767), float64)" in msg and "Expected" not in msg and "truncated" not in msg


def test_nifti_size_check_comes_before_the_truncation_error(tmp_path, monkeypatch):
    """256^3 float64 declared, 4 kB stored: under a 0.1 GB limit the memory error, not nibabel's
    'Expected ... bytes' for the missing data (which it gives when the limit allows the size)."""
    f = _nifti_bomb(tmp_path / "short.nii.gz", (256, 256, 256))
    monkeypatch.setenv(ENV_VAR, "0.1")
    with pytest.raises(ImageReadError) as e:
        read_volume(f)
    assert "would need 201.3 MB of memory, more than the 100.0 MB MEDSEG_MAX_IMAGE_GB allows" in _one_line_memory_error(e, f)
    monkeypatch.setenv(ENV_VAR, "1")
    with pytest.raises(ImageReadError, match="cut short: it holds 4096 of the 134217728 bytes"):
        read_volume(f)


def test_nifti_scaled_dtype_counts(tmp_path, monkeypatch):
    """int16 with scl_slope reads as float64 (nibabel scales it): the check counts 8 bytes."""
    img = nib.Nifti1Image(np.zeros((40, 50, 10), dtype=np.int16), np.eye(4))
    img.header.set_slope_inter(2.0, 1.0)
    nib.save(img, str(tmp_path / "s.nii.gz"))
    monkeypatch.setattr(limits, "available_bytes", lambda: 200_000)  # 20000 voxels: 120 kB as int16 + f32, 240 kB as float64
    with pytest.raises(ImageReadError, match=r"\(shape \(40, 50, 10\), float64\) would need 240\.0 kB"):
        read_volume(tmp_path / "s.nii.gz")


@pytest.mark.parametrize("ending", [".mha", ".nrrd"])
def test_compressed_itk_bomb_is_refused_before_the_inflate(tmp_path, ending):
    f = tmp_path / f"bomb{ending}"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((6, 5, 4))), str(f), useCompression=True)
    old = b"DimSize = 4 5 6" if ending == ".mha" else b"sizes: 4 5 6"
    new = b"DimSize = 32767 32767 32767" if ending == ".mha" else b"sizes: 32767 32767 32767"
    f.write_bytes(f.read_bytes().replace(old, new))
    with pytest.raises(ImageReadError) as e:
        read_volume(f)
    msg = _one_line_memory_error(e, f)
    assert "(shape (32767, 32767, 32767), float64)" in msg and "truncated" not in msg


# -- small files: refused under a tiny limit, read without one ---------------------------
def _small_files(tmp_path: Path) -> dict[str, Path]:
    return {
        "nifti": _small_nifti(tmp_path / "a.nii.gz"),
        "mha": _small_mha(tmp_path / "a.mha"),
        "dicom enhanced": write_enhanced_mr(tmp_path / "e.dcm").folder,
        "dicom series": write_cine_series(tmp_path / "series", n_slices=3, n_phases=2).folder,
        "dicom clip": (write_us_clip(tmp_path / "clip.dcm"), tmp_path / "clip.dcm")[1],
        "dicom deflated": _deflated(write_enhanced_mr(tmp_path / "e2.dcm").folder, tmp_path / "e2_deflated.dcm"),
    }


def test_a_tiny_limit_refuses_small_files_and_none_reads_them(tmp_path, monkeypatch):
    files = _small_files(tmp_path)
    monkeypatch.setenv(ENV_VAR, "0.000001")  # 1 kB
    for kind, f in files.items():
        with pytest.raises(ImageReadError) as e:
            read_volume(f)
        # the deflated file: already its inflated data set is over the limit
        says = "inflates to more than 0.5 kB, half the 1.0 kB" if kind == "dicom deflated" else "more than the 1.0 kB"
        assert f"{says} MEDSEG_MAX_IMAGE_GB allows" in _one_line_memory_error(e, f, says), kind
    monkeypatch.delenv(ENV_VAR)
    for f in files.values():
        assert read_volume(f).array.size > 0


# -- Deflated Explicit VR Little Endian DICOM ---------------------------------------------
def test_deflated_dicom_reads_as_the_uncompressed_one(tmp_path):
    s = write_enhanced_mr(tmp_path / "e.dcm", rows=20, cols=24)
    d = _deflated(s.folder, tmp_path / "e_deflated.dcm")
    assert d.read_bytes() != s.folder.read_bytes()
    a, b = read_volume(s.folder), read_volume(d)
    assert np.array_equal(a.array, b.array) and np.allclose(a.affine, b.affine) and a.frame_times_s is not None
    assert np.array_equal(b.array, s.pixels.astype(np.float32))
    from medseg.io.dicom_frames import read_dicom

    ds = read_dicom(d)
    assert ds.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian and ds.filename == str(d)


def test_deflated_dicom_series_folder(tmp_path):
    s = write_cine_series(tmp_path / "plain", n_slices=3, n_phases=2)
    (tmp_path / "deflated").mkdir()
    for f in sorted((tmp_path / "plain").iterdir()):
        _deflated(f, tmp_path / "deflated" / f.name)
    a, b = read_volume(tmp_path / "plain"), read_volume(tmp_path / "deflated")
    assert np.array_equal(a.array, b.array) and np.array_equal(b.array, s.pixels * np.float32(s.slope) + np.float32(s.intercept))


def test_deflate_bomb_is_refused_while_inflating(tmp_path, monkeypatch):
    """~50 MB of zeros in a ~50 kB file: under a 10 MB limit inflating stops at 5 MB (half the
    limit: the pixels are decoded into a second copy), before the whole data set is in memory."""
    f = _dicom_deflate_bomb(tmp_path / "bomb.dcm")
    monkeypatch.setenv(ENV_VAR, "0.01")
    from medseg.io.seg_reader import is_dicom_seg

    tracemalloc.start()
    try:
        with pytest.raises(ImageReadError) as e:
            read_volume(f)
        assert not is_dicom_seg(f)  # the SEG check (medseg info's first look) inflates within the limit too
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = str(e.value)
    assert msg == (f"{f}: the deflated DICOM data set inflates to more than 5.0 MB, half the 10.0 MB MEDSEG_MAX_IMAGE_GB allows "
                   "(its pixels are decoded into a second copy)")
    assert peak < 25_000_000, peak  # pydicom alone would hold the whole ~50 MB (and more)
    monkeypatch.setenv(ENV_VAR, "1")
    assert read_volume(f).shape == (2, 3, 2048, 2048)


def test_truncated_deflated_dicom_is_one_line(tmp_path):
    d = _deflated(write_enhanced_mr(tmp_path / "e.dcm").folder, tmp_path / "d.dcm")
    d.write_bytes(d.read_bytes()[:-200])
    with pytest.raises(ImageReadError, match="deflated data set is cut short") as e:
        read_volume(d)
    assert "\n" not in str(e.value)


# -- the CLI ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["nifti", "dicom"])
def test_cli_info_on_a_bomb_is_one_line_and_exit_1(tmp_path, kind):
    if kind == "nifti":
        f, env = _nifti_bomb(tmp_path / "BOMB.nii.gz", HUGE), {}
    else:
        f, env = _dicom_deflate_bomb(tmp_path / "BOMB.dcm"), {ENV_VAR: "0.01"}
    r = subprocess.run([sys.executable, "-m", "medseg", "info", str(f)], capture_output=True, text=True, timeout=120,
                       env={**{k: v for k, v in os.environ.items() if k != ENV_VAR}, **env})
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 1 and "Traceback" not in out and len(out.splitlines()) == 1, out
    assert out.startswith("error: ") and str(f) in out and ENV_VAR in out


def _small_seg(tmp_path: Path) -> Path:
    from medseg.io import write_dicom_seg
    from medseg.labels import LabelMap

    write_cine_series(tmp_path / "cine", n_slices=3, n_phases=1)
    vol = read_volume(tmp_path / "cine")
    lab = np.zeros(vol.grid_shape, np.uint8)
    lab[0:2, 3:8, 2:6] = 1
    return write_dicom_seg(lab, vol, tmp_path / "seg.dcm", LabelMap.parse("lv=1,myo=2,rv=3"))


def test_dicom_seg_is_checked_before_its_frames_are_unpacked(tmp_path, monkeypatch):
    """A SEG's frames are bit-packed or compressed: its size on disk says nothing of the volume."""
    from medseg.io import read_label_volume

    seg = _small_seg(tmp_path)
    assert int(read_label_volume(seg).array.max()) == 1
    monkeypatch.setenv(ENV_VAR, "0.000001")  # 1 kB
    with pytest.raises(ImageReadError) as e:
        read_label_volume(seg)
    assert "the segmentation (shape (" in _one_line_memory_error(e, seg, "would need")


def test_deflated_dicom_seg_reads_as_the_uncompressed_one(tmp_path):
    from medseg.io import read_label_volume

    seg = _small_seg(tmp_path)
    deflated = _deflated(seg, tmp_path / "seg_deflated.dcm")
    a, b = read_label_volume(seg), read_label_volume(deflated)
    assert np.array_equal(a.array, b.array) and np.allclose(a.affine, b.affine) and a.meta["label_map"] == b.meta["label_map"]
