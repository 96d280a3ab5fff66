"""Login and logout, role checks, and what guards them.

* Passwords are hashed by werkzeug (scrypt), outside any database transaction.
* The cookie carries a random login-session token, checked against ``login_sessions`` on
  every request: logout, disabling a user and a password reset end a session at once.
* The session cookie is cleared at login, so the CSRF token and everything else in it
  are new (no session fixation).
* Password guessing: Flask-Limiter counts failed logins per client address
  (``LOGIN_RATE_LIMIT``) and caps all logins together (``LOGIN_GLOBAL_RATE_LIMIT``: each
  costs a scrypt hash), and an account locks for ``LOCKOUT_MINUTES`` after
  ``LOCKOUT_AFTER`` failures in a row. An unknown user name costs the same hash as a wrong
  password, and every refusal gets the same message, so neither timing nor wording tells
  which user names exist.
* After login only paths of this app are followed (no open redirect).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from functools import cache, wraps
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from annotation_app import accounts
from annotation_app.db import get_db
from annotation_app.models import User, utcnow

bp = Blueprint("auth", __name__, url_prefix="/auth")
REFUSED = (
    "Login refused: unknown user name or wrong password (an account locks for a while "
    "after repeated failures)."
)
_SAFE_PATH = re.compile(r"/[A-Za-z0-9/_.~%-]*")


class LoginForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


@cache
def _unknown_user_hash() -> str:
    """A hash made like real ones, checked when the user name is unknown (same cost)."""
    return generate_password_hash("no such user: this hash only spends the same time")


def init_app(app: Flask) -> None:
    """Attach Flask-Login and the login rate limits."""
    manager = LoginManager(app)
    manager.login_view = "auth.login"
    manager.session_protection = None  # the server-side session is the protection

    @manager.user_loader
    def _load(token: str) -> User | None:
        return accounts.user_for_token(get_db(), token) if token else None

    @manager.unauthorized_handler
    def _unauthorized():
        if request.path.startswith("/api/"):
            return {"error": "login required"}, 401
        return redirect(url_for("auth.login", next=request.path))

    limiter = Limiter(get_remote_address, app=app)
    # Only the login form is limited: every other request skips the limiter's checks.
    limiter.request_filter(lambda: request.endpoint != "auth.login")
    view = app.view_functions["auth.login"]
    view = limiter.limit(
        lambda: app.config["LOGIN_RATE_LIMIT"],
        methods=["POST"],
        deduct_when=lambda response: response.status_code == 401,
    )(view)
    view = limiter.shared_limit(
        lambda: app.config["LOGIN_GLOBAL_RATE_LIMIT"],
        scope="all-logins",
        key_func=lambda: "all",
        methods=["POST"],
    )(view)
    app.view_functions["auth.login"] = view
    app.extensions["jodkit_limiter"] = limiter


def roles_required(*roles: str) -> Callable:
    """Allow only users whose role is one of ``roles`` (403 otherwise)."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def safe_next(target: str | None) -> str:
    """``target`` if it is a path of this app, else the home page.

    Browsers drop tabs and newlines and read ``\\`` as ``/``, so ``/\\t/evil.example``
    becomes ``//evil.example``: only plain path characters pass, no scheme, no host, no
    ``//``, and the path must be one of the app's GET routes.
    """
    home = url_for("pages.home")
    if not target or not _SAFE_PATH.fullmatch(target) or target.startswith("//"):
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return home
    try:
        current_app.url_map.bind("localhost").match(parts.path, method="GET")
    except HTTPException:  # not found, not a GET page, or a redirect: not a page to land on
        return home
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The login form; a refusal answers 401 with one message whatever the reason."""
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form), 400 if form.errors else 200
    db = get_db()
    row = db.execute(
        select(User.id, User.password_hash, User.disabled_at, User.locked_until).where(
            User.username == form.username.data
        )
    ).first()
    # End the read transaction before hashing: scrypt takes tens of milliseconds, and on
    # SQLite a write transaction would hold the lock all that time.
    db.rollback()
    stored = row.password_hash if row is not None else _unknown_user_hash()
    correct = check_password_hash(stored, form.password.data)
    if row is not None:
        config = current_app.config
        locked = accounts.is_locked(row.locked_until, utcnow())
        accounts.record_login(
            db,
            row.id,
            correct,
            lock_after=config["LOCKOUT_AFTER"],
            lock_for=timedelta(minutes=config["LOCKOUT_MINUTES"]),
        )
        if correct and not locked and row.disabled_at is None:
            lifetime = current_app.permanent_session_lifetime
            token = accounts.open_login_session(db, row.id, lifetime)
            user = accounts.user_for_token(db, token)
            session.clear()  # new CSRF token, nothing carried over from before the login
            session.permanent = True
            login_user(user)
            return redirect(safe_next(request.args.get("next")))
    flash(REFUSED)
    return render_template("auth/login.html", form=form), 401


@bp.post("/logout")
@login_required
def logout():
    """POST only, so the CSRF check covers it; the login session is revoked server-side."""
    accounts.revoke_token(get_db(), current_user.login_token)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))
