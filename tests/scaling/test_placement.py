"""Placement of conditions whose optimum is at infinity (scaling.placement): the constrained
optimum of the corrected likelihood, in the data's order."""

from __future__ import annotations

import signal
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import log_ndtr

from scaling.graph import WinOrder
from scaling.likelihood import continuity_corrected
from scaling.placement import place
from scaling.solvers import Ordering


def _core_and_two_unbeaten() -> np.ndarray:
    """Conditions 0-4 beat each other in cycles; 5 never lost; 6 lost only to 5."""
    counts = np.zeros((7, 7))
    for i, j in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (0, 2), (1, 3)]:
        counts[i, j], counts[j, i] = 3.0, 1.0
    counts[5, [0, 1, 2]] = [2.0, 3.0, 1.0]
    counts[6, [2, 3, 4]] = [1.0, 2.0, 2.0]
    counts[5, 6] = 2.0
    return counts


def _reference_placement(counts, q, placed, orderings):
    """SLSQP on the corrected likelihood (written out here) with the orderings as
    inequality constraints: an independent constrained optimum."""
    corrected = continuity_corrected(counts)
    index = np.flatnonzero(placed)

    def scores(x):
        full = q.copy()
        full[index] = x
        return full

    def nll(x):
        full = scores(x)
        i, j = np.nonzero(np.triu((counts + counts.T) > 0, 1) & (placed[:, None] | placed))
        u = (full[i] - full[j]) / 1.4826
        return -float(np.sum(corrected[i, j] * log_ndtr(u) + corrected[j, i] * log_ndtr(-u)))

    constraints = [
        {"type": "ineq", "fun": lambda x, a=a, b=b: scores(x)[a] - scores(x)[b]}
        for a, b in orderings
    ]
    start = q[index] + np.arange(index.size)  # any start: SLSQP handles infeasible ones
    result = minimize(nll, start, method="SLSQP", constraints=constraints, options={"ftol": 1e-14})
    return result.x


def test_placed_scores_are_the_constrained_optimum_of_the_corrected_likelihood() -> None:
    counts = _core_and_two_unbeaten()
    order = WinOrder.from_counts(counts)
    core = order.strong == order.core
    np.testing.assert_array_equal(core, [True] * 5 + [False] * 2)
    q = np.array([0.4, -0.2, 0.1, -0.5, 0.2, 9.0, 7.0])  # far-out starts, as Newton leaves them
    placed = place(counts, q, ~core, order.strong)
    np.testing.assert_array_equal(placed[:5], q[:5])
    winners, losers = order.ordered_pairs(counts)
    reference = _reference_placement(counts, q, ~core, list(zip(winners, losers, strict=True)))
    np.testing.assert_allclose(placed[5:], reference, atol=1e-5)
    assert placed[5] > placed[6] > q[[2, 3, 4]].max()  # above what they beat, 5 above 6


def test_the_order_binds_where_the_likelihood_alone_would_break_it() -> None:
    """A condition that beat the top condition once and many weak ones many times: alone,
    the corrected likelihood puts it below the top one (the issue's ranking bug); the
    placement holds it at or above, and the result is still the constrained optimum."""
    n = 8
    counts = np.zeros((n, n))
    for i in range(6):  # a core 0..5 in a cycle, 0 strongest
        counts[i, (i + 1) % 6] = 4.0
        counts[(i + 1) % 6, i] = 1.0
    for i in range(1, 6):
        counts[0, i] += 6.0
    counts[6, 0] = 1.0  # 6 beat the top condition once
    counts[6, [3, 4, 5]] = 8.0  # and the weakest ones often
    counts[7, 6] = 1.0  # 7 beat 6 once and nothing else
    order = WinOrder.from_counts(counts)
    core = order.strong == order.core
    q = np.array([3.0, 1.0, 0.5, 0.0, -0.5, -1.0, 0.0, 0.0])
    unconstrained = _reference_placement(counts, q, ~core, [])
    assert unconstrained[0] < q[0]  # the corrected likelihood alone ranks 6 below 0
    placed = place(counts, q, ~core, order.strong)
    assert placed[6] >= q[0] and placed[7] >= placed[6]
    winners, losers = order.ordered_pairs(counts)
    reference = _reference_placement(counts, q, ~core, list(zip(winners, losers, strict=True)))
    np.testing.assert_allclose(placed[6:], reference, atol=1e-5)


def test_without_a_core_every_score_is_placed_in_order_and_centred() -> None:
    counts = np.triu(np.ones((4, 4)), k=1)  # a strict order: no cycle, no core
    order = WinOrder.from_counts(counts)
    assert order.core == -1
    placed = place(counts, np.full(4, 50.0), np.ones(4, bool), order.strong)
    assert np.all(np.diff(placed) < 0) and abs(placed.mean()) < 1e-12


def test_extra_orderings_with_margins_are_honoured_and_contradictions_refused() -> None:
    counts = _core_and_two_unbeaten()
    order = WinOrder.from_counts(counts)
    core = order.strong == order.core
    q = np.array([0.4, -0.2, 0.1, -0.5, 0.2, 0.0, 0.0])
    free = place(counts, q, ~core, order.strong)
    margin = place(counts, q, ~core, order.strong, extra=[Ordering(5, 0, 3.0)])
    assert free[5] < q[0] + 3.0 and margin[5] >= q[0] + 3.0
    assert margin[5] > margin[6] > q[[2, 3, 4]].max()
    for contradiction in (Ordering(6, 5, 0.0), Ordering(1, 5, 0.0)):  # 5 beat 6 and 1
        with pytest.raises(ValueError, match="order of the data"):
            place(counts, q, ~core, order.strong, extra=[contradiction])


@contextmanager
def _returns_within(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the block runs longer than ``seconds``."""

    def stop(_signum, _frame):
        raise AssertionError(f"did not return within {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _core_and_137_ordered_pairs() -> np.ndarray:
    """A 10-condition core (a cycle of wins) and 13 conditions that lost to every core
    condition, 7 of them in a chain of unanimous wins: 13 x 10 + 7 = 137 ordered pairs."""
    n = 23
    counts = np.zeros((n, n))
    for i in range(10):
        counts[i, (i + 1) % 10], counts[(i + 1) % 10, i] = 3.0, 1.0
    counts[:10, 10:] = 1.0
    for i in range(10, 17):
        counts[i, i + 1] = 2.0
    return counts


def test_the_barrier_stops_when_its_last_weight_rounds_up() -> None:
    """The barrier's last weight is gap / m; at m = 137 ordered pairs (gap / m) x m rounds
    above gap, and a stopping test on that product never ended (a 50-condition active
    sampling run of benchmarks/active_sampling.py hung here, in pw_scale without a prior)."""
    counts = _core_and_137_ordered_pairs()
    order = WinOrder.from_counts(counts)
    core = order.strong == order.core
    winners, losers = order.ordered_pairs(counts)
    assert winners.size == 137 and (1e-9 / 137) * 137 > 1e-9
    q = np.where(core, np.linspace(-1.0, 1.0, counts.shape[0]), 0.0)
    with _returns_within(30):
        placed = place(counts, q, ~core, order.strong)
    assert np.all(placed[winners] > placed[losers])
    reference = _reference_placement(counts, q, ~core, list(zip(winners, losers, strict=True)))
    np.testing.assert_allclose(placed[~core], reference, atol=1e-5)


def test_the_placement_does_not_depend_on_where_the_held_scores_sit() -> None:
    """Only differences matter: held scores 2,500 JOD out (the estimator's scale after
    rays were sent far) give the same placement, shifted, and no slack closes by rounding
    (a slack of 0 would be log(0) in the barrier, a RuntimeWarning made an error here)."""
    counts = _core_and_137_ordered_pairs()
    order = WinOrder.from_counts(counts)
    core = order.strong == order.core
    q = np.where(core, np.linspace(-1.0, 1.0, counts.shape[0]), 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        near = place(counts, q, ~core, order.strong)
        far = place(counts, q + 2500.0, ~core, order.strong)
    np.testing.assert_allclose(far - 2500.0, near, rtol=0, atol=1e-9)
