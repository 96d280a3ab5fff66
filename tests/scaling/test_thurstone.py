"""The shared Thurstone core (scaling.thurstone) against scipy and brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import log_ndtr, ndtr
from scipy.stats import binom

from scaling.thurstone import (
    SIGMA,
    component_labels,
    expanded_alpha,
    label_components,
    log_binomial_probability,
    normal_terms,
    pair_negative_log_likelihood,
    percentile_interval,
    preference_probability,
)


def test_one_jod_is_seventy_five_percent() -> None:
    assert preference_probability(1.0) == pytest.approx(0.75, abs=5e-7)  # pwcmp rounds sigma
    assert preference_probability(0.0) == 0.5
    assert SIGMA == 1.4826


@settings(max_examples=200, deadline=None)
@given(arrays(float, 20, elements=st.floats(-38.0, 38.0)))
def test_normal_terms_match_scipy_in_both_tails(u: np.ndarray) -> None:
    log_p, log_not, mills_p, mills_not = normal_terms(u)
    np.testing.assert_allclose(log_p, log_ndtr(u), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(log_not, log_ndtr(-u), rtol=1e-12, atol=1e-300)
    log_pdf = -0.5 * u * u - 0.5 * np.log(2.0 * np.pi)
    np.testing.assert_allclose(mills_p, np.exp(log_pdf - log_ndtr(u)), rtol=1e-11, atol=1e-300)
    np.testing.assert_allclose(mills_not, np.exp(log_pdf - log_ndtr(-u)), rtol=1e-11, atol=1e-300)


def test_pair_likelihood_and_its_derivatives() -> None:
    rng = np.random.default_rng(0)
    u = rng.normal(0.0, 3.0, 12)
    wins, losses = rng.integers(0, 6, 12).astype(float), rng.integers(0, 6, 12) + 0.5
    value, d_u, d2_u = pair_negative_log_likelihood(u, wins, losses, order=2)
    expected = -np.sum(wins * np.log(ndtr(u)) + losses * np.log(ndtr(-u)))
    assert value == pytest.approx(expected, rel=1e-12)

    def per_pair(x: np.ndarray) -> np.ndarray:
        return -(wins * log_ndtr(x) + losses * log_ndtr(-x))

    h = 1e-6
    np.testing.assert_allclose(d_u, (per_pair(u + h) - per_pair(u - h)) / (2 * h), rtol=1e-6)
    h2 = 1e-4  # second differences lose digits as 1 / h^2
    numeric = (per_pair(u + h2) - 2 * per_pair(u) + per_pair(u - h2)) / h2**2
    np.testing.assert_allclose(d2_u, numeric, rtol=1e-5, atol=1e-6)
    assert pair_negative_log_likelihood(u, wins, losses, order=0)[1] is None


def test_log_binomial_probability_is_scipys_binomial() -> None:
    wins, totals = np.array([0.0, 3.0, 7.0, 40.0]), np.array([2.0, 5.0, 7.0, 60.0])
    difference = np.array([-1.0, 0.3, 2.5, 0.8])
    expected = binom.logpmf(wins, totals, ndtr(difference / SIGMA))
    np.testing.assert_allclose(log_binomial_probability(wins, totals, difference), expected)
    # finite where pwcmp's probability underflows
    assert np.isfinite(log_binomial_probability(np.array([0.0]), np.array([500.0]), 60.0))


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 60).flatmap(lambda n: arrays(float, (n, 3), elements=st.floats(-50, 50))),
    st.sampled_from([0.05, 0.1, 0.32]),
)
def test_percentile_interval_is_matlabs_prctile(samples: np.ndarray, alpha: float) -> None:
    low, high = percentile_interval(samples, alpha=alpha)
    expected = np.percentile(samples, [50 * alpha, 100 - 50 * alpha], axis=0, method="hazen")
    np.testing.assert_allclose(low, expected[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(high, expected[1], rtol=1e-12, atol=1e-12)


@settings(max_examples=150, deadline=None)
@given(
    arrays(float, 200, elements=st.floats(-5, 5)),
    st.integers(0, 200),
)
def test_one_sided_samples_give_one_sided_intervals(values: np.ndarray, unbounded: int) -> None:
    """Samples unbounded above (upper end +inf) widen the interval; more than alpha / 2 of
    them make it one-sided; the lower end never moves."""
    upper = values.copy()
    upper[:unbounded] = np.inf
    low, high = percentile_interval(values, upper)
    plain_low, plain_high = percentile_interval(values)
    assert low == plain_low
    assert high >= plain_high
    assert np.isinf(high) == (unbounded >= 200 * 0.025)
    # and symmetrically below
    lower = values.copy()
    lower[-unbounded:] = -np.inf if unbounded else lower[-unbounded:]
    low, high = percentile_interval(lower, values)
    assert high == plain_high and low <= plain_low
    assert (low == -np.inf) == (unbounded >= 200 * 0.025)


def test_percentile_interval_leaves_out_undefined_samples() -> None:
    samples = np.array([[1.0, np.nan], [2.0, np.nan], [np.nan, np.nan], [4.0, np.nan]])
    low, high = percentile_interval(samples, alpha=0.5)
    expected = np.percentile([1.0, 2.0, 4.0], [25, 75], method="hazen")
    assert (low[0], high[0]) == tuple(expected)
    assert np.isnan(low[1]) and np.isnan(high[1])
    with pytest.raises(ValueError, match="alpha"):
        percentile_interval(samples, alpha=1.5)


def _union_find(n: int, edges: list[tuple[int, int]]) -> list[set[int]]:
    parent = list(range(n))

    def root(a: int) -> int:
        while parent[a] != a:
            a = parent[a]
        return a

    for a, b in edges:
        parent[root(a)] = root(b)
    groups: dict[int, set[int]] = {}
    for a in range(n):
        groups.setdefault(root(a), set()).add(a)
    return list(groups.values())


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 30), st.lists(st.tuples(st.integers(0, 29), st.integers(0, 29))))
def test_components_match_union_find_largest_first(n: int, raw: list) -> None:
    edges = [(a % n, b % n) for a, b in raw]
    labels = component_labels(n, [a for a, _ in edges], [b for _, b in edges])
    expected = _union_find(n, edges)
    found = [np.flatnonzero(labels == c).tolist() for c in range(labels.max() + 1)]
    assert sorted(sorted(group) for group in expected) == sorted(found)
    sizes = np.bincount(labels)
    assert np.all(np.diff(sizes) <= 0)  # largest first
    firsts = [np.flatnonzero(labels == c)[0] for c in range(sizes.size)]
    for c in range(sizes.size - 1):  # ties in size: lower first member first
        if sizes[c] == sizes[c + 1]:
            assert firsts[c] < firsts[c + 1]


def test_named_components() -> None:
    labels = label_components(["a", "b", "c", "d"], [("a", "b"), ("c", "a")])
    assert labels == {"a": 0, "b": 0, "c": 0, "d": 1}
    assert label_components(["x", "y"], []) == {"x": 0, "y": 1}
    with pytest.raises(KeyError):
        label_components(["x"], [("x", "z")])


def test_expanded_alpha_widens_for_few_units_and_vanishes_for_many() -> None:
    """Hesterberg's expanded percentile interval: Phi(-sqrt(U / (U - 1)) t_{0.975, U - 1})."""
    from scipy.stats import t

    assert expanded_alpha(0.05, 10) == pytest.approx(
        2 * ndtr(-np.sqrt(10 / 9) * t.ppf(0.975, 9)), rel=1e-12
    )
    assert expanded_alpha(0.05, 10) == pytest.approx(0.0171, abs=1e-4)
    levels = [expanded_alpha(0.05, u) for u in (3, 5, 10, 20, 40, 1000)]
    assert np.all(np.diff(levels) > 0) and 0.049 < levels[-1] < 0.05
    assert expanded_alpha(0.05, 1) == 0.05
