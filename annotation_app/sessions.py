"""An observer's sitting: plan ahead, serve, store answers exactly once, enforce breaks.

Pure database logic, no Flask: the JSON API and the load test's checks call it. Planning
takes a lock on the campaign row, so concurrent observers (threads or processes) see one
consistent design; answering locks the sitting's row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotation_app.campaigns import load_campaign_spec
from annotation_app.db import begin_write
from annotation_app.models import (
    Assignment,
    Campaign,
    ObserverSession,
    Trial,
    User,
    as_utc,
    utcnow,
)
from annotation_app.scheduler import Scheduler
from scaling.errors import InputError

LOOKAHEAD = 2
"""Trials handed to the page: the current one and the prefetched next one."""
PLAN_BATCH = 8
"""Trials planned per scheduler call. Larger batches mean fewer planning transactions;
smaller ones let coverage follow other observers' progress more closely (and leave fewer
pairs reserved by a sitting that is abandoned)."""
MAX_ACTIVE_MS_PER_TRIAL = 120_000
"""A trial left open longer than this counts as a pause, not as active viewing time."""


class AnswerConflict(InputError):
    """The answer cannot be taken as it stands (HTTP 409, not a malformed request)."""


class NotYours(InputError):
    """No such sitting or trial for this user, or no longer assigned (HTTP 404)."""


@dataclass
class Progress:
    """Where a session stands, as the trial page shows it."""

    answered: int
    planned: int
    finished: bool
    break_until: datetime | None
    campaign_status: str = "active"

    def as_json(self) -> dict:
        """JSON for the API (times as ISO-8601 UTC)."""
        until = self.break_until.isoformat() if self.break_until else None
        return {
            "answered": self.answered,
            "planned": self.planned,
            "finished": self.finished,
            "break_until": until,
            "campaign": self.campaign_status,
        }


@dataclass(frozen=True)
class Served:
    """A trial as the page gets it: which image is on which side, never its kind beyond
    training (gold and repeat stay hidden), never an image id."""

    id: int
    seq: int
    training: bool


def start_session(
    db: Session, user: User, campaign: Campaign, session_type: str, attribute: str
) -> ObserverSession:
    """Resume the user's unfinished session of this kind, or open a new one."""
    begin_write(db)
    spec = load_campaign_spec(campaign)
    if session_type not in spec.sessions:
        raise InputError(f"campaign has no {session_type!r} sessions", field="session_type")
    try:
        spec.attribute(attribute)
    except KeyError:
        raise InputError(f"campaign has no attribute {attribute!r}", field="attribute") from None
    status = db.scalar(select(Campaign.status).where(Campaign.id == campaign.id))
    if status != "active":
        raise AnswerConflict(f"campaign {campaign.name!r} is {status}", field="campaign")
    existing = db.scalar(
        select(ObserverSession).where(
            ObserverSession.user_id == user.id,
            ObserverSession.campaign_id == campaign.id,
            ObserverSession.session_type == session_type,
            ObserverSession.attribute == attribute,
            ObserverSession.finished_at.is_(None),
        )
    )
    if existing is not None:
        return existing
    # Training opens the observer's first sitting of a campaign only, not every sitting.
    earlier = db.scalar(
        select(func.count()).where(
            ObserverSession.user_id == user.id, ObserverSession.campaign_id == campaign.id
        )
    )
    training = 0 if earlier else spec.training_trials
    sess = ObserverSession(
        campaign_id=campaign.id,
        user_id=user.id,
        session_type=session_type,
        attribute=attribute,
        n_planned=spec.session.length + training,
        n_training=training,
        n_answered=0,
        active_ms=0.0,
    )
    db.add(sess)
    db.commit()
    return sess


def sitting(
    db: Session, session_id: int, user_id: int, lock: bool = False
) -> tuple[ObserverSession, str]:
    """The user's sitting and its campaign's status, in one read (``lock``: the row is
    locked for the rest of the transaction). NotYours when the sitting is someone else's
    or the user is no longer assigned to the campaign."""
    query = (
        select(ObserverSession, Campaign.status, Assignment.user_id)
        .join(Campaign, Campaign.id == ObserverSession.campaign_id)
        .outerjoin(
            Assignment,
            and_(
                Assignment.campaign_id == ObserverSession.campaign_id,
                Assignment.user_id == ObserverSession.user_id,
            ),
        )
        .where(ObserverSession.id == session_id, ObserverSession.user_id == user_id)
    )
    if lock:
        query = query.with_for_update(of=ObserverSession, key_share=True)
    row = db.execute(query).first()
    if row is None or row[2] is None:
        raise NotYours("no such session")
    return row[0], row[1]


def progress(sess: ObserverSession, campaign_status: str = "active") -> Progress:
    """Answered/planned counts and the break, if one is running (no query)."""
    until = as_utc(sess.break_until)
    if until is not None and until <= utcnow():
        until = None
    return Progress(
        sess.n_answered, sess.n_planned, sess.finished_at is not None, until, campaign_status
    )


def serve(
    db: Session, sess: ObserverSession, scheduler: Scheduler
) -> list[tuple[Served, int, int]]:
    """The trials to show next, at most LOOKAHEAD, as (trial, left image id, right image id),
    planning a batch when fewer remain, and marking them served.

    Usually one indexed read and one small write: trials are planned PLAN_BATCH at a time,
    in a write transaction under the campaign lock, only when fewer than LOOKAHEAD remain.
    The same trials come back after a reload or on another device: nothing is re-drawn.
    """
    pending = _pending(db, sess.id)
    if len(pending) < LOOKAHEAD and sess.finished_at is None:
        pending = _plan(db, sess, scheduler)
    fresh = [row.id for row in pending if row.served_at is None]
    if fresh:
        begin_write(db)
        db.execute(
            update(Trial)
            .where(Trial.id.in_(fresh), Trial.served_at.is_(None))
            .values(served_at=utcnow())
        )
    db.commit()
    out = []
    for row in pending:
        a_left = row.left_shown == "A"
        left, right = (
            (row.image_a_id, row.image_b_id) if a_left else (row.image_b_id, row.image_a_id)
        )
        out.append((Served(row.id, row.seq, row.kind == "training"), left, right))
    return out


def _plan(db: Session, sess: ObserverSession, scheduler: Scheduler) -> list:
    """Plan a batch under the campaign lock (a concurrent request may have done it)."""
    for _attempt in range(3):
        begin_write(db)
        campaign = db.scalar(
            select(Campaign).where(Campaign.id == sess.campaign_id).with_for_update()
        )
        pending = _pending(db, sess.id)  # re-read under the lock
        planned = db.scalar(select(func.count()).where(Trial.session_id == sess.id))
        todo = min(PLAN_BATCH, sess.n_planned - planned)
        if len(pending) >= LOOKAHEAD or todo <= 0:
            return pending
        try:
            scheduler.plan(db, sess, load_campaign_spec(campaign), planned, todo)
            db.flush()
        except IntegrityError:
            db.rollback()  # a concurrent request planned the same seq: re-read
            continue
        return _pending(db, sess.id)
    raise RuntimeError("could not plan trials after three attempts")


def _pending(db: Session, session_id: int) -> list:
    """The next unanswered trials of a sitting, as plain rows (not expired by commits)."""
    return list(
        db.execute(
            select(
                Trial.id,
                Trial.seq,
                Trial.kind,
                Trial.image_a_id,
                Trial.image_b_id,
                Trial.left_shown,
                Trial.served_at,
            )
            .where(Trial.session_id == session_id, Trial.answered_at.is_(None))
            .order_by(Trial.seq)
            .limit(LOOKAHEAD)
        )
    )


@dataclass
class Answer:
    """A validated answer from the trial page."""

    token: str
    choice: str  # "left", "right" or "tie"
    rt_ms: int
    zoom_count: int = 0
    flicker_count: int = 0


def parse_answer(payload: object) -> Answer:
    """Validate the JSON body of a submission; InputError names the bad field."""
    if not isinstance(payload, dict):
        raise InputError("expected a JSON object")
    token = payload.get("token")
    if not isinstance(token, str) or not 8 <= len(token) <= 64:
        raise InputError("token must be a string of 8-64 characters", field="token")
    choice = payload.get("choice")
    if choice not in ("left", "right", "tie"):
        raise InputError("choice must be 'left', 'right' or 'tie'", field="choice")
    values = {}
    for key, low, top in (
        ("rt_ms", 1, 3_600_000),
        ("zoom_count", 0, 100_000),
        ("flicker_count", 0, 100_000),
    ):
        value = payload.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{key} must be a number between {low} and {top}", field=key)
        if not low <= value <= top:
            raise InputError(f"{key} must be a number between {low} and {top}", field=key)
        values[key] = int(value)
    return Answer(token=token, choice=choice, **values)


def submit(db: Session, user_id: int, trial_id: int, answer: Answer) -> tuple[str, Progress]:
    """Store an answer once; returns ("stored" or "duplicate", the sitting's progress).

    The trial's row and then its sitting's row are locked, so answers of one sitting are
    taken one at a time on every database; the unique token makes a double click or a retry
    after a lost response harmless; a second, different answer to the same trial is
    refused, and so is an answer to a trial that was never sent to the browser.
    """
    begin_write(db)
    trial = db.execute(
        select(
            Trial.session_id,
            Trial.campaign_id,
            Trial.answer_token,
            Trial.served_at,
            Trial.left_shown,
        )
        .where(Trial.id == trial_id, Trial.user_id == user_id)
        .with_for_update(key_share=True)  # a concurrent retry waits here, then sees the token
    ).first()
    if trial is None:
        raise NotYours("no such trial")
    sess, status = sitting(db, trial.session_id, user_id, lock=True)
    if trial.answer_token is not None:
        if trial.answer_token == answer.token:
            db.rollback()
            return "duplicate", progress(sess, status)
        raise AnswerConflict("this trial was already answered", field="token")
    if status in ("closed", "archived"):
        raise AnswerConflict(f"the campaign is {status}: no more answers", field="campaign")
    if trial.served_at is None:
        raise AnswerConflict("this trial was never shown", field="trial")
    spec = load_campaign_spec(db.get(Campaign, trial.campaign_id))
    if answer.choice == "tie" and not spec.tie_allowed:
        raise InputError("this campaign does not allow ties", field="choice")
    now = utcnow()
    if as_utc(sess.break_until) and as_utc(sess.break_until) > now:
        raise InputError("the session is on a break", field="choice")
    chose_left = answer.choice == "left"
    try:
        stored = db.execute(
            update(Trial)
            .where(Trial.id == trial_id, Trial.answer_token.is_(None))
            .values(
                answer_token=answer.token,
                is_a_selected=None
                if answer.choice == "tie"
                else chose_left == (trial.left_shown == "A"),
                tie=answer.choice == "tie",
                rt_ms=answer.rt_ms,
                zoom_count=answer.zoom_count,
                flicker_count=answer.flicker_count,
                answered_at=now,
            )
        )
        if stored.rowcount != 1:  # cannot happen under the row lock; never count twice
            raise RuntimeError(f"trial {trial_id} changed under its lock")
        sess.n_answered += 1
        sess.active_ms += min(answer.rt_ms, MAX_ACTIVE_MS_PER_TRIAL)
        if sess.active_ms >= spec.session.break_after_minutes * 60_000:
            sess.active_ms = 0.0
            sess.break_until = now + timedelta(minutes=spec.session.break_minutes)
        if sess.n_answered >= sess.n_planned:
            sess.finished_at = now
        db.commit()
    except IntegrityError:
        db.rollback()
        raise AnswerConflict(
            "this token was already used for another trial", field="token"
        ) from None
    return "stored", progress(sess, status)
