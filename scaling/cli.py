"""``jod scale``: trials or a count matrix in, a scale table (and plots) out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from scaling.errors import InputError


def _parse_orderings(values: list[str]):
    from scaling.api import OrderingSpec

    specs = []
    for value in values:
        chain = tuple(part.strip() for part in value.split(">"))
        if len(chain) < 2 or not all(chain):
            raise typer.BadParameter(f"'{value}' is not a chain like 'A>B>C'", param_hint="--order")
        specs.append(OrderingSpec(chain))
    return specs


def _parse_fixed(values: list[str]):
    from scaling.api import FixedSpec

    specs = []
    for value in values:
        name, sep, number = value.rpartition("=")
        try:
            specs.append(FixedSpec(name.strip(), float(number)))
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise typer.BadParameter(f"'{value}' is not CONDITION=VALUE", param_hint="--fix")
    return specs


def scale_command(
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="Trial table (.csv/.parquet, the long format of scaling.formats) or count "
            "matrix (.csv with condition names, or MATLAB .mat).",
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Scale table to write (.csv or .parquet).")
    ] = Path("scales.csv"),
    by: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated group columns, each group scaled on its own "
            "[default: scene,attribute where present]."
        ),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap samples for jod_std and the 95% CI (0: none).")
    ] = 0,
    resample: Annotated[
        str, typer.Option(help="Bootstrap unit: 'observer' (as pwcmp) or 'trial'.")
    ] = "observer",
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    prior: Annotated[
        str, typer.Option(help="'gaussian' (pwcmp's default distance prior) or 'none'.")
    ] = "gaussian",
    anchor: Annotated[
        str, typer.Option(help="'mean0' (mean at 0) or 'fix0' (first condition at 0).")
    ] = "mean0",
    ties: Annotated[
        str, typer.Option(help="'drop' ties, or 'split' them as half a win each way.")
    ] = "drop",
    solver: Annotated[
        str,
        typer.Option(help="'exact' (fast, default) or 'cvxpy' (prior none, with constraints)."),
    ] = "exact",
    order: Annotated[
        list[str] | None,
        typer.Option(
            help="Known ordering 'A>B>C' (A scores at least as high as B ...); repeatable; "
            "needs --solver cvxpy --prior none."
        ),
    ] = None,
    fix: Annotated[
        list[str] | None,
        typer.Option(help="Fixed score 'CONDITION=VALUE'; repeatable; needs --solver cvxpy."),
    ] = None,
    disconnected: Annotated[
        str,
        typer.Option(
            help="'separate': scale each component of a disconnected graph on its own; "
            "'pwcmp': link them as pwcmp does."
        ),
    ] = "separate",
    variable: Annotated[
        str | None, typer.Option(help="Matrix variable to read from a .mat file.")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Plots: a folder gets a ranking with CIs and a comparison-count heatmap per "
            "group; a .png path gets an overview of all groups, and the per-group plots go "
            "to the folder of the same name without .png."
        ),
    ] = None,
    screen: Annotated[
        Path | None,
        typer.Option(
            help="Also screen observers (pwcmp's outlier analysis) and write the table here."
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            help="Worker processes for the bootstrap and for many large groups "
            "[default: all cores]."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Scale pairwise comparisons to JOD (Thurstone Case V, pwcmp-compatible).

    1 JOD = 75% of observers prefer one condition over the other. Each group (e.g. each
    scene and attribute) gets its own scale. Example:

        jod scale comparisons.csv --by scene,attribute -o scales.csv --bootstrap 500 --plot plots/

    The table has the group columns, then condition, jod, jod_std, ci_low, ci_high,
    n_comparisons, n_wins, n_losses, component, determined; run metadata goes to
    OUTPUT.meta.json (CSV) or the Parquet schema.
    """
    from scaling import api, io, plots

    constraint_args = {
        "orderings": _parse_orderings(order or []),
        "fixed": _parse_fixed(fix or []),
    }
    common = {
        "prior": prior,
        "anchor": anchor,
        "solver": solver,
        "disconnected": disconnected,
        **constraint_args,
    }
    is_matrix = _is_matrix(input_path)
    trials = None
    if is_matrix:
        counts, conditions = io.read_count_matrix(input_path, variable)
        table = api.scale_counts(counts, conditions, source=str(input_path), **common)
    else:
        keys = [k.strip() for k in by.split(",")] if by else None
        table = api.scale(
            input_path,
            keys,
            ties=ties,
            bootstrap=bootstrap,
            resample=resample,
            seed=seed,
            n_jobs=jobs,
            progress=not quiet,
            **common,
        )
    screening = None
    if screen is not None:
        if is_matrix:
            raise InputError(
                "observer screening needs trials, not a count matrix", source=str(input_path)
            )
        trials = io.read_any_table(input_path)
        screening = api_screen(trials, table)

    io.write_table(table, output)
    typer.echo(f"wrote {output} ({len(table)} rows)")
    if screening is not None:
        io.write_table(screening, screen)
        flagged = screening.loc[screening["flagged"], "observer"].tolist()
        typer.echo(f"wrote {screen}: flagged observers (dist_L >= 1.5): {flagged or 'none'}")
    if plot is not None:
        folder = plot.with_suffix("") if plot.suffix.lower() == ".png" else plot
        written = [plots.plot_overview(table, plot)] if plot.suffix.lower() == ".png" else []
        written += plots.plot_rankings(table, folder)
        if is_matrix:
            written.append(plots.plot_comparison_counts(counts, conditions, folder / "counts.png"))
        else:
            trials = trials if trials is not None else io.read_any_table(input_path)
            written += _count_heatmaps(table, trials, folder)
        typer.echo(f"wrote {len(written)} plots: {plot} and {folder}/")
    undetermined = int((~table["determined"].astype(bool)).sum())
    if undetermined:
        typer.echo(
            f"{undetermined} score(s) are not determined by the data (never won, never lost, "
            "or outside the main component): see the 'determined' column."
        )


def api_screen(trials, table):
    """Observer screening with the same grouping as the scale table."""
    from scaling.outliers import screen_observers
    from scaling.plots import group_keys

    return screen_observers(trials, by=group_keys(table))


def _count_heatmaps(table, trials, folder: Path) -> list[Path]:
    from scaling.io import counts_from_trials, validate_trials
    from scaling.plots import group_keys, plot_comparison_counts

    keys = group_keys(table)
    clean = validate_trials(trials, by=keys)
    written = []
    groups = clean.groupby(keys, sort=True) if keys else [((), clean)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        label = re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(str(k) for k in key)) or "all"
        rows = table
        for k, v in zip(keys, key, strict=True):
            rows = rows[rows[k].astype(str) == str(v)]
        conditions = rows["condition"].tolist()
        counts = counts_from_trials(group, conditions)
        written.append(
            plot_comparison_counts(
                counts,
                conditions,
                folder / f"counts_{label}.png",
                title=label,
                order=rows["jod"].to_numpy(),
            )
        )
    return written


def _is_matrix(path: Path) -> bool:
    """A .mat file, or a CSV without the trial columns, is a count matrix."""
    if path.suffix.lower() == ".mat":
        return True
    from scaling.io import looks_like_trials, read_any_table

    if path.suffix.lower() in (".csv", ".tsv") and path.exists():
        return not looks_like_trials(read_any_table(path).head(0))
    return False
