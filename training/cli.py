"""``jod train``, ``jod predict``, ``jod compare`` and ``jod evaluate``. Torch is imported
inside the commands, so ``jod --help`` stays fast without the train extra."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scaling.options import choice_type

Task = choice_type("Task", ("score", "pairwise"))


def train_command(
    config: Annotated[Path, typer.Argument(help="YAML training config (see docs/training.md).")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Run folder for the model; overrides run.output_dir."),
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
    if output is not None:
        cfg.run.output_dir = output.resolve()
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
    images: Annotated[
        Path | None,
        typer.Argument(help="An image file or a folder of images (score models)."),
    ] = None,
    pairs: Annotated[
        Path | None,
        typer.Option(
            help="Comparators: a table of pairs (image_A, image_B, attribute; other columns "
            "are kept), e.g. the comparator run's split.csv."
        ),
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="With --pairs: only the rows of this split.")
    ] = None,
    trials_out: Annotated[
        Path | None,
        typer.Option(
            help="With --pairs: also write the answers as one observer's trials, for "
            "`jod scale --ties split`."
        ),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV to write.")] = Path(
        "predictions.csv"
    ),
    attribute: Annotated[
        list[str] | None, typer.Option("--attribute", "-a", help="Default: all trained.")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Images (or pairs) per forward pass.")
    ] = 16,
) -> None:
    """Predict JOD per image and attribute, or P(A better) per pair with a comparator.

    A score model writes JOD, its std and the level probabilities; a comparator (--pairs)
    writes p_ab (A shown first), p_ba (B shown first) and their mean p_a_better.
    """
    if pairs is not None:
        _predict_pairs(model_dir, pairs, split, trials_out, output, batch_size)
        return
    if images is None:
        raise typer.BadParameter("give IMAGES (a score model) or --pairs (a comparator)")
    from scaling.outputs import check_outputs, output_file
    from training.predict import predict_images

    check_outputs({"MODEL_DIR": model_dir, "IMAGES": images}, {"-o/--output": output})
    frame = predict_images(model_dir, images, attribute, batch_size)
    with output_file(output) as path:
        frame.to_csv(path, index=False)
    typer.echo(f"{len(frame)} predictions written to {output}")


def _predict_pairs(
    model_dir: Path,
    pairs: Path,
    split: str | None,
    trials_out: Path | None,
    output: Path,
    batch_size: int,
) -> None:
    from scaling.outputs import check_outputs, output_file, staged
    from training.comparator import predict_pairs
    from training.pairwise_scale import comparisons_to_trials

    check_outputs({"--pairs": pairs}, {"-o/--output": output, "--trials-out": trials_out})
    frame = predict_pairs(model_dir, pairs, batch_size, split=split)
    trials = comparisons_to_trials(frame) if trials_out is not None else None
    with staged():
        with output_file(output) as path:
            frame.to_csv(path, index=False)
        if trials is not None:
            with output_file(trials_out) as path:
                trials.to_csv(path, index=False)
    typer.echo(f"{len(frame)} pair predictions written to {output}")
    if trials is not None:
        typer.echo(
            f"{len(trials)} trials of the comparator written to {trials_out}: scale them with "
            f"`jod scale {trials_out} --ties split`"
        )


def compare_command(
    model_dir: Annotated[Path, typer.Argument(help="A comparator written by `jod train`.")],
    first: Annotated[Path, typer.Argument(help="The first image.")],
    second: Annotated[Path, typer.Argument(help="The second image.")],
    attribute: Annotated[
        str | None,
        typer.Option(
            "--attribute", "-a", help="What to compare [default: the one the model knows]."
        ),
    ] = None,
) -> None:
    """Ask a comparator which of two images is better: P(first better) and its answer.

    Both orders are asked and averaged, so the answer does not depend on the order.
    """
    from training.comparator import compare_images

    p, sentence = compare_images(model_dir, first, second, attribute)
    typer.echo(f"P(first better) = {p:.3f}")
    typer.echo(sentence)


def evaluate_command(
    predictions: Annotated[
        Path, typer.Argument(help="CSV from `jod predict` (with --pairs for a comparator).")
    ],
    truth: Annotated[
        Path,
        typer.Argument(
            help="Training table with the true JOD; for --task pairwise the pairs with their "
            "trial counts (a comparator run's split.csv)."
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for metrics.csv and the plots.")
    ] = Path("evaluation"),
    split: Annotated[
        str | None,
        typer.Option(
            help="Rows of this split only (train, val, test or all); default: test when the "
            "truth table has a split column (a run's split.csv), else all."
        ),
    ] = None,
    task: Annotated[
        Task, typer.Option(help="score (a score model) or pairwise (a comparator).")
    ] = Task["score"],
    score_predictions: Annotated[
        Path | None,
        typer.Option(help="--task pairwise: a score model's `jod predict` CSV, compared too."),
    ] = None,
    scales: Annotated[
        Path | None,
        typer.Option(
            help="--task pairwise: the experts' per-scene scale table; the comparator's own "
            "scale and its per-image disagreement are written."
        ),
    ] = None,
) -> None:
    """Score model: SRCC, PLCC, KRCC, MAE in JOD. Comparator: accuracy, log-likelihood, Brier.

    --task pairwise scores held-out trials by the human scale (the ceiling), the score model
    (through the Thurstone link) and the comparator, with a calibration plot.
    """
    from scaling.outputs import check_outputs, output_folder

    inputs = {"PREDICTIONS": predictions, "TRUTH": truth, "--scales": scales}
    check_outputs(inputs | {"--score-predictions": score_predictions}, {}, {"-o/--output": output})
    with output_folder(output) as folder:  # every file appears once all are written
        if task.value == "pairwise":
            from training.pairwise_eval import evaluate_pairwise_files

            table = evaluate_pairwise_files(
                predictions, truth, folder, split, score_predictions, scales
            )
            written = ("metrics.csv", "calibration.png")
        else:
            from training.evaluate import evaluate_files

            table = evaluate_files(predictions, truth, folder, split)
            written = ("metrics.csv", "scatter.png")
    typer.echo(table.to_string(index=False))
    typer.echo(f"written to {output / written[0]} and {output / written[1]}")
