"""Progress of a long command whose stderr goes to a file or a pipe (a Slurm job's log,
``2> log``, ``| tee``): rich draws no bar there, so such a log showed nothing between a batch's
first line and its last, hours later. Now a plain line now and then says how far it got."""

from __future__ import annotations

import subprocess
import sys

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

import medseg.cli._app as app


def test_a_logged_run_prints_a_plain_line_every_minute_then_every_five(monkeypatch, capsys):
    now = [1000.0]
    monkeypatch.setattr(app, "_clock", lambda: now[0])
    bar = app._logged_progress_class()(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                       console=app.console, transient=True, disable=True, log_lines=True)
    with bar:
        task = bar.add_task("cases", total=100)
        for i in range(1, 101):
            now[0] += 15.0  # a case every 15 s: 25 minutes
            bar.update(task, advance=1, description=f"p{i:03d} ({i} ok, 0 skipped, 0 failed)")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "  ... p004 (4 ok, 0 skipped, 0 failed) 4/100 (0:01:00 elapsed, about 0:24:00 left)"
    assert lines[1].startswith("  ... p008 (8 ok, 0 skipped, 0 failed) 8/100 (0:02:00 elapsed")
    minutes = [int(x.split(" (")[-1].split(":")[1]) for x in lines]
    assert minutes == [1, 2, 3, 4, 5, 6, 7, 8, 9, 14, 19, 24]  # every minute for ten minutes, then every five
    assert lines[-1] == "  ... p096 (96 ok, 0 skipped, 0 failed) 96/100 (0:24:00 elapsed, about 0:01:00 left)"


def test_no_lines_without_log_lines_and_none_within_the_first_minute(monkeypatch, capsys):
    now = [0.0]
    monkeypatch.setattr(app, "_clock", lambda: now[0])
    for log_lines, step in ((False, 30.0), (True, 0.5)):
        bar = app._logged_progress_class()(MofNCompleteColumn(), console=app.console, disable=True, log_lines=log_lines)
        with bar:
            task = bar.add_task("x", total=100)
            for _ in range(100):
                now[0] += step
                bar.advance(task)
    assert capsys.readouterr().err == ""


def test_progress_lines_only_for_a_real_file_or_pipe(tmp_path, capsys):
    """A terminal gets rich's bar; a test's captured stream (no file descriptor) gets nothing;
    a file (a job's log) gets the lines."""
    code = "import medseg.cli._app as a, sys; print(a._stderr_is_file_or_pipe())"
    with open(tmp_path / "log", "w") as log:
        run = subprocess.run([sys.executable, "-c", code], stderr=log, stdout=subprocess.PIPE, text=True, timeout=120)
    assert run.stdout.strip() == "True"
    assert app._stderr_is_file_or_pipe() is False  # pytest's captured sys.stderr


def test_segment_s_bar_shows_no_count_for_a_step_that_counts_nothing(monkeypatch, capsys):
    """``segment``'s review step gave ``progress(0, None, ...)``: rich kept the total of the step
    before, so the bar (and a log's line) read "review (measurements, anatomy) 0/5"."""
    from medseg.cli import segment_cmd

    now = [0.0]
    monkeypatch.setattr(app, "_clock", lambda: now[0])
    monkeypatch.setattr(app, "progress_bar", lambda *cols: app._logged_progress_class()(*cols, console=app.console, disable=True, log_lines=True))
    monkeypatch.setattr(segment_cmd, "progress_bar", app.progress_bar)

    def work(progress):
        for d in range(1, 6):
            now[0] += 61.0
            progress(d, 5, "zero-click, slices")
        now[0] += 61.0
        progress(0, None, "review (measurements, anatomy)")

    segment_cmd._with_progress(work)
    lines = capsys.readouterr().err.splitlines()
    assert "segmenting: zero-click, slices 5/5" in lines[-2]
    assert lines[-1].startswith("  ... segmenting: review (measurements, anatomy) 0/? (")  # not 0/5
