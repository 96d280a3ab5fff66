"""Alembic migrations on SQLite and PostgreSQL: a database with data at the previous
revision upgrades to the models' schema and keeps every row; downgrade works."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from annotation_app.db import MIGRATIONS, make_engine
from annotation_app.models import Base


def migrate(engine: Engine, revision: str, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def schema_differences(engine: Engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


ROWS_AT_0002 = """
INSERT INTO users (id, username, password_hash, role, created_at)
  VALUES (1, 'ana', 'x', 'observer', '2026-01-01 10:00:00');
INSERT INTO campaigns (id, name, spec_yaml, spec_hash, created_at)
  VALUES (1, 'c', 'name: c', 'h', '2026-01-01 10:00:00');
INSERT INTO images (id, campaign_id, scene, condition, sha256, filename, width, height)
  VALUES (1, 1, 's', 'a', 'sha-a', 'sha-a.png', 4, 4),
         (2, 1, 's', 'b', 'sha-b', 'sha-b.png', 4, 4);
INSERT INTO observer_sessions (id, campaign_id, user_id, session_type, attribute, n_planned,
  n_training, active_ms, started_at)
  VALUES (1, 1, 1, 'per_scene', 'q', 3, 0, 0, '2026-01-01 10:00:00');
INSERT INTO trials (id, session_id, campaign_id, user_id, seq, attribute, image_a_id, image_b_id,
  left_shown, kind, planned_at, answer_token, is_a_selected, tie, rt_ms, zoom_count,
  flicker_count, answered_at) VALUES
  (1, 1, 1, 1, 0, 'q', 1, 2, 'A', 'normal', '2026-01-01 10:00:01', 'tok-1', true, false, 500, 0, 0,
   '2026-01-01 10:00:02'),
  (2, 1, 1, 1, 1, 'q', 1, 2, 'B', 'normal', '2026-01-01 10:00:01', NULL, NULL, false, NULL, 0, 0,
   NULL);
"""


def test_upgrade_keeps_data_and_matches_the_models(db_url):
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:  # a PostgreSQL database of an earlier test: start empty
            if inspect(conn).has_table("alembic_version"):
                migrate(engine, "base", down=True)
        migrate(engine, "0002")
        with engine.begin() as conn:
            for statement in ROWS_AT_0002.split(";"):
                if statement.strip():
                    conn.execute(text(statement))
        migrate(engine, "head")
        assert schema_differences(engine) == []
        with engine.connect() as conn:
            one = lambda sql: conn.execute(text(sql)).all()  # noqa: E731
            assert one("SELECT campaign_id, user_id FROM assignments") == [(1, 1)]
            assert one("SELECT n_answered FROM observer_sessions") == [(1,)]
            assert one("SELECT status FROM campaigns") == [("active",)]
            assert one("SELECT source_sha256 FROM images ORDER BY id") == [("sha-a",), ("sha-b",)]
            assert one("SELECT failed_logins, disabled_at FROM users") == [(0, None)]
            served = one("SELECT served_at IS NOT NULL FROM trials ORDER BY id")
            assert [bool(s) for (s,) in served] == [True, True]
            assert one("SELECT answer_token FROM trials ORDER BY id") == [("tok-1",), (None,)]
        migrate(engine, "0002", down=True)
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("trials")}
            assert "served_at" not in columns and "answer_token" in columns
            assert not inspect(conn).has_table("login_sessions")
            assert conn.execute(text("SELECT COUNT(*) FROM trials")).scalar() == 2
        migrate(engine, "head")
        assert schema_differences(engine) == []
    finally:
        engine.dispose()
