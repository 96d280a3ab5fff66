"""Placement of the conditions the data do not determine (scaling.placement)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from scaling.graph import determined_core
from scaling.likelihood import ThurstoneObjective
from scaling.placement import continuity_corrected, place_undetermined


def _core_and_two_unbeaten() -> np.ndarray:
    """Conditions 0-4 beat each other in cycles; 5 never lost; 6 lost only to 5."""
    counts = np.zeros((7, 7))
    for i, j in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (0, 2), (1, 3)]:
        counts[i, j], counts[j, i] = 3.0, 1.0
    counts[5, [0, 1, 2]] = [2.0, 3.0, 1.0]
    counts[6, [2, 3, 4]] = [1.0, 2.0, 2.0]
    counts[5, 6] = 2.0
    return counts


def test_placed_scores_minimise_the_corrected_likelihood_given_the_core() -> None:
    counts = _core_and_two_unbeaten()
    core = determined_core(counts)
    np.testing.assert_array_equal(core, [True] * 5 + [False] * 2)
    q = np.array([0.4, -0.2, 0.1, -0.5, 0.2, 9.0, 7.0])  # far-out starts, as a prior leaves them
    placed = place_undetermined(counts, q, core)
    np.testing.assert_array_equal(placed[:5], q[:5])

    objective = ThurstoneObjective(continuity_corrected(counts), prior="none", anchor="fix0")

    def free_objective(x: np.ndarray) -> float:
        return objective.value(np.concatenate([q[:5], x]))

    reference = minimize(free_objective, np.zeros(2), method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose(placed[5:], reference.x, atol=1e-5)
    assert placed[5] > placed[6] > q[:5].max()  # above what they beat, 5 above 6


def test_without_a_core_every_score_comes_from_the_corrected_likelihood() -> None:
    counts = np.triu(np.ones((4, 4)), k=1)  # a strict order: no cycle, no core
    core = determined_core(counts)
    assert not core.any()
    placed = place_undetermined(counts, np.full(4, 50.0), core)
    assert np.all(np.diff(placed) < 0) and abs(placed.mean()) < 1e-6


def test_a_looser_tolerance_stops_earlier_within_that_tolerance() -> None:
    """Bootstrap re-solves pass their step tolerance: fewer Newton steps, same place to
    within it (the predicted stop keeps the error below the tolerance)."""
    counts = _core_and_two_unbeaten()
    core = determined_core(counts)
    q = np.array([0.4, -0.2, 0.1, -0.5, 0.2, 9.0, 7.0])
    exact = place_undetermined(counts, q, core)
    for tol in (1e-3, 1e-6):
        np.testing.assert_allclose(place_undetermined(counts, q, core, tol=tol), exact, atol=tol)
    loose = place_undetermined(counts, q, core, tol=1e-3)
    assert not np.array_equal(loose, exact)  # it did stop before the default tolerance
