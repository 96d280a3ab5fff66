"""Active sampling in the app: each group's next batch of pairs, planned in the background.

With ``sampling: active`` in the spec, the normal trials of a campaign come from batches
planned by :mod:`scaling.select`: per scene and attribute for per-scene sessions, per
attribute for cross-content sessions (the cross-scene pairs that pin each scene's alignment
line, among the images spread along each scene's range). Each batch is one spanning tree of
the most informative pairs, computed from every answer so far, with the pairs handed out
but not answered yet counted as expected information.

* The plan lives in the database: one ``ActivePair`` row per planned pair, handed out once.
  The scheduler takes the best untaken row of the observer's attribute while it holds the
  campaign lock (every planning transaction does), so concurrent observers, in threads or
  processes, never receive a planned pair more often than the plan says; golden, repeated
  and training trials, the left/right balance and the per-observer cap are the scheduler's
  as before.
* ``ActivePlanner`` recomputes a group's batch in a background thread once
  ``active.replan_after`` of it has been handed out or as many new answers have arrived:
  never in a request. A next-pair request reads at most ``TAKE_WINDOW`` rows, whatever the
  number of conditions; when a group has no untaken pair (before its first batch, or between
  batches) the scheduler falls back to the balanced design.
* The new batch replaces the untaken rows of the old one in one transaction under the
  campaign lock, only if no other process replaced it meanwhile (its ``batch_no``).
* Each group's status (interval width now, judgments predicted to reach
  ``active.target_width``, done) is stored with its batch for the dashboard.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from random import Random

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from annotation_app.campaigns import load_campaign_spec
from annotation_app.db import begin_write
from annotation_app.models import (
    ActiveGroup,
    ActivePair,
    Campaign,
    Image,
    ObserverSession,
    Trial,
    as_utc,
    utcnow,
)
from annotation_app.scheduler import Img, ScoreLookup, spread_along_range
from annotation_app.spec import CampaignSpec

REFRESH_S = 5.0
"""The planner looks at the campaigns it has seen at least this often (seconds)."""
TAKE_WINDOW = 64
"""Untaken rows, best ranks first, that one trial chooses among (scene interleaving and the
observer's cap pick within them)."""
PENDING_FOR = timedelta(minutes=30)
"""A trial handed out but not answered counts as on its way for this long."""
CROSS = ""
"""The ``scene`` key of a cross-content group."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupKey:
    """A planned group: a scene and attribute, or an attribute of cross-content sessions."""

    session_type: str
    attribute: str
    scene: str


@dataclass
class _Job:
    """One group to replan: its images (in the order of the count matrix), what was
    observed, the cross-content candidates and target (None for a scene), its state."""

    key: GroupKey
    members: list[Img]
    seen: _Observed
    candidates: tuple[np.ndarray, np.ndarray] | None
    target: object | None
    state: ActiveGroup | None

    @property
    def batch_no(self) -> int:
        return self.state.batch_no if self.state is not None else 0


@dataclass
class _Observed:
    """A group's comparisons: answered (winner, loser) image ids, and those on their way."""

    wins: list[tuple[int, int]] = field(default_factory=list)
    pending: list[tuple[int, int]] = field(default_factory=list)


class ActivePlanner:
    """Batches of informative pairs for every campaign with ``sampling: active``.

    ``reader``/``writer``: session factories (read-only and writing); ``scores``: the live
    per-scene scores, used for cross-content groups when the scenes are not actively
    sampled themselves; ``background``: plan in a daemon thread when poked (False: only
    when :meth:`refresh` is called, as tests and the command line do).
    """

    def __init__(
        self,
        reader: Callable[[], Session],
        writer: Callable[[], Session],
        scores: ScoreLookup | None = None,
        background: bool = True,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.scores = scores or (lambda _campaign_id, _attribute=None: {})
        self.background = background
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._dirty: set[int] = set()
        self._known: set[int] = set()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # ------------------------------------------------------------------ request side
    def take(
        self,
        db: Session,
        sess: ObserverSession,
        seq: int,
        usable: Callable[[int, int], bool],
        fresh: Callable[[int, int], bool],
        rng: Random,
    ) -> tuple[int, int] | None:
        """Hand out the best untaken planned pair of this sitting's attribute, or None.

        Called by the scheduler under the campaign lock. ``usable``: the observer may still
        see the pair (per-observer cap); ``fresh``: it avoids the previous trial's scenes.
        """
        rows = db.execute(
            select(ActivePair.id, ActivePair.image_a_id, ActivePair.image_b_id, ActivePair.rank)
            .where(
                ActivePair.campaign_id == sess.campaign_id,
                ActivePair.session_type == sess.session_type,
                ActivePair.attribute == sess.attribute,
                ActivePair.session_id.is_(None),
            )
            .order_by(ActivePair.rank, ActivePair.id)
            .limit(TAKE_WINDOW)
        ).all()
        self.poke(sess.campaign_id)
        open_rows = [r for r in rows if usable(r.image_a_id, r.image_b_id)]
        if not open_rows:
            return None
        preferred = [r for r in open_rows if fresh(r.image_a_id, r.image_b_id)] or open_rows
        pick = min(preferred, key=lambda r: (r.rank, rng.random()))
        claimed = db.execute(
            update(ActivePair)
            .where(ActivePair.id == pick.id, ActivePair.session_id.is_(None))
            .values(session_id=sess.id, seq=seq)
        )
        if claimed.rowcount != 1:  # cannot happen under the campaign lock
            raise RuntimeError(f"planned pair {pick.id} was taken under the campaign lock")
        return pick.image_a_id, pick.image_b_id

    def poke(self, campaign_id: int) -> None:
        """Ask the background thread to look at this campaign soon (no work here)."""
        if not self.background:
            return
        with self._lock:
            self._dirty.add(campaign_id)
            self._known.add(campaign_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="jodkit-active-planner", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """End the background thread (the app's engine is about to go away)."""
        with self._lock:
            self._stopping, thread = True, self._thread
            self.background = False
        self._wake.set()
        if thread is not None:
            thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(timeout=REFRESH_S)
            self._wake.clear()
            if self._stopping:
                return
            with self._lock:
                todo = sorted(self._dirty | self._known)
                self._dirty.clear()
            for campaign_id in todo:
                try:
                    self.refresh(campaign_id)
                except Exception:  # keep planning the other campaigns; say what failed
                    log.exception("active sampling: planning campaign %s failed", campaign_id)

    # ------------------------------------------------------------------ planning
    def refresh(self, campaign_id: int) -> list[GroupKey]:
        """Plan the groups of a campaign that are due; returns the groups replanned."""
        with self.reader() as db:
            campaign = db.get(Campaign, campaign_id)
            if campaign is None or campaign.status != "active":
                return []
            spec = load_campaign_spec(campaign)
            if spec.sampling != "active":
                return []
            images = [
                Img(*row)
                for row in db.execute(
                    select(Image.id, Image.scene, Image.condition)
                    .where(Image.campaign_id == campaign_id)
                    .order_by(Image.id)
                ).all()
            ]
            states = {
                GroupKey(g.session_type, g.attribute, g.scene): g
                for g in db.scalars(
                    select(ActiveGroup).where(ActiveGroup.campaign_id == campaign_id)
                )
            }
            untaken = _untaken(db, campaign_id)
            observed = _observed(db, campaign_id, images)
        jobs = [
            _Job(key, members, observed.get(key, _Observed()), candidates, target, states.get(key))
            for key, members, candidates, target in self._groups(campaign_id, spec, images, states)
        ]
        due = [j for j in jobs if _due(j.state, len(j.seen.wins), untaken.get(j.key, 0), spec)]
        return [j.key for j in due if self._swap(campaign_id, j, _plan(spec, campaign_id, j))]

    def _groups(
        self,
        campaign_id: int,
        spec: CampaignSpec,
        images: list[Img],
        states: dict[GroupKey, ActiveGroup],
    ):
        """(key, member images, candidate pairs or None, alignment target or None) per group."""
        from scaling.select import alignment_target

        by_scene: dict[str, list[Img]] = defaultdict(list)
        for im in images:
            by_scene[im.scene].append(im)
        for attribute in (a.name for a in spec.attributes):
            if "per_scene" in spec.sessions:
                for scene, members in by_scene.items():
                    yield GroupKey("per_scene", attribute, scene), members, None, None
            if "cross_content" in spec.sessions:
                scores = _scene_scores(states, attribute) or self.scores(campaign_id, attribute)
                members = sorted(
                    spread_along_range(images, scores, spec.cross_content.images_per_scene),
                    key=lambda im: im.id,
                )
                codes = np.unique([im.scene for im in members], return_inverse=True)[1]
                first, second = np.triu_indices(len(members), k=1)
                across = codes[first] != codes[second]
                x = _stand_in_scores(members, images, scores)
                yield (
                    GroupKey("cross_content", attribute, CROSS),
                    members,
                    (first[across], second[across]),
                    alignment_target(codes, x),
                )

    def _swap(self, campaign_id: int, job: _Job, batch) -> bool:
        """Replace the group's untaken rows by the new batch, under the campaign lock, unless
        another process replaced them first. Returns whether this batch was stored."""
        key, batch_no = job.key, job.batch_no
        with self.writer() as db:
            begin_write(db)
            db.execute(select(Campaign.id).where(Campaign.id == campaign_id).with_for_update())
            where = (
                ActiveGroup.campaign_id == campaign_id,
                ActiveGroup.session_type == key.session_type,
                ActiveGroup.attribute == key.attribute,
                ActiveGroup.scene == key.scene,
            )
            state = db.scalar(select(ActiveGroup).where(*where))
            if (state.batch_no if state else 0) != batch_no:
                db.rollback()
                return False
            db.execute(
                delete(ActivePair).where(
                    ActivePair.campaign_id == campaign_id,
                    ActivePair.session_type == key.session_type,
                    ActivePair.attribute == key.attribute,
                    ActivePair.scene == key.scene,
                    ActivePair.session_id.is_(None),
                )
            )
            ids = [im.id for im in job.members]
            for rank, ((a, b), gain) in enumerate(zip(batch.pairs, batch.gains, strict=True)):
                first, second = sorted((ids[a], ids[b]))
                db.add(
                    ActivePair(
                        campaign_id=campaign_id,
                        session_type=key.session_type,
                        attribute=key.attribute,
                        scene=key.scene,
                        batch_no=batch_no + 1,
                        rank=rank,
                        image_a_id=first,
                        image_b_id=second,
                        gain=float(gain),
                    )
                )
            if state is None:
                state = ActiveGroup(
                    campaign_id=campaign_id,
                    session_type=key.session_type,
                    attribute=key.attribute,
                    scene=key.scene,
                )
                db.add(state)
            status = batch.status
            state.batch_no = batch_no + 1
            state.planned_at = utcnow()
            state.batch_size = len(batch.pairs)
            state.n_answered = len(job.seen.wins)
            state.n_conditions = status.n_conditions
            state.interval_width = status.interval_width
            state.further_judgments = _finite(status.further_judgments)
            state.done = status.done
            state.reason = status.reason
            state.prior_sd = batch.prior_sd
            state.scores = {str(i): float(q) for i, q in zip(ids, batch.scores, strict=True)}
            db.commit()
        return True


def _due(state: ActiveGroup | None, n_answered: int, n_untaken: int, spec: CampaignSpec) -> bool:
    """A group needs a new batch: none yet, or ``replan_after`` of the current one handed
    out, or as many new answers as that since it was planned."""
    if state is None:
        return True
    size = max(state.batch_size, state.n_conditions - 1, 1)
    step = max(1, int(np.ceil(spec.active.replan_after * size)))
    handed_out = state.batch_size - n_untaken
    return handed_out >= step or n_answered - state.n_answered >= step


def _plan(spec: CampaignSpec, campaign_id: int, job: _Job):
    """The group's next batch by ``scaling.select.plan_batch`` (warm-started)."""
    from scaling.select import plan_batch

    members, seen, state = job.members, job.seen, job.state
    index = {im.id: k for k, im in enumerate(members)}
    n = len(members)
    counts = np.zeros((n, n))
    for winner, loser in seen.wins:
        if winner in index and loser in index:
            counts[index[winner], index[loser]] += 1
    pending = np.array(
        [(index[a], index[b]) for a, b in seen.pending if a in index and b in index], dtype=int
    ).reshape(-1, 2)
    q0, start = None, {}
    if state is not None and state.scores:
        q0 = np.array([state.scores.get(str(im.id), 0.0) for im in members])
        start = {"start_sd": state.prior_sd} if state.prior_sd else {}
    seed = [spec.seed, campaign_id, job.batch_no, zlib.crc32(repr(job.key).encode())]
    return plan_batch(
        counts,
        rng=np.random.default_rng(seed),
        target_width=spec.active.target_width,
        min_gain=spec.active.min_gain,
        q0=q0,
        candidates=job.candidates,
        target=job.target,
        pending=pending,
        **start,
    )


def _untaken(db: Session, campaign_id: int) -> dict[GroupKey, int]:
    """Untaken planned pairs per group."""
    rows = db.execute(
        select(ActivePair.session_type, ActivePair.attribute, ActivePair.scene, func.count())
        .where(ActivePair.campaign_id == campaign_id, ActivePair.session_id.is_(None))
        .group_by(ActivePair.session_type, ActivePair.attribute, ActivePair.scene)
    ).all()
    return {GroupKey(t, a, s): n for t, a, s, n in rows}


def _observed(db: Session, campaign_id: int, images: list[Img]) -> dict[GroupKey, _Observed]:
    """Every group's answered comparisons (ties and training left out) and the design
    trials handed out within ``PENDING_FOR`` but not answered yet."""
    scene_of = {im.id: im.scene for im in images}
    recent = utcnow() - PENDING_FOR
    rows = db.execute(
        select(
            Trial.image_a_id,
            Trial.image_b_id,
            Trial.attribute,
            ObserverSession.session_type,
            Trial.is_a_selected,
            Trial.answered_at,
            Trial.planned_at,
        )
        .join(ObserverSession, ObserverSession.id == Trial.session_id)
        .where(Trial.campaign_id == campaign_id, Trial.kind != "training")
    ).all()
    out: dict[GroupKey, _Observed] = defaultdict(_Observed)
    for a, b, attribute, session_type, a_won, answered_at, planned_at in rows:
        scene = scene_of[a] if session_type == "per_scene" else CROSS
        group = out[GroupKey(session_type, attribute, scene)]
        if answered_at is not None:
            if a_won is not None:
                group.wins.append((a, b) if a_won else (b, a))
        elif as_utc(planned_at) >= recent:
            group.pending.append((a, b))
    return out


def _scene_scores(states: dict[GroupKey, ActiveGroup], attribute: str) -> dict[int, float]:
    """Image id -> posterior mode of the actively sampled scenes of this attribute."""
    out: dict[int, float] = {}
    for key, state in states.items():
        if key.session_type == "per_scene" and key.attribute == attribute and state.scores:
            out.update({int(i): q for i, q in state.scores.items()})
    return out


def _stand_in_scores(members: list[Img], images: list[Img], scores: dict[int, float]) -> np.ndarray:
    """Per-scene scores of the cross-content images; a scene not fully scored uses its spec
    order instead (as :func:`annotation_app.scheduler.spread_along_range` does)."""
    rank = {}
    by_scene: dict[str, list[Img]] = defaultdict(list)
    for im in images:
        by_scene[im.scene].append(im)
    for group in by_scene.values():
        scored = all(im.id in scores for im in group)
        for k, im in enumerate(group):
            rank[im.id] = scores[im.id] if scored else float(k)
    return np.array([rank[im.id] for im in members])


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def group_rows(db: Session, campaign_id: int) -> list[dict]:
    """Every planned group of a campaign as the dashboard shows it."""
    untaken = _untaken(db, campaign_id)
    rows = []
    for g in db.scalars(
        select(ActiveGroup)
        .where(ActiveGroup.campaign_id == campaign_id)
        .order_by(ActiveGroup.session_type.desc(), ActiveGroup.attribute, ActiveGroup.scene)
    ):
        key = GroupKey(g.session_type, g.attribute, g.scene)
        rows.append(
            {
                "group": g.scene or "cross-content",
                "attribute": g.attribute,
                "conditions": g.n_conditions,
                "answered": g.n_answered,
                "width": g.interval_width,
                "further": g.further_judgments,
                "done": g.done,
                "reason": g.reason,
                "batch": g.batch_no,
                "untaken": untaken.get(key, 0),
            }
        )
    return rows
