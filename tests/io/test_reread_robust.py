"""Files medseg reads back (a label file's sidecar, a REPORT.json, a batch's summary.json, a
``--replay`` sidecar, a prompts file, an adapter's medseg.json) go through one reader
(:mod:`medseg._json_files`): a byte-order mark (Windows Notepad) is read; an empty, truncated,
non-UTF-8 file, NaN, a list or null where an object belongs, or a folder in its place, is
refused in one line naming the file, with nothing written."""

from __future__ import annotations

import json
import shutil

import pytest

from medseg.cli._app import run_cli

BOM = b"\xef\xbb\xbf"

#: damage done to a file's bytes (None: a folder in its place) -> what the one line says
DAMAGE = {
    "empty": (lambda b: b"", "is empty"),
    "truncated": (lambda b: b[: len(b) // 2], "is not valid JSON ("),
    "not utf-8": (lambda b: b.replace(b'"', b'"\xe9', 1), "is not valid JSON (not UTF-8 text)"),
    "list": (lambda b: b"[1, 2]", "holds a list, not an object"),
    "string": (lambda b: b'"x"', "holds a string, not an object"),
    "null": (lambda b: b"null", "holds null, not an object"),
    "NaN": (lambda b: b.replace(b"{", b'{"note": NaN, ', 1), "holds NaN, which is not a JSON number"),
    "Infinity": (lambda b: b.replace(b"{", b'{"note": -Infinity, ', 1), "holds -Infinity, which is not a JSON number"),
    "folder": (None, "is a folder, not a file"),
}


def _damage(path, kind):
    """``path`` replaced by its damaged bytes (or a folder) as DAMAGE[kind] says."""
    make = DAMAGE[kind][0]
    raw = path.read_bytes()
    path.unlink()
    if make is None:
        path.mkdir()
    else:
        path.write_bytes(make(raw))


def _one_line(capsys) -> str:
    cap = capsys.readouterr()
    text = (cap.err + cap.out).strip()
    assert len(text.splitlines()) == 1 and "Traceback" not in text, text
    return " ".join(text.split())


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A small phantom image, its zero-click labels (seg.nii.gz + seg.json, a session to replay)
    and their REPORT.json, all written by the CLI."""
    import nibabel as nib
    import numpy as np
    import torch

    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("reread")
    ph = cine_sax_phantom(n_frames=1, n_slices=3, shape=(48, 48), seed=3)
    nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 3), ph.image.affine), str(d / "img.nii.gz"))
    assert run_cli(["segment", str(d / "img.nii.gz"), "--auto", "-o", str(d / "seg.nii.gz")]) == 0
    assert run_cli(["measure", str(d / "seg.nii.gz"), "-o", str(d / "REPORT.json")]) == 0
    return d


@pytest.fixture()
def work(made, tmp_path):
    """A copy of ``made`` to damage."""
    shutil.copytree(made, tmp_path / "w")
    return tmp_path / "w"


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_the_shared_reader_names_what_is_wrong(kind, tmp_path):
    from medseg._json_files import json_file_problem, read_json_file
    from medseg.errors import MedsegError

    path = tmp_path / "f.json"
    path.write_text(json.dumps({"a": 1, "b": [1.5, "x"]}))
    _damage(path, kind)
    obj, problem = json_file_problem(path)
    assert obj is None and DAMAGE[kind][1] in problem and "\n" not in problem
    with pytest.raises(MedsegError, match=f"^{path} "):
        read_json_file(path)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_the_shared_reader_takes_a_byte_order_mark(encoding, tmp_path):
    from medseg._json_files import json_file_problem

    path = tmp_path / "f.json"
    path.write_text(json.dumps({"lv": "Müller"}, ensure_ascii=False), encoding=encoding)
    assert json_file_problem(path) == ({"lv": "Müller"}, None)
    path.write_text("[" * 100000 + "]" * 100000)
    assert json_file_problem(path, expect=None) == (None, "is not a JSON file medseg reads (JSON nested too deep)")


def test_measure_reads_a_sidecar_saved_with_a_byte_order_mark(work, capsys):
    side = work / "seg.json"
    side.write_bytes(BOM + side.read_bytes())
    assert run_cli(["measure", str(work / "seg.nii.gz"), "-o", str(work / "R.json")]) == 0
    assert json.loads((work / "R.json").read_text())["label_map"] == json.loads(side.read_bytes()[3:])["label_map"]


@pytest.mark.parametrize("kind", ["list", "null", "NaN"])
def test_measure_reads_a_sidecar_as_earlier_releases_did(kind, work, capsys):
    """A NaN field a script added (Python's json.dump writes one) is read; a list or null is no
    sidecar of medseg's and is passed over (the default label map), as before the shared reader."""
    side = work / "seg.json"
    want = json.loads(side.read_text())["label_map"] if kind == "NaN" else None
    _damage(side, kind)
    assert run_cli(["measure", str(work / "seg.nii.gz"), "-o", str(work / "R.json")]) == 0
    got = json.loads((work / "R.json").read_text())["label_map"]
    if want is not None:
        assert got == want
    else:  # passed over: medseg's default map
        from medseg.labels import DEFAULT_LABEL_MAP

        assert got and got.items() <= DEFAULT_LABEL_MAP.to_dict().items()


@pytest.mark.parametrize("kind", ["empty", "truncated", "folder"])
def test_measure_refuses_a_damaged_sidecar_in_one_line(kind, work, capsys):
    _damage(work / "seg.json", kind)
    assert run_cli(["measure", str(work / "seg.nii.gz"), "-o", str(work / "R.json")]) == 1
    line = _one_line(capsys)
    assert f"{work / 'seg.json'} beside the labels {DAMAGE[kind][1]}" in line and "give --label-map" in line
    assert not (work / "R.json").exists()


def test_replay_reads_a_sidecar_with_a_byte_order_mark_and_refuses_a_damaged_one(work, capsys):
    side = work / "seg.json"
    sound = side.read_bytes()
    side.write_bytes(BOM + sound)
    assert run_cli(["segment", str(work / "img.nii.gz"), "--replay", str(side), "-o", str(work / "again.nii.gz")]) == 0
    assert (work / "again.nii.gz").is_file()
    capsys.readouterr()
    for kind in ("truncated", "empty"):
        side.write_bytes(sound)
        _damage(side, kind)
        assert run_cli(["segment", str(work / "img.nii.gz"), "--replay", str(side), "-o", str(work / "r2.nii.gz")]) == 1
        line = _one_line(capsys)
        assert line.startswith(f"error: --replay {side}: ") and DAMAGE[kind][1].removeprefix("is ") in line
        assert not (work / "r2.nii.gz").exists()


def test_compare_reads_a_report_with_a_byte_order_mark(work, capsys):
    follow = work / "FOLLOW.json"
    follow.write_bytes(BOM + (work / "REPORT.json").read_bytes())
    assert run_cli(["compare", str(work / "REPORT.json"), str(follow), "-o", str(work / "CH.json")]) == 0
    assert (work / "CH.json").is_file()


@pytest.mark.parametrize("kind", ["empty", "truncated", "NaN"])
def test_compare_names_what_is_wrong_with_a_report(kind, work, capsys):
    follow = work / "FOLLOW.json"
    shutil.copy(work / "REPORT.json", follow)
    _damage(follow, kind)
    assert run_cli(["compare", str(work / "REPORT.json"), str(follow), "-o", str(work / "CH.json")]) == 1
    assert f"{follow} {DAMAGE[kind][1]}" in _one_line(capsys) and not (work / "CH.json").exists()


@pytest.mark.parametrize("kind", ["null", "folder", "NaN"])
def test_compare_refuses_a_batch_folder_whose_summary_json_is_damaged(kind, tmp_path, capsys):
    """summary.json null, or a folder of its name, was read as no settings and compared on."""
    for name in ("base", "follow"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "cohort.csv").write_text("case,lv.ef_pct\nc1,55\n")
        (tmp_path / name / "summary.json").write_text(json.dumps({"settings": {"auto": True}, "cases": []}))
    _damage(tmp_path / "follow" / "summary.json", kind)
    assert run_cli(["compare", str(tmp_path / "base"), str(tmp_path / "follow"), "-o", str(tmp_path / "CH.json")]) == 1
    assert f"{tmp_path / 'follow' / 'summary.json'} {DAMAGE[kind][1]}" in _one_line(capsys)
    assert not (tmp_path / "CH.json").exists()


@pytest.mark.parametrize("kind", ["folder", "empty", "truncated"])
def test_a_damaged_prompts_file_is_refused_in_one_line(kind, work, capsys):
    prompts = work / "prompts.json"
    prompts.write_text(json.dumps({"prompts": [{"structure": "lv", "slice": 1, "box": [10, 10, 30, 30]}]}))
    _damage(prompts, kind)
    assert run_cli(["segment", str(work / "img.nii.gz"), "--prompts", str(prompts), "-o", str(work / "p.nii.gz")]) == 1
    line = _one_line(capsys)
    assert line.startswith(f"error: {prompts}: ") and ("a folder" if kind == "folder" else DAMAGE[kind][1].removeprefix("is ")) in line
    assert not (work / "p.nii.gz").exists()


@pytest.fixture()
def adapter(tmp_path):
    from medseg.adapters import find_adapter

    return shutil.copytree(find_adapter("cmr-lge"), tmp_path / "adapter")


def test_an_adapter_card_with_a_byte_order_mark_is_read(adapter):
    from medseg.adapters import read_adapter_meta

    card = adapter / "medseg.json"
    want = json.loads(card.read_text())
    card.write_bytes(BOM + card.read_bytes())
    assert read_adapter_meta(adapter) == want


def test_an_adapter_card_an_earlier_release_wrote_with_a_nan_is_read(adapter):
    """Earlier releases wrote medseg.json with plain json.dumps: a diverged run's NaN loss in its
    history. Such an adapter still loads; a new card is strict JSON (NaN written as null)."""
    from medseg.adapters import read_adapter_meta

    card = adapter / "medseg.json"
    want = json.loads(card.read_text())
    _damage(card, "NaN")
    meta = read_adapter_meta(adapter)
    assert {k: v for k, v in meta.items() if k != "note"} == want and meta["note"] != meta["note"]


@pytest.mark.parametrize("kind", ["empty", "truncated", "list"])
def test_a_damaged_adapter_card_is_refused_in_one_line(kind, adapter, work, capsys):
    _damage(adapter / "medseg.json", kind)
    assert run_cli(["segment", str(work / "img.nii.gz"), "--auto", "--adapter", str(adapter), "-o", str(work / "a.nii.gz")]) == 1
    assert f"{adapter / 'medseg.json'} {DAMAGE[kind][1]}" in _one_line(capsys) and not (work / "a.nii.gz").exists()


def test_an_adapter_config_peft_cannot_read_is_refused_by_name(adapter):
    """peft reads adapter_config.json again as plain UTF-8: a byte-order mark is said as such,
    not as a JSONDecodeError."""
    from medseg.adapter_checks import check_adapter_file
    from medseg.errors import CheckpointError

    config = adapter / "adapter_config.json"
    config.write_bytes(BOM + config.read_bytes())
    with pytest.raises(CheckpointError, match="adapter_config.json starts with a byte-order mark .*save it as UTF-8 \\(no BOM\\)$"):
        check_adapter_file(adapter)
