"""``python -m jodkit`` runs the ``jod`` command line."""

from jodkit.cli import app

app(prog_name="jod")
