"""Observer screening finds the observers who do not answer like the others."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom, norm

from scaling.errors import InputError
from scaling.outliers import (
    _scale,
    distance_below_quartile,
    log10_binomial,
    observer_log_likelihoods,
    screen_observers,
)
from scaling.simulate import make_true_scores, simulate_trials

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
TMO = SHARED / "data" / "real" / "pwcmp_video_tmo" / "ex3_tmo_cmp_data.csv"


def test_distance_uses_matlab_quartiles() -> None:
    values = np.array([-10.0, 1, 2, 3, 4, 5, 6, 7])
    # Hazen: Q1 = 1.5, Q3 = 5.5, IQR = 4.
    np.testing.assert_allclose(
        distance_below_quartile(values), [11.5 / 4, 0.5 / 4, 0, 0, 0, 0, 0, 0]
    )
    # numpy's default (linear) quartiles would give 11.75 / 3.5 instead.
    assert distance_below_quartile(values)[0] != pytest.approx(11.75 / 3.5)


def test_distance_skips_observers_without_pairs() -> None:
    dist = distance_below_quartile(np.array([np.nan, -10.0, 1, 2, 3, 4, 5, 6, 7]))
    assert np.isnan(dist[0])
    assert dist[1] == pytest.approx(11.5 / 4)


def test_log10_binomial_matches_scipy_and_stays_finite() -> None:
    wins, totals = np.array([3.0, 0.0, 7.0]), np.array([5.0, 4.0, 7.0])
    qi, qj = np.array([0.5, -1.0, 2.0]), np.array([0.0, 1.0, 0.0])
    p = binom.pmf(wins, totals, norm.cdf((qi - qj) / 1.4826))
    np.testing.assert_allclose(log10_binomial(wins, totals, qi, qj), np.log10(p), rtol=1e-10)
    # 1000 unanimous answers against a 30 JOD difference: far below pwcmp's 1e-200 floor.
    extreme = log10_binomial(np.array([1000.0]), np.array([1000.0]), np.zeros(1), np.full(1, 30))
    assert np.isfinite(extreme[0]) and extreme[0] < -200


def test_observer_absent_from_a_group_has_no_pairs_there() -> None:
    rng = np.random.default_rng(0)
    stack = rng.integers(1, 4, size=(4, 5, 5)).astype(float)
    for s in stack:
        np.fill_diagonal(s, 0.0)
    other = stack.copy()
    other[3] = 0.0
    solve = partial(_scale, prior="none", anchor="mean0")
    one, pairs_one = observer_log_likelihoods([stack], solve)
    two, pairs_two = observer_log_likelihoods([stack, other], solve)
    assert pairs_two[3] == pairs_one[3] == 10
    assert list(pairs_two[:3]) == [20, 20, 20]
    assert two[3] == pytest.approx(one[3])
    assert np.all(one < 0)


def test_random_answerers_are_flagged() -> None:
    truth = make_true_scores(8, n_scenes=3, jod_range=6.0, seed=1)
    trials = simulate_trials(truth, n_observers=14, outlier_fraction=1 / 7, seed=2)
    random_obs = trials.attrs["jodkit"]["simulation"]["random_observers"]
    table = screen_observers(trials, by=["scene"], prior="none")
    assert sorted(table.loc[table["flagged"], "observer"]) == sorted(random_obs)
    assert list(table.columns) == [
        "observer",
        "log_likelihood_per_pair",
        "dist_L",
        "flagged",
        "n_trials",
        "n_pairs",
    ]
    assert (table["n_trials"] == 3 * 28).all()
    assert (table["n_pairs"] == 3 * 28).all()
    assert "few trials" in table.attrs["jodkit"]["screening"]["note"]


@pytest.mark.skipif(not TMO.exists(), reason=f"shared pwcmp TMO data not found at {TMO}")
def test_tmo_example_flags_the_two_observers_pwcmp_reports() -> None:
    trials = pd.read_csv(TMO)
    trials = trials.rename(columns={"session_id": "session", "criterion": "attribute"})
    table = screen_observers(trials, by=["scene"])
    flagged = table.loc[table["flagged"]]
    # pwcmp's README: "two observers with scores greater than 1.5".
    assert sorted(flagged["observer"]) == ["M02", "bab"]
    assert flagged["dist_L"].min() > 3.0
    assert table.loc[~table["flagged"], "dist_L"].max() < 1.0


def test_missing_column_is_named() -> None:
    trials = pd.DataFrame({"observer": ["a"], "condition_A": ["x"], "condition_B": ["y"]})
    with pytest.raises(InputError, match="field 'is_A_selected'"):
        screen_observers(trials)


def test_too_few_observers_is_rejected() -> None:
    trials = simulate_trials(make_true_scores(4), n_observers=2)
    with pytest.raises(InputError, match="at least 3 observers"):
        screen_observers(trials)
