"""``jod align``: per-scene and cross-content data -> unified scale table.

Line-fit methods (``paper``, ``weighted``, ``eiv``, ``offset``) read two scale tables
(``alignment.formats``); ``joint`` fits the trials themselves (``alignment.joint``) and so
reads the per-scene trials (``--trials``) and cross-content trials (``--cross-trials``).
Writes the unified table as CSV with its metadata (method, reference scene and why, a_j and
b_j per scene) in the sidecar ``<output>.meta.json``, and optionally the diagnostic plots.
Bad input stops before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def align_command(
    scales: Annotated[
        Path | None, typer.Argument(help="Per-scene scale table (CSV); line-fit methods.")
    ] = None,
    cross: Annotated[
        Path | None, typer.Option("--cross", help="Cross-content scale table (CSV).")
    ] = None,
    trials: Annotated[
        Path | None, typer.Option("--trials", help="Per-scene trials (CSV/Parquet); joint.")
    ] = None,
    cross_trials: Annotated[
        Path | None,
        typer.Option("--cross-trials", help="Cross-content trials, scene_A/scene_B; joint."),
    ] = None,
    reference: Annotated[
        str, typer.Option(help="Scene name, or auto/range/size/connected.")
    ] = "auto",
    method: Annotated[
        str, typer.Option(help="paper (OLS), weighted, eiv, offset, or joint (needs trials).")
    ] = "paper",
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 0,
    seed: int = 0,
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("unified.csv"),
    plots: Annotated[Path | None, typer.Option(help="Folder for diagnostic plots.")] = None,
) -> None:
    """Align per-scene JOD scales onto one unified scale (DXOMARK portrait method)."""
    from alignment.plots import plot_alignment
    from scaling.errors import InputError
    from scaling.io import read_any_table, write_table

    if method == "joint":
        from alignment.joint import align_joint

        if trials is None or cross_trials is None or scales or cross:
            raise InputError(
                "method 'joint' fits the trials: give --trials and --cross-trials "
                "(and no scale tables)",
                field="method",
            )
        unified = align_joint(
            read_any_table(trials),
            read_any_table(cross_trials),
            reference=reference,
            bootstrap=bootstrap,
            seed=seed,
            progress=True,
            sources=(str(trials), str(cross_trials)),
        )
    else:
        from alignment.align import align

        if scales is None or cross is None or trials or cross_trials:
            raise InputError(
                f"method {method!r} fits scale tables: give SCALES and --cross "
                "(trials go with --method joint)",
                field="method",
            )
        unified = align(
            read_any_table(scales),
            read_any_table(cross),
            reference=reference,
            method=method,
            bootstrap=bootstrap,
            seed=seed,
            progress=True,
            sources=(str(scales), str(cross)),
        )
    write_table(unified, output)
    for attr, info in unified.attrs["jodkit"]["attributes"].items():
        typer.echo(f"{attr}: reference {info['reference']} ({info['reference_reason']})")
        for s, v in info["scenes"].items():
            typer.echo(f"  {s}: a = {v['a']:.3f}, b = {v['b']:+.3f}, n_cross = {v['n_cross']}")
    if plots is not None:
        for p in plot_alignment(unified, plots):
            typer.echo(f"wrote {p}")
    typer.echo(f"wrote {output}")
