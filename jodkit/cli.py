"""The ``jod`` command line: one subcommand per stage, each loaded only when it runs.

The subcommands are listed in :mod:`jodkit.commands` (how to add one is explained there);
this module turns that list into a command group whose help lists every subcommand without
importing any of them, checks a subcommand's extra before importing it, and runs it inside
the one error path of :mod:`jodkit.reporting`.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from jodkit.commands import COMMANDS, PANELS, Subcommand
from jodkit.reporting import (
    CLICK_EXCEPTION,
    MissingExtra,
    passes_through,
    report,
    reported_warnings,
)


class _Unloaded(TyperCommand):
    """Stands for a subcommand in ``jod --help`` until the subcommand runs."""


def _needs_extra(spec: Subcommand, missing: list[str]) -> MissingExtra:
    return MissingExtra(
        f"'jod {spec.name}' needs the '{spec.extra}' extra ({', '.join(missing)}): "
        f"pip install 'jodkit[{spec.extra}]' (or pip install -e '.[{spec.extra}]' in a clone)"
    )


def load_command(spec: Subcommand, markup: Any) -> Any:
    """Import ``spec``'s module and build its Click command; check its extra first."""
    if spec.extra:
        from jodkit.extras import missing_requirements

        if missing := missing_requirements(spec.extra):
            raise _needs_extra(spec, missing)
    module_name, attribute = spec.target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if spec.extra is None:
            raise
        raise _needs_extra(spec, [f"{err.name} (absent)"]) from err
    target = getattr(module, attribute)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = spec.name
        return group
    single = typer.Typer(rich_markup_mode=markup)
    single.command(spec.name)(target)
    return typer.main.get_command(single)


class LazyGroup(TyperGroup):
    """A Typer group whose registered subcommands are imported on first use."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.registry = {spec.name: spec for spec in COMMANDS}
        for spec in COMMANDS:
            self.commands.setdefault(
                spec.name,
                _Unloaded(
                    spec.name,
                    help=spec.summary,
                    short_help=spec.summary,
                    rich_help_panel=PANELS[spec.extra],
                    rich_markup_mode=self.rich_markup_mode,
                ),
            )

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[Any, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, _Unloaded):
            command = load_command(self.registry[name], self.rich_markup_mode)
        return name, command, rest

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Run ``jod``; a usage error (unknown option, a value outside its choices) is one line.

        Click would print a boxed panel of several lines; the error path promises one line and
        exit code 2 for everything the user can fix, so usage errors are printed here instead.
        """
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            outcome = super().main(*args, standalone_mode=False, **kwargs)
        except CLICK_EXCEPTION as err:
            command = err.ctx.command_path if getattr(err, "ctx", None) else "jod"
            # Typer validates values through pydantic, which prefixes "Value error, ".
            message = " ".join(err.format_message().replace("Value error, ", "").split())
            typer.echo(f"error: {message} (see '{command} --help')", err=True)
            sys.exit(err.exit_code)
        except typer.Abort:
            typer.echo("interrupted", err=True)
            sys.exit(130)
        sys.exit(outcome if isinstance(outcome, int) else 0)

    def invoke(self, ctx: Any) -> Any:
        debug = bool(ctx.params.get("debug"))
        with reported_warnings(debug):
            try:
                return super().invoke(ctx)
            except Exception as err:
                if debug or passes_through(err):
                    raise
                code = report(err, command=ctx.invoked_subcommand)
                raise typer.Exit(code) from None
            except KeyboardInterrupt:
                typer.secho("interrupted: no output was completed", fg="red", err=True)
                raise typer.Exit(130) from None


app = typer.Typer(
    name="jod",
    cls=LazyGroup,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from jodkit import __version__

        typer.echo(f"jodkit {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print jodkit's version and exit.",
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="JODKIT_DEBUG",
            help="On an error, show the full traceback; show every library warning.",
        ),
    ] = False,
) -> None:
    """jodkit: turn pairwise image-quality judgments into JOD scales, align scenes onto one
    unified scale, collect judgments in a browser and train quality models.

    1 JOD = 75% of observers prefer one image over the other."""
