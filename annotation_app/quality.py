"""What the experimenter watches: coverage per pair, graph connectivity, observer quality."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from statistics import median

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotation_app.models import Campaign, Image, ObserverSession, Trial, User


def _components(counts: np.ndarray) -> int:
    """Connected components of the graph whose edges are the compared pairs (scaling's
    one component search, so the dashboard and the scales agree)."""
    from scaling.thurstone import component_labels

    first, second = np.nonzero(counts)
    return int(component_labels(len(counts), first, second).max()) + 1 if len(counts) else 0


@dataclass
class Coverage:
    """Comparisons per pair of one scene and attribute (symmetric, training excluded)."""

    scene: str
    attribute: str
    conditions: list[str]
    counts: list[list[int]]
    components: int
    target: float

    @property
    def peak(self) -> int:
        return max((max(row) for row in self.counts), default=0)

    @property
    def pair_counts(self) -> list[int]:
        """Each pair's count once (upper triangle)."""
        n = len(self.counts)
        return [self.counts[i][j] for i in range(n) for j in range(i + 1, n)]

    @property
    def at_target(self) -> int:
        """Pairs compared at least ``target`` times."""
        return sum(c >= self.target for c in self.pair_counts)


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


def coverage(
    db: Session, campaign: Campaign, attributes: list[str], target: float
) -> list[Coverage]:
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
            out.append(
                Coverage(
                    scene,
                    attribute,
                    [im.condition for im in group],
                    matrix,
                    _components(np.array(matrix)),
                    target,
                )
            )
    return out


@dataclass
class CampaignCoverage:
    """Coverage of the whole campaign against its target (per-scene design)."""

    pairs: int
    pairs_at_target: int
    comparisons: int
    comparisons_needed: int
    """Comparisons still missing below the target, summed over pairs."""

    @property
    def done(self) -> bool:
        return self.pairs > 0 and self.pairs_at_target == self.pairs


def campaign_coverage(heatmaps: list[Coverage]) -> CampaignCoverage:
    """Pairs at target and comparisons still needed, over every heatmap."""
    counts = [c for cov in heatmaps for c in cov.pair_counts]
    target = heatmaps[0].target if heatmaps else 0
    return CampaignCoverage(
        len(counts),
        sum(c >= target for c in counts),
        sum(counts),
        int(sum(max(0.0, math.ceil(target) - c) for c in counts)),
    )


@dataclass
class ColourScale:
    """One colour scale for every heatmap of a campaign: counts below the target in
    oranges (fewer: stronger), at and above it in blues, clipped at twice the target so
    that a much-compared golden pair does not wash out the rest."""

    target: float
    top: int
    colours: dict[int, tuple[str, str]]
    """count (0 .. top) -> (background, text) CSS colours; counts above ``top`` use
    ``top``'s."""

    def level(self, n: int) -> int:
        return min(n, self.top)

    def legend(self) -> list[tuple[str, int, bool]]:
        """(label, level, is the target) for each swatch of the legend."""
        out = []
        for n in range(self.top + 1):
            label = f"≥{n}" if n == self.top and n > 0 else str(n)
            out.append((label, n, n == math.ceil(self.target)))
        return out


def colour_scale(target: float) -> ColourScale:
    """The campaign's colour scale (matplotlib colour maps, sampled once per count)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    goal = max(1, math.ceil(target))
    top = 2 * goal
    colours = {0: ("#3a3a3a", "#f2f2f2")}
    for n in range(1, top + 1):
        if n < goal:
            rgba = colormaps["Oranges"](0.75 - 0.45 * (n - 1) / max(1, goal - 1))
        else:
            rgba = colormaps["Blues"](0.3 + 0.6 * (n - goal) / max(1, top - goal))
        luminance = 0.2126 * rgba[0] + 0.7152 * rgba[1] + 0.0722 * rgba[2]
        colours[n] = (to_hex(rgba), "#111" if luminance > 0.5 else "#fff")
    return ColourScale(target, top, colours)


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
    index = {scene: i for i, scene in enumerate(scenes)}
    counts = np.zeros((len(scenes), len(scenes)))
    comparisons = 0
    for t in _answered(db, campaign, "cross_content"):
        if t.kind != "training":
            counts[index[scene_of[t.image_a_id]], index[scene_of[t.image_b_id]]] += 1
            comparisons += 1
    return CrossConnectivity(_components(counts), len(scenes), comparisons)


LEFT_BIAS_P = 0.01
"""Flag a left-choice rate whose two-sided binomial p-value (against 50%) is below this."""
MIN_SIDE_ANSWERS = 10
REPEAT_AGREEMENT_MIN = 0.5
"""Flag agreeing with oneself on repeated pairs less often than chance."""
MIN_REPEATS = 4
FAST_MEDIAN_MS = 300
"""Flag a median decision time below this: too quick to have looked at both images."""
GOLDEN_ACCURACY_MIN = 0.75
MIN_GOLDEN = 4


@dataclass
class ObserverQuality:
    """Screening figures for one observer (training trials excluded), and why they are
    suspicious, if they are."""

    observer: str
    trials: int
    golden_accuracy: float | None
    repeat_agreement: float | None
    left_rate: float | None
    median_rt_ms: float | None
    outlier_score: float | None = None
    """pwcmp's dist_L (``scaling.screen_observers``): how far the observer's log-likelihood
    per pair lies below the others' first quartile, in inter-quartile ranges."""
    reasons: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)


def _chose_a(t: Trial) -> bool | None:
    return None if t.tie else bool(t.is_a_selected)


def _rate(hits: list[bool]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def suspicions(
    left: list[bool],
    repeats: list[bool],
    gold: list[bool],
    median_rt_ms: float | None,
    dist_l: float | None,
    dist_flagged: bool,
) -> list[str]:
    """Why an observer's answers look unreliable, one reason per check that fails."""
    from scipy.stats import binomtest

    reasons = []
    if len(left) >= MIN_SIDE_ANSWERS:
        p = binomtest(sum(left), len(left), 0.5).pvalue
        if p < LEFT_BIAS_P:
            reasons.append(
                f"chose left {sum(left) / len(left):.0%} of {len(left)} times (p = {p:.1g})"
            )
    if len(repeats) >= MIN_REPEATS and _rate(repeats) < REPEAT_AGREEMENT_MIN:
        reasons.append(
            f"repeated pairs answered alike {_rate(repeats):.0%} of {len(repeats)} times"
            " (chance: 50%)"
        )
    if len(gold) >= MIN_GOLDEN and _rate(gold) < GOLDEN_ACCURACY_MIN:
        reasons.append(f"golden pairs right {sum(gold)} of {len(gold)} times")
    if median_rt_ms is not None and median_rt_ms < FAST_MEDIAN_MS:
        reasons.append(f"median decision time {median_rt_ms:.0f} ms (< {FAST_MEDIAN_MS} ms)")
    if dist_flagged and dist_l is not None:
        reasons.append(f"outlier score dist_L {dist_l:.2f}: answers unlike the others'")
    return reasons


def observer_quality(
    db: Session, campaign: Campaign, screening: pd.DataFrame | str | None = None
) -> list[ObserverQuality]:
    """Golden accuracy, repeat agreement, left-choice rate, median decision time and, from
    ``screening`` (a ``scaling.screen_observers`` table), the outlier score; each observer
    with the reasons to check them, if any."""
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
    out = []
    for user_id, mine in sorted(grouped.items(), key=lambda kv: names[kv[0]]):
        gold = [_chose_a(t) == t.gold_expect_a for t in mine if t.kind == "gold" and not t.tie]
        repeats = [
            _chose_a(t) == _chose_a(by_id[t.repeat_of_id])
            for t in mine
            if t.kind == "repeat" and t.repeat_of_id in by_id
        ]
        left = [(_chose_a(t) == (t.left_shown == "A")) for t in mine if not t.tie]
        median_rt = median(t.rt_ms for t in mine) if mine else None
        dist_l, dist_flagged = scored.get(names[user_id], (None, False))
        out.append(
            ObserverQuality(
                names[user_id],
                len(mine),
                _rate(gold),
                _rate(repeats),
                _rate(left),
                median_rt,
                dist_l,
                suspicions(left, repeats, gold, median_rt, dist_l, dist_flagged),
            )
        )
    return out
