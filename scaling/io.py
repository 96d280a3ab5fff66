"""Reading and validating trials and count matrices; writing tables with their metadata.

Validation happens here, once, at the boundary: every later function trusts its input.
Errors name the file, the row (1-based data row, the header excluded) and the field.
"""

from __future__ import annotations

import csv
import difflib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scaling.errors import InputError
from scaling.formats import (
    CROSS_SCENE_COLUMNS,
    IMAGE_KEY_SEP,
    TRIAL_OPTIONAL,
    TRIAL_REQUIRED,
    image_keys,
    scene_name_problem,
)
from scaling.options import TIE_POLICIES
from scaling.outputs import output_file, staged

METADATA_KEY = "jodkit"
"""Key of the run metadata in ``DataFrame.attrs`` and in Parquet schema metadata."""


def _source_name(source: str | Path | pd.DataFrame, name: str | None) -> str:
    if name:
        return name
    return "DataFrame" if isinstance(source, pd.DataFrame) else str(source)


def read_text(path: str | Path) -> str:
    """A UTF-8 text file (a config, a campaign spec), with one clear error for a missing
    file, a folder or bytes that are not UTF-8 (the line is named)."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", source=str(path))
    if path.is_dir():
        raise InputError("is a folder, where a file is expected", source=str(path))
    data = path.read_bytes()
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise InputError(
            f"is not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}): save the file "
            "as UTF-8",
            source=str(path),
        ) from err


def read_any_table(path: str | Path) -> pd.DataFrame:
    """A CSV, TSV or Parquet file as a DataFrame, with a clear error for anything else."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise InputError("file not found", source=source)
    if path.is_dir():
        raise InputError("is a folder, where a table file is expected", source=source)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
            raise InputError(f"cannot be read as Parquet: {err}", source=source) from err
        _unique_columns(frame.columns, source)
        return frame
    if suffix not in (".csv", ".txt", ".tsv"):
        raise InputError(
            f"unknown table type '{suffix}': use .csv, .tsv or .parquet", source=source
        )
    separator = "\t" if suffix == ".tsv" else ","
    _check_text(path, separator)
    try:
        frame = pd.read_csv(path, sep=separator, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as err:
        raise InputError("is empty: a table needs a header row", source=source) from err
    except pd.errors.ParserError as err:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if found is None:
            raise InputError(f"cannot be read as a table: {err}", source=source) from err
        expected, line, saw = (int(g) for g in found.groups())
        raise InputError(
            f"has {saw} fields where the header has {expected} (a stray '{separator}'?)",
            source=source,
            row=line - 1,
        ) from err
    return frame


def _check_text(path: Path, separator: str) -> None:
    """UTF-8 text whose header uses ``separator`` and names each column once."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        where = {"row": line - 1} if line > 1 else {"field": "header"}
        raise InputError(
            f"is not UTF-8 text (byte 0x{data[err.start]:02x}): save the file as UTF-8 "
            "(e.g. 'CSV UTF-8' in a spreadsheet)",
            source=str(path),
            **where,
        ) from err
    first_line = text.removeprefix("\ufeff").split("\n", 1)[0].rstrip("\r")
    header = next(csv.reader([first_line], delimiter=separator))
    if len(header) == 1:
        for other in (";", "\t", ","):
            if other != separator and other in header[0]:
                shown = "tab" if other == "\t" else f"'{other}'"
                raise InputError(
                    f"has one column named {header[0][:60]!r}: the file seems separated by "
                    f"{shown}, and jodkit reads comma-separated .csv (tab-separated: .tsv)",
                    source=str(path),
                )
    _unique_columns(header, str(path))


def _unique_columns(columns: Sequence[object], source: str) -> None:
    """Refuse a header that names a column twice (pandas would rename one silently)."""
    seen: set[str] = set()
    for column in map(str, columns):
        if column in seen:
            raise InputError(
                "appears twice in the header: each column needs its own name",
                source=source,
                field=column,
            )
        seen.add(column)


def _check_columns(frame: pd.DataFrame, required: Sequence[str], source: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if not missing:
        return
    hints = []
    for column in missing:
        close = difflib.get_close_matches(column, [str(c) for c in frame.columns], n=1)
        if close:
            hints.append(f"'{column}' (found '{close[0]}': misspelt?)")
        else:
            hints.append(f"'{column}'")
    raise InputError(
        f"missing column(s) {', '.join(hints)}; the trial format needs "
        f"{', '.join(required)} (see scaling.formats)",
        source=source,
        field=missing[0],
    )


def _first_bad_row(mask: np.ndarray | pd.Series) -> int:
    return int(np.flatnonzero(np.asarray(mask))[0]) + 1


def _as_binary(frame: pd.DataFrame, column: str, source: str, allow_nan: bool) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad_text = values.isna() & frame[column].notna()
    if bad_text.any():
        row = _first_bad_row(bad_text)
        raise InputError(
            f"must be 0 or 1, got {frame[column].iloc[row - 1]!r}",
            source=source,
            row=row,
            field=column,
        )
    if not allow_nan and values.isna().any():
        raise InputError(
            "is empty (NaN)", source=source, row=_first_bad_row(values.isna()), field=column
        )
    bad = values.notna() & ~values.isin([0, 1])
    if bad.any():
        row = _first_bad_row(bad)
        raise InputError(
            f"must be 0 or 1, got {values.iloc[row - 1]:g}", source=source, row=row, field=column
        )
    return values


def group_columns(by: Sequence[str], source: str) -> list[str]:
    """``by`` as a list of column names; a lone string (``by="scene"``) is refused."""
    if isinstance(by, str):
        raise InputError(
            f"by={by!r} is a string: give a list of column names, e.g. by=[{by!r}]",
            source=source,
            field="by",
        )
    return list(by)


def validate_trials(
    trials: pd.DataFrame, by: Sequence[str] = (), source: str = "DataFrame"
) -> pd.DataFrame:
    """Check a trial table (scaling.formats) and return a clean copy.

    ``is_A_selected`` becomes an int column, ``tie`` (when present) an int column with 0 for
    missing values, and conditions and group keys become strings. In a cross-content table
    (``scene_A``/``scene_B``) each condition becomes its image key (``scaling.formats``),
    so images of different scenes never merge; ``scene_A``/``scene_B`` are kept.
    """
    by = group_columns(by, source)
    _unique_columns(trials.columns, source)
    cross = _is_cross_content(trials, by, source)
    _check_columns(trials, [*TRIAL_REQUIRED, *by], source)
    if trials.empty:
        raise InputError("has no trials", source=source)
    frame = trials.reset_index(drop=True).copy()

    for column in ("observer", "condition_A", "condition_B", *by):
        empty = frame[column].isna()
        if empty.any():
            raise InputError("is empty", source=source, row=_first_bad_row(empty), field=column)
        frame[column] = frame[column].astype(str)

    tie = None
    if "tie" in frame.columns:
        tie = _as_binary(frame, "tie", source, allow_nan=True).fillna(0).astype(int)
        frame["tie"] = tie
    selected = _as_binary(frame, "is_A_selected", source, allow_nan=True)
    undecided = selected.isna() if tie is None else selected.isna() & (tie == 0)
    if undecided.any():
        raise InputError(
            "is empty (NaN) and the trial is not a tie",
            source=source,
            row=_first_bad_row(undecided),
            field="is_A_selected",
        )
    frame["is_A_selected"] = selected.fillna(0).astype(int)

    if cross:
        key_images(frame, source)
    same = frame["condition_A"] == frame["condition_B"]
    if same.any():
        row = _first_bad_row(same)
        what = "image" if cross else "condition"
        raise InputError(
            f"{what} '{frame['condition_A'].iloc[row - 1]}' is compared with itself",
            source=source,
            row=row,
            field="condition_B",
        )
    for flag in ("is_training", "is_gold"):
        if flag in frame.columns:
            frame[flag] = _as_binary(frame, flag, source, allow_nan=True).fillna(0).astype(int)
    return frame


def _is_cross_content(trials: pd.DataFrame, by: Sequence[str], source: str) -> bool:
    """True for a cross-content table; refuses half or mixed scene columns and 'scene' as a
    group."""
    present = [c for c in CROSS_SCENE_COLUMNS if c in trials.columns]
    if not present:
        return False
    if len(present) == 1:
        other = next(c for c in CROSS_SCENE_COLUMNS if c not in present)
        raise InputError(
            f"has '{present[0]}' but no '{other}': cross-content trials need both",
            source=source,
            field=other,
        )
    if "scene" in trials.columns:
        raise InputError(
            "mixes per-scene trials (column 'scene') with cross-content trials ('scene_A', "
            "'scene_B'): split it into two tables, the rows with 'scene' and the rows with "
            "'scene_A'/'scene_B', and scale each; or, to scale all images as one graph, give "
            "each per-scene trial scene_A = scene_B = its scene and drop the 'scene' column",
            source=source,
            field="scene",
        )
    if "scene" in by:
        raise InputError(
            "cross-content trials have no 'scene' to group by: their images are keyed "
            "'<scene>/<condition>' and scaled as one graph per group (e.g. by attribute)",
            source=source,
            field="scene",
        )
    return True


def key_images(
    frame: pd.DataFrame, source: str, scenes: tuple[str, str] = CROSS_SCENE_COLUMNS
) -> None:
    """Replace ``condition_A``/``condition_B`` by image keys (``scaling.formats``), in place.

    ``scenes``: the columns holding each side's scene (``("scene", "scene")`` for a
    per-scene table). Scene names that cannot be part of a key are refused.
    """
    for side, column in zip(("A", "B"), scenes, strict=True):
        values = frame[column]
        text = values.astype(str)
        bad = values.isna() | (text == "") | text.str.contains(IMAGE_KEY_SEP, regex=False)
        if bad.any():
            row = _first_bad_row(bad)
            scene = values.iloc[row - 1]
            problem = "is empty" if pd.isna(scene) else scene_name_problem(scene)
            raise InputError(str(problem), source=source, row=row, field=column)
        frame[column] = text
        frame[f"condition_{side}"] = image_keys(text, frame[f"condition_{side}"])


def read_trials(
    source: str | Path | pd.DataFrame, by: Sequence[str] = (), name: str | None = None
) -> pd.DataFrame:
    """Read and validate a trial table from CSV, Parquet or a DataFrame."""
    label = _source_name(source, name)
    frame = source if isinstance(source, pd.DataFrame) else read_any_table(source)
    return validate_trials(frame, by=by, source=label)


def looks_like_trials(frame: pd.DataFrame) -> bool:
    """True when a table has the trial format's required columns (or most of them)."""
    known = set(TRIAL_REQUIRED) | set(TRIAL_OPTIONAL)
    return len(known & {str(c) for c in frame.columns}) >= 3


def trial_cells(
    trials: pd.DataFrame, conditions: Sequence[str], ties: str = "drop"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each trial's vote lands in the flattened count matrix.

    Returns ``(trial, cell, weight)``: trial ``trial[k]`` (its row position) adds
    ``weight[k]`` to entry ``cell[k] = winner * N + loser``. A decided trial lands once with
    weight 1; with ``ties="split"`` a tie lands twice with weight 0.5, and with ``"drop"``
    not at all. ``trials`` must be validated (see :func:`validate_trials`).
    """
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties must be one of {TIE_POLICIES}, not {ties!r}")
    index = {c: k for k, c in enumerate(conditions)}
    n = len(index)
    a = trials["condition_A"].map(index)
    b = trials["condition_B"].map(index)
    if a.isna().any() or b.isna().any():
        raise ValueError("trials name conditions missing from the condition list")
    a, b = a.to_numpy(int), b.to_numpy(int)
    tie = trials["tie"].to_numpy() == 1 if "tie" in trials.columns else np.zeros(len(a), bool)
    chose_a = trials["is_A_selected"].to_numpy() == 1
    decided = np.flatnonzero(~tie)
    winner = np.where(chose_a, a, b)[decided]
    loser = np.where(chose_a, b, a)[decided]
    trial, cell = decided, winner * n + loser
    weight = np.ones(decided.size)
    if ties == "split":
        tied = np.flatnonzero(tie)
        trial = np.concatenate([trial, tied, tied])
        cell = np.concatenate([cell, a[tied] * n + b[tied], b[tied] * n + a[tied]])
        weight = np.concatenate([weight, np.full(2 * tied.size, 0.5)])
    return trial, cell, weight


def counts_from_trials(
    trials: pd.DataFrame, conditions: Sequence[str], ties: str = "drop"
) -> np.ndarray:
    """Count matrix D[i, j] = times condition i was chosen over j.

    ``ties``: ``"drop"`` ignores tied trials, ``"split"`` adds half a win each way.
    ``trials`` must be validated (see :func:`validate_trials`).
    """
    n = len(conditions)
    _, cell, weight = trial_cells(trials, conditions, ties)
    return np.bincount(cell, weight, minlength=n * n).reshape(n, n)


def read_count_matrix(
    path: str | Path, variable: str | None = None
) -> tuple[np.ndarray, list[str]]:
    """Read a count matrix and its condition names.

    CSV: condition names in the header row and in the first column, in the same order.
    MATLAB ``.mat``: the one matrix variable in the file, or the one named by ``variable``;
    conditions are named ``c1 .. cN``.
    """
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise InputError("file not found", source=source)
    if path.suffix.lower() == ".mat":
        counts, conditions = _read_mat(path, variable)
    else:
        frame = read_any_table(path)
        frame = frame.set_index(frame.columns[0])
        rows = [str(r) for r in frame.index]
        cols = [str(c) for c in frame.columns]
        if len(rows) != len(cols):
            raise InputError(
                f"count matrix is not square: {len(rows)} rows, {len(cols)} columns",
                source=source,
            )
        for k, (r, c) in enumerate(zip(rows, cols, strict=True)):
            if r != c:
                raise InputError(
                    f"row label '{r}' does not match column label '{c}': rows and columns "
                    "must name the same conditions in the same order",
                    source=source,
                    row=k + 1,
                    field=c,
                )
        values = frame.apply(pd.to_numeric, errors="coerce")
        text = values.isna() & frame.notna()
        if text.to_numpy().any():
            r, c = np.argwhere(text.to_numpy())[0]
            raise InputError(
                f"is not a number: {frame.iat[r, c]!r}", source=source, row=r + 1, field=cols[c]
            )
        counts, conditions = values.to_numpy(dtype=float), rows
    validate_counts(counts, conditions, source)
    return counts, conditions


def _read_mat(path: Path, variable: str | None) -> tuple[np.ndarray, list[str]]:
    from scipy.io import loadmat

    try:
        content = loadmat(path)
    except (ValueError, OSError) as err:
        raise InputError(f"cannot be read as a MATLAB file: {err}", source=str(path)) from err
    matrices = {
        k: v
        for k, v in content.items()
        if not k.startswith("__") and isinstance(v, np.ndarray) and v.ndim == 2
    }
    if variable is None:
        if len(matrices) != 1:
            raise InputError(
                f"holds {len(matrices)} matrices ({', '.join(sorted(matrices))}): name one "
                "with --variable",
                source=str(path),
            )
        variable = next(iter(matrices))
    if variable not in matrices:
        raise InputError(
            f"has no matrix named '{variable}' (found: {', '.join(sorted(matrices))})",
            source=str(path),
        )
    counts = np.asarray(matrices[variable], dtype=float)
    return counts, [f"c{k + 1}" for k in range(counts.shape[0])]


def count_matrix(
    counts: object, conditions: Sequence[str] | None = None, source: str = "counts"
) -> np.ndarray:
    """``counts`` as a float matrix, checked by :func:`validate_counts` (names default to
    ``c1 .. cN``): the Python API's boundary, as ``jod scale``'s is the file reader."""
    try:
        matrix = np.asarray(counts, dtype=float)
    except (TypeError, ValueError) as err:
        raise InputError(f"is not a numeric matrix: {err}", source=source) from err
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise InputError(
            f"must be a square matrix of at least 2 conditions, not shape {matrix.shape}",
            source=source,
        )
    names = [f"c{k + 1}" for k in range(len(matrix))] if conditions is None else conditions
    validate_counts(matrix, list(names), source)
    return matrix


MAX_COUNT = 1e9
"""More judgments of one ordered pair than any study collects: a larger count is a mistake."""


def validate_counts(counts: np.ndarray, conditions: Sequence[str], source: str) -> None:
    """Square, finite, non-negative, whole (or half, for split ties), zero diagonal."""
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise InputError(f"count matrix is not square: shape {counts.shape}", source=source)
    if len(conditions) != counts.shape[0]:
        raise InputError(
            f"{len(conditions)} condition names for a {counts.shape[0]}-row matrix",
            source=source,
        )
    if len(set(conditions)) != len(conditions):
        dup = next(c for c in conditions if list(conditions).count(c) > 1)
        raise InputError(f"condition '{dup}' appears twice", source=source)
    checks = (
        (~np.isfinite(counts), "is empty or not finite"),
        (counts < 0, "is negative"),
        (counts > MAX_COUNT, f"is too large to be a number of judgments (over {MAX_COUNT:.0e})"),
        (np.isfinite(counts) & (counts * 2 != np.round(counts * 2)), "is not a whole count"),
    )
    for mask, problem in checks:
        if mask.any():
            r, c = np.argwhere(mask)[0]
            raise InputError(
                f"count {problem}: {counts[r, c]:g}",
                source=source,
                row=int(r) + 1,
                field=str(conditions[c]),
            )
    diagonal = np.flatnonzero(np.diag(counts) != 0)
    if diagonal.size:
        k = int(diagonal[0])
        raise InputError(
            f"condition '{conditions[k]}' is compared with itself (non-zero diagonal)",
            source=source,
            row=k + 1,
            field=str(conditions[k]),
        )


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def table_files(path: str | Path) -> list[Path]:
    """The files :func:`write_table` writes for ``path``: the table, and for CSV its sidecar."""
    path = Path(path)
    return [path] if path.suffix.lower() in (".parquet", ".pq") else [path, _sidecar(path)]


def write_table(
    table: pd.DataFrame, path: str | Path, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write a table as CSV (metadata in ``<name>.meta.json``) or Parquet (in the schema).

    ``metadata`` defaults to ``table.attrs["jodkit"]``. Both files are written under
    temporary names and take their places together (:mod:`scaling.outputs`).
    """
    path = Path(path)
    meta = dict(metadata if metadata is not None else table.attrs.get(METADATA_KEY, {}))
    plain = table.copy()
    plain.attrs = {}
    with staged():
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow as pa
            import pyarrow.parquet as pq

            arrow = pa.Table.from_pandas(plain, preserve_index=False)
            schema_meta = dict(arrow.schema.metadata or {})
            schema_meta[METADATA_KEY.encode()] = json.dumps(meta, default=str).encode()
            with output_file(path) as temporary:
                pq.write_table(arrow.replace_schema_metadata(schema_meta), temporary)
        else:
            with output_file(path) as temporary:
                plain.to_csv(temporary, index=False)
            with output_file(_sidecar(path)) as temporary:
                temporary.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return path


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_table`, metadata in ``attrs["jodkit"]``."""
    path = Path(path)
    table = read_any_table(path)
    meta: dict[str, Any] = {}
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY.encode())
        meta = json.loads(raw) if raw else {}
    elif _sidecar(path).exists():
        meta = json.loads(_sidecar(path).read_text())
    table.attrs[METADATA_KEY] = meta
    return table
