"""Connectivity of comparison graphs: components, the determined core and the order of the
win graph's strongly connected components, against brute force."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scaling.graph import WinOrder, component_labels, determined_core


def test_components_are_numbered_by_size_then_first_condition() -> None:
    counts = np.zeros((7, 7))
    counts[5, 6] = counts[6, 5] = 1  # {5, 6}
    counts[1, 2] = counts[2, 3] = 1  # {1, 2, 3}: largest
    counts[0, 4] = 1  # {0, 4}: same size as {5, 6}, lower first index
    np.testing.assert_array_equal(component_labels(counts), [1, 0, 0, 0, 1, 2, 2])


def test_a_strict_order_has_no_core() -> None:
    counts = np.triu(np.ones((4, 4)), k=1)  # 0 beat everyone, 1 beat 2 and 3, ...
    assert component_labels(counts).max() == 0 and not determined_core(counts).any()
    order = WinOrder.from_counts(counts)
    assert order.core == -1
    assert [order.free_directions(order.strong[c]) for c in range(4)] == [
        (True, False),
        (True, True),
        (True, True),
        (False, True),
    ]


def _reach(counts: np.ndarray) -> np.ndarray:
    """Brute force: i reaches j through a chain of wins (Floyd-Warshall), i reaches i."""
    reach = (counts > 0) | np.eye(counts.shape[0], dtype=bool)
    for k in range(counts.shape[0]):
        reach |= reach[:, [k]] & reach[[k], :]
    return reach


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_win_order_matches_brute_force(seed: int) -> None:
    """Strongly connected components, up-sets, down-sets, the core and the data's order
    against a transitive closure of the win graph."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 12))
    counts = rng.integers(0, 3, (n, n)) * (rng.random((n, n)) < 0.3)
    np.fill_diagonal(counts, 0)
    order = WinOrder.from_counts(counts)
    reach = _reach(counts)
    same = reach & reach.T
    np.testing.assert_array_equal(order.strong[:, None] == order.strong[None, :], same)
    for c in range(n):
        np.testing.assert_array_equal(order.up_set(order.strong[c]), reach[:, c])
        np.testing.assert_array_equal(order.down_set(order.strong[c]), reach[c, :])
    sizes = same.sum(axis=1)
    core = determined_core(counts)
    if sizes.max() > 1:
        assert core.sum() == sizes.max() and same[np.ix_(core, core)].all()
        first_of_largest = min(np.flatnonzero(sizes == sizes.max()))
        assert core[first_of_largest]
    else:
        assert not core.any()
    winners, losers = order.ordered_pairs(counts)
    expected = np.argwhere((counts > 0) & ~same)
    np.testing.assert_array_equal(np.column_stack([winners, losers]), expected)
    assert np.all(counts[losers, winners] == 0)  # across components every win went one way
