"""Labels: JOD scores rescaled to the 1..5 level range and DeQA-Score's level distributions.

Levels are indexed in ascending score order: index ``k - 1`` holds level ``k`` (1 = bad ..
5 = excellent). Everything here is numpy only, so the formulas can be checked by hand. Each
label reproduces DeQA-Score's ``build_soft_labels/gen_soft_label.py`` (and Q-Align's bins)
exactly, quirks included (no renormalisation after clipping, a uniform label at mu = 3).
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
#: DeQA's interval slack (``eps`` in ``get_level`` and ``get_binary_probs``).
DEQA_EPS = 1e-8


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
    """DeQA's two-level label (``get_binary_probs``): linear interpolation between the two
    levels around ``mu``, on DeQA's intervals (k - eps, k + 1 + eps]; its mean is mu to 1e-8."""
    _check_mu(mu)
    label = np.zeros(5)
    for k in range(1, 5):
        left, right = k - DEQA_EPS, k + 1 + DEQA_EPS
        if left < mu <= right:
            label[k - 1] = (right - mu) / (right - left)
            label[k] = (mu - left) / (right - left)
            break
    return label


def one_hot_label(mu: float) -> np.ndarray:
    """Q-Align's label, the ablation DeQA compares against: all mass on the level whose fifth
    of the range holds ``mu`` (five equal bins of width 0.8, closed on the right)."""
    label = np.zeros(5)
    label[qalign_level(mu) - 1] = 1.0
    return label


def qalign_level(mu: float) -> int:
    """The level 1..5 of Q-Align's (and DeQA's ``get_level``) five equal bins on [1, 5]."""
    _check_mu(mu)
    for k in range(1, 6):
        if 1.0 + 0.8 * (k - 1) - DEQA_EPS < mu <= 1.0 + 0.8 * k + DEQA_EPS:
            return k
    raise AssertionError(f"mu {mu} in no bin")  # unreachable: _check_mu bounds mu to [1, 5]


def soft_label(mu: float, sigma: float, variant: Literal["pdf", "interval"] = "pdf") -> np.ndarray:
    """DeQA-Score's soft label over the five levels, as ``build_soft_labels`` makes it.

    ``p_k`` is the Normal(mu, sigma) density at k (``pdf``) or its mass on [k - 0.5, k + 0.5]
    (``interval``, DeQA's "cdf"). The affine fix-up ``q = alpha p + beta`` with
    ``alpha = (mu - 3) / (B - 3A + 1e-9)``, ``beta = (1 - alpha A) / 5`` (A = sum p,
    B = sum k p_k) makes q sum to 1 with mean mu; negative entries are then clipped at 0
    WITHOUT renormalising (so q may sum to more than 1), and when sigma < 0.2 or the clipped
    label's mean drifts from mu by more than 0.1 the two-level label is returned instead.
    At mu = 3 exactly alpha is 0 and the label is uniform, as in DeQA.
    """
    _check_mu(mu)
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be finite and >= 0, not {sigma}")
    if variant not in ("pdf", "interval"):
        raise ValueError(f"variant must be 'pdf' or 'interval', not {variant!r}")
    if sigma < MIN_SOFT_STD:
        return two_level_label(mu)
    if variant == "pdf":
        p = norm.pdf(LEVEL_SCORES, loc=mu, scale=sigma)
    else:
        p = norm.cdf(LEVEL_SCORES + 0.5, mu, sigma) - norm.cdf(LEVEL_SCORES - 0.5, mu, sigma)
    a = p.sum()
    b = (LEVEL_SCORES * p).sum()
    alpha = (mu - 3.0) / (b - 3.0 * a + 1e-9)
    beta = (1.0 - alpha * a) / 5.0
    q = np.maximum(alpha * p + beta, 0.0)
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
