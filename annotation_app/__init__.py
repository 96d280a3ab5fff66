"""The annotation app: experts judge pairs in a browser; every judgment is kept once.

``create_app`` is the factory (Flask tutorial style): configuration in, app out, nothing
global. The database is migrated to Alembic's head on start.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from flask import Flask, request
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "img-src": "'self'",
    "style-src": "'self'",
    "script-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
DEFAULTS = {
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=8),
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    # The cookie is signed again only when it changes: its expiry is fixed at login, like
    # the login session's own (PERMANENT_SESSION_LIFETIME).
    "SESSION_REFRESH_EACH_REQUEST": False,
    # True behind HTTPS: cookies get Secure, plain HTTP is redirected, HSTS is sent.
    "SECURE_COOKIES": False,
    # Reverse proxies in front of the app whose X-Forwarded-* headers are trusted (the
    # client address that the login limits count per comes from them).
    "PROXY_COUNT": 0,
    "WTF_CSRF_TIME_LIMIT": None,  # the session's own expiry bounds the token's life
    # A spec upload is the largest body the app takes; answers are capped far lower.
    "MAX_CONTENT_LENGTH": 1 << 20,
    # Failed logins per client address, and all logins together (each costs a scrypt
    # hash, about 0.1 s of CPU), in Flask-Limiter's syntax.
    "LOGIN_RATE_LIMIT": "10 per minute;50 per hour",
    "LOGIN_GLOBAL_RATE_LIMIT": "5 per second",
    # Per process; with several worker processes use a shared store (e.g. redis://).
    "RATELIMIT_STORAGE_URI": "memory://",
    "RATELIMIT_HEADERS_ENABLED": True,
    "LOCKOUT_AFTER": 10,
    "LOCKOUT_MINUTES": 15,
    # Server folder under which the admin page may take campaign images (None: nowhere).
    "IMPORT_ROOT": None,
    "LIVE_BOOTSTRAP": 100,
    # Plan active-sampling batches in a background thread (False: only on refresh()).
    "ACTIVE_BACKGROUND": True,
}


def private_file(path: Path, content: str | None = None) -> None:
    """Create ``path`` readable by its owner only (or tighten an existing file to 0600)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(content or "")
    path.chmod(0o600)


DATABASE_FILE = "jodkit.sqlite"
"""The SQLite database in a data folder (``--home``)."""


def default_config(home: Path) -> dict:
    """Settings for a data folder ``home`` (SQLite database, image store, crop cache).

    The folder, the secret key and the SQLite database are private to their owner (0700,
    0600); SQLite gives its -wal and -shm files the database's permissions.
    """
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    home.chmod(0o700)
    key_file = home / "secret_key"
    private_file(key_file, secrets.token_hex(32) if not key_file.exists() else None)
    database = (home / DATABASE_FILE).resolve()
    private_file(database)
    return {
        "SECRET_KEY": key_file.read_text().strip(),
        "DATABASE_URL": f"sqlite:///{database}",
        "IMAGE_STORE": str((home / "images").resolve()),
        "CACHE_DIR": str((home / "cache").resolve()),
    }


def create_app(config: dict | None = None) -> Flask:
    """Build the app; ``config`` overrides the defaults (tests pass a throw-away DB)."""
    from annotation_app import admin, api, auth, dashboard, db, media, pages
    from annotation_app.active import ActivePlanner
    from annotation_app.live import LiveScales
    from annotation_app.scheduler import BalancedScheduler
    from annotation_app.sessions import Planner

    app = Flask(__name__)
    app.config.update(DEFAULTS)
    if config is None or "DATABASE_URL" not in config:
        app.config.update(default_config(Path(os.environ.get("JODKIT_HOME", "jod-data"))))
    app.config.update(config or {})
    secure = bool(app.config["SECURE_COOKIES"])
    app.config["SESSION_COOKIE_SECURE"] = secure
    if app.config["PROXY_COUNT"]:
        n = int(app.config["PROXY_COUNT"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    CSRFProtect(app)
    Talisman(
        app,
        force_https=secure,
        strict_transport_security=secure,
        session_cookie_secure=secure,
        frame_options="DENY",
        content_security_policy=CONTENT_SECURITY_POLICY,
        content_security_policy_nonce_in=["style-src"],  # the dashboard's colour scale
        referrer_policy="same-origin",
    )
    db.init_app(app)
    live = LiveScales(
        session_factory=app.extensions["jodkit_db_read"],
        bootstrap=int(app.config["LIVE_BOOTSTRAP"]),
    )
    app.extensions["jodkit_live"] = live
    active = ActivePlanner(
        reader=app.extensions["jodkit_db_read"],
        writer=app.extensions["jodkit_db"],
        scores=live.scores,
        background=bool(app.config["ACTIVE_BACKGROUND"]),
    )
    app.extensions["jodkit_active"] = active
    scheduler = BalancedScheduler(scores=live.scores, active=active)
    app.extensions["jodkit_scheduler"] = scheduler
    app.extensions["jodkit_planner"] = Planner(app.extensions["jodkit_db"], scheduler)
    for blueprint in (auth.bp, pages.bp, api.bp, media.bp, dashboard.bp, admin.bp):
        app.register_blueprint(blueprint)
    auth.init_app(app)

    @app.errorhandler(HTTPException)
    def _json_errors_for_the_api(err: HTTPException):
        # The trial page reads JSON; a 413 or 429 as an HTML page would look like a crash.
        if request.path.startswith("/api/"):
            return {"error": err.description, "status": err.code}, err.code
        return err

    return app
