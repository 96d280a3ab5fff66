"""How ``jod`` reports problems: one line per error, no traceback unless asked for.

Every subcommand runs inside :func:`reported`. An error the user can fix (bad input, a missing
or unreadable file, an output that cannot be written, a missing extra) becomes one line
``error: <file>, row R, field 'F': <what is wrong>`` and exit code 2; anything else is a bug
in jodkit: one line saying so, exit code 1. ``--debug`` (or ``JODKIT_DEBUG=1``) lets the
traceback and every library warning through instead.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from scaling.errors import InputError

USER_ERROR = 2
"""Exit code for bad input, as for a bad option."""
BUG = 1
"""Exit code for an error that is jodkit's fault."""

PACKAGES = ("jodkit", "scaling", "alignment", "study", "annotation_app", "training")
_ROOTS = tuple(Path(__file__).resolve().parents[1] / name for name in PACKAGES)
CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
"""Click's (or Typer's vendored Click's) base class of usage errors: these pass through."""

_OS_REASONS = {
    errno.ENOENT: "no such file or folder",
    errno.EISDIR: "is a folder, where a file is expected",
    errno.ENOTDIR: "part of this path is a file, where a folder is expected",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left on the device",
    errno.EROFS: "the file system is read-only",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EEXIST: "already exists",
}
_DEVELOPER_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


class MissingExtra(Exception):
    """A subcommand needs an optional extra that is not installed."""


def _ours(filename: str | None) -> bool:
    """Is ``filename`` a source file of one of jodkit's packages?"""
    if not filename:
        return False
    path = Path(filename).resolve()
    return any(path.is_relative_to(root) for root in _ROOTS)


def _raised_by_us(err: BaseException) -> bool:
    """Was ``err`` raised by jodkit's own code (a deliberate check), not inside a library?"""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and _ours(tb.tb_frame.f_code.co_filename)


def describe(err: BaseException) -> str | None:
    """One line for an error the user can fix, or None when it is a bug in jodkit."""
    if isinstance(err, (InputError, MissingExtra)):
        return str(err)
    if isinstance(err, UnicodeDecodeError):
        return (
            f"a file is not UTF-8 text (byte {err.object[err.start : err.start + 1]!r} at "
            f"position {err.start}): save it as UTF-8"
        )
    if isinstance(err, OSError):
        reason = _OS_REASONS.get(err.errno or 0, err.strerror)
        if err.filename is None:
            return reason or str(err)
        return f"{err.filename}: {reason or err}"
    if type(err) is ValueError and _raised_by_us(err):
        return str(err)  # a value checked by jodkit, e.g. an option out of range
    return None


def report(err: BaseException, command: str | None = None) -> int:
    """Print ``err`` as one line on stderr and return the exit code."""
    line = describe(err)
    if line is not None:
        typer.secho(f"error: {line}", fg="red", err=True)
        return USER_ERROR
    where = f" in 'jod {command}'" if command else ""
    typer.secho(
        f"error: internal error{where}: {type(err).__name__}: {err}\n"
        "This is a bug in jodkit: run again with --debug (or JODKIT_DEBUG=1) to see the "
        "traceback, and report it.",
        fg="red",
        err=True,
    )
    return BUG


def passes_through(err: BaseException) -> bool:
    """Exceptions the command-line framework handles itself (exit, abort, usage errors)."""
    return isinstance(err, (typer.Exit, typer.Abort, CLICK_EXCEPTION))


class _LevelPrefix(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        tb = "\n" + self.formatException(record.exc_info) if record.exc_info else ""
        return f"{record.levelname.lower()}: {record.getMessage()}{tb}"


@contextmanager
def _reported_logs(debug: bool) -> Iterator[None]:
    """jodkit's log records as ``warning: ...`` lines on stderr; the libraries' (transformers,
    PIL) only from errors up, unless ``debug``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelPrefix())
    ours = [logging.getLogger(name) for name in PACKAGES]
    saved = [(logger, logger.level, logger.propagate) for logger in ours]
    for logger in ours:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if debug else logging.WARNING)
        logger.propagate = False
    libraries = logging.getLogger()
    library_level = libraries.level
    verbosity = os.environ.get("TRANSFORMERS_VERBOSITY")
    library_handler = logging.StreamHandler(sys.stderr)
    library_handler.setFormatter(_LevelPrefix())
    library_handler.setLevel(logging.DEBUG if debug else logging.ERROR)
    libraries.addHandler(library_handler)
    if not debug:
        os.environ["TRANSFORMERS_VERBOSITY"] = verbosity or "error"  # read when it loads
        libraries.setLevel(logging.ERROR)
    try:
        yield
    finally:
        libraries.removeHandler(library_handler)
        libraries.setLevel(library_level)
        if verbosity is None:
            os.environ.pop("TRANSFORMERS_VERBOSITY", None)
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


@contextmanager
def reported_warnings(debug: bool) -> Iterator[None]:
    """jodkit's own warnings and log records as ``warning: ...`` lines; library warnings
    kept out of sight.

    Warnings written for developers (deprecations) are dropped; any other library warning
    (numpy overflow, scipy's OptimizeWarning) is summed up in one line at the end, since it
    may mean an extreme input. With ``debug`` every warning is shown as Python shows it.
    """
    with _reported_logs(debug), _reported_python_warnings(debug):
        yield


@contextmanager
def _reported_python_warnings(debug: bool) -> Iterator[None]:
    if debug:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            yield
        return
    foreign: list[str] = []

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        defined_by_us = category.__module__.split(".")[0] in PACKAGES
        if defined_by_us or (category is UserWarning and _ours(filename)):
            typer.secho(f"warning: {message}", fg="yellow", err=True)
        elif not issubclass(category, _DEVELOPER_WARNINGS):
            foreign.append(f"{category.__name__} '{message}' ({Path(filename).name}:{lineno})")

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        try:
            yield
        finally:
            if foreign:
                typer.secho(
                    f"warning: the numerical libraries raised {len(foreign)} warning(s), "
                    f"first {foreign[0]}; results may be affected by extreme values: "
                    "--debug shows them all",
                    fg="yellow",
                    err=True,
                )
