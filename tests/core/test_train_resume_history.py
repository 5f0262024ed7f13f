"""`medseg train --resume` with a damaged ``history.json``: a run stopped while writing it (the file
was written in place after state.pt) left it truncated, and the resume failed with "unexpected
JSONDecodeError" (the exit code of a bug). Now one line names the file and what to do, with the
exit code of bad input; and the file is written whole or not at all."""

from __future__ import annotations

import json

import pytest

from medseg.cli._app import run_cli
from medseg.errors import MedsegError
from medseg.training.loop import resumed_history

TRAIN = ["train", "--phantoms", "4", "--batch-size", "1"]


def test_resume_with_a_truncated_history_fails_in_one_line_naming_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli([*TRAIN, "--max-steps", "1", "-o", str(out)]) == 0
    history = out / "history.json"
    text = history.read_text()
    assert json.loads(text)  # one validation record
    history.write_text(text[: len(text) // 2])
    state = (out / "state.pt").read_bytes()
    capsys.readouterr()
    rc = run_cli([*TRAIN, "--max-steps", "2", "-o", str(out), "--resume"])
    err = capsys.readouterr().err
    line = " ".join(err.split())
    assert rc == 1, err  # bad input, not the exit code of an unexpected error
    assert "unexpected" not in line and "Traceback" not in err
    assert "error: --resume:" in line and "history.json is not valid JSON" in line and "truncated" in line
    assert "move it aside" in line
    assert (out / "state.pt").read_bytes() == state  # nothing trained over the run

    history.unlink()  # moved aside: the run goes on from its state, with a new history
    assert run_cli([*TRAIN, "--max-steps", "2", "-o", str(out), "--resume"]) == 0
    assert [r["step"] for r in json.loads(history.read_text())] == [2]


@pytest.mark.parametrize(("content", "says"), [
    ("", "is empty"),
    ('[{"step": 1, "score": 0.5}, {"step": 2', "truncated"),
    ("[" * 100_000 + "]" * 100_000, "nested too deep"),
    ('{"step": 1}', "holds an object, not a list"),
    ("[1, 2]", "not all validation records"),
])
def test_a_damaged_history_is_one_line_naming_the_file(tmp_path, content, says):
    (tmp_path / "history.json").write_text(content)
    with pytest.raises(MedsegError) as err:
        resumed_history(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "history.json") in msg and says in msg


def test_a_whole_or_missing_history_is_read(tmp_path):
    assert resumed_history(tmp_path) == []  # a run stopped before its first validation
    records = [{"step": 25, "score": 0.61}, {"step": 50, "score": 0.7}]
    (tmp_path / "history.json").write_text(json.dumps(records, indent=1))
    assert resumed_history(tmp_path) == records
    (tmp_path / "history.json").unlink()
    (tmp_path / "history.json").mkdir()
    with pytest.raises(MedsegError, match="history.json is a folder"):
        resumed_history(tmp_path)


def test_a_run_stopped_while_writing_its_history_keeps_the_last_whole_one(tmp_path, monkeypatch):
    """The disk fills while a resumed run writes history.json: the file it had stays whole (it
    was written in place, cut in half, and the next --resume failed on it)."""
    from pathlib import Path

    out = tmp_path / "run"
    assert run_cli([*TRAIN, "--max-steps", "1", "-o", str(out)]) == 0
    before = json.loads((out / "history.json").read_text())
    real = Path.write_text

    def disk_fills(self, text, *a, **k):  # history.json (or its temporary file) gets half its text
        if "history.json" not in self.name:
            return real(self, text, *a, **k)
        real(self, text[: len(text) // 2], *a, **k)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_fills)
    assert run_cli([*TRAIN, "--max-steps", "2", "-o", str(out), "--resume"]) != 0
    monkeypatch.undo()
    assert resumed_history(out) == before
