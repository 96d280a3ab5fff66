"""pwcmp's objective: gradient and Hessian against finite differences, the grouped prior
against METHODS.md's O(P^2) formula, and the log-space repairs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from scaling.likelihood import (
    MEAN0_WEIGHT,
    PRIOR_FLOOR,
    SIGMA,
    ComparedPositions,
    ThurstoneObjective,
)


def _counts(n: int = 7, seed: int = 0) -> np.ndarray:
    """Small incomplete design with unanimous pairs, a never-losing and a never-winning
    condition, a heavily compared pair and halves (split ties)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 4, (n, n)).astype(float)
    np.fill_diagonal(counts, 0.0)
    counts[:, 2] = 0.0  # condition 2 never lost
    counts[4, :] = 0.0  # condition 4 never won
    counts[4, 5] = 0.0
    counts[5, 4] = 3.0
    counts[0, 1], counts[1, 0] = 40.0, 0.0  # unanimous and heavily compared
    counts[3, 6], counts[6, 3] = 0.0, 0.0  # not compared
    counts[0, 3], counts[3, 0] = 1.5, 2.5  # split ties
    return counts


def _central_gradient(f, q: np.ndarray, h: float = 1e-6) -> np.ndarray:
    eye = np.eye(q.size)
    return np.array([(f(q + h * e) - f(q - h * e)) / (2 * h) for e in eye])


@pytest.mark.parametrize("prior", ["gaussian", "none"])
@pytest.mark.parametrize("anchor", ["mean0", "fix0"])
def test_gradient_matches_finite_differences(prior: str, anchor: str) -> None:
    objective = ThurstoneObjective(_counts(), prior=prior, anchor=anchor)
    rng = np.random.default_rng(1)
    for _ in range(3):
        q = rng.normal(0.0, 1.5, objective.n)
        value, grad = objective.value_and_grad(q)
        assert value == pytest.approx(objective(q), rel=1e-14)
        assert value == pytest.approx(objective.value(q), rel=1e-14)
        numeric = _central_gradient(objective, q)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("prior", ["gaussian", "none"])
@pytest.mark.parametrize("anchor", ["mean0", "fix0"])
def test_hessian_matches_finite_differences(prior: str, anchor: str) -> None:
    objective = ThurstoneObjective(_counts(), prior=prior, anchor=anchor)
    rng = np.random.default_rng(2)
    for _ in range(3):
        q = rng.normal(0.0, 1.5, objective.n)
        value, grad, hess = objective.value_grad_hess(q)
        assert value == pytest.approx(objective(q), rel=1e-14)
        np.testing.assert_allclose(grad, objective.value_and_grad(q)[1], rtol=1e-12, atol=1e-12)
        numeric = np.array(
            [
                (
                    objective.value_and_grad(q + 1e-6 * e)[1]
                    - objective.value_and_grad(q - 1e-6 * e)[1]
                )
                / 2e-6
                for e in np.eye(objective.n)
            ]
        )
        np.testing.assert_allclose(hess, numeric, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(hess, hess.T, atol=1e-12)
        np.testing.assert_allclose(objective.hessian(q), hess, rtol=1e-14, atol=1e-14)
        if prior == "none":
            np.testing.assert_allclose(objective.likelihood_hessian(q), hess, atol=1e-12)


def _naive_objective(counts: np.ndarray, q: np.ndarray, prior: str, anchor: str) -> float:
    """METHODS.md section 2 term by term, O(P^2), in plain probabilities where they are safe."""
    n = counts.shape[0]
    totals = counts + counts.T
    positions = [(i, j) for i in range(n) for j in range(n) if i != j and totals[i, j] > 0]
    probabilities, ks, ns = [], [], []
    value = 0.0
    for i, j in positions:
        p = norm.cdf((q[i] - q[j]) / SIGMA)
        value -= counts[i, j] * np.log(p) + counts[j, i] * np.log1p(-p)
        k = counts[i, j]
        if counts[i, j] == 0 or counts[j, i] == 0:  # unanimous pair
            k = 1.0 if k == 0 else k - 1.0
        probabilities.append(p)
        ks.append(k)
        ns.append(totals[i, j])
    probabilities = np.array(probabilities)
    if prior == "gaussian":
        for a in range(len(positions)):
            prior_a = 0.0
            for b in range(len(positions)):
                likelihood = probabilities ** ks[b] * (1.0 - probabilities) ** (ns[b] - ks[b])
                prior_a += likelihood[a] / likelihood.sum()
            value -= np.log(prior_a + PRIOR_FLOOR)
    else:
        value -= len(positions) * np.log(1.0 + PRIOR_FLOOR)
    if anchor == "mean0":
        value += MEAN0_WEIGHT * q.mean() ** 2
    return value


@pytest.mark.parametrize("prior", ["gaussian", "none"])
def test_grouped_prior_equals_naive_formula(prior: str) -> None:
    counts = _counts()
    objective = ThurstoneObjective(counts, prior=prior)
    positions = objective.positions
    assert positions.group_k.size < positions.rows.size  # grouping does group
    rng = np.random.default_rng(3)
    for _ in range(3):
        q = rng.normal(0.0, 1.0, counts.shape[0])
        assert objective(q) == pytest.approx(
            _naive_objective(counts, q, prior, "mean0"), rel=1e-12, abs=1e-10
        )


def test_unanimous_pairs_shift_prior_counts() -> None:
    counts = np.array([[0.0, 5.0, 2.0], [0.0, 0.0, 1.0], [3.0, 0.0, 0.0]])
    positions = ComparedPositions.from_counts(counts)
    table = {
        (int(i), int(j)): (k, n)
        for i, j, k, n in zip(
            positions.rows, positions.cols, positions.prior_k, positions.total, strict=True
        )
    }
    assert table[(0, 1)] == (4.0, 5.0)  # 5:0 -> k = 4
    assert table[(1, 0)] == (1.0, 5.0)  # 0:5 -> k = 1
    assert table[(1, 2)] == (0.0, 1.0)  # 1:0 -> k = 0
    assert table[(2, 1)] == (1.0, 1.0)  # 0:1 -> k = 1
    assert table[(0, 2)] == (2.0, 5.0)  # not unanimous: unchanged
    assert table[(2, 0)] == (3.0, 5.0)
    assert positions.n_pairs == 3
    # every position is compared in both directions
    assert sorted(zip(positions.rows, positions.cols, strict=True)) == sorted(
        zip(positions.cols, positions.rows, strict=True)
    )
    groups = set(zip(positions.group_k, positions.group_n, strict=True))
    assert groups == {(4.0, 5.0), (1.0, 5.0), (0.0, 1.0), (1.0, 1.0), (2.0, 5.0), (3.0, 5.0)}
    assert positions.group_count.sum() == positions.rows.size


@pytest.mark.parametrize("prior", ["gaussian", "none"])
def test_log_space_is_finite_where_pwcmp_underflows(prior: str) -> None:
    counts = np.array([[0.0, 6000.0], [4000.0, 0.0]])  # one pair compared 10,000 times
    q = np.array([0.0, 0.3])
    p = norm.cdf((q[0] - q[1]) / SIGMA)
    pwcmp_product = p ** counts[0, 1] * (1.0 - p) ** counts[1, 0]
    assert pwcmp_product == 0.0  # pwcmp's log(max(p, 1e-400)) is -inf here
    objective = ThurstoneObjective(counts, prior=prior)
    value, grad, hess = objective.value_grad_hess(q)
    assert np.isfinite(value)
    assert np.all(np.isfinite(grad)) and np.all(np.isfinite(hess))
    expected = -2.0 * (counts[0, 1] * np.log(p) + counts[1, 0] * np.log1p(-p))
    if prior == "none":
        expected -= 2.0 * np.log1p(PRIOR_FLOOR)
        expected += MEAN0_WEIGHT * 0.15**2
        assert value == pytest.approx(expected, rel=1e-12)


def test_unanimous_pair_is_finite_far_out() -> None:
    counts = np.array([[0.0, 30.0, 4.0], [0.0, 0.0, 3.0], [2.0, 1.0, 0.0]])
    for prior in ("gaussian", "none"):
        objective = ThurstoneObjective(counts, prior=prior)
        for gap in (5.0, 20.0, 60.0):
            q = np.array([gap, 0.0, 0.5])
            value, grad, hess = objective.value_grad_hess(q)
            assert np.isfinite(value) and np.all(np.isfinite(grad)) and np.all(np.isfinite(hess))
        # without a prior nothing stops a never-losing condition: pushing it further only
        # lowers the objective, towards its limit
        never_lost = counts.copy()
        never_lost[2, 0] = 0.0  # now condition 0 never lost
        objective = ThurstoneObjective(never_lost, prior="none", anchor="fix0")
        values = [objective.value(np.array([gap, 0.0, 0.5])) for gap in (5.0, 10.0, 20.0)]
        assert values[0] > values[1] >= values[2]
        assert objective.value_and_grad(np.array([5.0, 0.0, 0.5]))[1][0] < 0.0


def test_one_sided_lists_never_losing_and_never_winning_conditions() -> None:
    counts = _counts()
    objective = ThurstoneObjective(counts)
    assert objective.one_sided().tolist() == [2, 4]
    wins, losses = counts.sum(axis=1), counts.sum(axis=0)
    assert objective.one_sided(at_most=np.inf).tolist() == np.flatnonzero(wins + losses).tolist()


@pytest.mark.parametrize("prior", ["gaussian", "none"])
@pytest.mark.parametrize("anchor", ["mean0", "fix0"])
def test_coordinate_profile_follows_the_objective(prior: str, anchor: str) -> None:
    counts = _counts()
    objective = ThurstoneObjective(counts, prior=prior, anchor=anchor)
    q = np.random.default_rng(5).normal(0.0, 1.0, objective.n)
    for c in (2, 4, 0):
        xs = q[c] + np.linspace(-6.0, 6.0, 13)
        profile = objective.coordinate_profile(q, c)(xs)
        exact = np.array([objective(np.where(np.arange(objective.n) == c, x, q)) for x in xs])
        change, exact_change = profile - profile[6], exact - exact[6]
        if prior == "none":
            np.testing.assert_allclose(change, exact_change, atol=1e-9)
        else:
            # other positions' prior enters through the normalisers, linearised at q: the
            # profile is exact to first order at q[c] and close far from it (here c holds a
            # large share of all positions, the hardest case for the linearisation)
            assert np.all(np.abs(change - exact_change) <= 0.2 * np.abs(exact_change) + 0.05)
            assert abs(int(np.argmin(profile)) - int(np.argmin(exact))) <= 1
        h = 1e-5
        slope = objective.coordinate_profile(q, c)(np.array([q[c] - h, q[c] + h]))
        grad = objective.value_and_grad(q)[1][c]
        assert (slope[1] - slope[0]) / (2 * h) == pytest.approx(grad, rel=1e-5, abs=1e-6)
        # a shared context computed at the same scores changes nothing
        shared = objective.coordinate_profile(q, c, objective.profile_context(q))(xs)
        if prior == "gaussian":
            np.testing.assert_allclose(shared, profile, rtol=1e-12)


def test_prior_groups_are_closed_under_mirroring() -> None:
    """Position (j, i) belongs to the mirror (n - k, n) of the group of (i, j), even for
    float counts whose sums round (groups are then split by the mirror's k)."""
    for counts in (_counts(), _counts(9, seed=4)):
        positions = ComparedPositions.from_counts(counts)
        half = positions.n_pairs
        mirror_k = positions.group_k[positions.group_of[half:]]
        np.testing.assert_array_equal(
            mirror_k, positions.group_n[positions.group_of[:half]] - positions.prior_k[:half]
        )
    # 1e17 + 1 == 1e17 + 3 - 2 ... in floats: same (k, n) for two pairs with different mirrors.
    counts = np.zeros((4, 4))
    counts[0, 1], counts[1, 0] = 1e17, 1.0
    counts[2, 3], counts[3, 2] = 1e17, 3.0
    counts[1, 2], counts[2, 1] = 1.0, 1.0
    positions = ComparedPositions.from_counts(counts)
    assert positions.total[0] == positions.total[2]  # the rounding this test is about
    half = positions.n_pairs
    groups = positions.group_of
    assert len({(groups[h], groups[h + half]) for h in range(half)}) == half
    objective = ThurstoneObjective(counts)
    q = np.array([0.5, -0.5, 0.3, -0.2])
    assert np.isfinite(objective.value(q))


@pytest.mark.parametrize("spread", [0.5, 20.0])
def test_value_and_derivatives_match_log_ndtr_reference(spread: float) -> None:
    """The erfcx-based terms against scipy's log_ndtr on the P ordered positions."""
    from scipy.special import log_ndtr

    counts = _counts()
    objective = ThurstoneObjective(counts, prior="none")
    q = np.random.default_rng(5).normal(0.0, spread, counts.shape[0])
    pos = objective.positions
    u = (q[pos.rows] - q[pos.cols]) / SIGMA
    reference = -float(np.dot(pos.wins, log_ndtr(u)) + np.dot(pos.losses, log_ndtr(-u)))
    reference -= pos.rows.size * np.log1p(PRIOR_FLOOR)
    reference += MEAN0_WEIGHT * q.mean() ** 2
    assert objective.value(q) == pytest.approx(reference, rel=1e-13)
