"""scaling.select: expected gains, batches, stopping rule and bad input.

The closed-form gains are checked twice: against the same Laplace update done with dense
matrices (inverse, log-determinants) and numerically differentiated outcome likelihoods,
which must agree to rounding; and against a brute-force re-solve of the whole posterior
for every candidate and outcome, which they approximate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.polynomial.hermite_e import hermegauss
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from scipy.stats import norm

import scaling
from scaling.errors import InputError
from scaling.formats import image_keys
from scaling.likelihood import SIGMA
from scaling.select import (
    CROSS_PAIR_COLUMNS,
    AlignmentTarget,
    ScorePosterior,
    alignment_target,
    candidate_gains,
    expected_gain,
    laplace_posterior,
    plan_batch,
    select_cross_pairs,
    select_pairs,
    spanning_tree_pairs,
)
from scaling.simulate import make_true_scores, simulate_trials

# --------------------------------------------------------------------------- references
_NODES, _WEIGHTS = hermegauss(200)


def _tilted_moments(m: float, v: float, sign: int) -> tuple[float, float, float]:
    """Probability, mean and variance of u ~ N(m, v) given the outcome Phi(sign u), by
    Gauss-Hermite quadrature (200 nodes)."""
    u = m + np.sqrt(v) * _NODES
    weight = _WEIGHTS * norm.cdf(sign * u) / np.sqrt(2 * np.pi)
    mass = weight.sum()
    mean = weight @ u / mass
    return mass, mean, weight @ (u - mean) ** 2 / mass


def _gaussian_kl(m1, c1, m0, c0) -> float:
    """KL(N(m1, c1) || N(m0, c0)) with dense matrices."""
    inv0 = np.linalg.inv(c0)
    d = m1 - m0
    return 0.5 * (
        np.trace(inv0 @ c1)
        - len(m0)
        + d @ inv0 @ d
        + np.linalg.slogdet(c0)[1]
        - np.linalg.slogdet(c1)[1]
    )


def _dense_expected_gain(mean, cov, i, j, weights=None) -> float:
    """The moment-matched posterior after each outcome, built densely: u's tilted moments
    by quadrature, the rest of q by Gaussian conditioning on u."""
    n = len(mean)
    a = np.zeros(n)
    a[i], a[j] = 1 / SIGMA, -1 / SIGMA
    m, v = a @ mean, a @ cov @ a
    cov_qu = cov @ a
    w = np.eye(n) if weights is None else weights
    total = 0.0
    for sign in (1, -1):
        mass, m1, v1 = _tilted_moments(m, v, sign)
        mean1 = mean + cov_qu * (m1 - m) / v
        cov1 = cov - np.outer(cov_qu, cov_qu) * (v - v1) / v**2
        total += mass * _gaussian_kl(w @ mean1, w @ cov1 @ w.T, w @ mean, w @ cov @ w.T)
    return total


def _random_posterior(seed: int, n: int) -> ScorePosterior:
    rng = np.random.default_rng(seed)
    root = rng.normal(size=(n, n)) * rng.uniform(0.1, 1.5)
    return ScorePosterior(rng.normal(0, 2, n), root @ root.T + 0.05 * np.eye(n), 10.0, 1.0)


# --------------------------------------------------------------------------- gains
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 6))
def test_closed_form_gain_equals_dense_moment_matched_update(seed, n):
    posterior = _random_posterior(seed, n)
    i, j = np.triu_indices(n, k=1)
    gains = candidate_gains(posterior, i, j)
    dense = [
        _dense_expected_gain(posterior.mean, posterior.cov, a, b) for a, b in zip(i, j, strict=True)
    ]
    np.testing.assert_allclose(gains, dense, rtol=2e-5, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 6), rank=st.integers(1, 3))
def test_targeted_gain_equals_dense_marginal_update(seed, n, rank):
    posterior = _random_posterior(seed, n)
    rng = np.random.default_rng(seed + 1)
    weights = rng.normal(size=(min(rank, n - 1), n))
    target = AlignmentTarget(weights=weights, hat=weights)
    i, j = np.triu_indices(n, k=1)
    gains = candidate_gains(posterior, i, j, target)
    centring = np.eye(n) - 1.0 / n  # the target is a map of the centred scores
    dense = [
        _dense_expected_gain(posterior.mean, posterior.cov, a, b, weights @ centring)
        for a, b in zip(i, j, strict=True)
    ]
    np.testing.assert_allclose(gains, dense, rtol=2e-5, atol=1e-9)
    assert np.all(gains <= candidate_gains(posterior, i, j) + 1e-12)  # a part tells less


def test_gain_grows_with_uncertainty_shrinks_with_distance_and_stays_bounded():
    v = np.array([0.01, 0.1, 1.0, 10.0, 1e3, 1e6])
    gains = expected_gain(np.zeros(6), v)
    assert np.all(np.diff(gains) > 0)
    assert gains[-1] < 0.6 and gains[-1] - gains[-2] < 1e-3  # a binary outcome tells little
    m = np.array([0.0, 1.0, 3.0, 6.0])
    assert np.all(np.diff(expected_gain(m, np.full(4, 0.5))) < 0)


def _study_counts(n: int, per_pair: int, seed: int, jod_range: float = 3.0) -> np.ndarray:
    truth = make_true_scores(n, jod_range=jod_range, seed=seed)
    trials = simulate_trials(truth, n_observers=per_pair, seed=seed)
    return scaling.counts_from_trials(trials, sorted(truth["condition"]))


def _resolved_gain(counts: np.ndarray, i: int, j: int, prior: str) -> float:
    """Brute force: add each outcome to the counts, find the new posterior, weigh the KLs."""
    now = laplace_posterior(counts, prior=prior)
    m, v = now.pair_moments(np.array([i]), np.array([j]))
    total = 0.0
    for winner, loser, sign in ((i, j, 1), (j, i, -1)):
        more = counts.copy()
        more[winner, loser] += 1
        after = laplace_posterior(more, q0=now.mean, prior=prior, prior_sd=now.prior_sd)
        kl = _gaussian_kl(after.mean, after.cov, now.mean, now.cov)
        total += norm.cdf(sign * m[0] / np.sqrt(1 + v[0])) * kl
    return total


@pytest.mark.parametrize(
    ("prior", "per_pair", "rtol", "min_correlation"),
    [("none", 30, 0.03, 0.999), ("none", 4, 0.15, 0.995), ("gaussian", 4, 0.15, 0.98)],
)
@pytest.mark.parametrize("seed", [11, 12])
def test_gains_approximate_a_full_resolve_per_candidate(
    prior, per_pair, rtol, min_correlation, seed
):
    """The rank-one moment-matched update against a new Laplace fit, for each candidate and
    outcome. Without a prior the two converge as data accumulate; pwcmp's prior is built
    from the counts themselves, so one more comparison also changes it (its groups of equal
    counts), which the rank-one update leaves out: there they agree less closely."""
    counts = _study_counts(6, per_pair, seed=seed)
    posterior = laplace_posterior(counts, prior=prior)
    i, j = np.triu_indices(6, k=1)
    fast = candidate_gains(posterior, i, j)
    brute = np.array([_resolved_gain(counts, a, b, prior) for a, b in zip(i, j, strict=True)])
    np.testing.assert_allclose(fast, brute, rtol=rtol)
    assert np.corrcoef(fast, brute)[0, 1] > min_correlation


@pytest.mark.parametrize("prior", ["none", "gaussian"])
def test_laplace_posterior_is_the_mode_of_half_the_objective_plus_the_weak_prior(prior):
    counts = _study_counts(7, 5, seed=2)
    posterior = laplace_posterior(counts, prior=prior, prior_sd=2.0)
    objective = scaling.ThurstoneObjective(counts, prior=prior)
    _, grad = objective.value_and_grad(posterior.mean)
    np.testing.assert_allclose(0.5 * grad + posterior.mean / 4.0, 0.0, atol=1e-5)
    precision = 0.5 * objective.hessian(posterior.mean) + np.eye(7) / 4.0
    np.testing.assert_allclose(posterior.cov @ precision, np.eye(7), atol=1e-8)


def test_posterior_without_data_is_the_weak_prior():
    posterior = laplace_posterior(np.zeros((4, 4)), prior_sd=2.0)
    np.testing.assert_allclose(posterior.cov, 4.0 * np.eye(4))
    np.testing.assert_allclose(posterior.mean, 0.0)


# --------------------------------------------------------------------------- batches
def _is_spanning_tree(pairs: np.ndarray, n: int) -> bool:
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return len(pairs) == n - 1 and connected_components(graph, directed=False)[0] == 1


def _unordered(pairs: np.ndarray) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for a, b in pairs.tolist()}


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 1000),
    n=st.integers(2, 12),
    density=st.floats(0.0, 1.0),
    extra=st.integers(0, 20),
)
def test_eig_batches_are_spanning_trees_without_repeats(seed, n, density, extra):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(3 * density, size=(n, n)).astype(float)
    np.fill_diagonal(counts, 0)
    batch = plan_batch(counts, rng=rng)
    assert _is_spanning_tree(batch.pairs, n)
    assert np.all(np.diff(batch.gains) <= 1e-12)  # best first
    n_pairs = min(n - 1 + extra, n * (n - 1) // 2)
    bigger = plan_batch(counts, n_pairs, rng=np.random.default_rng(seed))
    assert len(bigger.pairs) == n_pairs == len(_unordered(bigger.pairs))
    assert _is_spanning_tree(bigger.pairs[: n - 1], n)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 30), keep=st.floats(0.2, 1.0))
def test_spanning_tree_is_scipys_maximum_spanning_forest(seed, n, keep):
    """Prim's dense tree against scipy's minimum spanning tree of the negated gains, on
    random distinct gains over a random candidate set (a forest when it falls apart)."""
    rng = np.random.default_rng(seed)
    first, second = np.triu_indices(n, k=1)
    subset = rng.random(first.size) < keep
    first, second = first[subset], second[subset]
    gains = rng.random(first.size) + 0.1
    tree = spanning_tree_pairs(first, second, gains, n, np.random.default_rng(seed))
    reference = minimum_spanning_tree(
        coo_matrix((10.0 - gains, (first, second)), shape=(n, n))
    ).tocoo()
    assert {(int(first[k]), int(second[k])) for k in tree} == set(
        zip(reference.row.tolist(), reference.col.tolist(), strict=True)
    )
    assert np.all(np.diff(gains[tree]) <= 0)


def test_a_disconnected_graph_gets_a_batch_that_connects_it():
    counts = np.zeros((6, 6))
    counts[0, 1] = counts[1, 0] = 3  # {0, 1}, {2, 3} and two conditions never compared
    counts[2, 3] = counts[3, 2] = 3
    batch = plan_batch(counts)
    assert _is_spanning_tree(batch.pairs, 6)
    touched = _unordered(batch.pairs)
    assert (0, 1) not in touched and (2, 3) not in touched  # compared pairs have less to give


def test_later_trees_favour_what_earlier_ones_leave_uncertain():
    counts = _study_counts(8, 3, seed=4)
    batch = plan_batch(counts, 14)
    first_tree_degree = np.bincount(batch.pairs[:7].ravel(), minlength=8)
    second_tree_degree = np.bincount(batch.pairs[7:].ravel(), minlength=8)
    assert second_tree_degree.sum() == 14
    assert batch.gains[7] <= batch.gains[0]  # the posterior already counts the first tree
    assert first_tree_degree.min() >= 1


def test_round_robin_compares_every_pair_once_before_any_twice():
    counts = np.zeros((5, 5))
    counts[0, 1] = 1
    seen = []
    for step in range(2):
        batch = plan_batch(counts, 4, method="round_robin", rng=np.random.default_rng(step))
        seen += [tuple(sorted(p)) for p in batch.pairs.tolist()]
        for a, b in batch.pairs:
            counts[a, b] += 1
    assert len(set(seen)) == 8 and (0, 1) not in seen


def test_random_pairs_are_distinct_and_cover_the_pairs_evenly():
    counts = np.zeros((10, 10))
    hits = np.zeros((10, 10))
    for seed in range(300):
        batch = plan_batch(counts, 9, method="random", rng=np.random.default_rng(seed))
        assert len(_unordered(batch.pairs)) == 9
        for a, b in batch.pairs:
            hits[min(a, b), max(a, b)] += 1
    upper = hits[np.triu_indices(10, k=1)]
    assert upper.sum() == 2700 and upper.min() > 30 and upper.max() < 95  # mean 60


# --------------------------------------------------------------------------- public API
@pytest.fixture(scope="module")
def trials():
    truth = make_true_scores(7, n_scenes=2, jod_range=5.0, seed=8)
    return simulate_trials(truth, n_observers=4, seed=9)


def test_select_pairs_returns_one_tree_per_group_with_status(trials):
    pairs = select_pairs(trials, by=["scene"])
    assert list(pairs.columns) == ["scene", "condition_A", "condition_B", "expected_gain"]
    assert pairs.groupby("scene").size().tolist() == [6, 6]
    for _, group in pairs.groupby("scene"):
        names = sorted(set(group.condition_A) | set(group.condition_B))
        coded = group[["condition_A", "condition_B"]].map(names.index).to_numpy()
        assert _is_spanning_tree(coded, 7)
    status = pd.DataFrame(pairs.attrs["jodkit"]["status"])
    assert list(status.scene) == ["s00", "s01"]
    assert (status.n_comparisons == 4 * 21).all() and (status.n_conditions == 7).all()
    assert (status.interval_width > 0).all() and not status.done.any()


def test_same_seed_same_pairs_other_seed_other_pairs():
    empty = pd.DataFrame(columns=["observer", "condition_A", "condition_B", "is_A_selected"])
    names = [f"img{k}" for k in range(12)]
    first = select_pairs(empty, conditions=names, seed=3)
    again = select_pairs(empty, conditions=names, seed=3)
    other = select_pairs(empty, conditions=names, seed=4)
    pd.testing.assert_frame_equal(first, again)
    assert _unordered(first[["condition_A", "condition_B"]].to_numpy()) != _unordered(
        other[["condition_A", "condition_B"]].to_numpy()
    )


def test_stopping_rule_reports_and_stops(trials):
    loose = select_pairs(trials, target_width=50.0)
    assert loose.empty
    status = loose.attrs["jodkit"]["status"]
    assert all(s["done"] and "interval width" in s["reason"] for s in status)
    assert all(s["further_judgments"] == 0 for s in status)
    tight = select_pairs(trials, target_width=0.2)
    for s in tight.attrs["jodkit"]["status"]:
        predicted = s["n_comparisons"] * ((s["interval_width"] / 0.2) ** 2 - 1)
        assert not s["done"] and s["further_judgments"] == pytest.approx(predicted, abs=1)
    saturated = select_pairs(trials, min_gain=10.0)
    assert saturated.empty
    assert all("expected gain" in s["reason"] for s in saturated.attrs["jodkit"]["status"])


def test_count_matrix_input_and_training_trials_left_out(trials):
    one = trials[trials.scene == "s00"].assign(is_training=0)
    one.loc[one.index[:10], "is_training"] = 1
    names = sorted(set(one.condition_A) | set(one.condition_B))
    counts = scaling.counts_from_trials(one[one.is_training == 0], names)
    from_trials = select_pairs(one, by=[], seed=1)
    from_counts = select_pairs(counts, conditions=names, seed=1)
    pd.testing.assert_frame_equal(from_trials, from_counts, check_like=True)


# --------------------------------------------------------------------------- bad input
def test_unknown_condition_is_named_with_its_row(trials):
    with pytest.raises(InputError, match=r"row 3, field 'condition_A'.*'c9'"):
        bad = trials.copy()
        bad.loc[2, "condition_A"] = "c9"
        names = sorted(set(trials.condition_A))
        select_pairs(bad, conditions=names)


def test_empty_table_without_conditions_is_an_error():
    empty = pd.DataFrame(columns=["observer", "condition_A", "condition_B", "is_A_selected"])
    with pytest.raises(InputError, match="no trials and no condition list"):
        select_pairs(empty)


def test_one_condition_is_an_error():
    with pytest.raises(InputError, match="only one condition"):
        select_pairs(np.zeros((1, 1)), conditions=["only"])
    with pytest.raises(InputError, match="scene=s1: only one condition"):
        select_pairs(
            pd.DataFrame(columns=["observer", "condition_A", "condition_B", "is_A_selected"]),
            by=["scene"],
            conditions=pd.DataFrame({"scene": ["s1", "s2", "s2"], "condition": ["a", "b", "c"]}),
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "best"}, "method must be one of"),
        ({"n_pairs": 0}, "n_pairs must be between 1 and the 21"),
        ({"n_pairs": 22}, "n_pairs must be between 1 and the 21"),
        ({"target_width": -1.0}, "target_width must be positive"),
        ({"prior": "flat"}, "prior must be"),
    ],
)
def test_bad_options_are_refused(trials, kwargs, message):
    with pytest.raises(ValueError, match=message):
        select_pairs(trials[trials.scene == "s00"], by=[], **kwargs)


def test_bad_count_matrix_is_refused():
    with pytest.raises(InputError, match="square"):
        select_pairs(np.zeros((2, 3)))
    with pytest.raises(InputError, match="non-negative"):
        select_pairs(np.array([[0.0, -1.0], [1.0, 0.0]]))
    with pytest.raises(InputError, match="3 condition names for a 2 x 2"):
        select_pairs(np.zeros((2, 2)), conditions=["a", "b", "c"])


# --------------------------------------------------------------------------- weak prior
def test_prior_scale_is_fitted_to_the_spread_of_the_scene():
    narrow = laplace_posterior(_study_counts(12, 6, seed=3, jod_range=2.0))
    wide = laplace_posterior(_study_counts(12, 6, seed=3, jod_range=12.0))
    assert narrow.prior_sd < 1.5 < wide.prior_sd
    for posterior in (narrow, wide):  # EM stopped at (near) its fixed point
        assert posterior.fitted_prior_sd() == pytest.approx(posterior.prior_sd, rel=0.05)


def test_fixed_prior_scale_is_used_as_given():
    posterior = laplace_posterior(_study_counts(6, 3, seed=1), prior_sd=0.7)
    assert posterior.prior_sd == 0.7


# --------------------------------------------------------------------------- cross-content
def _cross_images(scenes: int = 3, per_scene: int = 4) -> pd.DataFrame:
    ladder = np.linspace(-2.0, 2.0, per_scene)
    return pd.DataFrame(
        {
            "scene": np.repeat([f"s{k}" for k in range(scenes)], per_scene),
            "condition": np.tile([f"r{k}" for k in range(per_scene)], scenes),
            "jod": np.tile(ladder, scenes),
        }
    )


def test_cross_pairs_join_scenes_and_pin_the_ends_of_each_line_first():
    images = _cross_images()
    pairs = select_cross_pairs(None, images)
    assert list(pairs.columns) == list(CROSS_PAIR_COLUMNS)
    assert (pairs.scene_A != pairs.scene_B).all()
    keys = image_keys(images.scene, images.condition).tolist()
    coded = np.column_stack(
        [
            image_keys(pairs.scene_A, pairs.condition_A).map(keys.index),
            image_keys(pairs.scene_B, pairs.condition_B).map(keys.index),
        ]
    )
    assert _is_spanning_tree(coded, len(images))
    best = pairs.iloc[: len(images) // 3]  # the highest gains: the extreme images
    assert set(best.condition_A) | set(best.condition_B) <= {"r0", "r3"}


def test_targeted_gains_differ_from_plain_gains_of_the_cross_scale():
    images = _cross_images()
    codes = pd.factorize(images.scene, sort=True)[0]
    target = alignment_target(codes, images.jod.to_numpy())
    posterior = laplace_posterior(np.zeros((12, 12)), prior_sd=1.0)
    end_pair = candidate_gains(posterior, np.array([0]), np.array([7]), target)  # r0 vs r3
    mid_pair = candidate_gains(posterior, np.array([1]), np.array([6]), target)  # r1 vs r2
    plain = candidate_gains(posterior, np.array([0, 1]), np.array([7, 6]))
    assert end_pair[0] > mid_pair[0] and plain[0] == pytest.approx(plain[1])


def test_cross_trials_update_the_plan_and_unknown_images_are_named():
    images = _cross_images(2, 3)
    trials = pd.DataFrame(
        {
            "observer": "o1",
            "scene_A": ["s0", "s0", "s1"],
            "scene_B": ["s1", "s1", "s0"],
            "condition_A": ["r0", "r2", "r1"],
            "condition_B": ["r2", "r0", "r9"],
            "is_A_selected": [1, 0, 1],
        }
    )
    with pytest.raises(InputError, match=r"row 3, field 'condition_B'.*s0/r9"):
        select_cross_pairs(trials, images)
    plan = select_cross_pairs(trials.iloc[:2], images)
    assert plan.attrs["jodkit"]["status"][0]["n_comparisons"] == 2
    assert len(plan) == 5


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (pd.DataFrame({"scene": ["a"], "condition": ["x"]}), "missing column 'jod'"),
        (_cross_images(1, 3), "at least two scenes"),
        (_cross_images(2, 3).drop(index=[0, 1]), "scene 's0' has one image"),
        (_cross_images(2, 2).assign(jod=[0, np.nan, 1, 2]), "row 2, field 'jod'"),
        (pd.concat([_cross_images(2, 2)] * 2), "row 5, field 'condition': image listed twice"),
        (_cross_images(2, 2).assign(scene=["a/b", "a/b", "c", "c"]), "row 1, field 'scene'"),
    ],
)
def test_bad_cross_images_are_refused(images, message):
    with pytest.raises(InputError, match=message):
        select_cross_pairs(None, images)


# --------------------------------------------------------------------------- jod pairs
def test_jod_pairs_writes_pairs_status_and_prints_the_stopping_rule(tmp_path, trials):
    from typer.testing import CliRunner

    from jodkit.cli import app
    from scaling.io import read_table

    source = tmp_path / "trials.csv"
    trials.to_csv(source, index=False)
    out, status = tmp_path / "next_pairs.csv", tmp_path / "status.csv"
    args = ["pairs", str(source), "--by", "scene", "-o", str(out), "--target-width", "0.5"]
    result = CliRunner().invoke(app, [*args, "--status", str(status)])
    assert result.exit_code == 0, result.output
    pairs = read_table(out)
    pd.testing.assert_frame_equal(
        pairs, select_pairs(trials, by=["scene"], target_width=0.5), check_dtype=False
    )
    assert pairs.attrs["jodkit"]["status"][0]["scene"] == "s00"
    table = pd.read_csv(status)
    assert list(table.scene) == ["s00", "s01"] and (table.further_judgments > 0).all()
    assert "scene=s00: 7 conditions, 84 judgments, median 95% interval width" in result.output
    assert "more to reach 0.5" in result.output


def test_jod_pairs_bad_input_is_one_line_and_exit_2(tmp_path, trials):
    from typer.testing import CliRunner

    from jodkit.cli import app

    source = tmp_path / "trials.csv"
    bad = trials.copy()
    bad.loc[4, "condition_B"] = "ghost"
    bad.to_csv(source, index=False)
    listed = tmp_path / "conditions.csv"
    trials[["scene", "condition_A"]].drop_duplicates().rename(
        columns={"condition_A": "condition"}
    ).to_csv(listed, index=False)
    out = tmp_path / "next.csv"
    result = CliRunner().invoke(
        app, ["pairs", str(source), "--conditions", str(listed), "--by", "scene", "-o", str(out)]
    )
    assert result.exit_code == 2
    assert "row 5, field 'condition_B': unknown condition 'ghost'" in result.output
    assert not out.exists()
    again = CliRunner().invoke(app, ["pairs", str(source), "-o", str(source)])
    assert again.exit_code == 2 and "would overwrite the input" in again.output


def test_pending_pairs_count_as_expected_information():
    counts = _study_counts(8, 2, seed=6)
    free = plan_batch(counts, rng=np.random.default_rng(1))
    best = free.pairs[:3]
    busy = plan_batch(counts, rng=np.random.default_rng(1), pending=np.repeat(best, 4, axis=0))
    # the status describes the answers only; the gains count the pending pairs
    assert busy.status.interval_width == free.status.interval_width
    assert busy.status.n_comparisons == free.status.n_comparisons
    assert busy.status.max_gain < free.status.max_gain
    chosen = _unordered(busy.pairs)
    assert not chosen >= _unordered(best)  # at least one of them gives way
    assert busy.gains[0] <= free.gains[0]


def test_jod_pairs_plans_cross_content_pairs_from_an_empty_start(tmp_path):
    from typer.testing import CliRunner

    from jodkit.cli import app
    from scaling.io import read_table

    images = tmp_path / "cross_images.csv"
    _cross_images(3, 3).to_csv(images, index=False)
    trials = tmp_path / "cross_trials.csv"
    pd.DataFrame(
        columns=["observer", "scene_A", "scene_B", "condition_A", "condition_B", "is_A_selected"]
    ).to_csv(trials, index=False)
    out = tmp_path / "next_cross.csv"
    result = CliRunner().invoke(
        app, ["pairs", str(trials), "--cross-images", str(images), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    pairs = read_table(out)
    assert list(pairs.columns) == list(CROSS_PAIR_COLUMNS) and len(pairs) == 8
    assert (pairs.scene_A != pairs.scene_B).all()
    assert "all: 9 conditions, 0 judgments" in result.output
