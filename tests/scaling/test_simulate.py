"""Simulated observers answer as the Thurstone model says, and designs compare what they say."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from scaling.errors import InputError
from scaling.formats import TRIAL_REQUIRED
from scaling.simulate import (
    SIGMA,
    design_pairs,
    make_true_scores,
    simulate_observer_counts,
    simulate_trials,
)


def _two_conditions(diff: float) -> pd.DataFrame:
    return pd.DataFrame({"condition": ["lo", "hi"], "jod": [0.0, diff]})


def _fraction_hi_chosen(trials: pd.DataFrame) -> float:
    chose_a = trials["is_A_selected"].to_numpy() == 1
    a_is_hi = trials["condition_A"].to_numpy() == "hi"
    return float(np.mean(chose_a == a_is_hi))


def test_trial_table_has_the_trial_format_columns() -> None:
    trials = simulate_trials(make_true_scores(5, n_scenes=2), n_observers=3)
    assert set(TRIAL_REQUIRED) <= set(trials.columns)
    assert {"scene", "left_shown"} <= set(trials.columns)
    assert set(trials["is_A_selected"].unique()) <= {0, 1}
    assert set(trials["left_shown"].unique()) == {"A", "B"}
    assert (trials["condition_A"] != trials["condition_B"]).all()


def test_full_design_gives_every_observer_every_pair_once() -> None:
    trials = simulate_trials(make_true_scores(6, n_scenes=2), n_observers=4, design="full")
    assert len(trials) == 2 * 4 * 15
    pair = trials[["condition_A", "condition_B"]].apply(lambda r: tuple(sorted(r)), axis=1)
    per_observer = trials.assign(pair=pair).groupby(["scene", "observer"])["pair"].nunique()
    assert (per_observer == 15).all()


def test_random_design_has_the_requested_trials_and_balanced_pairs() -> None:
    truth = make_true_scores(10, n_scenes=3)
    trials = simulate_trials(truth, n_observers=7, design="random", n_comparisons=100)
    assert (trials.groupby("scene").size() == 100).all()
    lo = np.minimum(trials["condition_A"], trials["condition_B"])
    hi = np.maximum(trials["condition_A"], trials["condition_B"])
    counts = trials.assign(lo=lo, hi=hi).groupby(["scene", "lo", "hi"]).size()
    # 100 trials over 45 pairs: every pair 2 or 3 times.
    assert counts.min() == 2 and counts.max() == 3
    per_observer = trials.groupby(["scene", "observer"]).size()
    assert per_observer.max() - per_observer.min() <= 1


def test_neighbour_design_compares_only_close_conditions() -> None:
    truth = make_true_scores(30, seed=3)
    trials = simulate_trials(truth, n_observers=2, design="neighbour", neighbours=3)
    rank = truth.set_index("condition")["jod"].rank().astype(int)
    distance = (trials["condition_A"].map(rank) - trials["condition_B"].map(rank)).abs()
    assert distance.min() == 1 and distance.max() == 3
    assert len(trials) == 2 * (29 + 28 + 27)


def test_design_pairs_rejects_unknown_design() -> None:
    with pytest.raises(ValueError, match="design must be one of"):
        design_pairs(np.zeros(3), "latin")


def test_choice_frequency_follows_thurstone_model() -> None:
    # 1 JOD means 75% by definition of the unit.
    trials = simulate_trials(_two_conditions(1.0), n_observers=20, n_comparisons=40_000)
    assert _fraction_hi_chosen(trials) == pytest.approx(0.75, abs=0.01)
    trials = simulate_trials(_two_conditions(2.5), n_observers=20, n_comparisons=40_000)
    assert _fraction_hi_chosen(trials) == pytest.approx(norm.cdf(2.5 / SIGMA), abs=0.01)


def test_random_observers_answer_at_chance_and_are_recorded() -> None:
    trials = simulate_trials(
        _two_conditions(3.0), n_observers=8, n_comparisons=40_000, outlier_fraction=0.25
    )
    random_obs = trials.attrs["jodkit"]["simulation"]["random_observers"]
    assert len(random_obs) == 2
    is_random = trials["observer"].isin(random_obs)
    assert _fraction_hi_chosen(trials[is_random]) == pytest.approx(0.5, abs=0.02)
    assert _fraction_hi_chosen(trials[~is_random]) == pytest.approx(norm.cdf(3.0 / SIGMA), abs=0.01)


def test_left_bias_favours_the_left_stimulus() -> None:
    trials = simulate_trials(
        _two_conditions(0.0), n_observers=10, n_comparisons=40_000, left_bias=1.0
    )
    chose_left = (trials["is_A_selected"] == 1) == (trials["left_shown"] == "A")
    assert chose_left.mean() == pytest.approx(0.75, abs=0.01)
    assert _fraction_hi_chosen(trials) == pytest.approx(0.5, abs=0.01)


def test_compression_makes_observers_less_discriminating() -> None:
    trials = simulate_trials(
        _two_conditions(2.0), n_observers=400, n_comparisons=80_000, compression=0.8
    )
    # Scale factors uniform on [0.2, 1]: average the choice probability over them.
    s = np.linspace(0.2, 1.0, 10_001)
    expected = norm.cdf(s * 2.0 / SIGMA).mean()
    assert _fraction_hi_chosen(trials) == pytest.approx(expected, abs=0.01)
    assert expected < norm.cdf(2.0 / SIGMA) - 0.05


def test_same_seed_same_trials_other_seed_other_trials() -> None:
    truth = make_true_scores(8, n_scenes=2)
    kwargs = {"n_observers": 5, "design": "random", "n_comparisons": 60, "outlier_fraction": 0.2}
    first = simulate_trials(truth, seed=7, **kwargs)
    pd.testing.assert_frame_equal(first, simulate_trials(truth, seed=7, **kwargs))
    assert not first.equals(simulate_trials(truth, seed=8, **kwargs))


def test_make_true_scores_is_centred_and_spans_the_range() -> None:
    truth = make_true_scores(50, n_scenes=3, jod_range=6.0)
    assert truth.groupby("scene")["jod"].mean().abs().max() < 1e-12
    spread = truth.groupby("scene")["jod"].agg(lambda x: x.max() - x.min())
    assert ((spread > 5.0) & (spread <= 6.0)).all()


@pytest.mark.parametrize(
    ("truth", "field"),
    [
        (pd.DataFrame({"condition": ["a", "b"]}), "jod"),
        (pd.DataFrame({"jod": [0.0, 1.0]}), "condition"),
        (pd.DataFrame({"condition": ["a", "b"], "jod": [0.0, np.nan]}), "jod"),
        (pd.DataFrame({"condition": ["a", "a"], "jod": [0.0, 1.0]}), "condition"),
    ],
)
def test_bad_truth_table_names_the_field(truth: pd.DataFrame, field: str) -> None:
    with pytest.raises(InputError, match=f"field '{field}'"):
        simulate_trials(truth)


def test_group_with_one_condition_is_rejected() -> None:
    truth = pd.DataFrame({"scene": ["x", "y", "y"], "condition": ["a", "a", "b"], "jod": 0.0})
    with pytest.raises(InputError, match="at least 2 conditions"):
        simulate_trials(truth)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_observers": 0}, "n_observers"),
        ({"design": "latin"}, "design"),
        ({"n_comparisons": 0}, "n_comparisons"),
        ({"outlier_fraction": 1.5}, "outlier_fraction"),
        ({"compression": 1.0}, "compression"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate_trials(_two_conditions(1.0), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_conditions": 1}, "n_conditions"), ({"n_conditions": 3, "jod_range": 0.0}, "jod_range")],
)
def test_make_true_scores_rejects_bad_sizes(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_true_scores(**kwargs)


def test_observer_counts_follow_the_model_and_the_full_design() -> None:
    counts = simulate_observer_counts(np.array([0.0, 1.0, 3.0]), 2000, repeats=2, seed=1)
    assert counts.shape == (2000, 3, 3)
    totals = counts + counts.transpose(0, 2, 1)
    assert np.all(totals[:, [0, 0, 1], [1, 2, 2]] == 2)
    share = counts.sum(axis=0) / totals.sum(axis=0).clip(min=1)
    assert share[1, 0] == pytest.approx(0.75, abs=0.015)
    assert share[2, 0] == pytest.approx(norm.cdf(3.0 / SIGMA), abs=0.01)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((np.array([1.0]), 3), {}), ((np.array([0.0, np.nan]), 3), {}), ((np.zeros(3), 0), {})],
)
def test_observer_counts_reject_bad_input(args: tuple, kwargs: dict) -> None:
    with pytest.raises(ValueError, match="at least"):
        simulate_observer_counts(*args, **kwargs)
