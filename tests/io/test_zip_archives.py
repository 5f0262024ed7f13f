"""ZIP archives as input (medseg.io.archive): a ``.zip`` reads exactly as the folder or the one
image file it holds (a synthetic cine, a UK Biobank-like zip of one series per slice with a
manifest, a NIfTI; Sunnybrook SCD0000501 and an M&Ms-2 NIfTI zipped at test time), nothing is
left on disk, member names never become paths, and every bad archive is one line, exit 1."""

from __future__ import annotations

import mmap
import os
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from io_synth import write_cine_series
from zip_synth import zip_tree

from medseg.cli import run_cli
from medseg.errors import ImageReadError
from medseg.io import archive, read_volume


def assert_same_volume(a, b) -> None:
    assert np.array_equal(a.array, b.array) and a.array.dtype == b.array.dtype
    assert np.array_equal(a.affine, b.affine) and a.modality == b.modality and a.spacing_known == b.spacing_known
    assert (a.frame_times_s is None) == (b.frame_times_s is None)
    if a.frame_times_s is not None:
        assert np.array_equal(a.frame_times_s, b.frame_times_s)
    for key in set(a.meta) | set(b.meta):
        if key not in ("path", "files", "header", "archive_member"):
            assert str(a.meta.get(key)) == str(b.meta.get(key)), key


def test_a_zipped_cine_reads_as_its_folder_and_leaves_nothing_on_disk(tmp_path, private_tmp):
    series = write_cine_series(tmp_path / "study", n_slices=4, n_phases=3)
    z = zip_tree(series.folder, tmp_path / "study.zip")
    folder, zipped = read_volume(series.folder), read_volume(z)
    assert_same_volume(zipped, folder)
    assert zipped.meta["path"] == str(z)
    # each image named as the zip's member, which reads back as the folder's file
    refs = [f for row in zipped.meta["files"] for f in row]
    assert refs == [f"{z.absolute()}!{Path(f).name}" for row in folder.meta["files"] for f in row]
    with archive.local_files(refs) as local:
        assert all(local[r].read_bytes() == (series.folder / r.split("!")[1]).read_bytes() for r in refs)
    assert list(private_tmp.iterdir()) == []


def test_a_uk_biobank_like_zip_one_series_per_slice_with_a_manifest(tmp_path, private_tmp):
    """UK Biobank: one series per short-axis slice (CINE_segmented_SAX_b1 ...), a manifest, in a
    top folder, with a Mac's __MACOSX shadow files; read as one stack, as the unzipped folder."""
    study = tmp_path / "1234567_20209_2_0"
    for k in range(4):
        write_cine_series(study, n_slices=1, n_phases=3, first_slice=k, description=f"CINE_segmented_SAX_b{k + 1}",
                          study_uid="1.2.826.0.1.99", prefix=f"S{k}_", series_number=10 + k)
    (study / "manifest.csv").write_text("filename,series\n")
    z = zip_tree(study, tmp_path / "1234567_20209_2_0.zip", prefix="1234567_20209_2_0/")
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr("__MACOSX/1234567_20209_2_0/._S0_0000.dcm", b"\0\5\26\7" + b"\0" * 80)
        zf.writestr("1234567_20209_2_0/.DS_Store", b"junk")
    zipped = read_volume(z)
    assert zipped.shape == (3, 4, 12, 10) and len(zipped.meta["series_instance_uids"]) == 4
    assert_same_volume(zipped, read_volume(study))
    assert zipped.meta["files"][0][0].startswith(f"{z.absolute()}!1234567_20209_2_0/S")
    assert read_volume(z, series="CINE_segmented_SAX_b2").shape == (3, 1, 12, 10)
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("name", ["case.nii.gz", "case.nii"])
def test_a_zip_holding_one_nifti_reads_as_that_file_in_memory(tmp_path, private_tmp, name):
    data = np.random.default_rng(0).normal(100, 20, (20, 18, 5, 3)).astype(np.float32)
    img = nib.Nifti1Image(data, np.diag([1.4, 1.4, 8.0, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 0.04
    src = tmp_path / "src" / name
    src.parent.mkdir()
    nib.save(img, src)
    z = zip_tree(src.parent, tmp_path / "case.zip", method=zipfile.ZIP_STORED)
    zipped = read_volume(z)
    assert_same_volume(zipped, read_volume(src))
    assert zipped.meta["path"] == str(z) and zipped.meta["archive_member"] == name
    base = zipped.array
    while base is not None:  # an uncompressed .nii was mapped from the file the reader removed
        assert not isinstance(base, (np.memmap, mmap.mmap))
        base = getattr(base, "base", None)
    assert list(private_tmp.iterdir()) == []


def test_member_names_never_become_paths(tmp_path, private_tmp):
    """``../`` and absolute member names stay inside the private folder; links and nested zips are left out."""
    series = write_cine_series(tmp_path / "s", n_slices=3, n_phases=1)
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted(series.folder.iterdir()):
            zf.writestr(f"../../../{tmp_path.name}/escaped/{f.name}", f.read_bytes())
        zf.writestr("/escaped_abs/readme.txt", "x")
        link = zipfile.ZipInfo("../../escaped/passwd.dcm")
        link.external_attr = 0o120777 << 16  # a symbolic link
        zf.writestr(link, "/etc/passwd")
        zf.writestr("inner.zip", b"PK\5\6" + b"\0" * 18)
    vol = read_volume(z)
    assert vol.shape == (1, 3, 12, 10)
    assert not any(p.name.startswith("escaped") for p in tmp_path.rglob("*"))
    assert list(private_tmp.iterdir()) == []


def _patched_central(src: Path, dest: Path, offset: int, value: bytes | None = None, flag: int = 0) -> Path:
    """A copy of ``src`` with each central directory record's bytes at ``offset`` set to ``value``
    (or OR'ed with ``flag``)."""
    b = bytearray(src.read_bytes())
    i = b.find(b"PK\1\2")
    while i >= 0:
        if value is not None:
            b[i + offset: i + offset + len(value)] = value
        b[i + offset] |= flag
        i = b.find(b"PK\1\2", i + 4)
    dest.write_bytes(bytes(b))
    return dest


def _flipped_byte(src: Path, dest: Path) -> Path:
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as b:
        for info in a.infolist():
            b.writestr(info.filename, a.read(info))
    data = bytearray(dest.read_bytes())
    data[600] ^= 0xFF  # inside the first member's data
    dest.write_bytes(bytes(data))
    return dest


def _said(capsys) -> str:
    got = capsys.readouterr()
    return " ".join((got.out + got.err).split())


def _two_studies(tmp: Path) -> tuple[Path, Path]:
    write_cine_series(tmp / "two" / "visit1" / "cine", n_slices=2, n_phases=1, study_uid="1.2.3.1")
    write_cine_series(tmp / "two" / "visit2" / "cine", n_slices=2, n_phases=1, study_uid="1.2.3.2", seed=3)
    return tmp / "two", zip_tree(tmp / "two", tmp / "two.zip")


BAD = {
    "truncated": (lambda good, tmp: (tmp / "t.zip").write_bytes(good.read_bytes()[: good.stat().st_size // 2]) and tmp / "t.zip",
                  "not a readable ZIP archive"),
    "empty": (lambda good, tmp: zipfile.ZipFile(tmp / "e.zip", "w").close() or tmp / "e.zip", "the ZIP archive is empty"),
    "folders only": (lambda good, tmp: _writestr(tmp / "f.zip", {"a/": b"", "__MACOSX/._x.dcm": b"x"}), "holds no files"),
    "no image": (lambda good, tmp: _writestr(tmp / "n.zip", {"manifest.csv": b"a,b\n", "notes.txt": b"x"}),
                 "holds no image medseg reads (2 file(s): manifest.csv, notes.txt)"),
    "two images": (lambda good, tmp: _writestr(tmp / "i.zip", {"a.nii.gz": b"x", "b.mha": b"y"}), "holds 2 image files (a.nii.gz, b.mha)"),
    "crc": (lambda good, tmp: _flipped_byte(good, tmp / "c.zip"), "is damaged (Bad CRC-32"),
    "larger than declared": (lambda good, tmp: _patched_central(good, tmp / "l.zip", 24, (100).to_bytes(4, "little")), "is damaged"),
    "encrypted": (lambda good, tmp: _patched_central(good, tmp / "x.zip", 8, flag=1), "is encrypted: medseg reads no password-protected ZIP"),
}


def _writestr(dest: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(dest, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return dest


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_zip_is_one_line_and_exit_1(tmp_path, private_tmp, capsys, kind):
    series = write_cine_series(tmp_path / "s", n_slices=2, n_phases=1)
    make, expected = BAD[kind]
    bad = make(zip_tree(series.folder, tmp_path / "good.zip"), tmp_path)
    assert run_cli(["info", str(bad)]) == 1
    out = _said(capsys)
    assert out.startswith(f"error: {bad}") and expected in out and "Traceback" not in out, out
    with pytest.raises(ImageReadError):
        read_volume(bad)
    assert list(private_tmp.iterdir()) == []


def test_a_zip_bomb_is_refused_before_anything_is_inflated(tmp_path, private_tmp, capsys, monkeypatch):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.nii", b"\0" * (40 << 20))  # 40 MB of zeros: a 40 kB zip
    monkeypatch.setenv("MEDSEG_MAX_IMAGE_GB", "0.01")

    def never(*args):
        raise AssertionError("inflated past the memory guard")

    monkeypatch.setattr(archive, "_inflate", never)
    assert bomb.stat().st_size < 100_000
    assert run_cli(["segment", str(bomb), "-o", str(tmp_path / "x.nii.gz"), "--auto"]) == 1
    out = _said(capsys)
    assert out == f"error: {bomb}: its files would inflate to 41.9 MB, more than the 10.0 MB MEDSEG_MAX_IMAGE_GB allows"
    assert list(private_tmp.iterdir()) == []


def test_a_zip_of_several_studies_says_what_the_folder_says(tmp_path, private_tmp, capsys):
    folder, z = _two_studies(tmp_path)
    said = []
    for path in (folder, z):
        assert run_cli(["segment", str(path), "-o", str(tmp_path / "x.nii.gz"), "--auto"]) == 1
        said.append(_said(capsys))
    assert "more than one study" in said[0] and said[1] == said[0].replace(str(folder), str(z))
    assert run_cli(["info", str(z)]) == 0  # the studies listed, each with its folder in the zip
    out = _said(capsys)
    assert out.startswith(f"{z}: 2 studies of 1 patient(s)") and "folder visit1/cine" in out and "folder visit2/cine" in out
    assert list(private_tmp.iterdir()) == []


def test_sunnybrook_and_mnms2_zipped_read_as_unzipped(shared_data, tmp_path, private_tmp):
    sunny = shared_data / "sunnybrook" / "dicoms" / "SCD0000501"
    z = zip_tree(sunny, tmp_path / "SCD0000501.zip", prefix="SCD0000501/")
    folder, zipped = read_volume(sunny), read_volume(z)
    assert zipped.shape == folder.shape and zipped.n_frames > 1
    assert_same_volume(zipped, folder)
    assert [Path(f.split("!")[1]).name for row in zipped.meta["files"] for f in row] == \
           [Path(f).name for row in folder.meta["files"] for f in row]
    nii = shared_data / "mnms2" / "001" / "001_SA_ED.nii.gz"
    z2 = tmp_path / "001_SA_ED.zip"
    with zipfile.ZipFile(z2, "w") as zf:
        zf.write(nii, "001/001_SA_ED.nii.gz")
    assert_same_volume(read_volume(z2), read_volume(nii))
    assert list(private_tmp.iterdir()) == []


def test_folder_left_by_a_killed_reader_is_removed_by_the_next(tmp_path, monkeypatch):
    """A process killed while it read a zip (SIGKILL, out of memory) left its temporary folder,
    a whole study's files, in /tmp for good; the next read removes the folders of processes that
    are gone, and no other (a live process's, another name)."""
    import subprocess
    import sys
    import tempfile

    from medseg.io import archive

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    dead = tmp_path / f"{archive.TEMP_PREFIX}{int(gone.stdout)}-abc"
    live = tmp_path / f"{archive.TEMP_PREFIX}{os.getpid()}-def"
    other = tmp_path / "medseg-zip-notapid"
    for d in (dead, live, other):
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "IM_0001.dcm").write_bytes(b"x" * 10)
    made = archive._private_folder()
    try:
        assert not dead.exists() and live.is_dir() and other.is_dir()
        assert made.parent == tmp_path and made.name.startswith(f"{archive.TEMP_PREFIX}{os.getpid()}-")
    finally:
        made.rmdir()


def test_windows_temporary_paths_are_named_as_the_archive_too():
    """Messages and ``meta["files"]`` name a member as ``study.zip!sub/IM1.dcm``; the rewrite
    followed "/" only, so on Windows (``...\\medseg-zip-1-x\\sub\\IM1.dcm``) the temporary
    path stayed in the text, and the SEG writer later found no such file."""
    from pathlib import PureWindowsPath

    root = "C:\\Temp\\medseg-zip-1-x"
    member = str(PureWindowsPath(root) / "sub" / "IM1.dcm")
    x = archive.Extracted(Path("study.zip"), Path(root), Path(root), {root: "", member: "sub/IM1.dcm"})
    assert x.rewrite(f"cannot read {member}.") == "cannot read study.zip!sub/IM1.dcm."
    assert x.rewrite_all({"files": [[member]]}) == {"files": [["study.zip!sub/IM1.dcm"]]}
