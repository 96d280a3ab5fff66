"""``jod align``: per-scene and cross-content data -> unified scale table (and training table).

Two kinds of input. Trial tables (``--trials`` per-scene, ``--cross-trials``
cross-content with ``scene_A/scene_B``: what ``jod export`` writes) work with every
method: the line-fit methods (``paper``, ``weighted``, ``eiv``, ``offset``) scale them
first (``alignment.align.align_trials``), ``joint`` fits them directly
(``alignment.joint``). Scale tables (``SCALES`` and ``--cross``, from ``jod scale``) work
with the line-fit methods. Writes the unified table as CSV with its metadata (method,
reference scene and why, a_j and b_j per scene, checks) in ``<output>.meta.json``, and
optionally the training table and diagnostic plots. Bad input stops before anything is
written; so do failed checks under ``--strict``. Errors raise ``InputError`` (or
``ValueError``), which ``jod`` reports as one line with exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alignment.options import METHODS, NEEDS_STD
from scaling.errors import InputError
from scaling.options import choice_type

DEFAULT_SCALE_BOOTSTRAP = 200
Method = choice_type("Method", METHODS)


def align_command(
    scales: Annotated[
        Path | None,
        typer.Argument(
            metavar="SCALES", help="Per-scene scale table (CSV/Parquet, from jod scale); line fits."
        ),
    ] = None,
    cross: Annotated[
        Path | None,
        typer.Option("--cross", help="Cross-content scale table (from jod scale); line fits."),
    ] = None,
    trials: Annotated[
        Path | None,
        typer.Option("--trials", help="Per-scene trials (CSV/Parquet, column 'scene')."),
    ] = None,
    cross_trials: Annotated[
        Path | None,
        typer.Option("--cross-trials", help="Cross-content trials (columns scene_A/scene_B)."),
    ] = None,
    method: Annotated[
        Method,
        typer.Option(
            help="paper (OLS), weighted, eiv, offset (slope 1), or joint (one likelihood "
            "over all trials; needs --trials/--cross-trials).",
        ),
    ] = Method["paper"],
    reference: Annotated[
        str, typer.Option(help="Scene name, or auto/range/size/connected.")
    ] = "auto",
    bootstrap: Annotated[
        int, typer.Option(min=0, help="Bootstrap resamples for the unified CIs (0: none).")
    ] = 0,
    scale_bootstrap: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Observer-bootstrap resamples when scaling --trials for a line fit "
            f"[default: {DEFAULT_SCALE_BOOTSTRAP} for weighted/eiv and with --training, which "
            "need jod_std; else 0].",
        ),
    ] = None,
    slope_prior: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="joint: standard deviation of the prior on each log slope (0: none) [default: 1].",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every bootstrap.")] = 0,
    strict: Annotated[
        bool,
        typer.Option(
            help="Refuse (exit 2) instead of warning when slopes, the unified spread or the "
            "joint fit make no sense."
        ),
    ] = False,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Unified scale table to write.")
    ] = Path("unified.csv"),
    training: Annotated[
        Path | None,
        typer.Option(
            help="Also write the training table (image_path, scene, attribute, jod, jod_std) here."
        ),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(
            help="Manifest (scene, condition, image_path) giving --training its image paths "
            "[default: the image key '<scene>/<condition>']."
        ),
    ] = None,
    plots: Annotated[Path | None, typer.Option(help="Folder for diagnostic plots.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Align per-scene JOD scales onto one unified scale (DXOMARK portrait method).

    From the exported trials, with any method:

        jod align --trials trials_per_scene.csv --cross-trials trials_cross_content.csv
        --method paper -o unified.csv --training training.csv

    From scale tables (line fits): jod align scales.csv --cross cross_scales.csv.
    """
    from alignment.plots import plot_alignment
    from scaling.io import table_files, write_table
    from scaling.outputs import check_outputs, staged

    method = method.value
    _check_options(
        scales, cross, trials, cross_trials, method, scale_bootstrap, slope_prior, training,
        images,
    )  # fmt: skip
    outputs = {"-o/--output": output, "--training": training}
    check_outputs(
        inputs={
            "SCALES": scales,
            "--cross": cross,
            "--trials": trials,
            "--cross-trials": cross_trials,
            "--images": images,
        },
        outputs={
            f"{option}{' (its metadata)' if k else ''}": path
            for option, given in outputs.items()
            if given is not None
            for k, path in enumerate(table_files(given))
        },
        folders={"--plots": plots},
    )
    if scale_bootstrap is None and trials is not None:
        needs_std = method in NEEDS_STD or training is not None
        scale_bootstrap = DEFAULT_SCALE_BOOTSTRAP if needs_std else 0
    unified = _run(
        scales, cross, trials, cross_trials, method, reference, bootstrap, scale_bootstrap,
        slope_prior, seed, strict, not quiet,
    )  # fmt: skip
    table = _training(unified, images) if training is not None else None
    written = []
    with staged():
        write_table(unified, output)
        if table is not None:
            write_table(table, training)
        if plots is not None:
            written = plot_alignment(unified, plots)
    _print_summary(unified)
    if table is not None:
        typer.echo(f"wrote {training} ({len(table)} rows)")
    for p in written:
        typer.echo(f"wrote {p}")
    typer.echo(f"wrote {output}")


def _check_options(
    scales: Path | None,
    cross: Path | None,
    trials: Path | None,
    cross_trials: Path | None,
    method: str,
    scale_bootstrap: int | None,
    slope_prior: float | None,
    training: Path | None,
    images: Path | None,
) -> None:
    """Which inputs go with which method, before any file is read."""
    given_scales = scales is not None or cross is not None
    given_trials = trials is not None or cross_trials is not None
    if given_scales and given_trials:
        raise InputError(
            "give either scale tables (SCALES and --cross) or trial tables (--trials and "
            "--cross-trials), not both"
        )
    if given_trials and None in (trials, cross_trials):
        raise InputError("--trials and --cross-trials go together: give both")
    if given_scales and None in (scales, cross):
        raise InputError("SCALES and --cross go together: give both")
    if not (given_scales or given_trials):
        raise InputError("give --trials and --cross-trials, or SCALES and --cross")
    if method == "joint" and given_scales:
        raise InputError(
            "method 'joint' fits the trials: give --trials and --cross-trials, not scale tables"
        )
    if scale_bootstrap is not None and not given_trials:
        raise InputError("--scale-bootstrap applies to --trials, which jod align scales itself")
    if scale_bootstrap is not None and method == "joint":
        raise InputError("--scale-bootstrap does not apply to method 'joint' (use --bootstrap)")
    if images is not None and training is None:
        raise InputError("--images gives the image paths of --training: give --training too")
    if slope_prior is not None and method != "joint":
        raise InputError(f"--slope-prior applies to method 'joint', not {method!r}")


def _run(
    scales: Path | None,
    cross: Path | None,
    trials: Path | None,
    cross_trials: Path | None,
    method: str,
    reference: str,
    bootstrap: int,
    scale_bootstrap: int,
    slope_prior: float | None,
    seed: int,
    strict: bool,
    progress: bool,
):
    """The unified table by the method and inputs chosen."""
    from scaling.io import read_any_table

    common = {"reference": reference, "bootstrap": bootstrap, "seed": seed, "strict": strict}
    if method == "joint":
        from alignment.joint import SLOPE_PRIOR, align_joint

        return align_joint(
            read_any_table(trials),
            read_any_table(cross_trials),
            progress=progress,
            sources=(str(trials), str(cross_trials)),
            slope_prior=SLOPE_PRIOR if slope_prior is None else slope_prior,
            **common,
        )
    if trials is not None:
        from alignment.align import align_trials

        return align_trials(
            trials,
            cross_trials,
            method=method,
            scale_bootstrap=scale_bootstrap,
            progress=progress,
            **common,
        )
    from alignment.align import align

    return align(
        read_any_table(scales),
        read_any_table(cross),
        method=method,
        progress=progress,
        sources=(str(scales), str(cross)),
        **common,
    )


def _training(unified, images: Path | None):
    """The training table, image paths from the manifest when one is given."""
    import numpy as np

    from alignment.align import manifest_paths, to_training
    from scaling.io import read_any_table

    std = unified["jod_unified_std"].to_numpy(float)
    if np.isnan(std).any():
        raise InputError(
            f"the training table needs every image's jod_std, and {int(np.isnan(std).sum())} "
            "unified score(s) have none: give --bootstrap N (e.g. 200), or scale tables with "
            "jod_std"
        )
    if np.isinf(std).any():
        raise InputError(
            f"the training table needs a finite jod_std, and {int(np.isinf(std).sum())} "
            "unified score(s) are bounded on one side only (infinite jod_std): compare those "
            "images more, or leave them out of the trials"
        )
    paths = None
    if images is not None:
        paths = manifest_paths(unified, read_any_table(images), str(images))
    return to_training(unified, paths)


def _print_summary(unified) -> None:
    """Reference, maps and (joint) convergence and reference profile, per attribute."""
    for attr, info in unified.attrs["jodkit"]["attributes"].items():
        typer.echo(f"{attr}: reference {info['reference']} ({info['reference_reason']})")
        for s, v in info["scenes"].items():
            typer.echo(f"  {s}: a = {v['a']:.3f}, b = {v['b']:+.3f}, n_cross = {v['n_cross']}")
        fit = info.get("fit")
        if fit is not None:
            state = "converged" if fit["converged"] else "NOT converged"
            typer.echo(
                f"  joint fit {state} in {fit['iterations']} iterations "
                f"(largest gradient {fit['max_gradient']:.2g})"
            )
            profile = info["reference_profile"]
            rises = ", ".join(
                f"x{f:g}: +{r:.2f}"
                for f, r in zip(profile["factors"], profile["objective_rise"], strict=True)
                if f != 1.0
            )
            typer.echo(f"  reference slope profile (objective rise): {rises}")
