"""`medseg train` said what it did: no validation slices is no score of 0, and `--resume` that
finds no state says so (and does not train anew over a run whose state went elsewhere)."""

from __future__ import annotations

from medseg.cli._app import run_cli


def test_no_validation_slices_prints_no_score_of_zero(tmp_path, capsys):
    """Phantoms only (or --pairs without --val): each validation printed 'validation score 0.0000
    (best 0.0000)', read as a model that segments nothing."""
    out = tmp_path / "run"
    assert run_cli(["train", "--phantoms", "4", "--max-steps", "2", "--batch-size", "1", "--val-every", "0.001", "-o", str(out)]) == 0
    text = " ".join((lambda c: (c.out + c.err).split())(capsys.readouterr()))
    assert "validation score 0.0000" not in text
    assert "no validation slices to score" in text


def test_resume_of_a_run_whose_state_is_elsewhere_is_refused_and_keeps_its_checkpoints(tmp_path, capsys):
    """--resume with --state-dir pointing at a wiped scratch folder trained from step 0 and wrote
    best/last.safetensors over the run it was meant to continue."""
    out = tmp_path / "run"
    assert run_cli(["train", "--phantoms", "4", "--max-steps", "1", "--batch-size", "1", "-o", str(out),
                    "--state-dir", str(tmp_path / "scratch")]) == 0
    before = (out / "last.safetensors").read_bytes()
    capsys.readouterr()
    rc = run_cli(["train", "--phantoms", "4", "--max-steps", "2", "--batch-size", "1", "-o", str(out), "--resume",
                  "--state-dir", str(tmp_path / "wiped")])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 1 and err.startswith("error: --resume:") and "no state.pt" in err and "--init-from" in err
    assert (out / "last.safetensors").read_bytes() == before


def test_resume_in_a_new_folder_starts_with_a_note(tmp_path, capsys):
    """A job script that always passes --resume (a requeued cluster job) starts its first run;
    the console says it did not continue anything."""
    out = tmp_path / "run"
    assert run_cli(["train", "--phantoms", "4", "--max-steps", "1", "--batch-size", "1", "-o", str(out), "--resume"]) == 0
    assert "starting a new run" in " ".join((lambda c: (c.out + c.err).split())(capsys.readouterr()))
    assert (out / "state.pt").is_file()
    assert run_cli(["train", "--phantoms", "4", "--max-steps", "2", "--batch-size", "1", "-o", str(out), "--resume"]) == 0
    assert "starting a new run" not in " ".join((lambda c: (c.out + c.err).split())(capsys.readouterr()))


def test_init_from_takes_an_own_model_name_and_a_train_folder(tmp_path, monkeypatch, capsys):
    """--model NAME loads $MEDSEG_HOME/models/NAME/best.safetensors, but --init-from NAME said
    'checkpoint not found: NAME'; a train folder (as --model takes it) was refused too."""
    import shutil

    from medseg.models.checkpoints import read_checkpoint_header

    first = tmp_path / "first"
    assert run_cli(["train", "--phantoms", "4", "--max-steps", "1", "--batch-size", "1", "-o", str(first)]) == 0
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    shutil.copytree(first, home / "models" / "labA")
    monkeypatch.setenv("MEDSEG_HOME", str(home))
    for spec, want in (("labA", home / "models" / "labA" / "best.safetensors"), (str(first), first / "best.safetensors")):
        out = tmp_path / f"from_{len(str(spec))}"
        assert run_cli(["train", "--phantoms", "4", "--max-steps", "1", "--batch-size", "1", "--init-from", spec, "-o", str(out)]) == 0
        assert read_checkpoint_header(out / "last.safetensors")[1]["data"]["init_from"]["path"] == str(want)
    capsys.readouterr()
    assert run_cli(["train", "--phantoms", "4", "--max-steps", "1", "--init-from", "labZ", "-o", str(tmp_path / "z")]) == 1
    assert "$MEDSEG_HOME/models" in " ".join(capsys.readouterr().err.split())
