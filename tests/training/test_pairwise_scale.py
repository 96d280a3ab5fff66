"""From comparator probabilities back to a JOD scale through scaling's public API."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

import scaling
from scaling.errors import InputError
from training.pairwise_scale import (
    comparator_scale,
    comparisons_to_trials,
    plot_disagreement,
    scale_disagreement,
)


def _predictions(scores: np.ndarray, scene="s0", attribute="noise") -> pd.DataFrame:
    i, j = np.triu_indices(len(scores), k=1)
    return pd.DataFrame(
        {
            "scene": scene,
            "attribute": attribute,
            "condition_A": [f"c{k}" for k in i],
            "condition_B": [f"c{k}" for k in j],
            "p_a_better": norm.cdf((scores[i] - scores[j]) / 1.4826),
        }
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20), st.integers(1, 50))
def test_votes_carry_the_probability_to_half_a_vote(probabilities, votes):
    predictions = pd.DataFrame(
        {
            "scene": "s0",
            "attribute": "noise",
            "condition_A": [f"a{k}" for k in range(len(probabilities))],
            "condition_B": [f"b{k}" for k in range(len(probabilities))],
            "p_a_better": probabilities,
        }
    )
    trials = comparisons_to_trials(predictions, votes)
    for k, p in enumerate(probabilities):
        own = trials[trials["condition_A"] == f"a{k}"]
        assert len(own) == votes
        wins = own["is_A_selected"].sum() + own["tie"].sum() / 2
        assert abs(wins / votes - p) <= 0.5 / (2 * votes) + 1e-12
        assert own["tie"].sum() <= 1
        assert not (own["tie"].astype(bool) & own["is_A_selected"].astype(bool)).any()


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=8, unique=True))
def test_probabilities_of_a_scale_scale_back_to_it(values):
    scores = np.array(values) - np.mean(values)
    scale = comparator_scale(_predictions(scores), votes=400, prior="none")
    recovered = scale.sort_values("condition", key=lambda c: c.str[1:].astype(int))["jod"]
    recovered = recovered.to_numpy() - recovered.mean()
    # half-vote rounding moves each P by <= 1/1600, i.e. by <= 1/1600 x SIGMA / phi(d / SIGMA)
    # JOD: under 0.012 JOD per pair for |d| <= 3 JOD
    assert recovered == pytest.approx(scores, abs=0.02)


def test_disagreement_is_centred_per_scene(tmp_path):
    expert = pd.DataFrame(
        {
            "scene": ["s0"] * 3 + ["s1"] * 3,
            "attribute": "noise",
            "condition": ["a", "b", "c"] * 2,
            "jod": [1.0, 0.0, -1.0, 5.0, 4.0, 3.0],
        }
    )
    model = expert.assign(jod=[2.0, 1.0, 0.0, 0.0, 1.0, 2.0])
    table = scale_disagreement(model, expert)
    assert table["difference"].tolist() == pytest.approx([0.0, 0.0, 0.0, -2.0, 0.0, 2.0])
    assert table.attrs["jodkit"]["spearman"] == pytest.approx({"s0/noise": 1.0, "s1/noise": -1.0})
    assert plot_disagreement(table, tmp_path / "d.png").stat().st_size > 1000
    with pytest.raises(InputError, match="share no image"):
        scale_disagreement(model.assign(condition="x"), expert)


def test_cross_scene_pairs_are_not_scaled_and_bad_input():
    predictions = _predictions(np.array([1.0, 0.0, -1.0])).drop(columns="scene")
    predictions["scene_A"] = ["s0", "s0", "s1"]
    predictions["scene_B"] = ["s0", "s1", "s1"]
    trials = comparisons_to_trials(predictions, votes=4)
    assert len(trials) == 8 and set(trials["scene"]) == {"s0", "s1"}
    with pytest.raises(InputError, match="need 'scene'"):
        comparisons_to_trials(predictions.drop(columns=["scene_A"]))
    with pytest.raises(InputError, match=r"lack columns \['p_a_better'\]"):
        comparisons_to_trials(predictions.drop(columns="p_a_better"))
    assert isinstance(scaling.scale(trials, ties="split", progress=False), pd.DataFrame)
