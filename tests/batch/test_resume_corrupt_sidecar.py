"""`medseg batch --resume` reads each case's sidecar as every medseg reader does
(:mod:`medseg._json_files`): one saved again with a byte-order mark (Windows Notepad) is the
complete output it was and is kept (and measured); an empty, non-UTF-8, NaN, list or null
sidecar is disposable state: the case is redone (docs/batch.md, *Resume*). The other readers
of a case's sidecar and records say what is wrong instead of raising."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from batch_data import MAP, write_case

BOM = b"\xef\xbb\xbf"

DAMAGE = {  # the sidecar's bytes -> damaged bytes
    "empty": lambda b: b"",
    "truncated": lambda b: b[: len(b) // 2],
    "not utf-8": lambda b: b.replace(b'"', b'"\xe9', 1),
    "list": lambda b: b"[1, 2]",
    "null": lambda b: b"null",
}
EDITED = {  # a field a script added with Python's json.dump: read as json.loads reads it, the output kept
    "NaN": lambda b: b.replace(b"{", b'{"note": NaN, ', 1),
    "Infinity": lambda b: b.replace(b"{", b'{"note": Infinity, ', 1),
}


@pytest.fixture()
def written(tmp_path):
    """A case whose batch output is complete, as written (no model run: its provenance is made here)."""
    from medseg._files import sha256_file
    from medseg.batch import BatchOptions, CaseSpec
    from medseg.io import read_volume, write_labels
    from medseg.models.registry import shipped_checkpoint

    image, _ = write_case(tmp_path / "in", "c1", seed=10, shape=(32, 32), n_slices=2)
    opts = BatchOptions(out_dir=str(tmp_path / "out"), auto=True, resume=True)
    vol = read_volume(image)
    prov = {"command": "batch", "input_sha256": sha256_file(image), "input_shape": list(vol.shape), "batch_signature": opts.signature(),
            "model_sha256": sha256_file(shipped_checkpoint()), "adapter_sha256": None, "confidence": {"volume": {"lv": 0.9}},
            "review": {"flags": [{"code": "structure_not_found", "structure": "rv"}]}}
    out = write_labels(np.zeros(vol.shape, np.uint8), vol, tmp_path / "out" / "c1.nii.gz", MAP, provenance=prov)[0]
    return CaseSpec("c1", str(image)), opts, out


def test_resume_keeps_an_output_whose_sidecar_has_a_byte_order_mark(written):
    from medseg.batch import output_problem
    from medseg.batch.checks import _sidecar_provenance
    from medseg.io import sidecar_path

    case, opts, out = written
    side = sidecar_path(out)
    side.write_bytes(BOM + side.read_bytes())
    assert output_problem(case, opts) is None  # was "sidecar unreadable": redone
    assert _sidecar_provenance(out)["confidence"] == {"volume": {"lv": 0.9}}


@pytest.mark.parametrize("kind", list(EDITED))
def test_resume_keeps_an_output_whose_sidecar_a_script_edited(kind, written):
    from medseg.batch import output_problem
    from medseg.batch.checks import _sidecar_provenance
    from medseg.io import sidecar_path

    case, opts, out = written
    side = sidecar_path(out)
    side.write_bytes(EDITED[kind](side.read_bytes()))
    assert output_problem(case, opts) is None
    assert _sidecar_provenance(out)["confidence"] == {"volume": {"lv": 0.9}}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_resume_redoes_an_output_whose_sidecar_is_damaged(kind, written):
    from medseg.batch import output_problem
    from medseg.io import sidecar_path

    case, opts, out = written
    side = sidecar_path(out)
    side.write_bytes(DAMAGE[kind](side.read_bytes()))
    assert output_problem(case, opts) == "sidecar unreadable"


def test_the_provenance_of_a_damaged_sidecar_is_refused_in_one_line(written):
    from medseg.batch.checks import _sidecar_provenance
    from medseg.errors import MedsegError
    from medseg.io import sidecar_path

    _, _, out = written
    side = sidecar_path(out)
    side.write_bytes(side.read_bytes()[:40])
    with pytest.raises(MedsegError, match=f"^{side} is not valid JSON \\(.*truncated"):  # was a bare JSONDecodeError
        _sidecar_provenance(out)


def test_a_damaged_handed_over_record_runs_the_case_again(written):
    """A record nested too deep raised RecursionError (the case failed: "unexpected RecursionError")."""
    from medseg.batch.cases import handed_over_path
    from medseg.batch.checks import handed_over_record

    case, opts, _ = written
    record = handed_over_path(opts.out_dir, case.case)
    record.parent.mkdir(parents=True, exist_ok=True)
    for text in ("[" * 100000 + "]" * 100000, "", "null", '{"command": NaN}'):
        record.write_text(text)
        assert handed_over_record(case, opts) is None


@pytest.mark.parametrize("text", [b"[1, 2]", b'{"label_map": null}'])
def test_measure_of_a_case_whose_sidecar_names_no_map_says_so(text, written):
    """A sidecar that is a list raised TypeError from the batch's measurement."""
    from medseg.batch.measure_rows import _measure
    from medseg.io import sidecar_path

    _, opts, out = written
    sidecar_path(out).write_bytes(text)
    res = _measure(out, opts, "c1")
    assert res["measure_note"].startswith("not measured: c1.json ") and res.keys() == {"measure_note"}


def test_the_rv_note_reads_a_sidecar_with_a_byte_order_mark(written):
    from medseg.cli.batch_cmd import _rv_not_found
    from medseg.io import sidecar_path

    _, _, out = written
    side = sidecar_path(out)
    assert _rv_not_found(out)
    side.write_bytes(BOM + side.read_bytes())
    assert _rv_not_found(out)
    side.write_bytes(b"[]")
    assert not _rv_not_found(out)


def test_batch_resume_keeps_and_measures_a_case_whose_sidecar_notepad_saved(tmp_path):
    """The whole command: a batch's sidecar saved again with a byte-order mark is skipped as complete
    and measured (it was segmented again, "redone: sidecar unreadable"); a truncated one is redone."""
    import torch

    from medseg.cli._app import run_cli

    torch.set_num_threads(1)
    write_case(tmp_path / "in", "c1", seed=3, shape=(48, 48), n_slices=3)
    write_case(tmp_path / "in", "c2", seed=4, shape=(48, 48), n_slices=3)
    for ref in (tmp_path / "in").glob("*_gt*"):
        ref.unlink()
    args = ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--auto", "--measure", "--resume"]
    assert run_cli(args) == 0
    c1, c2 = tmp_path / "out" / "c1.json", tmp_path / "out" / "c2.json"
    c1.write_bytes(BOM + c1.read_bytes())
    c2.write_bytes(c2.read_bytes()[:100])
    assert run_cli(args) == 0
    rows = {r["case"]: r for r in csv.DictReader(open(tmp_path / "out" / "summary.csv", encoding="utf-8-sig"))}
    assert (rows["c1"]["status"], rows["c1"]["reason"]) == ("skipped", "complete output from an earlier run")
    assert (rows["c2"]["status"], rows["c2"]["reason"]) == ("ok", "redone: sidecar unreadable")
    cohort = {r["case"]: r for r in csv.DictReader(open(tmp_path / "out" / "cohort.csv", encoding="utf-8-sig"))}
    assert float(cohort["c1"]["volumes_ml.lv"]) > 0
    assert json.loads(c2.read_text())["provenance"]["command"] == "batch"  # written anew
