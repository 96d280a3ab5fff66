"""The ``jod`` command line: one subcommand per stage.

Each stage owns its commands in its own ``cli`` module; this module only assembles them.
Stage modules import their heavy dependencies (torch, Flask) inside the command bodies, so
``jod --help`` and ``jod scale`` stay fast and work without the optional extras.
"""

import typer

from alignment.cli import align_command
from annotation_app.cli import campaign_app, export_command, serve_command, user_app
from scaling.cli import scale_command
from study.cli import demo_command, example_command
from training.cli import evaluate_command, predict_command, train_command

app = typer.Typer(
    name="jod",
    help=(
        "jodkit: turn pairwise image-quality judgments into JOD scales, align scenes onto one "
        "unified scale, collect judgments in a browser and train quality models.\n\n"
        "1 JOD = 75% of observers prefer one image over the other."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
)

# scaling
app.command("scale")(scale_command)
# alignment and the example study
app.command("align")(align_command)
app.command("example")(example_command)
app.command("demo")(demo_command)
# annotation app
app.command("serve")(serve_command)
app.add_typer(campaign_app, name="campaign")
app.add_typer(user_app, name="user")
app.command("export")(export_command)
# training
app.command("train")(train_command)
app.command("predict")(predict_command)
app.command("evaluate")(evaluate_command)
