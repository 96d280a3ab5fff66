"""An observer's sitting: plan ahead, serve, store answers exactly once, enforce breaks.

Pure database logic, no Flask: the JSON API and the load test's checks call it. Planning
takes a lock on the campaign row, so concurrent observers (threads or processes) see one
consistent design; answering locks the sitting's row.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, func, select, update
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
from annotation_app.spec import CampaignSpec
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


@dataclass
class Sitting:
    """A sitting as the trial path needs it, with its campaign's status and spec hash,
    read in one query (plain values: nothing is lazily loaded or expired by a commit)."""

    id: int
    campaign_id: int
    user_id: int
    session_type: str
    attribute: str
    n_planned: int
    n_training: int
    n_answered: int
    active_ms: float
    break_until: datetime | None
    finished_at: datetime | None
    campaign_status: str
    spec_hash: str


_SITTING_COLUMNS = (
    ObserverSession.id,
    ObserverSession.campaign_id,
    ObserverSession.user_id,
    ObserverSession.session_type,
    ObserverSession.attribute,
    ObserverSession.n_planned,
    ObserverSession.n_training,
    ObserverSession.n_answered,
    ObserverSession.active_ms,
    ObserverSession.break_until,
    ObserverSession.finished_at,
    Campaign.status,
    Campaign.spec_hash,
)
_ASSIGNED = and_(
    Assignment.campaign_id == ObserverSession.campaign_id,
    Assignment.user_id == ObserverSession.user_id,
)
# Statements built once and run on the session's connection (Core, not the ORM): on the
# trial path, building expressions and ORM bookkeeping cost more than the queries.
_SITTING = (
    select(*_SITTING_COLUMNS)
    .join(Campaign, Campaign.id == ObserverSession.campaign_id)
    .join(Assignment, _ASSIGNED)
    .where(ObserverSession.id == bindparam("sid"), ObserverSession.user_id == bindparam("uid"))
)
_SITTING_BY_ID = (
    select(*_SITTING_COLUMNS)
    .join(Campaign, Campaign.id == ObserverSession.campaign_id)
    .where(ObserverSession.id == bindparam("sid"))
)
_ANSWERING = (
    select(Trial.answer_token, Trial.served_at, Trial.left_shown, *_SITTING_COLUMNS)
    .join(ObserverSession, ObserverSession.id == Trial.session_id)
    .join(Campaign, Campaign.id == ObserverSession.campaign_id)
    .join(Assignment, _ASSIGNED)
    .where(Trial.id == bindparam("tid"), Trial.user_id == bindparam("uid"))
    # the trial and its sitting locked: a concurrent retry waits here, then sees the token
    .with_for_update(of=[Trial.__table__, ObserverSession.__table__], key_share=True)
)
_WINDOW = (
    select(Trial.id)
    .where(Trial.session_id == bindparam("sid"), Trial.answered_at.is_(None))
    .order_by(Trial.seq)
    .limit(LOOKAHEAD)
)
_SHOWN = (
    select(
        Trial.id,
        Trial.seq,
        Trial.kind,
        Trial.image_a_id,
        Trial.image_b_id,
        Trial.left_shown,
        Trial.served_at,
    )
    .where(Trial.session_id == bindparam("sid"), Trial.answered_at.is_(None))
    .order_by(Trial.seq)
    .limit(LOOKAHEAD)
)
_SERVE = (
    update(Trial)
    .where(Trial.id.in_(_WINDOW.scalar_subquery()))
    .values(served_at=func.coalesce(Trial.served_at, bindparam("now")))
    .returning(
        Trial.id, Trial.seq, Trial.kind, Trial.image_a_id, Trial.image_b_id, Trial.left_shown
    )
)
_STORE = (
    update(Trial)
    .where(Trial.id == bindparam("tid"), Trial.answer_token.is_(None))
    .values(
        answer_token=bindparam("token"),
        is_a_selected=bindparam("a_selected"),
        tie=bindparam("tie"),
        rt_ms=bindparam("rt_ms"),
        zoom_count=bindparam("zooms"),
        flicker_count=bindparam("flickers"),
        answered_at=bindparam("now"),
    )
)
_COUNT = (
    update(ObserverSession)
    .where(ObserverSession.id == bindparam("sid"))
    .values(
        n_answered=bindparam("answered"),
        active_ms=bindparam("active"),
        break_until=bindparam("until"),
        finished_at=bindparam("finished"),
    )
)


def sitting(db: Session, session_id: int, user_id: int) -> Sitting:
    """The user's sitting, its campaign's status and spec hash, in one read. NotYours when
    the sitting is someone else's or the user is no longer assigned to the campaign."""
    row = db.connection().execute(_SITTING, {"sid": session_id, "uid": user_id}).first()
    if row is None:
        raise NotYours("no such session")
    return Sitting(*row)


_SPECS: dict[str, CampaignSpec] = {}


def spec_of(db: Session, sitting: Sitting) -> CampaignSpec:
    """The sitting's frozen campaign spec, parsed once per process (keyed by its hash)."""
    spec = _SPECS.get(sitting.spec_hash)
    if spec is None:
        campaign = db.get(Campaign, sitting.campaign_id)
        spec = _SPECS.setdefault(sitting.spec_hash, load_campaign_spec(campaign))
    return spec


def progress(sess: ObserverSession | Sitting, campaign_status: str = "active") -> Progress:
    """Answered/planned counts and the break, if one is running (no query)."""
    until = as_utc(sess.break_until)
    if until is not None and until <= utcnow():
        until = None
    return Progress(
        sess.n_answered, sess.n_planned, sess.finished_at is not None, until, campaign_status
    )


def serve(db: Session, sess: Sitting, planner: Planner) -> list[tuple[Served, int, int]]:
    """The trials to show next, at most LOOKAHEAD, as (trial, left image id, right image id),
    marked served (the first time), planning a batch when fewer remain; commits.

    A reload only reads; otherwise one UPDATE of the window that returns it. Trials are planned
    PLAN_BATCH at a time, under the campaign lock, only when fewer than LOOKAHEAD remain.
    The same trials come back after a reload or on another device: nothing is re-drawn.
    """
    window = db.connection().execute(_SHOWN, {"sid": sess.id}).all()
    if len(window) == LOOKAHEAD and all(row.served_at is not None for row in window):
        db.commit()  # a reload: nothing to write, and on SQLite no wait for the write lock
        return _as_served(window) if _serving(sess) else []
    begin_write(db)
    served = _serve(db, sess, planner)
    db.commit()
    return served


def _serving(sess: Sitting) -> bool:
    """Whether the sitting gets pairs now (not finished, campaign active, no break)."""
    if sess.finished_at is not None or sess.campaign_status != "active":
        return False
    until = as_utc(sess.break_until)
    return until is None or until <= utcnow()


def _as_served(window: list) -> list[tuple[Served, int, int]]:
    out = []
    for row in sorted(window, key=lambda r: r.seq):
        a_left = row.left_shown == "A"
        left, right = (
            (row.image_a_id, row.image_b_id) if a_left else (row.image_b_id, row.image_a_id)
        )
        out.append((Served(row.id, row.seq, row.kind == "training"), left, right))
    return out


def _serve(
    db: Session, sess: Sitting, planner: Planner, plan: bool = True
) -> list[tuple[Served, int, int]]:
    """``serve`` inside the caller's write transaction. Half-way through a batch the next
    one is planned in the background; here (``plan``) only when the page would otherwise
    wait (a sitting's first pairs, or the background planner behind)."""
    if not _serving(sess):
        return []
    window = db.connection().execute(_SERVE, {"sid": sess.id, "now": utcnow()}).all()
    if plan and len(window) < LOOKAHEAD and plan_ahead(db, sess, planner.scheduler, LOOKAHEAD):
        window = db.connection().execute(_SERVE, {"sid": sess.id, "now": utcnow()}).all()
    if any(row.seq % PLAN_BATCH == PLAN_BATCH // 2 for row in window):
        planner.request(sess.id)
    return _as_served(window)


def plan_ahead(db: Session, sess: Sitting, scheduler: Scheduler, keep: int) -> bool:
    """Plan a batch under the campaign lock when fewer than ``keep`` trials of the sitting
    are unanswered (a concurrent request or the background planner may have done it);
    whether any trial is left to serve."""
    for attempt in range(4):
        if attempt:  # counted once without the lock: most calls find enough and stop here
            db.execute(select(Campaign.id).where(Campaign.id == sess.campaign_id).with_for_update())
        unanswered = db.scalar(
            select(func.count()).where(Trial.session_id == sess.id, Trial.answered_at.is_(None))
        )
        planned = db.scalar(select(func.count()).where(Trial.session_id == sess.id))
        todo = min(PLAN_BATCH, sess.n_planned - planned)
        if unanswered >= keep or todo <= 0:
            return unanswered > 0
        if not attempt:
            continue  # take the lock, then count again
        try:
            with db.begin_nested():
                scheduler.plan(db, sess, spec_of(db, sess), planned, todo)
        except IntegrityError:
            continue  # a concurrent request planned the same seq: count again
        return True
    raise RuntimeError("could not plan trials after three attempts")


class Planner:
    """Plans sittings' next batches in one background thread per process, so that an
    answer rarely waits for the scheduler: the page's next pairs are already planned.

    ``request`` queues a sitting (once); the thread plans its next batch under the
    campaign lock, as a request would (``plan_ahead``). A batch-based scheduler (active
    sampling) plugs in as ``scheduler``; its own background work stays off the trial path.
    """

    def __init__(self, session_factory: Callable[[], Session], scheduler: Scheduler) -> None:
        self.session_factory = session_factory
        self.scheduler = scheduler
        self._queue: queue.Queue[int] = queue.Queue()
        self._queued: set[int] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def request(self, session_id: int) -> None:
        with self._lock:
            if session_id in self._queued:
                return
            self._queued.add(session_id)
            if self._thread is None or not self._thread.is_alive():  # started after a fork
                self._thread = threading.Thread(target=self._run, daemon=True)
                self._thread.start()
        self._queue.put(session_id)

    def _run(self) -> None:
        while True:
            session_id = self._queue.get()
            with self._lock:
                self._queued.discard(session_id)
            try:
                self.plan_now(session_id)
            except Exception:  # the page plans for itself when this fails: log, go on
                logging.getLogger(__name__).exception("background planning failed")

    def plan_now(self, session_id: int) -> None:
        """Plan the sitting's next batch if fewer than a batch are unanswered."""
        with self.session_factory() as db:
            begin_write(db)
            row = db.connection().execute(_SITTING_BY_ID, {"sid": session_id}).first()
            if row is not None and _serving(Sitting(*row)):
                plan_ahead(db, Sitting(*row), self.scheduler, PLAN_BATCH)
            db.commit()


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


@dataclass
class Submitted:
    """What an answer request gets back: whether it was stored now or before, the
    sitting's progress, and the trials to show next (served in the same transaction)."""

    status: str
    progress: Progress
    served: list[tuple[Served, int, int]]


def submit(db: Session, user_id: int, trial_id: int, answer: Answer, planner: Planner) -> Submitted:
    """Store an answer once and serve the next trials, in one transaction.

    The trial's row and its sitting's row are locked first, so answers of one sitting are
    taken one at a time on every database; the unique token makes a double click or a
    retry after a lost response harmless (the retry gets the next trials too); a second,
    different answer to the same trial is refused, and so is an answer to a trial that was
    never sent to the browser. Returning the next trials saves the page a round trip per
    judgment.
    """
    begin_write(db)
    row = db.connection().execute(_ANSWERING, {"tid": trial_id, "uid": user_id}).first()
    if row is None:
        raise NotYours("no such trial")
    token, served_at, left_shown = row[:3]
    sess = Sitting(*row[3:])
    if token is not None:
        if token == answer.token:
            db.commit()  # the locks go before anything is planned (see below)
            return Submitted(
                "duplicate", progress(sess, sess.campaign_status), serve(db, sess, planner)
            )
        raise AnswerConflict("this trial was already answered", field="token")
    if sess.campaign_status in ("closed", "archived"):
        raise AnswerConflict(
            f"the campaign is {sess.campaign_status}: no more answers", field="campaign"
        )
    if served_at is None:
        raise AnswerConflict("this trial was never shown", field="trial")
    spec = spec_of(db, sess)
    if answer.choice == "tie" and not spec.tie_allowed:
        raise InputError("this campaign does not allow ties", field="choice")
    now = utcnow()
    if as_utc(sess.break_until) and as_utc(sess.break_until) > now:
        raise InputError("the session is on a break", field="choice")
    sess.n_answered += 1
    sess.active_ms += min(answer.rt_ms, MAX_ACTIVE_MS_PER_TRIAL)
    if sess.active_ms >= spec.session.break_after_minutes * 60_000:
        sess.active_ms = 0.0
        sess.break_until = now + timedelta(minutes=spec.session.break_minutes)
    if sess.n_answered >= sess.n_planned:
        sess.finished_at = now
    tie = answer.choice == "tie"
    try:
        stored = db.connection().execute(
            _STORE,
            {
                "tid": trial_id,
                "token": answer.token,
                "a_selected": None if tie else (answer.choice == "left") == (left_shown == "A"),
                "tie": tie,
                "rt_ms": answer.rt_ms,
                "zooms": answer.zoom_count,
                "flickers": answer.flicker_count,
                "now": now,
            },
        )
        if stored.rowcount != 1:  # cannot happen under the row lock; never count twice
            raise RuntimeError(f"trial {trial_id} changed under its lock")
        db.connection().execute(
            _COUNT,
            {
                "sid": sess.id,
                "answered": sess.n_answered,
                "active": sess.active_ms,
                "until": sess.break_until,
                "finished": sess.finished_at,
            },
        )
        served = _serve(db, sess, planner, plan=False)
        db.commit()
    except IntegrityError:
        db.rollback()
        raise AnswerConflict(
            "this token was already used for another trial", field="token"
        ) from None
    if len(served) < LOOKAHEAD:
        # Planning takes the campaign lock: never while this transaction held the trial's
        # row (a planner holding the campaign lock may need that row for a repeat's key).
        served = serve(db, sess, planner)
    return Submitted("stored", progress(sess, sess.campaign_status), served)
