"""Every ``jod`` command teaches its options: help text on each, the same flag for the same
concept everywhere, typed choices where the values are a fixed set."""

from __future__ import annotations

from enum import Enum
from typing import Literal, get_origin

import pytest
import typer

import jodkit.extras
from jodkit.cli import load_command
from jodkit.commands import COMMANDS

CHOICES = ("method", "prior", "anchor", "ties", "solver", "resample", "disconnected", "task")
"""Options whose values are a fixed set, wherever they appear."""
SAME_FLAG = {
    "output": ["-o", "--output"],
    "plots": ["--plots"],
    "seed": ["--seed"],
    "jobs": ["--jobs"],
    "quiet": ["--quiet", "-q"],
}
"""The one spelling of each shared concept (the parameter name -> its flags)."""
OLD_NAMES = ("out", "out_dir", "output_dir", "n_jobs", "plot_dir", "no_progress")


def _is_choice(param) -> bool:
    """A Click choice, or (Typer's own parameters) an Enum or Literal annotation."""
    if hasattr(getattr(param, "type", None), "choices"):
        return True
    annotation = param.type_descriptor.annotation
    if get_origin(annotation) is Literal:
        return True
    return isinstance(annotation, type) and issubclass(annotation, Enum)


def _commands():
    """(path, click command) for every installed subcommand, groups walked."""
    found = []
    for spec in COMMANDS:
        if spec.extra and jodkit.extras.missing_requirements(spec.extra):
            continue
        stack = [(f"jod {spec.name}", load_command(spec, None))]
        while stack:
            path, command = stack.pop()
            if isinstance(command, typer.core.TyperGroup):
                stack += [(f"{path} {n}", c) for n, c in command.commands.items()]
            else:
                found.append((path, command))
    return found


COMMAND_LIST = _commands()


@pytest.mark.parametrize(("path", "command"), COMMAND_LIST, ids=[p for p, _ in COMMAND_LIST])
def test_every_option_has_help_and_shared_concepts_share_their_flag(path, command):
    assert command.help, f"{path} has no help"
    for param in command.params:
        assert param.name not in OLD_NAMES, f"{path}: {param.name} has a newer name"
        if param.name == "help":
            continue
        assert getattr(param, "help", None), f"{path}: {param.opts} has no help"
        if param.param_type_name == "option" and param.name in SAME_FLAG:
            assert sorted(param.opts) == sorted(SAME_FLAG[param.name]), (path, param.opts)
        if param.name in CHOICES:
            assert _is_choice(param), f"{path}: --{param.name} is no choice"


def test_the_main_output_is_dash_o_wherever_a_command_writes_one():
    writers = {p for p, c in COMMAND_LIST if any(q.name == "output" for q in c.params)}
    expected = {"jod scale", "jod align", "jod example", "jod demo", "jod export"}
    expected |= {"jod train", "jod predict", "jod evaluate"}
    installed = {p for p, _ in COMMAND_LIST}
    assert expected & installed <= writers
