"""``jod example`` and ``jod demo``: the example portrait study, alone or run end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alignment.options import METHODS
from scaling.options import choice_type

Method = choice_type("Method", METHODS)
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def example_command(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for the images and manifest.csv.")
    ] = Path("jod-demo/example"),
    images: Annotated[
        Path | None, typer.Option(help="Folder of your photographs, one scene each.")
    ] = None,
    scenes: Annotated[int, typer.Option(help="Number of scenes with --images.")] = 6,
    size: Annotated[int, typer.Option(help="Longer side of every image, in pixels.")] = 192,
    quiet: Quiet = False,
) -> None:
    """Build a small portrait-style study offline, with every rendition's parameters."""
    from scaling.outputs import check_outputs, output_folder
    from study.example import DEFAULT_SCENES, build_example, folder_scenes

    specs = folder_scenes(images, scenes) if images else DEFAULT_SCENES
    check_outputs(inputs={"--images": images}, outputs={}, folders={"-o/--output": output})
    with output_folder(output) as folder:
        manifest = build_example(folder, specs, size=size, progress=not quiet)
    typer.echo(
        f"wrote {len(manifest)} renditions of {manifest['scene'].nunique()} scenes, "
        f"ROIs by {manifest.groupby('scene')['roi_method'].first().value_counts().to_dict()}, "
        f"manifest {output / 'manifest.csv'}"
    )


def demo_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")] = Path(
        "jod-demo"
    ),
    images: Annotated[
        Path | None, typer.Option(help="Folder of your photographs, one scene each.")
    ] = None,
    scenes: Annotated[int, typer.Option(help="Number of scenes (default set: 6).")] = 6,
    size: Annotated[int, typer.Option(help="Longer side of every image, in pixels.")] = 192,
    observers: Annotated[int, typer.Option(help="Simulated per-scene observers.")] = 15,
    cross_observers: Annotated[int, typer.Option(help="Simulated cross-content observers.")] = 15,
    budget: Annotated[int, typer.Option(help="Cross-content images per scene.")] = 5,
    bootstrap: Annotated[
        int, typer.Option(min=0, help="Bootstrap samples per scaled group.")
    ] = 100,
    method: Annotated[
        Method, typer.Option(help="Alignment method (see jod align --help).")
    ] = Method["paper"],
    align_bootstrap: Annotated[
        int, typer.Option(min=0, help="Resamples for the unified CIs.")
    ] = 200,
    seed: Annotated[
        int, typer.Option(help="Seed of the renditions, the simulated panel and bootstraps.")
    ] = 0,
    jobs: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes for the bootstraps [default: all cores]."),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Write into a non-empty folder that holds no previous demo.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Run the whole pipeline on the example study, offline (about a minute).

    Renditions, a simulated expert panel, per-scene and cross-content scales, alignment,
    the training table, plots and report.md, all under OUTPUT. A failed run leaves OUTPUT
    as it was."""
    from study.demo import DemoConfig, run_demo
    from study.pipeline import PanelConfig

    panel = PanelConfig(observers, cross_observers, budget, bootstrap, seed)
    config = DemoConfig(
        images=None if images is None else str(images),
        scenes=scenes,
        size=size,
        panel=panel,
        method=method.value,
        align_bootstrap=align_bootstrap,
    )
    summary = run_demo(output, config, force=force, n_jobs=jobs, progress=not quiet)
    for r in summary["recovery"]:
        typer.echo(
            f"{r['attribute']}: unified scale vs truth Spearman {r['spearman']:.3f} "
            f"(per-scene scores pooled: {r['spearman_unaligned']:.3f}), "
            f"RMSE after affine map {r['rmse']:.2f} JOD"
        )
    typer.echo(f"wrote {output / 'report.md'} in {summary['seconds']['total']} s")
