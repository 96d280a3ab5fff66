"""Live JOD scales for the dashboard and the cross-content scheduler, via ``scaling``.

Scaling a campaign costs far more than one request should, so results are cached per
campaign and recomputed only when new answers have arrived and the cache is older than
``MAX_AGE_S``.
"""

from __future__ import annotations

import threading
import time

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotation_app.export import trials_frame
from annotation_app.models import Campaign, Image, Trial
from scaling.errors import InputError

MAX_AGE_S = 30.0


class LiveScales:
    """Per-campaign cache of ``scaling.scale`` over the answered per-scene trials."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[float, int, pd.DataFrame | str]] = {}
        self._lock = threading.Lock()

    def table(self, db: Session, campaign: Campaign) -> pd.DataFrame | str:
        """The scale table (scaling/formats.py), or a message saying why there is none."""
        n_answered = db.scalar(
            select(func.count()).where(
                Trial.campaign_id == campaign.id, Trial.answered_at.is_not(None)
            )
        )
        with self._lock:
            cached = self._cache.get(campaign.id)
        if cached and (cached[1] == n_answered or time.monotonic() - cached[0] < MAX_AGE_S):
            return cached[2]
        result = self._compute(db, campaign)
        with self._lock:
            self._cache[campaign.id] = (time.monotonic(), n_answered, result)
        return result

    @staticmethod
    def _compute(db: Session, campaign: Campaign) -> pd.DataFrame | str:
        try:
            from scaling import scale
        except ImportError as err:  # scaling.scale is the lead's; show why, don't crash
            return f"live scales unavailable: {err}"
        trials = trials_frame(db, campaign, "per_scene")
        trials = trials[trials["is_training"] == 0]
        if trials.empty:
            return "no answered per-scene trials yet"
        try:
            return scale(trials, by=["scene", "attribute"])
        except (InputError, ValueError) as err:
            return f"scaling failed: {err}"

    def scores(self, db: Session, campaign_id: int) -> dict[int, float]:
        """image id -> JOD (mean over attributes) for images with a determined score."""
        campaign = db.get(Campaign, campaign_id)
        table = self.table(db, campaign)
        if isinstance(table, str):
            return {}
        table = table[table["determined"]]
        jod = table.groupby(["scene", "condition"])["jod"].mean()
        out = {}
        for im in db.scalars(select(Image).where(Image.campaign_id == campaign_id)):
            if (im.scene, im.condition) in jod.index:
                out[im.id] = float(jod[im.scene, im.condition])
        return out
