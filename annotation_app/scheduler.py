"""Which pair an observer sees next, chosen server-side from every observer's data.

``Scheduler`` is the pluggable interface (active sampling can implement it later);
``BalancedScheduler`` is the default design:

* coverage first: pairs below the campaign's target come first, and among them the pairs
  whose images have been compared least (a balanced incomplete design);
* exact counterbalancing: a pair is shown A-left when it has been shown A-left fewer times
  than B-left across all observers (planning is serialised per campaign, so the two counts
  never differ by more than one);
* no observer sees a pair more than ``max_per_observer`` times;
* scenes interleaved: the previous trial's scene is avoided while others remain;
* golden pairs (known answer) and repeated pairs (sides swapped) hidden among normal
  trials at the spec's rates; training trials first, flagged.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from itertools import combinations
from typing import Protocol

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alignment.selection import select_cross_images
from annotation_app.models import Image, ObserverSession, Trial
from annotation_app.spec import CampaignSpec

ScoreLookup = Callable[[int], dict[int, float]]
"""image id -> current JOD score for one campaign (missing images: no score yet)."""


class Scheduler(Protocol):
    """Plans the trial at position ``seq`` of an observer session (not yet added to db)."""

    def plan(self, db: Session, sess: ObserverSession, spec: CampaignSpec, seq: int) -> Trial:
        """Return a new, unsaved Trial."""
        ...


def spread_along_range(images: Sequence[Image], scores: dict[int, float], k: int) -> list[Image]:
    """Pick ``k`` images per scene spread along each scene's current score range.

    Uses ``alignment``'s cross-content selection. A scene whose images are not all scored
    yet uses its spec order as a stand-in score, so the choice is sensible from the start.
    """
    rows = []
    by_scene: dict[str, list[Image]] = defaultdict(list)
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

    def __init__(self, scores: ScoreLookup | None = None) -> None:
        self.scores = scores or (lambda _campaign_id: {})

    def plan(self, db: Session, sess: ObserverSession, spec: CampaignSpec, seq: int) -> Trial:
        """Choose training, gold, repeat or normal, then the pair and its sides."""
        rng = random.Random(f"{spec.seed}:{sess.id}:{seq}")
        images = list(
            db.scalars(
                select(Image).where(Image.campaign_id == sess.campaign_id).order_by(Image.id)
            )
        )
        by_id = {im.id: im for im in images}
        history = list(
            db.scalars(select(Trial).where(Trial.session_id == sess.id).order_by(Trial.seq))
        )
        trial = Trial(
            session_id=sess.id,
            campaign_id=sess.campaign_id,
            user_id=sess.user_id,
            seq=seq,
            attribute=sess.attribute,
        )
        candidates = self._candidate_pairs(images, spec, sess.session_type, sess.campaign_id)
        if seq < spec.training_trials:
            a, b = rng.choice(candidates)
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
            repeated = {t.repeat_of_id for t in history if t.repeat_of_id}
            eligible = [
                t
                for t in history[:-2]
                if t.kind == "normal" and t.answered_at is not None and t.id not in repeated
            ]
            if eligible:
                original = rng.choice(eligible)
                self._fill(
                    trial,
                    original.image_a_id,
                    original.image_b_id,
                    "repeat",
                    "B" if original.left_shown == "A" else "A",
                )
                trial.repeat_of_id = original.id
                return trial
        last = history[-1] if history else None
        last_scenes = (
            {by_id[last.image_a_id].scene, by_id[last.image_b_id].scene} if last else set()
        )
        return self._normal(db, trial, sess, spec, candidates, last_scenes, rng)

    def _normal(
        self,
        db: Session,
        trial: Trial,
        sess: ObserverSession,
        spec: CampaignSpec,
        candidates: list[tuple[Image, Image]],
        last_scenes: set[str],
        rng: random.Random,
    ) -> Trial:
        counted = (Trial.campaign_id == sess.campaign_id) & (Trial.attribute == sess.attribute)
        counted &= Trial.kind.in_(("normal", "repeat"))
        rows = db.execute(
            select(Trial.image_a_id, Trial.image_b_id, Trial.left_shown, func.count())
            .where(counted)
            .group_by(Trial.image_a_id, Trial.image_b_id, Trial.left_shown)
        ).all()
        pair_n: Counter[tuple[int, int]] = Counter()
        left: dict[tuple[int, int], Counter[str]] = defaultdict(Counter)
        image_n: Counter[int] = Counter()
        for a, b, side, n in rows:
            pair_n[a, b] += n
            left[a, b][side] += n
            image_n[a] += n
            image_n[b] += n
        mine = Counter(
            (a, b)
            for a, b in db.execute(
                select(Trial.image_a_id, Trial.image_b_id).where(
                    counted & (Trial.user_id == sess.user_id) & (Trial.kind == "normal")
                )
            ).all()
        )
        allowed = [(a, b) for a, b in candidates if mine[a.id, b.id] < spec.max_per_observer]
        if not allowed:
            allowed = candidates  # every pair at its cap: keep going, least-seen first
        fresh = [(a, b) for a, b in allowed if not ({a.scene, b.scene} & last_scenes)]
        pool = fresh or allowed
        target = self._target(spec, candidates)
        jitter = {(a.id, b.id): rng.random() for a, b in pool}
        a, b = min(
            pool,
            key=lambda p: (
                pair_n[p[0].id, p[1].id] >= target,
                mine[p[0].id, p[1].id],
                image_n[p[0].id] + image_n[p[1].id],
                pair_n[p[0].id, p[1].id],
                jitter[p[0].id, p[1].id],
            ),
        )
        shown = left[a.id, b.id]
        side = rng.choice("AB") if shown["A"] == shown["B"] else min("AB", key=shown.__getitem__)
        return self._fill(trial, a.id, b.id, "normal", side)

    @staticmethod
    def _target(spec: CampaignSpec, candidates: list[tuple[Image, Image]]) -> float:
        """Comparisons wanted per pair: given directly, or derived from per-image."""
        if spec.comparisons.per_pair is not None:
            return spec.comparisons.per_pair
        n_images = len({im.id for pair in candidates for im in pair})
        return math.ceil(spec.comparisons.per_image * n_images / 2 / max(len(candidates), 1))

    def _candidate_pairs(
        self, images: list[Image], spec: CampaignSpec, session_type: str, campaign_id: int
    ) -> list[tuple[Image, Image]]:
        """All pairs within scenes, or across scenes among range-spread images."""
        scenes: dict[str, list[Image]] = defaultdict(list)
        for im in images:
            scenes[im.scene].append(im)
        if session_type == "per_scene":
            return [pair for group in scenes.values() for pair in combinations(group, 2)]
        k = spec.cross_content.images_per_scene
        picked = sorted(
            spread_along_range(images, self.scores(campaign_id), k), key=lambda im: im.id
        )
        return [(a, b) for a, b in combinations(picked, 2) if a.scene != b.scene]

    @staticmethod
    def _golden(
        images: list[Image], spec: CampaignSpec, attribute: str
    ) -> list[tuple[Image, Image]]:
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
