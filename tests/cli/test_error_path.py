"""The one error path of ``jod``: a fixable error is one line and exit code 2, a bug one line
and exit code 1, a traceback only with --debug or JODKIT_DEBUG=1; jodkit's warnings are
``warning:`` lines and library warnings are kept out of sight."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

import jodkit.cli
from jodkit.cli import app
from jodkit.commands import COMMANDS, Subcommand
from scaling.errors import InputError

runner = CliRunner()

FAKE = '''
import logging
import warnings
from pathlib import Path

import numpy as np

from scaling.api import DisconnectedGraphWarning
from scaling.errors import InputError
from scaling.simulate import make_true_scores


def fail(kind: str) -> None:
    """Fails as asked."""
    if kind == "input":
        raise InputError("must be 0 or 1, got 7", source="t.csv", row=4, field="is_A_selected")
    if kind == "missing":
        Path("no/such/file.csv").read_text()
    if kind == "folder":
        Path(".").read_text()
    if kind == "utf8":
        b"\\xff\\xfe\\x00bad".decode()
    if kind == "checked":
        make_true_scores(1)  # jodkit's own check of a value
    if kind == "bug":
        1 / 0
    if kind == "library-value":
        int("not a number")
    if kind == "logs":
        logging.getLogger("study.faces").warning("no face found; using a centred crop")
        logging.getLogger("some_library").warning("a library's chatter")
        logging.getLogger("some_library").error("a library's error")
    if kind == "logged-bug":
        try:
            1 / 0
        except ZeroDivisionError:
            logging.getLogger("annotation_app.active").exception("planning failed")
    if kind == "warnings":
        warnings.warn("group s1 is disconnected", DisconnectedGraphWarning)
        warnings.warn("old API", DeprecationWarning)
        np.exp(np.array([1000.0]))
        print("done")
'''


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """``jod fake KIND``: a registered subcommand that fails in the way it is told."""
    (tmp_path / "jod_fake_cli.py").write_text(FAKE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    spec = Subcommand("fake", "jod_fake_cli:fail", None, "Fails as asked.")
    monkeypatch.setattr(jodkit.cli, "COMMANDS", (*COMMANDS, spec))
    monkeypatch.delenv("JODKIT_DEBUG", raising=False)


@pytest.mark.parametrize(
    ("kind", "line"),
    [
        ("input", "t.csv, row 4, field 'is_A_selected': must be 0 or 1, got 7"),
        ("missing", "no/such/file.csv: no such file or folder"),
        ("folder", ".: is a folder, where a file is expected"),
        ("utf8", "a file is not UTF-8 text (byte b'\\xff' at position 0): save it as UTF-8"),
        ("checked", "n_conditions must be at least 2, not 1"),
    ],
)
def test_a_fixable_error_is_one_line_and_exit_code_2(fake, kind, line):
    result = runner.invoke(app, ["fake", kind])
    assert result.exit_code == 2
    assert result.output == f"error: {line}\n"


@pytest.mark.parametrize(
    ("kind", "what"),
    [("bug", "ZeroDivisionError: division by zero"), ("library-value", "ValueError: invalid")],
)
def test_a_bug_is_one_line_that_says_so_and_exit_code_1(fake, kind, what):
    result = runner.invoke(app, ["fake", kind])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: internal error in 'jod fake': {what}")
    assert "run again with --debug (or JODKIT_DEBUG=1)" in result.output
    assert "Traceback" not in result.output and len(result.output.splitlines()) == 2


def test_debug_lets_the_exception_through(fake):
    for args, env in (
        (["--debug", "fake", "input"], {}),
        (["fake", "input"], {"JODKIT_DEBUG": "1"}),
    ):
        result = runner.invoke(app, args, env=env)
        assert isinstance(result.exception, InputError), result.output


def test_warnings_ours_shown_libraries_summed_up_deprecations_dropped(fake):
    result = runner.invoke(app, ["fake", "warnings"])
    assert result.exit_code == 0
    assert result.stdout == "done\n"
    lines = result.stderr.splitlines()
    assert lines[0] == "warning: group s1 is disconnected"
    assert lines[1].startswith(
        "warning: the numerical libraries raised 1 warning(s), first RuntimeWarning "
        "'overflow encountered in exp' (jod_fake_cli.py:"
    )
    assert len(lines) == 2 and "old API" not in result.output


def test_log_records_ours_as_warning_lines_libraries_from_errors_up(fake):
    result = runner.invoke(app, ["fake", "logs"])
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0] == "warning: no face found; using a centred crop"
    assert "chatter" not in result.stderr and "a library's error" in result.stderr


def test_a_logged_exception_keeps_its_traceback(fake):
    """A bug caught and logged in a long-running command (the app's background planner) is
    not hidden: the server's log shows where it happened."""
    result = runner.invoke(app, ["fake", "logged-bug"])
    assert result.exit_code == 0
    lines = result.stderr.splitlines()
    assert lines[0] == "error: planning failed"
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ZeroDivisionError: division by zero"


def test_the_console_command_prints_no_traceback(tmp_path):
    """Through the real entry point (``python -m jodkit``), not the test runner."""
    done = subprocess.run(
        [sys.executable, "-m", "jodkit", "scale", str(tmp_path / "absent.csv")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == f"error: {tmp_path / 'absent.csv'}: file not found\n"
    assert done.stdout == ""


def test_interrupt_is_one_line(fake, monkeypatch):
    source = textwrap.dedent(
        """
        def fail(kind: str) -> None:
            raise KeyboardInterrupt
        """
    )
    import jod_fake_cli

    exec(compile(source, jod_fake_cli.__file__, "exec"), jod_fake_cli.__dict__)
    result = runner.invoke(app, ["fake", "x"])
    assert result.exit_code == 130
    assert result.output == "interrupted: no output was completed\n"
