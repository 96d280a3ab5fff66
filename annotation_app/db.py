"""The database's lifecycle: one engine per app, one session per request, Alembic on start.

SQLite is the embedded default: WAL journal, ``synchronous=FULL`` (with WAL, NORMAL can
lose the last acknowledged commits on power loss; FULL syncs the WAL at every commit, about
2.4 ms on this machine's disk, see docs/performance.md) and a busy timeout. Transactions that write
start with ``BEGIN IMMEDIATE`` (SQLite's single write lock taken up front, so concurrent
writers queue on the busy timeout instead of failing); read-only requests use a plain
deferred ``BEGIN`` and, under WAL, read beside a running writer instead of queueing behind
it. A request's session is read-only until ``begin_write`` upgrades it; sessions opened
outside a request (CLI, tests, migrations) write. PostgreSQL is the production database.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from flask import Flask, current_app, g, has_request_context
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
WRITE = "jodkit_write"
"""Execution option: True (the default) begins SQLite transactions IMMEDIATE, False deferred."""
_READ_ONLY_OK = ("SELECT", "BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "SAVEPOINT", "RELEASE")


def make_engine(url: str) -> Engine:
    """An engine with the settings each backend needs for concurrent requests."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=False)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        write = conn.get_execution_options().get(WRITE, True)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    @event.listens_for(engine, "before_cursor_execute")
    def _guard(conn, _cursor, statement, _params, _context, _many) -> None:
        # A deferred transaction that reads and then writes fails at once with "database
        # is locked" (SQLITE_BUSY_SNAPSHOT, no busy wait) when another writer committed in
        # between: refuse the write here, in every test, rather than under load.
        reading = not conn.get_execution_options().get(WRITE, True)
        if reading and not statement.lstrip().upper().startswith(_READ_ONLY_OK):
            raise RuntimeError("write in a read-only transaction: call begin_write first")

    return engine


def upgrade(engine: Engine) -> None:
    """Bring the schema to Alembic's head (idempotent; run on every start)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def init_app(app: Flask) -> None:
    """Create the engine, migrate, and close each request's session at teardown."""
    engine = make_engine(app.config["DATABASE_URL"])
    upgrade(engine)
    app.extensions["jodkit_db"] = sessionmaker(engine, expire_on_commit=False)
    reader = engine.execution_options(**{WRITE: False})
    app.extensions["jodkit_db_read"] = sessionmaker(reader, expire_on_commit=False)
    app.teardown_appcontext(_close)


def get_db() -> Session:
    """The request's session, opened on first use: read-only (deferred transactions on
    SQLite) inside a request until ``begin_write``; a writing session outside requests."""
    if "db" not in g:
        factory = "jodkit_db_read" if has_request_context() else "jodkit_db"
        g.db = current_app.extensions[factory]()
    return g.db


def begin_write(db: Session) -> None:
    """Make ``db``'s next statements run in a write transaction (SQLite: BEGIN IMMEDIATE).

    Call it before the first read whose result a write depends on. A read transaction
    already open is committed first and the session's objects expired, so they are read
    again under the write lock. No-op on PostgreSQL (row locks serialise writers there).
    """
    if db.get_bind().dialect.name != "sqlite":
        return
    if db.in_transaction():
        if db.connection().get_execution_options().get(WRITE, True):
            return  # already writing
        db.commit()
        db.expire_all()
    db.connection(execution_options={WRITE: True})


def _close(_exc: BaseException | None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()
