"""``jod serve``, ``jod campaign ...``, ``jod export`` and ``jod user ...``.

Flask and SQLAlchemy are imported inside the commands so ``jod --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

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
CampaignName = Annotated[str, typer.Argument(help="Campaign name.")]
UserName = Annotated[str, typer.Argument(help="User name.")]
Password = Annotated[
    str,
    typer.Option(
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        envvar="JODKIT_PASSWORD",
        help="The password (at least 8 characters); asked for when not given.",
    ),
]


class Role(StrEnum):
    admin = "admin"
    experimenter = "experimenter"
    observer = "observer"


campaign_app = typer.Typer(help="Create and run annotation campaigns.", no_args_is_help=True)
user_app = typer.Typer(
    help="Manage accounts (admin, experimenter, observer) and assignments.",
    no_args_is_help=True,
)


def _app(home: Path, db_url: str | None, **settings):
    from annotation_app import create_app, default_config

    config = default_config(home) | settings
    if db_url:
        config["DATABASE_URL"] = db_url
    return create_app(config)


@contextmanager
def _database(home: Path, db_url: str | None, *, create: bool = False) -> Iterator:
    """The app's database session for one command. Only the commands that create data
    (``create``) may start a new SQLite database: elsewhere a mistyped --home is refused
    instead of answering from an empty database made for the occasion."""
    from annotation_app import DATABASE_FILE
    from annotation_app.db import get_db

    if not db_url and not create and not (home / DATABASE_FILE).is_file():
        from scaling.errors import InputError

        raise InputError(
            f"holds no jodkit database ({DATABASE_FILE}): give the --home of 'jod campaign "
            "create' or 'jod serve', or --db",
            source=str(home),
            field="--home",
        )
    app = _app(home, db_url)
    try:
        with app.app_context():
            yield app, get_db()
    finally:  # no connection left open for the garbage collector (a warning on PostgreSQL)
        app.extensions["jodkit_db"].kw["bind"].dispose()


def serve_command(
    home: Home = Path("jod-app"),
    db_url: DbUrl = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 5000,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes (use PostgreSQL for more than one).")
    ] = 1,
    threads: Annotated[int, typer.Option(min=1, help="Threads per process.")] = 8,
    secure_cookies: Annotated[
        bool,
        typer.Option(
            help="Behind HTTPS: Secure cookies, HSTS, plain HTTP redirected to HTTPS.",
            envvar="JODKIT_SECURE_COOKIES",
        ),
    ] = False,
    proxy_count: Annotated[
        int,
        typer.Option(
            min=0, help="Reverse proxies in front whose X-Forwarded-* headers are trusted."
        ),
    ] = 0,
    import_root: Annotated[
        Path | None,
        typer.Option(help="Server folder the admin page may take campaign images from."),
    ] = None,
    example: Annotated[
        bool,
        typer.Option(
            help="Create the bundled example campaign and demo accounts if the DB has none."
        ),
    ] = True,
) -> None:
    """Run the annotation app under gunicorn (WORKERS processes x THREADS threads)."""
    from annotation_app.db import get_db
    from annotation_app.example import ensure_example
    from annotation_app.server import run

    settings = {
        "SECURE_COOKIES": secure_cookies,
        "PROXY_COUNT": proxy_count,
        "IMPORT_ROOT": str(import_root.resolve()) if import_root else None,
    }
    app = _app(home, db_url, **settings)  # migrates the database once, before any worker
    if workers > 1 and app.config["DATABASE_URL"].startswith("sqlite"):
        typer.secho(
            "note: several processes on SQLite take turns on one write lock; "
            "PostgreSQL scales further",
            err=True,
        )
    if example:
        with app.app_context():
            accounts = ensure_example(get_db(), home, Path(app.config["IMAGE_STORE"]))
        typer.echo("demo accounts (user, role, password):")
        for username, role, password in accounts:
            typer.echo(f"  {username:14s} {role:13s} {password}")
    config = {k: app.config[k] for k in ("SECRET_KEY", "DATABASE_URL", "IMAGE_STORE", "CACHE_DIR")}
    app.extensions["jodkit_db"].kw["bind"].dispose()  # no connection crosses the fork
    scheme = "https" if secure_cookies else "http"
    typer.echo(f"jodkit annotation app: {scheme}://{host}:{port}/ ({workers} x {threads})")
    run(config | settings, host=host, port=port, workers=workers, threads=threads)


@campaign_app.command("create")
def campaign_create(
    spec: Annotated[Path, typer.Argument(help="Campaign YAML (docs/annotation.md).")],
    home: Home = Path("jod-app"),
    db_url: DbUrl = None,
) -> None:
    """Validate SPEC and decode every image, then store the campaign (frozen to the spec's
    hash); print the conversions made and what looks like a mistake."""
    from annotation_app.campaigns import create_campaign

    with _database(home, db_url, create=True) as (app, db):
        result = create_campaign(db, spec, Path(app.config["IMAGE_STORE"]))
        campaign = result.campaign
        state = "created" if result.created else "already exists, images unchanged"
        typer.echo(
            f"campaign {campaign.name!r} {state}: {len(campaign.images)} images,"
            f" spec sha256 {campaign.spec_hash}"
        )
        for im in campaign.images if result.created else []:
            if im.conversion:
                typer.echo(f"converted {im.scene}/{im.condition}: {im.conversion}")
        for warning in result.warnings:
            typer.secho(f"warning: {warning}", fg="yellow", err=True)


@campaign_app.command("list")
def campaign_list(home: Home = Path("jod-app"), db_url: DbUrl = None) -> None:
    """Every campaign: status, images, assigned observers, answers."""
    from annotation_app.campaigns import list_campaigns

    with _database(home, db_url) as (_, db):
        typer.echo(
            f"{'campaign':30s} {'status':9s} {'images':>6s} {'assigned':>8s} {'answers':>8s}"
        )
        for row in list_campaigns(db):
            typer.echo(
                f"{row.campaign.name:30s} {row.campaign.status:9s} {row.images:6d}"
                f" {row.observers:8d} {row.answered:8d}"
            )


def _status_command(action: str, doc: str) -> None:
    def command(name: CampaignName, home: Home = Path("jod-app"), db_url: DbUrl = None) -> None:
        from annotation_app.campaigns import change_status

        with _database(home, db_url) as (_, db):
            campaign = change_status(db, name, action)
            typer.echo(f"campaign {name!r} is now {campaign.status}")

    command.__doc__ = doc
    campaign_app.command(action)(command)


_status_command("pause", "Stop handing out pairs (served pairs may still be answered).")
_status_command("resume", "Hand out pairs again (a paused or closed campaign).")
_status_command("close", "End data collection: no new pairs, no answers.")
_status_command("archive", "Close and hide from lists; every answer stays exportable.")


@campaign_app.command("delete")
def campaign_delete(name: CampaignName, home: Home = Path("jod-app"), db_url: DbUrl = None) -> None:
    """Delete a campaign without answers (one with answers can only be archived)."""
    from annotation_app.campaigns import delete_campaign

    with _database(home, db_url) as (_, db):
        delete_campaign(db, name)
        typer.echo(f"campaign {name!r} deleted")


def export_command(
    campaign: CampaignName,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for the CSVs, counts and report.")
    ] = Path("out"),
    home: Home = Path("jod-app"),
    db_url: DbUrl = None,
) -> None:
    """Write the trial CSVs (ready for `jod scale`), count matrices and a report (archived
    campaigns included)."""
    from annotation_app.campaigns import get_campaign
    from annotation_app.export import write_export
    from scaling.outputs import check_outputs

    check_outputs(inputs={}, outputs={}, folders={"-o/--output": output})
    with _database(home, db_url) as (_, db):
        for path in write_export(db, get_campaign(db, campaign), output):
            typer.echo(str(path))


@user_app.command("add")
def user_add(
    username: UserName,
    role: Annotated[Role, typer.Option(help="What the account may do.")] = Role.observer,
    password: Password = "",
    home: Home = Path("jod-app"),
    db_url: DbUrl = None,
) -> None:
    """Create an account."""
    from annotation_app.accounts import add_user

    with _database(home, db_url, create=True) as (_, db):
        add_user(db, username, password, role.value)
    typer.echo(f"user {username!r} ({role.value}) created")


@user_app.command("list")
def user_list(home: Home = Path("jod-app"), db_url: DbUrl = None) -> None:
    """Every account: role, state and assigned campaigns."""
    from annotation_app.accounts import list_users

    with _database(home, db_url) as (_, db):
        typer.echo(f"{'user':20s} {'role':13s} {'state':9s} campaigns")
        for user, campaigns in list_users(db):
            state = "disabled" if user.disabled_at else "active"
            names = ", ".join(name for _, name in campaigns)
            typer.echo(f"{user.username:20s} {user.role:13s} {state:9s} {names}")


@user_app.command("disable")
def user_disable(
    username: UserName,
    enable: Annotated[bool, typer.Option("--enable", help="Enable the account again.")] = False,
    home: Home = Path("jod-app"),
    db_url: DbUrl = None,
) -> None:
    """Disable an account: its login sessions end at once (--enable undoes it)."""
    from annotation_app.accounts import set_disabled

    with _database(home, db_url) as (_, db):
        set_disabled(db, username, not enable)
    typer.echo(f"user {username!r} {'enabled' if enable else 'disabled'}")


@user_app.command("passwd")
def user_passwd(
    username: UserName,
    password: Password = "",
    home: Home = Path("jod-app"),
    db_url: DbUrl = None,
) -> None:
    """Set a new password: the user's login sessions end and a lockout is lifted."""
    from annotation_app.accounts import set_password

    with _database(home, db_url) as (_, db):
        set_password(db, username, password)
    typer.echo(f"password of {username!r} changed; its login sessions ended")


@user_app.command("assign")
def user_assign(
    username: UserName,
    campaign: CampaignName,
    remove: Annotated[bool, typer.Option("--remove", help="Take the assignment away.")] = False,
    home: Home = Path("jod-app"),
    db_url: DbUrl = None,
) -> None:
    """Let USERNAME judge CAMPAIGN (observers see only their campaigns)."""
    from annotation_app.accounts import assign

    with _database(home, db_url) as (_, db):
        changed = assign(db, username, campaign, not remove)
    verb = "removed from" if remove else "assigned to"
    note = "" if changed else " (already so)"
    typer.echo(f"user {username!r} {verb} campaign {campaign!r}{note}")
