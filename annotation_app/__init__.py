"""The annotation app: experts judge pairs in a browser; every judgment is kept once.

``create_app`` is the factory (Flask tutorial style): configuration in, app out, nothing
global. The database is migrated to Alembic's head on start.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from flask import Flask
from flask_wtf.csrf import CSRFProtect


def default_config(home: Path) -> dict:
    """Settings for a data folder ``home`` (SQLite database, image store, crop cache)."""
    key_file = home / "secret_key"
    if not key_file.exists():
        home.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_hex(32))
    return {
        "SECRET_KEY": key_file.read_text().strip(),
        "DATABASE_URL": f"sqlite:///{(home / 'jodkit.sqlite').resolve()}",
        "IMAGE_STORE": str((home / "images").resolve()),
        "CACHE_DIR": str((home / "cache").resolve()),
    }


def create_app(config: dict | None = None) -> Flask:
    """Build the app; ``config`` overrides the defaults (tests pass a throw-away DB)."""
    from annotation_app import api, auth, dashboard, db, media, pages
    from annotation_app.live import LiveScales
    from annotation_app.scheduler import BalancedScheduler

    app = Flask(__name__)
    home = Path(os.environ.get("JODKIT_HOME", "jod-data"))
    app.config.update(
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # the session's own expiry bounds the token's life
    )
    if config is None or "DATABASE_URL" not in config:
        app.config.update(default_config(home))
    app.config.update(config or {})
    CSRFProtect(app)
    db.init_app(app)
    live = LiveScales(
        session_factory=app.extensions["jodkit_db_read"],
        bootstrap=int(app.config.get("LIVE_BOOTSTRAP", 100)),
    )
    app.extensions["jodkit_live"] = live
    app.extensions["jodkit_scheduler"] = BalancedScheduler(scores=live.scores)
    auth.init_app(app)
    for blueprint in (auth.bp, pages.bp, api.bp, media.bp, dashboard.bp):
        app.register_blueprint(blueprint)
    return app
