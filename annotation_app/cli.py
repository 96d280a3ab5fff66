"""``jod serve``, ``jod campaign create``, ``jod export`` and ``jod user add``.

Flask and SQLAlchemy are imported inside the commands so ``jod --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from scaling.errors import InputError

Home = Annotated[
    Path, typer.Option("--home", help="Data folder: SQLite DB, image store, crop cache.")
]
DbUrl = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="JODKIT_DATABASE_URL",
        help="SQLAlchemy URL, e.g. postgresql+psycopg://u:pw@host/db (default: SQLite in --home).",
    ),
]

campaign_app = typer.Typer(help="Create and inspect annotation campaigns.", no_args_is_help=True)
user_app = typer.Typer(
    help="Manage accounts (admin, experimenter, observer).", no_args_is_help=True
)


def _app(home: Path, db_url: str | None):
    from annotation_app import create_app, default_config

    config = default_config(home)
    if db_url:
        config["DATABASE_URL"] = db_url
    return create_app(config)


@contextmanager
def _database(home: Path, db_url: str | None) -> Iterator:
    """The app's database session for one command."""
    from annotation_app.db import get_db

    app = _app(home, db_url)
    with app.app_context():
        yield app, get_db()


def serve_command(
    home: Home = Path("jod-app"),
    db_url: DbUrl = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 5000,
    threads: Annotated[int, typer.Option(help="Worker threads.")] = 16,
    example: Annotated[
        bool,
        typer.Option(
            help="Create the bundled example campaign and demo accounts if the DB has none."
        ),
    ] = True,
) -> None:
    """Run the annotation app (waitress when installed) and print the URL."""
    from annotation_app.db import get_db
    from annotation_app.example import ensure_example

    app = _app(home, db_url)
    if example:
        with app.app_context():
            accounts = ensure_example(get_db(), home, Path(app.config["IMAGE_STORE"]))
        typer.echo("demo accounts (user, role, password):")
        for username, role, password in accounts:
            typer.echo(f"  {username:14s} {role:13s} {password}")
    url = f"http://{host}:{port}/"
    typer.echo(f"jodkit annotation app: {url}", err=False)
    try:
        from waitress import serve
    except ImportError:  # waitress is the production server; werkzeug's still threads
        app.run(host=host, port=port, threaded=True)
    else:
        serve(app, host=host, port=port, threads=threads, channel_timeout=60)


@campaign_app.command("create")
def campaign_create(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Campaign YAML.")],
    home: Home = Path("jod-app"),
    db_url: DbUrl = None,
) -> None:
    """Validate SPEC and its images, then store the campaign (frozen to the spec's hash)."""
    from annotation_app.campaigns import create_campaign

    with _database(home, db_url) as (app, db):
        campaign, created = create_campaign(db, spec, Path(app.config["IMAGE_STORE"]))
        state = "created" if created else "already exists, unchanged"
        typer.echo(
            f"campaign {campaign.name!r} {state}: {len(campaign.images)} images,"
            f" spec sha256 {campaign.spec_hash}"
        )


def export_command(
    campaign: Annotated[str, typer.Argument(help="Campaign name.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for CSVs, counts and report.")] = Path(
        "out"
    ),
    home: Home = Path("jod-app"),
    db_url: DbUrl = None,
) -> None:
    """Write the trial CSVs (ready for `jod scale`), count matrices and a report."""
    from sqlalchemy import select

    from annotation_app.export import write_export
    from annotation_app.models import Campaign

    with _database(home, db_url) as (_, db):
        camp = db.scalar(select(Campaign).where(Campaign.name == campaign))
        if camp is None:
            raise InputError(f"no campaign named {campaign!r}", field="campaign")
        for path in write_export(db, camp, out):
            typer.echo(str(path))


@user_app.command("add")
def user_add(
    username: str,
    role: Annotated[str, typer.Option(help="admin, experimenter or observer.")] = "observer",
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, envvar="JODKIT_PASSWORD"
        ),
    ] = "",
    home: Home = Path("jod-app"),
    db_url: DbUrl = None,
) -> None:
    """Create an account."""
    from annotation_app.auth import add_user

    with _database(home, db_url) as (_, db):
        add_user(db, username, password, role)
    typer.echo(f"user {username!r} ({role}) created")
