"""An observer's sitting: plan ahead, store answers exactly once, enforce breaks.

Pure database logic, no Flask: the JSON API and the load test's checks call it. Planning
takes a lock on the campaign row, so concurrent observers see one consistent design.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotation_app.campaigns import load_campaign_spec
from annotation_app.db import begin_write
from annotation_app.models import Campaign, ObserverSession, Trial, User, utcnow
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
    """The trial already holds a different answer (HTTP 409, not a malformed request)."""


@dataclass
class Progress:
    """Where a session stands, as the trial page shows it."""

    answered: int
    planned: int
    finished: bool
    break_until: datetime | None

    def as_json(self) -> dict:
        """JSON for the API (times as ISO-8601 UTC)."""
        until = self.break_until.isoformat() if self.break_until else None
        return {
            "answered": self.answered,
            "planned": self.planned,
            "finished": self.finished,
            "break_until": until,
        }


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; we store UTC everywhere."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


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
        active_ms=0.0,
    )
    db.add(sess)
    db.commit()
    return sess


def progress(db: Session, sess: ObserverSession) -> Progress:
    """Answered/planned counts and the break, if one is running."""
    answered = db.scalar(
        select(func.count()).where(Trial.session_id == sess.id, Trial.answered_at.is_not(None))
    )
    until = _aware(sess.break_until)
    if until is not None and until <= utcnow():
        until = None
    return Progress(answered, sess.n_planned, sess.finished_at is not None, until)


def pending_trials(db: Session, sess: ObserverSession, scheduler: Scheduler) -> list[Trial]:
    """The unanswered trials to show next (at most LOOKAHEAD), planning a batch if needed.

    Usually one indexed read in a read-only transaction: trials are planned PLAN_BATCH at
    a time, in a write transaction under the campaign lock, only when fewer than LOOKAHEAD
    remain. The same trials come back after a reload
    or on another device: nothing is re-drawn.
    """
    pending = _pending(db, sess)
    if len(pending) >= LOOKAHEAD:
        db.commit()
        return pending
    for _attempt in range(3):
        begin_write(db)
        campaign = db.scalar(
            select(Campaign).where(Campaign.id == sess.campaign_id).with_for_update()
        )
        pending = _pending(db, sess)  # re-read under the lock
        planned = db.scalar(select(func.count()).where(Trial.session_id == sess.id))
        todo = min(PLAN_BATCH, sess.n_planned - planned)
        if len(pending) >= LOOKAHEAD or todo <= 0:
            db.commit()
            return pending
        try:
            scheduler.plan(db, sess, load_campaign_spec(campaign), planned, todo)
            db.commit()
        except IntegrityError:
            db.rollback()  # a concurrent request planned the same seq: re-read
            continue
        return _pending(db, sess)
    raise RuntimeError("could not plan trials after three attempts")


def _pending(db: Session, sess: ObserverSession) -> list[Trial]:
    return list(
        db.scalars(
            select(Trial)
            .where(Trial.session_id == sess.id, Trial.answered_at.is_(None))
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
    for key, top in (("rt_ms", 3_600_000), ("zoom_count", 100_000), ("flicker_count", 100_000)):
        value = payload.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= top:
            raise InputError(f"{key} must be a number between 0 and {top}", field=key)
        values[key] = int(value)
    return Answer(token=token, choice=choice, **values)


def submit(db: Session, trial: Trial, answer: Answer) -> str:
    """Store an answer once; returns "stored", or "duplicate" for a retried submission.

    The conditional UPDATE and the unique token make a double click or a retry after a
    lost response harmless; a second, different answer to the same trial is refused.
    """
    begin_write(db)
    spec = load_campaign_spec(db.get(Campaign, trial.campaign_id))
    if answer.choice == "tie" and not spec.tie_allowed:
        raise InputError("this campaign does not allow ties", field="choice")
    sess = db.get(ObserverSession, trial.session_id)
    if _aware(sess.break_until) and _aware(sess.break_until) > utcnow():
        raise InputError("the session is on a break", field="choice")
    now = utcnow()
    try:
        result = _store(db, trial, answer, now)
    except IntegrityError:
        db.rollback()
        raise AnswerConflict(
            "this token was already used for another trial", field="token"
        ) from None
    if result == 0:
        db.rollback()
        stored = db.scalar(select(Trial.answer_token).where(Trial.id == trial.id))
        if stored == answer.token:
            return "duplicate"
        raise AnswerConflict("this trial was already answered", field="token")
    sess.active_ms += min(answer.rt_ms, MAX_ACTIVE_MS_PER_TRIAL)
    if sess.active_ms >= spec.session.break_after_minutes * 60_000:
        sess.active_ms = 0.0
        sess.break_until = now + timedelta(minutes=spec.session.break_minutes)
    answered = db.scalar(
        select(func.count()).where(Trial.session_id == sess.id, Trial.answered_at.is_not(None))
    )
    if answered >= sess.n_planned:
        sess.finished_at = now
    db.commit()
    return "stored"


def _store(db: Session, trial: Trial, answer: Answer, now: datetime) -> int:
    """The conditional UPDATE; returns the number of rows it changed (0 or 1)."""
    chose_left = answer.choice == "left"
    result = db.execute(
        update(Trial)
        .where(Trial.id == trial.id, Trial.answer_token.is_(None))
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
    return result.rowcount
