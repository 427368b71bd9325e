"""Bad input: one clear line naming the file or option, exit status 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from webtext_pipeline.cli import main


def one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["links", "--cutoff", "2017-13"], "--cutoff '2017-13' must be YYYY-MM"),
        (["links", "--cutoff", "Dec 2017"], "must be YYYY-MM"),
        (["links", "--dumps", "/nonexistent/dumps"], "--dumps /nonexistent/dumps: no such file"),
        (["links", "--karma", "max"], "argument --karma: invalid choice"),
        (["links", "--min-karma", "-1"], "--min-karma -1"),
        (["links", "--domain-blocklist", "/no/list.txt"], "--domain-blocklist /no/list.txt"),
        (["links", "--frobnicate"], "unknown option --frobnicate"),
        (["links", "--direct_running_mode=multi_threading"], "multi_threading"),
        (["links", "--runner", "DataflowRunner", "--project", "p"], "--temp_location"),
        (["links", "--runner", "DataflowRunner", "--temp_location", "/tmp/x"], "gs://"),
        (["links", "--source", "reddit-api"], "needs --subreddits"),
        (["nosuchcommand"], "invalid choice"),
    ],
)
def test_bad_options(capsys, tmp_path, argv, expected):
    argv = [*argv, "--out", str(tmp_path / "out")] if argv[0] == "links" else argv
    assert expected in one_line_error(capsys, argv)


def test_empty_folder_and_no_month_before_cutoff(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no such file" in one_line_error(capsys, ["links", "--dumps", str(empty)])
    (empty / "notes.txt").write_text("hi")
    assert "no dump files" in one_line_error(capsys, ["links", "--dumps", str(empty)])
    (empty / "RS_2018-03.zst").write_bytes(b"x")
    err = one_line_error(capsys, ["links", "--dumps", str(empty), "--out", str(tmp_path / "o")])
    assert "no file for a month at or before 2017-12" in err and "RS_2018-03.zst" in err


def test_empty_dump_file_is_named(capsys, tmp_path):
    dump = tmp_path / "RS_2017-05.zst"
    dump.write_bytes(b"")
    err = one_line_error(capsys, ["links", "--dumps", str(dump), "--out", str(tmp_path / "o")])
    assert str(dump) in err and "empty" in err


def test_output_folder_that_cannot_be_created(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    err = one_line_error(capsys, ["links", "--out", str(blocker / "out")])
    assert "--out" in err and "cannot create" in err


def test_console_script_exits_cleanly_on_bad_input(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "webtext_pipeline.cli", "links", "--cutoff", "2017-1",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    expected = "webtext: error: --cutoff '2017-1' must be YYYY-MM, for example 2017-12"
    assert proc.stderr.strip() == expected
