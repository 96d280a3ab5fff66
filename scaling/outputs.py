"""Writing outputs so that nothing is lost and nothing is half-written.

Every file a command writes goes through :func:`output_file`: the writer fills a temporary
file beside the target, which is renamed onto the target only when writing succeeded, so a
failure (a full disk, an exception while plotting) never leaves a truncated file and never
destroys the previous version. Inside :func:`staged` the renames wait until the whole block
succeeded: a command with several outputs (a table, its ``.meta.json``, plots) writes all of
them or none; :func:`output_folder` does the same for a folder of outputs (``jod demo``).
:func:`check_outputs` refuses, before any work, an output that would overwrite
an input or another output, or that cannot be written where it is asked for.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from scaling.errors import InputError

PathLike = str | os.PathLike[str]


@dataclass
class _Staging:
    """Finished temporary files waiting for their rename, and the folders made for them."""

    renames: list[tuple[Path, Path]] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)


_STAGING: ContextVar[_Staging | None] = ContextVar("jodkit_staged_outputs", default=None)


def temporary_name(target: Path) -> Path:
    """A hidden name beside ``target`` with the same suffix (writers pick formats by it)."""
    return target.with_name(f".{target.stem}.{secrets.token_hex(4)}.partial{target.suffix}")


def _blocking_file(folder: Path) -> Path | None:
    """The first existing ancestor of ``folder`` (itself included) that is not a folder."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return those created, outermost first."""
    blocking = _blocking_file(folder)
    if blocking is not None:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(blocking))
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_folders(folders: list[Path]) -> None:
    for folder in reversed(folders):
        with suppress(OSError):
            folder.rmdir()  # only when still empty


@contextmanager
def output_file(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` to; it takes ``path``'s place on success.

    On failure the temporary file (and any folder made for it) is removed and ``path`` is
    untouched. Inside :func:`staged`, the rename waits for the end of the staged block.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
    made = make_folder(target.parent)
    temporary = temporary_name(target)
    try:
        yield temporary
    except OSError as err:
        temporary.unlink(missing_ok=True)
        _remove_folders(made)
        if err.filename == str(temporary):  # name the file the user asked for
            raise type(err)(err.errno, err.strerror, str(target)) from err
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        _remove_folders(made)
        raise
    staging = _STAGING.get()
    if staging is None:
        os.replace(temporary, target)
    else:
        staging.renames.append((temporary, target))
        staging.folders.extend(made)


@contextmanager
def staged() -> Iterator[None]:
    """Every :func:`output_file` in the block takes its place only if the whole block
    succeeds; on failure none does. Nested blocks belong to the outermost one."""
    if _STAGING.get() is not None:
        yield
        return
    staging = _Staging()
    token = _STAGING.set(staging)
    try:
        yield
    except BaseException:
        for temporary, _ in staging.renames:
            temporary.unlink(missing_ok=True)
        _remove_folders(staging.folders)
        raise
    finally:
        _STAGING.reset(token)
    for temporary, target in staging.renames:
        os.replace(temporary, target)


@contextmanager
def output_folder(path: PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path`` to fill; when the block succeeds,
    each entry written there replaces the entry of the same name in ``path`` (entries it
    did not write stay). On failure the temporary folder goes and ``path`` is untouched."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(target))
    made = make_folder(target.parent)
    temporary = temporary_name(target)
    temporary.mkdir()
    try:
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        _remove_folders(made)
        raise
    target.mkdir(exist_ok=True)
    for entry in sorted(temporary.iterdir()):
        destination = target / entry.name
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        elif destination.exists() or destination.is_symlink():
            destination.unlink()
        os.replace(entry, destination)
    temporary.rmdir()


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.samefile(b)
    except OSError:
        return False


def check_outputs(
    inputs: Mapping[str, PathLike | None],
    outputs: Mapping[str, PathLike | None],
    folders: Mapping[str, PathLike | None] | None = None,
) -> None:
    """Refuse, before any work, outputs that would overwrite an input or each other, that
    are folders where a file is meant, or that sit under a file.

    The mappings go from the option (``"-o/--output"``, ``"INPUT"``) to its path; ``None``
    values (options not given) are skipped. ``folders`` are output folders (``--plots``).
    """
    given_inputs = {name: Path(p) for name, p in inputs.items() if p is not None}
    given_files = {name: Path(p) for name, p in outputs.items() if p is not None}
    given_folders = {name: Path(p) for name, p in (folders or {}).items() if p is not None}
    seen: dict[Path, str] = {}
    for name, path in given_files.items():
        for input_name, input_path in given_inputs.items():
            if _same(path, input_path):
                raise InputError(
                    f"{name} would overwrite the input {input_name}: write to another file",
                    source=str(path),
                )
        key = path.resolve()
        if key in seen:
            raise InputError(
                f"{name} and {seen[key]} name the same file: give them different names",
                source=str(path),
            )
        seen[key] = name
        if path.is_dir():
            raise InputError(f"{name} is a folder: give a file name", source=str(path))
        _check_writable(name, path.parent)
    for name, folder in given_folders.items():
        if folder.exists() and not folder.is_dir():
            raise InputError(f"{name} is a file: give a folder", source=str(folder))
        for input_name, input_path in given_inputs.items():
            if _same(folder, input_path):
                raise InputError(f"{name} is the input {input_name}", source=str(folder))
        _check_writable(name, folder)


def _check_writable(name: str, folder: Path) -> None:
    blocking = _blocking_file(folder)
    if blocking is not None:
        raise InputError(
            f"{name} cannot be written: {blocking} is a file, not a folder", source=str(folder)
        )
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{name} cannot be written: permission denied", source=str(existing))
