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

from scaling.likelihood import ThurstoneObjective
from scaling.solvers import minimise_free, place_one_sided

CONTINUITY = 0.5


def continuity_corrected(counts: np.ndarray) -> np.ndarray:
    """Counts with half a vote added in each direction of every unanimous compared pair."""
    totals = counts + counts.T
    unanimous = (totals > 0) & ((counts == 0) | (counts.T == 0))
    return np.where(unanimous, counts + CONTINUITY, counts)


def place_undetermined(counts: np.ndarray, q: np.ndarray, core: np.ndarray) -> np.ndarray:
    """Scores with the non-core conditions re-placed and the core's left as they are.

    Only the pairs that involve a condition to place enter the problem (the core's own
    pairs add constants), so the cost follows the number of undetermined conditions, not
    the size of the study. Without a core (every condition
    one-sided, e.g. a strict chain compared once per pair), all scores come from the
    corrected likelihood, centred at 0.
    """
    free = ~core
    if not free.any():
        return q
    compared = (counts + counts.T) > 0
    involved = free | (core & compared[free].any(axis=0))
    local_counts = counts[np.ix_(involved, involved)].copy()
    local_core = core[involved]
    local_counts[np.ix_(local_core, local_core)] = 0.0  # core pairs add only constants
    objective = ThurstoneObjective(
        continuity_corrected(local_counts),
        prior="none",
        anchor="fix0" if core.any() else "mean0",
    )
    local_free = free[involved]
    scores = q[involved].copy()
    if core.any():  # start at each one's best score given the others: Newton then polishes
        scores = place_one_sided(objective, scores, np.flatnonzero(local_free))
    else:
        scores[:] = 0.0

    scores = minimise_free(objective, scores, local_free)
    placed = q.copy()
    placed[free] = scores[local_free]
    return placed
