"""Sanity checks of a fitted alignment: slopes that make sense, a unified scale that stays put.

Every method (line fits and the joint model) ends here. A unified score is
u = (a_j x + b_j - b_r) / a_r, so one slope a_j that is not positive turns a scene upside
down, and a tiny one either collapses the scene (a_j) or blows every score up (a_r, the
reference's). Such fits are reported per scene with the reason; under ``strict`` they stop
the alignment instead (:class:`AlignmentRefused`).

Thresholds: both scales are JOD scales (Thurstone, one SIGMA), so a slope says how much a
scene's JOD shrinks or stretches on the cross-content scale; cross-content judgments are
harder and compress it somewhat, but never tenfold in a sensible study (:data:`MIN_SLOPE`).
The same bound holds for the factor a_j / a_r by which the unified scale stretches a scene
(or its inverse). Unified scores more than one range (the per-scene scores' or the cross-content
scores', whichever is wider: scenes differ in offset) beyond the per-scene scores
(:data:`SPREAD_MARGIN`) are far outside anything the data measured.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

from alignment.formats import AlignmentWarning
from scaling.errors import InputError

MIN_SLOPE = 0.1
"""Smallest slope a_j (cross-content JOD per per-scene JOD) taken as meaningful."""

SPREAD_MARGIN = 1.0
"""Unified scores may reach this many ranges (per-scene or cross-content) beyond the
per-scene scores."""


class AlignmentRefused(InputError):
    """A fitted alignment failed its checks and ``strict`` was asked for: the data do not
    support the alignment asked for (``jod`` reports it like bad input, exit code 2)."""


def slope_problem(a: float) -> str | None:
    """Why slope ``a`` cannot map a scene, or None when it can."""
    if not np.isfinite(a) or a <= 0:
        return f"slope a = {a:.3g} is not positive: the scene's scale would be turned over"
    if a < MIN_SLOPE:
        return (
            f"slope a = {a:.3g} is tiny (below {MIN_SLOPE}): its images are nearly "
            "indistinguishable on the cross-content scale"
        )
    return None


def eligible_references(slopes: Mapping[str, float]) -> list[str]:
    """Scenes whose slope may divide every unified score (the reference's must be sound)."""
    return [s for s, a in slopes.items() if slope_problem(a) is None]


def check_alignment(
    scene: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    u: np.ndarray,
    slopes: Mapping[str, float],
    reference: str,
) -> list[str]:
    """One message per scene whose slope or unified scores make no sense.

    ``scene``, ``x``, ``y``, ``u``: per image, its scene, per-scene score, cross-content
    score (NaN outside the cross task) and unified score.
    """
    lo, hi = float(np.min(x)), float(np.max(x))
    cross = y[np.isfinite(y)]
    margin = SPREAD_MARGIN * max(hi - lo, float(np.ptp(cross)) if cross.size else 0.0)
    problems = []
    for name in sorted(slopes):
        reasons = []
        slope = slope_problem(slopes[name])
        if slope:
            reasons.append(slope)
            if name == reference:
                reasons.append("it is the reference: every unified score is divided by it")
        elif name != reference and slope_problem(slopes[reference]) is None:
            stretch = slopes[name] / slopes[reference]
            if not MIN_SLOPE <= stretch <= 1 / MIN_SLOPE:
                reasons.append(f"the unified scale stretches it by a_j / a_ref = {stretch:.3g}")
        mine = u[scene == name]
        worst = float(mine[np.argmax(np.abs(mine))]) if mine.size else 0.0
        if not np.all(np.isfinite(mine)) or np.any((mine < lo - margin) | (mine > hi + margin)):
            reasons.append(
                f"unified scores reach {worst:.3g} JOD, far outside the per-scene scores "
                f"[{lo:.2f}, {hi:.2f}] JOD"
            )
        if reasons:
            problems.append(f"scene {name!r}: {'; '.join(reasons)}")
    return problems


def report(problems: list[str], strict: bool) -> list[str]:
    """Warn about each problem, or refuse them all at once under ``strict``."""
    if strict and problems:
        raise AlignmentRefused(f"alignment refused (strict): {'; '.join(problems)}")
    for problem in problems:
        warnings.warn(problem, AlignmentWarning, stacklevel=3)
    return problems
