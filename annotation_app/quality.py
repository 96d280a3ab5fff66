"""What the experimenter watches: coverage per pair, graph connectivity, observer quality."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from statistics import median

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotation_app.models import Campaign, Image, ObserverSession, Trial, User


def _components(nodes: list, edges: list[tuple]) -> int:
    """Number of connected components (union-find)."""
    parent = {n: n for n in nodes}

    def find(n):
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for a, b in edges:
        parent[find(a)] = find(b)
    return len({find(n) for n in nodes})


@dataclass
class Coverage:
    """Comparisons per pair of one scene and attribute (symmetric, training excluded)."""

    scene: str
    attribute: str
    conditions: list[str]
    counts: list[list[int]]
    components: int

    @property
    def peak(self) -> int:
        return max((max(row) for row in self.counts), default=0)


def _answered(db: Session, campaign: Campaign, session_type: str) -> list[Trial]:
    return list(
        db.scalars(
            select(Trial)
            .join(ObserverSession, Trial.session_id == ObserverSession.id)
            .where(
                Trial.campaign_id == campaign.id,
                Trial.answered_at.is_not(None),
                ObserverSession.session_type == session_type,
            )
        )
    )


def coverage(db: Session, campaign: Campaign, attributes: list[str]) -> list[Coverage]:
    """One heatmap per scene x attribute, with its comparison graph's component count."""
    images = list(
        db.scalars(select(Image).where(Image.campaign_id == campaign.id).order_by(Image.id))
    )
    counts: dict[tuple[str, int, int], int] = defaultdict(int)
    for t in _answered(db, campaign, "per_scene"):
        if t.kind != "training":
            counts[t.attribute, t.image_a_id, t.image_b_id] += 1
    out = []
    for scene in dict.fromkeys(im.scene for im in images):
        group = [im for im in images if im.scene == scene]
        for attribute in attributes:
            matrix = [
                [
                    counts[attribute, min(a.id, b.id), max(a.id, b.id)] if a != b else 0
                    for b in group
                ]
                for a in group
            ]
            edges = [
                (a.id, b.id)
                for a in group
                for b in group
                if a.id < b.id and counts[attribute, a.id, b.id]
            ]
            out.append(
                Coverage(
                    scene,
                    attribute,
                    [im.condition for im in group],
                    matrix,
                    _components([im.id for im in group], edges),
                )
            )
    return out


@dataclass
class CrossConnectivity:
    """The scene graph linked by answered cross-content trials (training excluded, as in
    scaling)."""

    components: int
    scenes: int
    comparisons: int


def cross_scene_components(db: Session, campaign: Campaign) -> CrossConnectivity:
    """Components of the scene graph linked by cross-content trials, and how many there are."""
    scene_of = {
        im.id: im.scene for im in db.scalars(select(Image).where(Image.campaign_id == campaign.id))
    }
    scenes = sorted(set(scene_of.values()))
    edges = [
        (scene_of[t.image_a_id], scene_of[t.image_b_id])
        for t in _answered(db, campaign, "cross_content")
        if t.kind != "training"
    ]
    return CrossConnectivity(_components(scenes, edges), len(scenes), len(edges))


@dataclass
class ObserverQuality:
    """Screening figures for one observer (training trials excluded)."""

    observer: str
    trials: int
    golden_accuracy: float | None
    repeat_agreement: float | None
    left_rate: float | None
    median_rt_ms: float | None
    outlier_score: float | None = None
    """pwcmp's dist_L (``scaling.screen_observers``): how far the observer's log-likelihood
    per pair lies below the others' first quartile, in inter-quartile ranges."""
    flagged: bool = False


def _chose_a(t: Trial) -> bool | None:
    return None if t.tie else bool(t.is_a_selected)


def observer_quality(
    db: Session, campaign: Campaign, screening: pd.DataFrame | str | None = None
) -> list[ObserverQuality]:
    """Golden accuracy, repeat agreement, left-choice rate, median decision time and, from
    ``screening`` (a ``scaling.screen_observers`` table), the outlier score and flag."""
    scored = (
        {}
        if screening is None or isinstance(screening, str)
        else {
            str(r.observer): (float(r.dist_L), bool(r.flagged))
            for r in screening.itertuples(index=False)
            if r.dist_L == r.dist_L  # NaN: no pairs to score
        }
    )
    trials = [
        t
        for t in db.scalars(
            select(Trial).where(Trial.campaign_id == campaign.id, Trial.answered_at.is_not(None))
        )
        if t.kind != "training"
    ]
    by_id = {t.id: t for t in trials}
    names = dict(db.execute(select(User.id, User.username)).all())
    grouped: dict[int, list[Trial]] = defaultdict(list)
    for t in trials:
        grouped[t.user_id].append(t)

    def rate(hits: list[bool]) -> float | None:
        return sum(hits) / len(hits) if hits else None

    out = []
    for user_id, mine in sorted(grouped.items(), key=lambda kv: names[kv[0]]):
        gold = [_chose_a(t) == t.gold_expect_a for t in mine if t.kind == "gold" and not t.tie]
        repeats = [
            _chose_a(t) == _chose_a(by_id[t.repeat_of_id])
            for t in mine
            if t.kind == "repeat" and t.repeat_of_id in by_id
        ]
        left = [(_chose_a(t) == (t.left_shown == "A")) for t in mine if not t.tie]
        out.append(
            ObserverQuality(
                names[user_id],
                len(mine),
                rate(gold),
                rate(repeats),
                rate(left),
                median(t.rt_ms for t in mine) if mine else None,
                *scored.get(names[user_id], (None, False)),
            )
        )
    return out
