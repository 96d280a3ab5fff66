"""Scores for conditions whose optimum is not finite, placed in the data's order.

Where pwcmp's objective has no finite optimum for some conditions (no prior and a condition
outside the determined core, or a Gaussian prior too flat to hold it: see
:mod:`scaling.optimum`), their maximum-likelihood scores lie at infinity and any finite
number is a stand-in. jodkit places them by the continuity-corrected likelihood of their
comparisons (half a vote added each way to every unanimous pair, Haldane's correction),
holding every other score fixed, under the data's order: a condition that won every
comparison against another (two different strongly connected components of the win graph)
is never placed below it. The order is kept by a logarithmic barrier, so every placed score
ends strictly on the right side of every condition it beat or lost to, and the barrier's
weight is driven down until the objective is within ``PLACEMENT_GAP`` of the constrained
optimum.

Within one strongly connected component the data contradict themselves (a cycle of wins)
and no order can honour every unanimous pair; there the corrected likelihood decides alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from scaling.likelihood import continuity_corrected
from scaling.solvers import Ordering
from scaling.thurstone import SIGMA, pair_negative_log_likelihood

PLACEMENT_GAP = 1e-9
"""The barrier's bound on how far the placed scores' objective is from the constrained
optimum of the corrected likelihood (its duality gap: barrier weight x constraints)."""

START_MARGIN = 0.5
"""JOD between ordered scores at the barrier's (strictly feasible) start."""


def place(
    counts: np.ndarray,
    q: np.ndarray,
    placed: np.ndarray,
    strong: np.ndarray,
    extra: Sequence[Ordering] = (),
    gap: float = PLACEMENT_GAP,
) -> np.ndarray:
    """Scores with the ``placed`` conditions re-placed and the others left as they are.

    Parameters
    ----------
    counts : (N, N) array
        D[i, j] = times i was chosen over j, of one connected comparison graph.
    q : (N,) array
        Scores; those of the conditions not placed are held.
    placed : (N,) bool array
        Conditions to place. When every condition is placed (no core), the result is
        centred at 0.
    strong : (N,) int array
        Strongly connected component of every condition in the win graph
        (:class:`scaling.graph.WinOrder`): pairs across components are ordered.
    extra : sequence of Ordering
        Further orderings to honour (``--order`` constraints), with their margins.
    gap : float
        Bound on the objective's distance from the constrained optimum.

    Only the pairs that involve a placed condition enter the problem (the others add
    constants), so the cost follows the number of placed conditions, not the study's size.
    """
    placed = np.asarray(placed, dtype=bool)
    if not placed.any():
        return q
    q = np.asarray(q, dtype=float).copy()
    pin = None
    if placed.all():  # nothing holds the scale's offset: hold one score, centre at the end
        pin = int(np.flatnonzero(placed)[0])
        placed = placed.copy()
        placed[pin] = False
        q[pin] = 0.0
    problem = _PlacementProblem(counts, q, placed, strong, extra)
    q[placed] = problem.solve(gap)
    if pin is not None:
        q -= q.mean()
    return q


class _PlacementProblem:
    """min f(x) - mu sum log(slack) over the placed scores x, f the corrected likelihood,
    each slack a difference winner - loser that must stay positive."""

    def __init__(
        self,
        counts: np.ndarray,
        q: np.ndarray,
        placed: np.ndarray,
        strong: np.ndarray,
        extra: Sequence[Ordering],
    ) -> None:
        index = np.flatnonzero(placed)
        self.k = index.size
        slot = np.full(q.size, -1)
        slot[index] = np.arange(self.k)
        corrected = continuity_corrected(counts)
        totals = counts + counts.T
        # Each compared pair with a placed condition once: (placed, other) for every other
        # that is held, (a, b) with a < b for two placed ones.
        upper = np.triu(np.ones_like(totals, dtype=bool), k=1)
        touching = placed[:, None] | placed[None, :]
        i, j = np.nonzero((totals > 0) & touching & upper)
        self.wins, self.losses = corrected[i, j], corrected[j, i]
        self.slot_i, self.slot_j = slot[i], slot[j]
        self.fixed_i, self.fixed_j = q[i], q[j]
        # The order: pairs across strongly connected components, winner first.
        ordered = strong[i] != strong[j]
        i_won = counts[i, j] > 0
        winner = np.concatenate([np.where(i_won, i, j)[ordered], [c.better for c in extra]])
        loser = np.concatenate([np.where(i_won, j, i)[ordered], [c.worse for c in extra]])
        winner, loser = winner.astype(np.intp), loser.astype(np.intp)
        self.margin = np.concatenate([np.zeros(int(ordered.sum())), [c.margin for c in extra]])
        self.win_slot, self.lose_slot = slot[winner], slot[loser]
        self.win_fixed, self.lose_fixed = q[winner], q[loser]
        self.start = self._feasible_start()

    def _values(self, x: np.ndarray, slots: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        return np.where(slots >= 0, x[slots.clip(0)], fixed)

    def _slacks(self, x: np.ndarray) -> np.ndarray:
        winner = self._values(x, self.win_slot, self.win_fixed)
        return winner - self._values(x, self.lose_slot, self.lose_fixed) - self.margin

    def _feasible_start(self) -> np.ndarray:
        """Scores ``START_MARGIN`` beyond every order constraint: shortest paths
        (Bellman-Ford) in the graph of the difference constraints x_lose <= x_win - margin,
        the held scores entering through one node fixed at 0."""
        k = self.k
        win, lose = self.win_slot, self.lose_slot
        # Node k stands for the held scores: a held winner bounds its loser from above
        # (k -> lose, weight q_win - margin), a held loser its winner from below.
        source = np.where(win >= 0, win, k)
        target = np.where(lose >= 0, lose, k)
        for margin in (START_MARGIN, START_MARGIN * 1e-3, START_MARGIN * 1e-6):
            weight = (
                np.where(win >= 0, 0.0, self.win_fixed)
                - np.where(lose >= 0, 0.0, self.lose_fixed)
                - self.margin
                - margin
            )
            distance = np.zeros(k + 1)
            for _ in range(k + 2):
                relaxed = distance.copy()
                np.minimum.at(relaxed, target, distance[source] + weight)
                if np.array_equal(relaxed, distance):
                    x = distance[:k] - distance[k]
                    if np.all(self._slacks(x) > 0.0):
                        return x
                    break
                distance = relaxed
        raise ValueError(
            "no placement honours the order of the data: the held scores contradict it"
        )

    def _derivatives(self, x: np.ndarray, mu: float) -> tuple[float, np.ndarray, np.ndarray]:
        """Value, gradient and Hessian of the barrier problem in the placed scores."""
        k = self.k
        u = self._values(x, self.slot_i, self.fixed_i) - self._values(x, self.slot_j, self.fixed_j)
        u /= SIGMA
        value, d_u, d2_u = pair_negative_log_likelihood(u, self.wins, self.losses, 2)
        grad = np.zeros(k)
        hess = np.zeros((k, k))
        _add_pairs(grad, hess, self.slot_i, self.slot_j, d_u / SIGMA, d2_u / SIGMA**2)
        slack = self._slacks(x)
        if slack.size:
            value -= mu * float(np.sum(np.log(slack)))
            # d(-mu log s)/ds = -mu / s, d^2 = mu / s^2; s = x_win - x_lose.
            _add_pairs(grad, hess, self.win_slot, self.lose_slot, -mu / slack, mu / slack**2)
        return value, grad, hess

    def solve(self, gap: float) -> np.ndarray:
        """Barrier Newton from the feasible start, the barrier weight cut tenfold per stage
        until it times the number of ordered pairs is below ``gap``."""
        x = self.start
        m = self.win_slot.size
        # The last weight is compared with itself, not its product with m tested against
        # gap: (gap / m) * m can round above gap, and such a loop never ended.
        last = gap / m if m else 0.0
        mu = 1.0 if m else 0.0
        while True:
            x = self._newton(x, mu)
            if mu <= last:
                return x
            mu = max(mu * 0.1, last)

    def _newton(self, x: np.ndarray, mu: float) -> np.ndarray:
        value, grad, hess = self._derivatives(x, mu)
        for _ in range(200):
            step = -cho_solve(cho_factor(hess + 1e-12 * np.eye(self.k)), grad)
            decrement = -float(grad @ step)
            if decrement < 1e-14 * max(1.0, abs(value)):
                break
            # The largest step that keeps every slack positive, then backtracking.
            slack = self._slacks(x)
            rate = self._slacks(x + step) - slack
            shrinking = rate < 0.0
            t = min(1.0, 0.99 * float(np.min(-slack[shrinking] / rate[shrinking], initial=np.inf)))
            while True:
                trial = x + t * step
                trial_value, trial_grad, trial_hess = self._derivatives(trial, mu)
                if trial_value <= value - 1e-4 * t * decrement or t < 1e-12:
                    break
                t *= 0.5
            x, value, grad, hess = trial, trial_value, trial_grad, trial_hess
        return x


def _add_pairs(
    grad: np.ndarray,
    hess: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    d_first: np.ndarray,
    curvature: np.ndarray,
) -> None:
    """Add terms of differences x_first - x_second (slot -1: a held score) with derivative
    ``d_first`` and second derivative ``curvature`` to the gradient and Hessian."""
    k = grad.size
    a, b = first >= 0, second >= 0
    grad += np.bincount(first[a], d_first[a], k) - np.bincount(second[b], d_first[b], k)
    diagonal = np.bincount(first[a], curvature[a], k) + np.bincount(second[b], curvature[b], k)
    hess[np.diag_indices(k)] += diagonal
    both = a & b
    np.subtract.at(hess, (first[both], second[both]), curvature[both])
    np.subtract.at(hess, (second[both], first[both]), curvature[both])
