"""Every ``jod`` subcommand: where it lives, which extra it needs, and its one-line summary.

``jod`` imports a subcommand's module only when that subcommand runs, so ``jod --help`` works
(and is fast) in every install, and a base install runs ``jod scale`` without Flask or torch.

To add a subcommand, add one line to ``COMMANDS``::

    Subcommand("pairs", "scaling.pairs_cli:pairs_command", None,
               "Choose the next pairs to judge (active sampling)."),

- ``target`` is ``"module:attribute"``: a Typer command function, or a ``typer.Typer`` for a
  command with subcommands (``jod campaign create``). Keep heavy imports (pandas, Flask,
  torch) inside the command body: ``jod NAME --help`` then stays fast.
- ``extra`` is the ``pyproject.toml`` extra the command needs (``None``: the base install).
  Before importing ``target``, ``jod`` checks that the extra's packages are installed; if not,
  it says ``pip install 'jodkit[EXTRA]'`` and exits with code 2.
- ``summary`` is what ``jod --help`` lists: the first paragraph of the command's help
  (``tests/cli/test_commands.py`` checks they agree).
- Bad input: raise ``scaling.errors.InputError`` (or let ``FileNotFoundError`` and friends
  through) and do not catch it: ``jod`` prints one line ``error: <file>, row R, field 'F':
  ...`` and exits with code 2 (``jodkit/reporting.py``). Write outputs through
  ``scaling.outputs`` so that a failure leaves no partial file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Subcommand:
    """One ``jod`` subcommand, loaded on demand."""

    name: str
    target: str
    extra: str | None
    summary: str


COMMANDS: tuple[Subcommand, ...] = (
    Subcommand(
        "scale",
        "scaling.cli:scale_command",
        None,
        "Scale pairwise comparisons to JOD (Thurstone Case V, pwcmp-compatible).",
    ),
    Subcommand(
        "pairs",
        "scaling.pairs_cli:pairs_command",
        None,
        "Choose the next pairs to judge (active sampling).",
    ),
    Subcommand(
        "align",
        "alignment.cli:align_command",
        None,
        "Align per-scene JOD scales onto one unified scale (DXOMARK portrait method).",
    ),
    Subcommand(
        "example",
        "study.cli:example_command",
        "study",
        "Build a small portrait-style study offline, with every rendition's parameters.",
    ),
    Subcommand(
        "demo",
        "study.cli:demo_command",
        "study",
        "Run the whole pipeline on the example study, offline (about a minute).",
    ),
    Subcommand(
        "campaign",
        "annotation_app.cli:campaign_app",
        "app",
        "Create and run annotation campaigns.",
    ),
    Subcommand(
        "user",
        "annotation_app.cli:user_app",
        "app",
        "Manage accounts (admin, experimenter, observer) and assignments.",
    ),
    Subcommand(
        "serve",
        "annotation_app.cli:serve_command",
        "app",
        "Run the annotation app under gunicorn (WORKERS processes x THREADS threads).",
    ),
    Subcommand(
        "export",
        "annotation_app.cli:export_command",
        "app",
        "Write the trial CSVs (ready for `jod scale`), count matrices and a report (archived "
        "campaigns included).",
    ),
    Subcommand(
        "train",
        "training.cli:train_command",
        "train",
        "Train a LoRA-adapted multimodal LLM on a JOD training table (DeQA-Score recipe).",
    ),
    Subcommand(
        "predict",
        "training.cli:predict_command",
        "train",
        "Predict JOD per image and attribute, or P(A better) per pair with a comparator.",
    ),
    Subcommand(
        "compare",
        "training.cli:compare_command",
        "train",
        "Ask a comparator which of two images is better: P(first better) and its answer.",
    ),
    Subcommand(
        "evaluate",
        "training.cli:evaluate_command",
        "train",
        "Score model: SRCC, PLCC, KRCC, MAE in JOD. Comparator: accuracy, log-likelihood, Brier.",
    ),
)

PANELS: dict[str | None, str] = {
    None: "Scale and align (base install)",
    "study": "Example study (pip install 'jodkit\\[study]')",
    "app": "Annotation app (pip install 'jodkit\\[app]')",
    "train": "Training (pip install 'jodkit\\[train]')",
}
"""The heading under which ``jod --help`` lists the commands of each extra."""
