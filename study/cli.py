"""``jod example``: build the example portrait study (renditions, ROI crops, manifest)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def example_command(
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("jod-demo/example"),
    images: Annotated[Path | None, typer.Option(help="Folder of photographs as scenes.")] = None,
    scenes: Annotated[int, typer.Option(help="Number of scenes with --images.")] = 6,
    size: Annotated[int, typer.Option(help="Longer side of every image, in pixels.")] = 192,
) -> None:
    """Build a small portrait-style study offline, with every rendition's parameters."""
    from study.example import DEFAULT_SCENES, build_example, folder_scenes

    specs = folder_scenes(images, scenes) if images else DEFAULT_SCENES
    manifest = build_example(output, specs, size=size)
    typer.echo(
        f"wrote {len(manifest)} renditions of {manifest['scene'].nunique()} scenes, "
        f"ROIs by {manifest.groupby('scene')['roi_method'].first().value_counts().to_dict()}, "
        f"manifest {output / 'manifest.csv'}"
    )
