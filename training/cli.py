"""``jod train``, ``jod predict`` and ``jod evaluate``. Torch is imported inside the commands,
so ``jod --help`` stays fast without the train extra."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def train_command(
    config: Annotated[Path, typer.Argument(help="YAML training config (see docs/training.md).")],
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", "-o", help="Overrides run.output_dir.")
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="Overrides optim.max_steps.")] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Start over a run in the output folder made with another config."
        ),
    ] = False,
) -> None:
    """Train a LoRA-adapted multimodal LLM on a JOD training table (DeQA-Score recipe).

    Resumes from the newest intact checkpoint of the same run; Ctrl-C says how to resume.
    """
    from training.config import TrainConfig
    from training.run import TrainingInterrupted
    from training.trainer import train

    cfg = TrainConfig.from_yaml(config)
    if output_dir is not None:
        cfg.run.output_dir = output_dir.resolve()
    if max_steps is not None:
        cfg.optim.max_steps = max_steps
    try:
        out = train(cfg, force=force)
    except TrainingInterrupted as interrupted:
        typer.secho(f"\n{interrupted}", fg="red", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"model written to {out}")


def predict_command(
    model_dir: Annotated[Path, typer.Argument(help="A directory written by `jod train`.")],
    images: Annotated[Path, typer.Argument(help="An image file or a folder of images.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV to write.")] = Path(
        "predictions.csv"
    ),
    attribute: Annotated[
        list[str] | None, typer.Option("--attribute", "-a", help="Default: all trained.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
) -> None:
    """Predict JOD, its std and the level probabilities per image and attribute."""
    from training.predict import predict_images

    frame = predict_images(model_dir, images, attribute, batch_size)
    frame.to_csv(output, index=False)
    typer.echo(f"{len(frame)} predictions written to {output}")


def evaluate_command(
    predictions: Annotated[Path, typer.Argument(help="CSV from `jod predict`.")],
    truth: Annotated[Path, typer.Argument(help="Training table with the true JOD.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", "-o")] = Path("evaluation"),
    split: Annotated[
        str | None,
        typer.Option(
            help="Rows of this split only (train, val, test or all); default: test when the "
            "truth table has a split column (a run's split.csv), else all."
        ),
    ] = None,
) -> None:
    """SRCC, PLCC (4-parameter logistic), KRCC and MAE in JOD; global and per-scene mean."""
    from training.evaluate import evaluate_files

    table = evaluate_files(predictions, truth, out_dir, split)
    typer.echo(table.to_string(index=False))
    typer.echo(f"written to {out_dir}/metrics.csv and {out_dir}/scatter.png")
