"""Accounts and access: login/logout, role checks, session expiry.

Passwords are hashed by werkzeug (scrypt); Flask-Login keeps the user in a signed session
cookie that expires after ``PERMANENT_SESSION_LIFETIME``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from annotation_app.db import get_db
from annotation_app.models import ROLES, User
from scaling.errors import InputError

bp = Blueprint("auth", __name__, url_prefix="/auth")


class LoginForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


def init_app(app: Flask) -> None:
    """Attach Flask-Login; unauthenticated page requests go to the login form."""
    manager = LoginManager(app)
    manager.login_view = "auth.login"

    @manager.user_loader
    def _load(user_id: str) -> User | None:
        return get_db().get(User, int(user_id))

    @manager.unauthorized_handler
    def _unauthorized():
        if request.path.startswith("/api/"):
            return {"error": "login required"}, 401
        return redirect(url_for("auth.login", next=request.path))


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


def add_user(db: Session, username: str, password: str, role: str) -> User:
    """Create an account after validating every field (nothing stored on error)."""
    if role not in ROLES:
        raise InputError(f"role must be one of {ROLES}", field="role")
    if (
        not username
        or len(username) > 80
        or not username.replace("_", "").replace("-", "").isalnum()
    ):
        raise InputError("user name: 1-80 letters, digits, '-' or '_'", field="username")
    if len(password) < 8:
        raise InputError("password must have at least 8 characters", field="password")
    if db.scalar(select(User).where(User.username == username)) is not None:
        raise InputError(f"user {username!r} already exists", field="username")
    user = User(username=username, role=role)
    user.set_password(password)
    db.add(user)
    db.commit()
    return user


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The login form; the session cookie expires after the configured lifetime."""
    form = LoginForm()
    if form.validate_on_submit():
        db = get_db()
        user = db.scalar(select(User).where(User.username == form.username.data))
        # End the read transaction before hashing: scrypt takes tens of milliseconds, and on
        # SQLite every transaction holds the write lock (BEGIN IMMEDIATE), so hashing inside
        # it serialised all other requests behind each login.
        db.rollback()
        if user is not None and user.check_password(form.password.data):
            session.permanent = True
            login_user(user)
            target = request.args.get("next", "")
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("pages.home")
            return redirect(target)
        flash("Unknown user name or wrong password.")
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@login_required
def logout():
    """POST only, so the CSRF check covers it."""
    logout_user()
    return redirect(url_for("auth.login"))
