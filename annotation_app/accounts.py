"""Accounts and who may judge what: users, passwords, server-side login sessions, lockout
and campaign assignments. Pure database logic: the admin page, the CLI and login share it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_login import UserMixin
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from annotation_app.db import begin_write
from annotation_app.models import (
    ROLES,
    Assignment,
    Campaign,
    LoginSession,
    User,
    as_utc,
    utcnow,
)
from scaling.errors import InputError

MIN_PASSWORD = 8


def _check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InputError(f"password must have at least {MIN_PASSWORD} characters", field="password")
    if len(password) > 200:
        raise InputError("password must have at most 200 characters", field="password")


def add_user(db: Session, username: str, password: str, role: str) -> User:
    """Create an account after validating every field (nothing stored on error)."""
    if role not in ROLES:
        raise InputError(f"role must be one of {ROLES}", field="role")
    if (
        not username
        or len(username) > 80
        or not username.replace("_", "").replace("-", "").isalnum()
        or not username.isascii()
    ):
        raise InputError("user name: 1-80 letters, digits, '-' or '_'", field="username")
    _check_password_rules(password)
    begin_write(db)
    if db.scalar(select(User).where(User.username == username)) is not None:
        raise InputError(f"user {username!r} already exists", field="username")
    user = User(username=username, role=role)
    user.set_password(password)
    db.add(user)
    db.commit()
    return user


def get_user(db: Session, username: str) -> User:
    """The user called ``username``; InputError naming the field otherwise."""
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        raise InputError(f"no user named {username!r}", field="username")
    return user


def set_password(db: Session, username: str, password: str) -> None:
    """Reset a password: ends every login session of the user and lifts a lockout."""
    _check_password_rules(password)
    begin_write(db)
    user = get_user(db, username)
    user.set_password(password)
    user.failed_logins = 0
    user.locked_until = None
    revoke_sessions(db, user.id)
    db.commit()


def set_disabled(db: Session, username: str, disabled: bool = True) -> None:
    """Disable (ending every login session at once) or re-enable an account."""
    begin_write(db)
    user = get_user(db, username)
    user.disabled_at = utcnow() if disabled else None
    if disabled:
        revoke_sessions(db, user.id)
    db.commit()


def list_users(db: Session) -> list[tuple[User, list[tuple[int, str]]]]:
    """Every user with the (id, name) of the campaigns assigned to them."""
    users = list(db.scalars(select(User).order_by(User.username)))
    pairs = db.execute(
        select(Assignment.user_id, Campaign.id, Campaign.name)
        .join(Campaign, Campaign.id == Assignment.campaign_id)
        .order_by(Campaign.name)
    ).all()
    names: dict[int, list[tuple[int, str]]] = {}
    for user_id, campaign_id, name in pairs:
        names.setdefault(user_id, []).append((campaign_id, name))
    return [(u, names.get(u.id, [])) for u in users]


# ---- login sessions ---------------------------------------------------------------------


def token_digest(token: str) -> str:
    """What the table keeps of a login token."""
    return hashlib.sha256(token.encode()).hexdigest()


def open_login_session(db: Session, user_id: int, lifetime: timedelta) -> str:
    """Record a new login; returns the random token the cookie will carry."""
    token = secrets.token_urlsafe(32)
    begin_write(db)
    now = utcnow()
    db.add(
        LoginSession(
            token_sha256=token_digest(token),
            user_id=user_id,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    db.commit()
    return token


@dataclass(frozen=True)
class Identity(UserMixin):
    """Who a request comes from: what pages and checks need, read in one indexed query
    (not a full ORM User: this runs on every request)."""

    id: int
    username: str
    role: str
    login_token: str

    def get_id(self) -> str:
        return self.login_token


_IDENTITY = (
    select(User.id, User.username, User.role)
    .join(LoginSession, LoginSession.user_id == User.id)
    .where(
        LoginSession.token_sha256 == bindparam("digest"),
        LoginSession.revoked_at.is_(None),
        LoginSession.expires_at > bindparam("now"),
        User.disabled_at.is_(None),
    )
)


def user_for_token(db: Session, token: str) -> Identity | None:
    """The enabled user of a live (not revoked, not expired) login session, or None."""
    row = (
        db.connection().execute(_IDENTITY, {"digest": token_digest(token), "now": utcnow()}).first()
    )
    return None if row is None else Identity(row.id, row.username, row.role, token)


def revoke_token(db: Session, token: str) -> None:
    """End one login session (logout)."""
    begin_write(db)
    db.execute(
        update(LoginSession)
        .where(LoginSession.token_sha256 == token_digest(token))
        .values(revoked_at=utcnow())
    )
    db.commit()


def revoke_sessions(db: Session, user_id: int) -> None:
    """End every login session of a user (in the caller's transaction)."""
    db.execute(
        update(LoginSession)
        .where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


# ---- lockout ----------------------------------------------------------------------------


def is_locked(locked_until: datetime | None, now: datetime) -> bool:
    """Whether a lockout is running."""
    return locked_until is not None and as_utc(locked_until) > now


def record_login(
    db: Session, user_id: int, success: bool, lock_after: int, lock_for: timedelta
) -> None:
    """Count a failed password (locking the account after ``lock_after`` in a row) or
    reset the count after a success. Attempts during a lockout change nothing."""
    begin_write(db)
    user = db.scalar(select(User).where(User.id == user_id).with_for_update())
    now = utcnow()
    if is_locked(user.locked_until, now):
        db.rollback()
        return
    if success:
        user.failed_logins, user.locked_until = 0, None
    else:
        user.failed_logins += 1
        if user.failed_logins >= lock_after:
            user.failed_logins, user.locked_until = 0, now + lock_for
    db.commit()


# ---- assignments ------------------------------------------------------------------------


def assign(db: Session, username: str, campaign_name: str, assigned: bool = True) -> bool:
    """Let a user judge a campaign (or stop them); returns whether anything changed."""
    begin_write(db)
    user = get_user(db, username)
    campaign = db.scalar(select(Campaign).where(Campaign.name == campaign_name))
    if campaign is None:
        raise InputError(f"no campaign named {campaign_name!r}", field="campaign")
    exists = db.get(Assignment, (campaign.id, user.id)) is not None
    if assigned and not exists:
        db.add(Assignment(campaign_id=campaign.id, user_id=user.id))
    elif not assigned and exists:
        db.execute(
            delete(Assignment).where(
                Assignment.campaign_id == campaign.id, Assignment.user_id == user.id
            )
        )
    db.commit()
    return assigned != exists


def is_assigned(db: Session, user_id: int, campaign_id: int) -> bool:
    """Whether the user may judge the campaign."""
    return db.get(Assignment, (campaign_id, user_id)) is not None
