"""``jod align``: per-scene scale table + cross-content scale table -> unified scale table.

Reads two CSV scale tables (``alignment.formats``), writes the unified table as CSV with
its metadata (method, reference scene and why, a_j and b_j per scene) in the sidecar
``<output>.meta.json``, and optionally the diagnostic plots.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def align_command(
    scales: Annotated[Path, typer.Argument(help="Per-scene scale table (CSV).")],
    cross: Annotated[Path, typer.Option("--cross", help="Cross-content scale table (CSV).")],
    reference: Annotated[
        str, typer.Option(help="Scene name, or auto/range/size/connected.")
    ] = "auto",
    method: Annotated[str, typer.Option(help="paper (OLS), weighted or eiv.")] = "paper",
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 0,
    seed: int = 0,
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("unified.csv"),
    plots: Annotated[Path | None, typer.Option(help="Folder for diagnostic plots.")] = None,
) -> None:
    """Align per-scene JOD scales onto one unified scale (DXOMARK portrait method)."""
    import pandas as pd

    from alignment.align import align
    from alignment.plots import plot_alignment

    unified = align(
        pd.read_csv(scales),
        pd.read_csv(cross),
        reference=reference,
        method=method,
        bootstrap=bootstrap,
        seed=seed,
        progress=True,
        sources=(str(scales), str(cross)),
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    unified.to_csv(output, index=False)
    Path(f"{output}.meta.json").write_text(json.dumps(unified.attrs["jodkit"], indent=2))
    for attr, info in unified.attrs["jodkit"]["attributes"].items():
        typer.echo(f"{attr}: reference {info['reference']} ({info['reference_reason']})")
        for s, v in info["scenes"].items():
            typer.echo(f"  {s}: a = {v['a']:.3f}, b = {v['b']:+.3f}, n_cross = {v['n_cross']}")
    if plots is not None:
        for p in plot_alignment(unified, plots):
            typer.echo(f"wrote {p}")
    typer.echo(f"wrote {output}")
