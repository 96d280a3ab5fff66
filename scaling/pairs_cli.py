"""``jod pairs``: the trials so far in, the next pairs to judge out (active sampling)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scaling.cli import Prior, Ties
from scaling.options import SELECTION_METHODS, choice_type

Method = choice_type("Method", SELECTION_METHODS)


def pairs_command(
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="Trials so far (.csv/.parquet, scaling.formats; may be empty with "
            "--conditions) or a count matrix (.csv with condition names, or .mat). With "
            "--cross-images: the cross-content trials so far.",
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Pair table to write (.csv or .parquet).")
    ] = Path("next_pairs.csv"),
    by: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated group columns, each group planned on its own "
            "[default: scene,attribute where present]."
        ),
    ] = None,
    n_pairs: Annotated[
        int | None,
        typer.Option(
            "--n-pairs",
            "-n",
            min=1,
            help="Pairs per group [default: one spanning tree, N - 1]; no pair twice.",
        ),
    ] = None,
    method: Annotated[
        Method,
        typer.Option(
            help="eig: most expected information (spanning trees); random; round_robin: "
            "least-compared pairs first."
        ),
    ] = Method["eig"],
    target_width: Annotated[
        float | None,
        typer.Option(
            help="Stop a group (no pairs) once the median 95% interval width of its scores "
            "is at most this many JOD."
        ),
    ] = None,
    min_gain: Annotated[
        float | None,
        typer.Option(help="Stop a group once its best expected gain is below this (nats)."),
    ] = None,
    conditions: Annotated[
        Path | None,
        typer.Option(
            help="Table of every condition that may be paired, with a 'condition' column "
            "and the group columns (e.g. a scale table): conditions not yet compared join "
            "the plan, and trials naming others are an error."
        ),
    ] = None,
    cross_images: Annotated[
        Path | None,
        typer.Option(
            help="Plan cross-content pairs for the alignment instead: a table of the images "
            "that may enter the cross-content task with their per-scene scores (scene, "
            "condition, jod [, attribute]), e.g. rows of a per-scene scale table."
        ),
    ] = None,
    status: Annotated[
        Path | None,
        typer.Option(help="Also write each group's status (stopping rule) as a table here."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: ties, random pairs and sides.")] = 0,
    prior: Annotated[
        Prior,
        typer.Option(
            help="The posterior's likelihood: none (the Thurstone likelihood alone, default) "
            "or gaussian (with pwcmp's distance prior)."
        ),
    ] = Prior["none"],
    ties: Annotated[Ties, typer.Option(help="drop ties, or split them.")] = Ties["drop"],
) -> None:
    """Choose the next pairs to judge (active sampling).

    Each group's scores get a Gaussian posterior from jodkit's own scale (1 JOD = 75%);
    the pairs whose answer is expected to tell most about it form a spanning tree that
    connects every condition. Example:

        jod pairs trials.csv --by scene -o next_pairs.csv --target-width 1.0

    The table has the group columns, then condition_A, condition_B, expected_gain (nats).
    Per group it prints the median 95% interval width now, the judgments predicted to
    reach --target-width, and whether the group is done; OUTPUT.meta.json (or the Parquet
    schema) keeps them. Outputs appear only when everything succeeded.
    """
    import pandas as pd

    from scaling import io
    from scaling.cli import _is_matrix, _table_outputs
    from scaling.outputs import check_outputs, staged
    from scaling.select import select_cross_pairs, select_pairs

    check_outputs(
        inputs={"INPUT": input_path, "--conditions": conditions, "--cross-images": cross_images},
        outputs={
            **_table_outputs("-o/--output", output),
            **(_table_outputs("--status", status) if status else {}),
        },
    )
    options = {
        "method": method.value,
        "target_width": target_width,
        "min_gain": min_gain,
        "seed": seed,
        "prior": prior.value,
        "ties": ties.value,
    }
    if cross_images is not None:
        images = io.read_any_table(cross_images)
        table = select_cross_pairs(_trials_or_none(input_path), images, n_pairs, **options)
    elif _is_matrix(input_path):
        counts, names = io.read_count_matrix(input_path)
        table = select_pairs(counts, n_pairs, conditions=names, **options)
    else:
        listed = io.read_any_table(conditions) if conditions is not None else None
        keys = [k.strip() for k in by.split(",") if k.strip()] if by is not None else None
        table = select_pairs(input_path, n_pairs, by=keys, conditions=listed, **options)
    report = pd.DataFrame(table.attrs["jodkit"]["status"])
    with staged():
        io.write_table(table, output)
        if status is not None:
            io.write_table(report, status, metadata=table.attrs["jodkit"])
    typer.echo(f"wrote {output} ({len(table)} pairs)")
    typer.echo(_status_lines(report))


def _trials_or_none(path: Path):
    """The cross-content trials, or None for a file with a header and no rows."""
    from scaling.io import read_any_table

    frame = read_any_table(path)
    return None if frame.empty else frame


def _status_lines(report) -> str:
    """One line per group: width now, judgments predicted to the target, done or not."""
    from dataclasses import fields

    import pandas as pd

    from scaling.select import GroupStatus

    keys = [c for c in report.columns if c not in {f.name for f in fields(GroupStatus)}]
    lines = []
    for record in report.to_dict("records"):
        label = ", ".join(f"{k}={record[k]}" for k in keys) or "all"
        line = (
            f"{label}: {record['n_conditions']} conditions, {record['n_comparisons']:.0f} "
            f"judgments, median 95% interval width {record['interval_width']:.2f} JOD"
        )
        if pd.notna(record["target_width"]) and pd.notna(record["further_judgments"]):
            line += (
                f", about {record['further_judgments']:.0f} more to reach "
                f"{record['target_width']:g}"
            )
        if record["done"]:
            line += f"; done: {record['reason']}"
        lines.append(line)
    return "\n".join(lines)
