"""Labels: JOD scores rescaled to the 1..5 level range and DeQA-Score's level distributions.

Levels are indexed in ascending score order: index ``k - 1`` holds level ``k`` (1 = bad ..
5 = excellent). Everything here is numpy only, so the formulas can be checked by hand.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator
from scipy.stats import norm

LEVEL_SCORES = np.arange(1.0, 6.0)
LabelKind = Literal["soft_pdf", "soft_interval", "two_level", "one_hot"]

#: Below this std the soft label degenerates; DeQA falls back to two levels.
MIN_SOFT_STD = 0.2
#: Largest tolerated drift of the fixed-up label's mean from mu before falling back.
MAX_MEAN_DRIFT = 0.1


class JodRescaling(BaseModel):
    """Affine map between the training JOD range and the 1..5 level scale.

    Saved next to every model so that predictions go back to JOD exactly.
    """

    model_config = ConfigDict(frozen=True)

    jod_min: float
    jod_max: float

    @model_validator(mode="after")
    def _check_range(self) -> JodRescaling:
        if not (math.isfinite(self.jod_min) and math.isfinite(self.jod_max)):
            raise ValueError("jod_min and jod_max must be finite")
        if self.jod_max <= self.jod_min:
            raise ValueError(
                f"jod_max ({self.jod_max}) must exceed jod_min ({self.jod_min}): "
                "the training scale needs at least two distinct JOD values"
            )
        return self

    @classmethod
    def fit(cls, jod: np.ndarray) -> JodRescaling:
        """The mapping for a training set: its min and max JOD go to 1 and 5."""
        jod = np.asarray(jod, dtype=float)
        return cls(jod_min=float(np.min(jod)), jod_max=float(np.max(jod)))

    @property
    def span(self) -> float:
        return self.jod_max - self.jod_min

    def to_level(self, jod: np.ndarray) -> np.ndarray:
        """mu = 1 + 4 (m - min) / (max - min)."""
        return 1.0 + 4.0 * (np.asarray(jod, dtype=float) - self.jod_min) / self.span

    def std_to_level(self, jod_std: np.ndarray) -> np.ndarray:
        """sigma = 4 s / (max - min)."""
        return 4.0 * np.asarray(jod_std, dtype=float) / self.span

    def to_jod(self, level: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_level`."""
        return self.jod_min + (np.asarray(level, dtype=float) - 1.0) * self.span / 4.0

    def std_to_jod(self, level_std: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`std_to_level`."""
        return np.asarray(level_std, dtype=float) * self.span / 4.0


def two_level_label(mu: float) -> np.ndarray:
    """Linear interpolation between the two levels around ``mu``; its mean is exactly mu."""
    _check_mu(mu)
    lower = min(math.floor(mu), 4)
    weight_upper = mu - lower
    label = np.zeros(5)
    label[lower - 1] = 1.0 - weight_upper
    label[lower] += weight_upper
    return label


def one_hot_label(mu: float) -> np.ndarray:
    """Q-Align's label: all mass on the nearest level (the ablation DeQA compares against)."""
    _check_mu(mu)
    label = np.zeros(5)
    label[int(np.clip(np.floor(mu + 0.5), 1, 5)) - 1] = 1.0
    return label


def soft_label(mu: float, sigma: float, variant: Literal["pdf", "interval"] = "pdf") -> np.ndarray:
    """DeQA-Score's soft label over the five levels.

    ``p_k`` is the Normal(mu, sigma) density at k (``pdf``) or its mass on [k - 0.5, k + 0.5]
    (``interval``). The affine fix-up ``q = alpha p + beta`` with ``alpha = (mu - 3) / (B - 3A)``,
    ``beta = (1 - alpha A) / 5`` (A = sum p, B = sum k p_k) makes q sum to 1 with mean mu.
    Negative entries are clipped and q renormalised; when sigma < 0.2 or the mean then drifts
    from mu by more than 0.1, the two-level label is returned instead.
    """
    _check_mu(mu)
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be finite and >= 0, not {sigma}")
    if sigma < MIN_SOFT_STD:
        return two_level_label(mu)
    if variant == "pdf":
        p = norm.pdf(LEVEL_SCORES, loc=mu, scale=sigma)
    elif variant == "interval":
        p = norm.cdf(LEVEL_SCORES + 0.5, mu, sigma) - norm.cdf(LEVEL_SCORES - 0.5, mu, sigma)
    else:
        raise ValueError(f"variant must be 'pdf' or 'interval', not {variant!r}")
    a = p.sum()
    b = (LEVEL_SCORES * p).sum()
    if abs(b - 3.0 * a) < 1e-12 * max(a, 1e-300):
        # p is already centred on 3 = mu: plain normalisation is the fix-up.
        q = p / a
    else:
        alpha = (mu - 3.0) / (b - 3.0 * a)
        beta = (1.0 - alpha * a) / 5.0
        q = alpha * p + beta
    q = np.clip(q, 0.0, None)
    q = q / q.sum()
    if abs((LEVEL_SCORES * q).sum() - mu) > MAX_MEAN_DRIFT:
        return two_level_label(mu)
    return q


def make_label(kind: LabelKind, mu: float, sigma: float) -> np.ndarray:
    """The label of one image for the configured label kind."""
    if kind == "soft_pdf":
        return soft_label(mu, sigma, "pdf")
    if kind == "soft_interval":
        return soft_label(mu, sigma, "interval")
    if kind == "two_level":
        return two_level_label(mu)
    if kind == "one_hot":
        return one_hot_label(mu)
    raise ValueError(f"unknown label kind {kind!r}")


def _check_mu(mu: float) -> None:
    if not (math.isfinite(mu) and 1.0 <= mu <= 5.0):
        raise ValueError(f"mu must lie in [1, 5], not {mu}")
