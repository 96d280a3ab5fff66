"""Connectivity of comparison graphs: components and determined cores."""

from __future__ import annotations

import numpy as np
from scipy.linalg import block_diag

from scaling.graph import component_labels, components_and_cores, determined_core


def _shuffled_blocks(seed: int) -> np.ndarray:
    """Two random blocks, a strict chain and two conditions never compared, in random order."""
    rng = np.random.default_rng(seed)
    blocks = [
        rng.poisson(1.0, (m, m)) * (rng.random((m, m)) < density)
        for m, density in ((10, 0.4), (8, 0.25))
    ]
    blocks += [np.triu(np.ones((4, 4)), k=1), np.zeros((2, 2))]
    counts = block_diag(*blocks).astype(float)
    np.fill_diagonal(counts, 0.0)
    order = rng.permutation(counts.shape[0])
    return counts[np.ix_(order, order)]


def test_components_are_numbered_by_size_then_first_condition() -> None:
    counts = np.zeros((7, 7))
    counts[5, 6] = counts[6, 5] = 1  # {5, 6}
    counts[1, 2] = counts[2, 3] = 1  # {1, 2, 3}: largest
    counts[0, 4] = 1  # {0, 4}: same size as {5, 6}, lower first index
    np.testing.assert_array_equal(component_labels(counts), [1, 0, 0, 0, 1, 2, 2])


def test_each_component_gets_the_core_of_its_own_submatrix() -> None:
    """components_and_cores agrees with determined_core applied to every component alone,
    on graphs with several components, one-sided conditions and a part without cycles."""
    checked = 0
    for seed in range(20):
        counts = _shuffled_blocks(seed)
        labels, cores = components_and_cores(counts)
        np.testing.assert_array_equal(labels, component_labels(counts))
        for component in range(labels.max() + 1):
            members = np.flatnonzero(labels == component)
            expected = determined_core(counts[np.ix_(members, members)])
            np.testing.assert_array_equal(cores[members], expected)
            checked += expected.any()
    assert checked >= 30  # most graphs had two components with a core


def test_a_strict_order_has_no_core() -> None:
    counts = np.triu(np.ones((4, 4)), k=1)  # 0 beat everyone, 1 beat 2 and 3, ...
    labels, cores = components_and_cores(counts)
    assert labels.max() == 0 and not cores.any()


def test_one_sided_conditions_chains_and_strays_get_the_right_components() -> None:
    """The shortcut (every condition in the largest cycle-connected part or compared with
    it) and the general path agree: one-sided conditions next to the core, a chain hanging
    off a one-sided condition, never-compared conditions."""
    counts = np.zeros((8, 8))
    for i, j in [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)]:
        counts[i, j] = counts[j, i] = 2.0  # the core: 0-3
    counts[4, [0, 1]] = 3.0  # 4 never lost, next to the core
    counts[[2, 3], 5] = 1.0  # 5 never won, next to the core
    chain, around = counts.copy(), counts.copy()
    chain[4, 6] = 1.0  # 6 met 4 only; 7 never compared
    around[[6, 7], 1] = 1.0  # 6 and 7 never lost, next to the core: the shortcut
    for case, components in [(counts, 3), (chain, 2), (around, 1)]:
        labels, cores = components_and_cores(case)
        np.testing.assert_array_equal(labels, component_labels(case))
        assert labels.max() + 1 == components
        np.testing.assert_array_equal(cores, [True] * 4 + [False] * 4)
