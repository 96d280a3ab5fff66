"""``jod scale``: trials or a count matrix in, a scale table (and plots) out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from scaling.errors import InputError
from scaling.options import (
    ANCHORS,
    DISCONNECTED_POLICIES,
    INTERVALS,
    PRIORS,
    RESAMPLE_UNITS,
    SOLVERS,
    TIE_POLICIES,
    choice_type,
)


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


Resample = choice_type("Resample", RESAMPLE_UNITS)
Interval = choice_type("Interval", INTERVALS)
Prior = choice_type("Prior", PRIORS)
Anchor = choice_type("Anchor", ANCHORS)
Ties = choice_type("Ties", TIE_POLICIES)
Solver = choice_type("Solver", SOLVERS)
Disconnected = choice_type("Disconnected", DISCONNECTED_POLICIES)
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


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
            "[default: scene,attribute where present]. Trials only."
        ),
    ] = None,
    bootstrap: Annotated[
        int,
        typer.Option(
            min=0, help="Bootstrap samples for jod_std and the 95% CI (0: none). Trials only."
        ),
    ] = 0,
    resample: Annotated[
        Resample, typer.Option(help="Bootstrap unit: observer (as pwcmp) or trial.")
    ] = Resample["observer"],
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap's random resampling.")] = 0,
    interval: Annotated[
        Interval,
        typer.Option(
            help="percentile (pwcmp's 2.5/97.5) or expanded (corrected for few observers; "
            "docs/scaling.md gives both coverages)."
        ),
    ] = Interval["percentile"],
    prior: Annotated[
        Prior, typer.Option(help="gaussian (pwcmp's default distance prior) or none.")
    ] = Prior["gaussian"],
    anchor: Annotated[
        Anchor, typer.Option(help="mean0 (mean at 0) or fix0 (first condition at 0).")
    ] = Anchor["mean0"],
    ties: Annotated[
        Ties, typer.Option(help="drop ties, or split them as half a win each way. Trials only.")
    ] = Ties["drop"],
    solver: Annotated[
        Solver, typer.Option(help="exact (fast, default) or cvxpy (prior none, with constraints).")
    ] = Solver["exact"],
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
        Disconnected,
        typer.Option(
            help="separate: scale each component of a disconnected graph on its own; "
            "pwcmp: link them as pwcmp does."
        ),
    ] = Disconnected["separate"],
    variable: Annotated[
        str | None, typer.Option(help="Matrix variable to read from a .mat file.")
    ] = None,
    plots: Annotated[
        Path | None,
        typer.Option(
            help="Folder for plots: a ranking with CIs and a comparison-count heatmap per "
            "group, and overview.png with every group."
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="One overview figure of every group's ranking; its format follows the "
            "suffix: .png, .pdf or .svg."
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
            min=1,
            help="Worker processes for the bootstrap and for many large groups "
            "[default: all cores].",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Scale pairwise comparisons to JOD (Thurstone Case V, pwcmp-compatible).

    1 JOD = 75% of observers prefer one condition over the other. Each group (e.g. each
    scene and attribute) gets its own scale. Example:

        jod scale comparisons.csv --by scene,attribute -o scales.csv --bootstrap 500 --plots plots/

    The table has the group columns, then condition, jod, jod_std, ci_low, ci_high,
    n_comparisons, n_wins, n_losses, component, determined, bound; run metadata goes to
    OUTPUT.meta.json (CSV) or the Parquet schema. Outputs appear only when everything
    succeeded; none may overwrite the input.
    """
    from scaling import api, io
    from scaling import plots as figures
    from scaling.outputs import check_outputs, staged

    if plot is not None and plot.suffix.lower() not in FIGURE_SUFFIXES:
        raise InputError(
            "--plot writes one figure: end its name in .png, .pdf or .svg (for a folder of "
            "plots, use --plots DIR)",
            source=str(plot),
        )
    check_outputs(
        inputs={"INPUT": input_path},
        outputs={
            **_table_outputs("-o/--output", output),
            **(_table_outputs("--screen", screen) if screen else {}),
            "--plot": plot,
        },
        folders={"--plots": plots},
    )
    is_matrix = _is_matrix(input_path)
    if is_matrix and screen is not None:
        raise InputError(
            "--screen needs trials (observers), not a count matrix", source=str(input_path)
        )
    orderings, fixed = _parse_orderings(order or []), _parse_fixed(fix or [])
    common = {
        "prior": prior.value,
        "anchor": anchor.value,
        "solver": solver.value,
        "disconnected": disconnected.value,
        "orderings": orderings,
        "fixed": fixed,
    }
    trials = None
    if is_matrix:
        _warn_unused_on_matrix(
            by=by,
            bootstrap=bootstrap,
            ties=ties.value,
            resample=resample.value,
            interval=interval.value,
        )
        counts, conditions = io.read_count_matrix(input_path, variable)
        table = api.scale_counts(counts, conditions, source=str(input_path), **common)
    else:
        if variable is not None:
            typer.secho("warning: --variable applies to .mat files only: ignored", err=True)
        keys = [k.strip() for k in by.split(",")] if by else None
        table = api.scale(
            input_path,
            keys,
            ties=ties.value,
            bootstrap=bootstrap,
            resample=resample.value,
            seed=seed,
            interval=interval.value,
            n_jobs=jobs,
            progress=not quiet,
            **common,
        )
    screening = None
    if screen is not None:
        trials = io.read_any_table(input_path)
        screening = api_screen(trials, table)

    written: list[Path] = []
    with staged():
        io.write_table(table, output)
        if screening is not None:
            io.write_table(screening, screen)
        if plot is not None:
            written.append(figures.plot_overview(table, plot))
        if plots is not None:
            written.append(figures.plot_overview(table, plots / "overview.png"))
            written += figures.plot_rankings(table, plots)
            if is_matrix:
                written.append(
                    figures.plot_comparison_counts(counts, conditions, plots / "counts.png")
                )
            else:
                trials = trials if trials is not None else io.read_any_table(input_path)
                written += _count_heatmaps(table, trials, plots)
    typer.echo(f"wrote {output} ({len(table)} rows)")
    if screening is not None:
        flagged = screening.loc[screening["flagged"], "observer"].tolist()
        typer.echo(f"wrote {screen}: flagged observers (dist_L >= 1.5): {flagged or 'none'}")
    if written:
        where = [str(p) for p in (plot, plots) if p is not None]
        typer.echo(f"wrote {len(written)} plots: {' and '.join(where)}")
    undetermined = int((~table["determined"].astype(bool)).sum())
    if undetermined:
        placed = int((table["bound"] != "two-sided").sum())
        typer.echo(
            f"{undetermined} score(s) are not determined by the data alone (outside the main "
            "component's core: held by pwcmp's prior, or in another component); "
            f"{placed} of them have no finite optimum and are placed: see the 'determined' "
            "and 'bound' columns."
        )


def _table_outputs(option: str, path: Path) -> dict[str, Path]:
    from scaling.io import table_files

    table, *sidecar = table_files(path)
    return {option: table, **{f"{option} (its metadata)": p for p in sidecar}}


def _warn_unused_on_matrix(**given: object) -> None:
    """A count matrix has no observers, trials or columns: say which options cannot apply."""
    defaults = {
        "by": None,
        "bootstrap": 0,
        "ties": "drop",
        "resample": "observer",
        "interval": "percentile",
    }
    reasons = {
        "by": "a count matrix is one group",
        "bootstrap": "a count matrix has no observers or trials to resample",
        "ties": "a count matrix holds no ties",
        "resample": "there is no bootstrap",
        "interval": "there is no bootstrap",
    }
    for name, value in given.items():
        if value != defaults[name]:
            typer.secho(
                f"warning: --{name} does not apply to a count matrix ({reasons[name]}): ignored",
                fg="yellow",
                err=True,
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
