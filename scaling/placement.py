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

from scaling.likelihood import SIGMA, _normal_terms, pair_likelihood
from scaling.solvers import solve_exact

CONTINUITY = 0.5

PLACEMENT_TOL = 1e-9
"""Newton stops when no placed score moves by more than this (JOD), by default."""


def continuity_corrected(counts: np.ndarray) -> np.ndarray:
    """Counts with half a vote added in each direction of every unanimous compared pair."""
    totals = counts + counts.T
    unanimous = (totals > 0) & ((counts == 0) | (counts.T == 0))
    return np.where(unanimous, counts + CONTINUITY, counts)


def place_undetermined(
    counts: np.ndarray, q: np.ndarray, core: np.ndarray, tol: float = PLACEMENT_TOL
) -> np.ndarray:
    """Scores with the non-core conditions re-placed and the core's left as they are.

    Only the pairs that involve a condition to place enter the problem (the core's own
    pairs add constants), so the cost follows the number of undetermined conditions, not
    the size of the study. Without a core (every condition one-sided, e.g. a strict chain
    compared once per pair), all scores come from the corrected likelihood, centred at 0.
    ``tol`` is Newton's step tolerance (JOD); bootstrap re-solves pass their looser one.
    """
    free = ~core
    if not free.any():
        return q
    if not core.any():
        corrected = continuity_corrected(counts)
        return solve_exact(corrected, prior="none", place=False, step_tol=tol).q
    return _place_around_core(counts, q, free, tol)


def _place_around_core(
    counts: np.ndarray, q: np.ndarray, free: np.ndarray, tol: float
) -> np.ndarray:
    """Newton on the free scores alone, the others fixed: the problem is convex (no prior)
    and has as many unknowns as there are conditions to place (usually one to three).

    Each compared pair with a free condition enters once: (free, other) for every other
    condition that is not free, and (a, b) with a < b for two free ones.
    """
    placed_index = np.flatnonzero(free)
    slot = np.full(free.size, -1)
    slot[placed_index] = np.arange(placed_index.size)
    compared = (counts[placed_index] + counts[:, placed_index].T) > 0
    compared &= ~free[None, :] | (placed_index[:, None] < np.arange(free.size)[None, :])
    row, other = np.nonzero(compared)
    first = placed_index[row]
    wins, losses = counts[first, other], counts[other, first]
    unanimous = (wins == 0) | (losses == 0)
    wins, losses = wins + CONTINUITY * unanimous, losses + CONTINUITY * unanimous
    second_slot = slot[other]  # -1: fixed condition
    fixed = q[other]  # used where the other condition is not placed
    k = placed_index.size
    both = second_slot >= 0

    def derivatives(x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Value, gradient and Hessian in the placed scores (u = x / SIGMA)."""
        u = (x[row] - np.where(both, x[second_slot.clip(0)], fixed)) / SIGMA
        value, d_u, d2_u = pair_likelihood(u, wins, losses, _normal_terms(u), 2)
        grad = np.bincount(row, d_u, k) - np.bincount(second_slot[both], d_u[both], k)
        hess = np.diag(np.bincount(row, d2_u, k) + np.bincount(second_slot[both], d2_u[both], k))
        np.subtract.at(hess, (row[both], second_slot[both]), d2_u[both])
        np.subtract.at(hess, (second_slot[both], row[both]), d2_u[both])
        return value, grad / SIGMA, hess / SIGMA**2

    core_scores = q[~free]
    x = q[placed_index].clip(core_scores.min() - 10.0, core_scores.max() + 10.0)
    value, grad, hess = derivatives(x)
    previous = 0.0
    for _ in range(100):
        step = -np.linalg.solve(hess, grad)
        moved = float(np.abs(step).max())
        ahead = derivatives(x + step)
        # Backtrack while the (convex) objective rises; a step at rounding level is taken.
        while ahead[0] > value and moved > tol:
            step *= 0.5
            moved *= 0.5
            ahead = derivatives(x + step)
        x = x + step
        value, grad, hess = ahead
        # Stop below the tolerance, or when Newton's quadratic convergence says the next
        # step would be (as in scaling.solvers._newton).
        if moved < tol or moved**3 < tol * previous**2:
            break
        previous = moved
    placed = q.copy()
    placed[placed_index] = x
    return placed
