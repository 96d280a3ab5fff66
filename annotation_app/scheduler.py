"""Which pair an observer sees next, chosen server-side from every observer's data.

``Scheduler`` is the pluggable interface; ``BalancedScheduler`` is the default design
(with ``sampling: active`` its normal trials come from ``annotation_app.active``'s batches
instead, the rest of the design unchanged):

* coverage first: pairs below the campaign's target come first, and among them the pairs
  whose images have been compared least (a balanced incomplete design);
* exact counterbalancing over every design trial (normal and repeat, the trials that are
  exported and scaled): a pair is shown A-left when it has been shown A-left fewer times
  than B-left across all observers, and a normal trial is only repeated (on the other
  side) when that side is not the pair's surplus side; planning is serialised per
  campaign, so a pair's A-left and B-left counts, repeats included, never differ by more
  than one. As each repeat and its original sit on opposite sides, the normal trials that
  were not repeated are balanced to within one as well;
* counts come from ``PairCount`` rows kept incrementally as trials are assigned, and a
  session's trials are planned in small batches, so a next-pair request is usually one
  indexed read and planning never counts the whole trial table;
* optionally (``prefer_close`` in the spec) close conditions are compared more often once
  live scores exist: beyond equal coverage, a pair's count is weighted by how far apart
  its current scores are;
* no observer sees a pair more than ``max_per_observer`` times;
* scenes interleaved: the previous trial's scene is avoided while others remain;
* golden pairs (known answer) and repeated pairs (sides swapped) hidden among normal
  trials at the spec's rates; training trials first (the observer's first session of a
  campaign only), flagged.
"""

from __future__ import annotations

import math
import random
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from itertools import combinations
from typing import TYPE_CHECKING, Protocol

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alignment.selection import select_cross_images
from annotation_app.models import Image, PairCount, Trial
from annotation_app.spec import CampaignSpec

if TYPE_CHECKING:
    from annotation_app.active import ActivePlanner
    from annotation_app.sessions import Sitting

ScoreLookup = Callable[[int, str | None], dict[int, float]]
"""(campaign id, attribute or None for all) -> {image id: current JOD score}; images
without a determined score are missing. Must be cheap: it is called while planning."""


class Scheduler(Protocol):
    """Plans ``count`` trials from position ``seq`` of an observer session.

    Called under the campaign lock; adds the new Trials to ``db`` (flushed, not committed)
    and keeps the ``PairCount`` rows of the pairs it assigns in step, in the same
    transaction.
    """

    def plan(
        self, db: Session, sess: Sitting, spec: CampaignSpec, seq: int, count: int = 1
    ) -> list[Trial]:
        """Add and return ``count`` new Trials for positions seq, seq+1, ..."""
        ...


@dataclass(frozen=True)
class Img:
    """An image as the scheduler needs it (campaign images never change once stored)."""

    id: int
    scene: str
    condition: str


def coverage_target(spec: CampaignSpec, n_images: int, n_pairs: int) -> float:
    """Comparisons wanted per pair: given directly, or derived from per-image."""
    if spec.comparisons.per_pair is not None:
        return spec.comparisons.per_pair
    return math.ceil(spec.comparisons.per_image * n_images / 2 / max(n_pairs, 1))


def spread_along_range(images: Sequence[Img], scores: dict[int, float], k: int) -> list[Img]:
    """Pick ``k`` images per scene spread along each scene's current score range.

    Uses ``alignment``'s cross-content selection. A scene whose images are not all scored
    yet uses its spec order as a stand-in score, so the choice is sensible from the start.
    """
    rows = []
    by_scene: dict[str, list[Img]] = defaultdict(list)
    for im in images:
        by_scene[im.scene].append(im)
    for scene, group in by_scene.items():
        scored = all(im.id in scores for im in group)
        for rank, im in enumerate(group):
            jod = scores[im.id] if scored else float(rank)
            rows.append({"scene": scene, "condition": im.id, "jod": jod})
    chosen = select_cross_images(pd.DataFrame(rows), budget=k, ci_weight=0.0)
    by_id = {im.id: im for im in images}
    return [by_id[i] for i in chosen["condition"]]


class BalancedScheduler:
    """The default design (see the module docstring)."""

    def __init__(
        self, scores: ScoreLookup | None = None, active: ActivePlanner | None = None
    ) -> None:
        self.scores = scores or (lambda _campaign_id, _attribute=None: {})
        self.active = active
        self._images: dict[int, list[Img]] = {}
        self._lock = threading.Lock()

    def images(self, db: Session, campaign_id: int) -> list[Img]:
        """The campaign's images, read once per process (they are frozen with the spec)."""
        with self._lock:
            cached = self._images.get(campaign_id)
        if cached is None:
            rows = db.execute(
                select(Image.id, Image.scene, Image.condition)
                .where(Image.campaign_id == campaign_id)
                .order_by(Image.id)
            ).all()
            cached = [Img(*row) for row in rows]
            with self._lock:
                self._images[campaign_id] = cached
        return cached

    def plan(
        self, db: Session, sess: Sitting, spec: CampaignSpec, seq: int, count: int = 1
    ) -> list[Trial]:
        """Plan ``count`` trials: training, gold, repeat or normal, then pair and sides.

        Four small reads per batch (images are cached): this session's trials, the
        campaign's pair counts, this observer's own pair counts, and nothing per trial.
        """
        images = self.images(db, sess.campaign_id)
        by_id = {im.id: im for im in images}
        history = list(
            db.scalars(select(Trial).where(Trial.session_id == sess.id).order_by(Trial.seq))
        )
        # Built only when a trial needs them (training, the balanced design): an actively
        # sampled trial reads its planned pair instead, whatever the number of pairs.
        candidates = cache(partial(self._candidate_pairs, images, spec, sess))
        counts = {
            (row.image_a_id, row.image_b_id): row
            for row in db.scalars(
                select(PairCount).where(
                    PairCount.campaign_id == sess.campaign_id,
                    PairCount.attribute == sess.attribute,
                )
            )
        }
        mine: Counter[tuple[int, int]] = Counter(
            dict(
                ((a, b), n)
                for a, b, n in db.execute(
                    select(Trial.image_a_id, Trial.image_b_id, func.count())
                    .where(
                        Trial.user_id == sess.user_id,
                        Trial.campaign_id == sess.campaign_id,
                        Trial.attribute == sess.attribute,
                        Trial.kind == "normal",
                    )
                    .group_by(Trial.image_a_id, Trial.image_b_id)
                ).all()
            )
        )
        scores = self.scores(sess.campaign_id, sess.attribute) if spec.prefer_close else {}
        state = _PlanState(counts, mine, scores)
        planned = []
        for position in range(seq, seq + count):
            trial = self._one(db, sess, spec, position, images, by_id, history, candidates, state)
            if trial.kind in ("normal", "repeat"):
                state.assign(db, sess, trial)
            if trial.kind == "normal":
                mine[trial.image_a_id, trial.image_b_id] += 1
            db.add(trial)
            history.append(trial)
            planned.append(trial)
        db.flush()  # one round of INSERTs; the unique (session, seq) is checked here
        return planned

    def _one(
        self,
        db: Session,
        sess: Sitting,
        spec: CampaignSpec,
        seq: int,
        images: list[Img],
        by_id: dict[int, Img],
        history: list[Trial],
        candidates: Callable[[], list[tuple[Img, Img]]],
        state: _PlanState,
    ) -> Trial:
        rng = random.Random(f"{spec.seed}:{sess.id}:{seq}")
        trial = Trial(
            session_id=sess.id,
            campaign_id=sess.campaign_id,
            user_id=sess.user_id,
            seq=seq,
            attribute=sess.attribute,
        )
        if seq < sess.n_training:
            a, b = rng.choice(candidates())
            return self._fill(trial, a.id, b.id, "training", rng.choice("AB"))
        draw = rng.random()
        if draw < spec.golden.rate and sess.session_type == "per_scene":
            golden = self._golden(images, spec, sess.attribute)
            if golden:
                better, worse = rng.choice(golden)
                self._fill(trial, better.id, worse.id, "gold", rng.choice("AB"))
                trial.gold_expect_a = better.id < worse.id
                return trial
        if draw < spec.golden.rate + spec.repeat_rate:
            # Any normal trial at least three positions back: it is shown (and answered)
            # before its repeat, whether or not it was answered when the batch was planned.
            # A repeat's side is fixed (the other side from its original), so only an
            # original whose swapped side is not the pair's surplus side may be repeated:
            # the pair's A-left/B-left counts, repeats included, stay within one.
            # (trials of this batch have no id before the flush: compare objects)
            stored = {t.id: t for t in history if t.id is not None}
            repeated = {
                id(stored[t.repeat_of_id] if t.repeat_of_id else t.repeat_of)
                for t in history
                if t.kind == "repeat"
            }
            eligible = [
                t
                for t in history[:-2]
                if t.kind == "normal"
                and id(t) not in repeated
                and state.side_allowed(t.image_a_id, t.image_b_id, _swapped(t.left_shown))
            ]
            if eligible:
                original = rng.choice(eligible)
                side = _swapped(original.left_shown)
                self._fill(trial, original.image_a_id, original.image_b_id, "repeat", side)
                trial.repeat_of = original
                return trial
        last = history[-1] if history else None
        last_scenes = (
            {by_id[last.image_a_id].scene, by_id[last.image_b_id].scene} if last else set()
        )
        if self.active is not None and spec.sampling == "active":
            pair = self.active.take(
                db,
                sess,
                seq,
                usable=lambda a, b: state.mine[a, b] < spec.max_per_observer,
                fresh=lambda a, b: not ({by_id[a].scene, by_id[b].scene} & last_scenes),
                rng=rng,
            )
            if pair is not None:
                return self._fill(trial, *pair, "normal", state.balanced_side(*pair, rng))
        return self._normal(trial, spec, candidates(), last_scenes, rng, state)

    def _normal(
        self,
        trial: Trial,
        spec: CampaignSpec,
        candidates: list[tuple[Img, Img]],
        last_scenes: set[str],
        rng: random.Random,
        state: _PlanState,
    ) -> Trial:
        allowed = [(a, b) for a, b in candidates if state.mine[a.id, b.id] < spec.max_per_observer]
        if not allowed:
            allowed = candidates  # every pair at its cap: keep going, least-seen first
        fresh = [(a, b) for a, b in allowed if not ({a.scene, b.scene} & last_scenes)]
        pool = fresh or allowed
        target = self._target(spec, candidates)
        image_n = state.image_n()

        def key(pair: tuple[Img, Img]) -> tuple:
            a, b = pair
            n = state.planned(a.id, b.id)
            jitter = rng.random()
            base = (n >= target, state.mine[a.id, b.id])
            if spec.prefer_close:
                return (*base, n * state.closeness(a.id, b.id, spec.prefer_close), jitter)
            return (*base, image_n[a.id] + image_n[b.id], n, jitter)

        a, b = min(pool, key=key)
        return self._fill(trial, a.id, b.id, "normal", state.balanced_side(a.id, b.id, rng))

    @staticmethod
    def _target(spec: CampaignSpec, candidates: list[tuple[Img, Img]]) -> float:
        n_images = len({im.id for pair in candidates for im in pair})
        return coverage_target(spec, n_images, len(candidates))

    def _candidate_pairs(
        self, images: list[Img], spec: CampaignSpec, sess: Sitting
    ) -> list[tuple[Img, Img]]:
        """All pairs within scenes, or across scenes among range-spread images."""
        scenes: dict[str, list[Img]] = defaultdict(list)
        for im in images:
            scenes[im.scene].append(im)
        if sess.session_type == "per_scene":
            return [pair for group in scenes.values() for pair in combinations(group, 2)]
        k = spec.cross_content.images_per_scene
        scores = self.scores(sess.campaign_id, None)
        picked = sorted(spread_along_range(images, scores, k), key=lambda im: im.id)
        return [(a, b) for a, b in combinations(picked, 2) if a.scene != b.scene]

    @staticmethod
    def _golden(images: list[Img], spec: CampaignSpec, attribute: str) -> list[tuple[Img, Img]]:
        """(better, worse) image pairs of the spec's golden pairs for this attribute."""
        index = {(im.scene, im.condition): im for im in images}
        return [
            (index[g.scene, g.better], index[g.scene, g.worse])
            for g in spec.golden.pairs
            if g.attribute in (None, attribute)
        ]

    @staticmethod
    def _fill(trial: Trial, first: int, second: int, kind: str, left_shown: str) -> Trial:
        """Store the pair in canonical order (A = lower image id)."""
        trial.image_a_id, trial.image_b_id = min(first, second), max(first, second)
        trial.kind = kind
        trial.left_shown = left_shown
        return trial


def _swapped(side: str) -> str:
    """The other side: a repeat shows its pair the other way round."""
    return "B" if side == "A" else "A"


class _PlanState:
    """Pair counts while one batch is planned: read once, updated as trials are assigned."""

    def __init__(
        self,
        counts: dict[tuple[int, int], PairCount],
        mine: Counter[tuple[int, int]],
        scores: dict[int, float],
    ) -> None:
        self.counts = counts
        self.mine = mine
        self.scores = scores

    def planned(self, a: int, b: int) -> int:
        row = self.counts.get((a, b))
        return row.planned if row else 0

    def sides(self, a: int, b: int) -> tuple[int, int]:
        row = self.counts.get((a, b))
        return (row.left_a, row.left_b) if row else (0, 0)

    def balanced_side(self, a: int, b: int, rng: random.Random) -> str:
        """The side for A that keeps the pair's A-left and B-left counts within one."""
        left_a, left_b = self.sides(a, b)
        return rng.choice("AB") if left_a == left_b else ("A" if left_a < left_b else "B")

    def side_allowed(self, a: int, b: int, side: str) -> bool:
        """Whether showing ``side`` on the left keeps the pair's counts within one."""
        left_a, left_b = self.sides(a, b)
        return left_a <= left_b if side == "A" else left_b <= left_a

    def image_n(self) -> Counter[int]:
        out: Counter[int] = Counter()
        for (a, b), row in self.counts.items():
            out[a] += row.planned
            out[b] += row.planned
        return out

    def closeness(self, a: int, b: int, half_at: float) -> float:
        """Coverage weight: 1 for equal scores, 2 at ``half_at`` JOD apart; 1 if unscored."""
        if a in self.scores and b in self.scores:
            return 1.0 + abs(self.scores[a] - self.scores[b]) / half_at
        return 1.0

    def assign(self, db: Session, sess: Sitting, trial: Trial) -> None:
        """Count a planned design trial (the row is written with the batch's flush)."""
        key = (trial.image_a_id, trial.image_b_id)
        row = self.counts.get(key)
        if row is None:
            row = PairCount(
                campaign_id=sess.campaign_id,
                attribute=sess.attribute,
                image_a_id=key[0],
                image_b_id=key[1],
                planned=0,
                left_a=0,
                left_b=0,
            )
            db.add(row)
            self.counts[key] = row
        row.planned += 1
        if trial.left_shown == "A":
            row.left_a += 1
        else:
            row.left_b += 1
