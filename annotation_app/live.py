"""Live JOD scales and observer screening for the dashboard and the scheduler, via ``scaling``.

Scaling a campaign costs far more than one request should, so results are cached per
campaign and recomputed only when new answers have arrived and the cache is older than
``MAX_AGE_S``. The trial path never computes: the scheduler reads ``scores``, which returns
the cached values at once and, when they are stale, refreshes them in a background thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotation_app.export import trials_frame
from annotation_app.models import Campaign, Image, Trial
from scaling.errors import InputError

MAX_AGE_S = 30.0


@dataclass
class Live:
    """One computation: the scale table and the observer screening (or why there is none)."""

    scales: pd.DataFrame | str
    screening: pd.DataFrame | str
    scores: dict[tuple[int, str | None], float]
    """(image id, attribute) and (image id, None: mean over attributes) -> determined JOD."""


class LiveScales:
    """Per-campaign cache of ``scaling.scale`` and ``scaling.screen_observers``.

    ``bootstrap`` > 0 adds confidence intervals (observer resampling) at that many times
    the cost; ``session_factory`` lets ``scores`` refresh in the background.
    """

    def __init__(
        self, session_factory: Callable[[], Session] | None = None, bootstrap: int = 0
    ) -> None:
        self._cache: dict[int, tuple[float, int, Live]] = {}
        self._lock = threading.Lock()
        self._running: set[int] = set()
        self.session_factory = session_factory
        self.bootstrap = bootstrap

    def get(self, db: Session, campaign: Campaign) -> Live:
        """Cached results, recomputed here when stale (the dashboard's request)."""
        n_answered = self._n_answered(db, campaign.id)
        with self._lock:
            cached = self._cache.get(campaign.id)
        if cached and (cached[1] == n_answered or time.monotonic() - cached[0] < MAX_AGE_S):
            return cached[2]
        result = self._compute(db, campaign)
        with self._lock:
            self._cache[campaign.id] = (time.monotonic(), n_answered, result)
        return result

    def table(self, db: Session, campaign: Campaign) -> pd.DataFrame | str:
        """The scale table (scaling/formats.py), or a message saying why there is none."""
        return self.get(db, campaign).scales

    def scores(self, campaign_id: int, attribute: str | None = None) -> dict[int, float]:
        """image id -> determined JOD, from the cache only; never computes in the caller.

        A stale or missing entry starts one background refresh (when a session factory
        was given); until it lands the caller gets what is cached (possibly nothing).
        """
        with self._lock:
            cached = self._cache.get(campaign_id)
            stale = cached is None or time.monotonic() - cached[0] >= MAX_AGE_S
            start = stale and self.session_factory and campaign_id not in self._running
            if start:
                self._running.add(campaign_id)
        if start:
            threading.Thread(target=self._refresh, args=(campaign_id,), daemon=True).start()
        if cached is None:
            return {}
        return {im: jod for (im, attr), jod in cached[2].scores.items() if attr == attribute}

    def _refresh(self, campaign_id: int) -> None:
        try:
            with self.session_factory() as db:
                campaign = db.get(Campaign, campaign_id)
                if campaign is not None:
                    self.get(db, campaign)
        finally:
            with self._lock:
                self._running.discard(campaign_id)

    @staticmethod
    def _n_answered(db: Session, campaign_id: int) -> int:
        return db.scalar(
            select(func.count()).where(
                Trial.campaign_id == campaign_id, Trial.answered_at.is_not(None)
            )
        )

    def _compute(self, db: Session, campaign: Campaign) -> Live:
        try:
            from scaling import scale
            from scaling.outliers import screen_observers
        except ImportError as err:  # show why, don't crash the dashboard
            message = f"live scales unavailable: {err}"
            return Live(message, message, {})
        trials = trials_frame(db, campaign, "per_scene")
        db.commit()  # end the (read) transaction: scaling takes seconds
        trials = trials[trials["is_training"] == 0]
        if trials.empty:
            message = "no answered per-scene trials yet"
            return Live(message, message, {})
        try:
            scales = scale(
                trials,
                by=["scene", "attribute"],
                bootstrap=self.bootstrap,
                n_jobs=1,
                progress=False,
            )
        except (InputError, ValueError) as err:
            scales = f"scaling failed: {err}"
        try:
            screening = screen_observers(trials, by=["scene", "attribute"])
        except (InputError, ValueError) as err:
            screening = f"screening unavailable: {err}"
        return Live(scales, screening, _scores(db, campaign.id, scales))


def _scores(
    db: Session, campaign_id: int, scales: pd.DataFrame | str
) -> dict[tuple[int, str | None], float]:
    if isinstance(scales, str):
        return {}
    table = scales[scales["determined"].astype(bool)]
    images = {
        (im.scene, im.condition): im.id
        for im in db.scalars(select(Image).where(Image.campaign_id == campaign_id))
    }
    out: dict[tuple[int, str | None], float] = {}
    for row in table.itertuples(index=False):
        image_id = images.get((row.scene, row.condition))
        if image_id is not None:
            out[image_id, row.attribute] = float(row.jod)
    for (scene, condition), jod in table.groupby(["scene", "condition"])["jod"].mean().items():
        image_id = images.get((scene, condition))
        if image_id is not None:
            out[image_id, None] = float(jod)
    return out
