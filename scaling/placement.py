"""Sensible scores for the conditions the data do not determine.

A condition outside the determined core (:func:`scaling.graph.determined_core`) has no
finite optimum: pwcmp reports wherever its optimiser stopped, often tens of JOD away. jodkit
places it instead by the continuity-corrected likelihood of its comparisons (half a vote
added each way to every unanimous pair, Haldane's correction), holding the core's exact
scores fixed. The score is then a conservative estimate ("at least this much better"),
and the scale table marks it ``determined = False``.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from scaling.likelihood import ThurstoneObjective

CONTINUITY = 0.5


def continuity_corrected(counts: np.ndarray) -> np.ndarray:
    """Counts with half a vote added in each direction of every unanimous compared pair."""
    totals = counts + counts.T
    unanimous = (totals > 0) & ((counts == 0) | (counts.T == 0))
    return np.where(unanimous, counts + CONTINUITY, counts)


def place_undetermined(counts: np.ndarray, q: np.ndarray, core: np.ndarray) -> np.ndarray:
    """Scores with the non-core conditions re-placed and the core's left as they are.

    Without a core (every condition one-sided, e.g. a strict chain compared once per pair),
    all scores come from the corrected likelihood, centred at 0.
    """
    free = ~core
    if not free.any():
        return q
    objective = ThurstoneObjective(
        continuity_corrected(counts), prior="none", anchor="fix0" if core.any() else "mean0"
    )
    placed = q.copy()
    if core.any():  # start within reach of the core: far-out starts sit on flat tails
        placed[free] = q[free].clip(q[core].min() - 10.0, q[core].max() + 10.0)
    else:
        placed[:] = 0.0

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        placed[free] = x
        value, grad = objective.value_and_grad(placed)
        return value, grad[free]

    def hess(x: np.ndarray) -> np.ndarray:
        placed[free] = x
        return objective.likelihood_hessian(placed)[np.ix_(free, free)]

    result = minimize(
        fun, placed[free], jac=True, hess=hess, method="trust-exact", options={"gtol": 1e-9}
    )
    placed[free] = result.x
    return placed
