"""Pairwise evaluation: metrics against a per-trial computation, calibration, model inputs."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest, norm

import scaling
from scaling.errors import InputError
from scaling.simulate import make_true_scores
from training.pairwise_data import pair_table, read_pair_trials
from training.pairwise_eval import (
    calibration_bins,
    comparator_probability,
    evaluate_pairwise,
    pair_metrics,
    plot_calibration,
    score_model_probability,
    sign_test_p,
    target_holdout,
)

pair_rows = st.lists(
    st.tuples(
        st.integers(0, 12),  # A wins
        st.integers(0, 12),  # B wins
        st.integers(0, 4),  # ties
        st.floats(0.0, 1.0),  # predicted P(A)
    ).filter(lambda r: r[0] + r[1] + r[2] > 0),
    min_size=1,
    max_size=25,
)


def _pairs(rows) -> tuple[pd.DataFrame, np.ndarray]:
    wins_a, wins_b, ties, p = (np.array(c, float) for c in zip(*rows, strict=True))
    frame = pd.DataFrame(
        {"n_trials": wins_a + wins_b + ties, "n_ties": ties, "wins_A": wins_a + ties / 2}
    )
    return frame, p


@settings(max_examples=200, deadline=None)
@given(pair_rows)
def test_metrics_equal_a_per_trial_computation(rows):
    pairs, p = _pairs(rows)
    got = pair_metrics(pairs, p)
    log_lik, brier, n = 0.0, 0.0, 0
    right, clear_right, n_major, n_clear = 0.0, 0.0, 0, 0
    for (wins_a, wins_b, ties, _), prob in zip(rows, p, strict=True):
        outcomes = [1.0] * wins_a + [0.0] * wins_b + [0.5] * ties
        q = min(max(prob, 1e-12), 1 - 1e-12)
        for y in outcomes:
            log_lik += y * math.log(q) + (1 - y) * math.log(1 - q)
            brier += (prob - y) ** 2
            n += 1
        if wins_a == wins_b:
            continue
        hit = 0.5 if prob == 0.5 else float((prob > 0.5) == (wins_a > wins_b))
        right += hit
        n_major += 1
        if binomtest(wins_a, wins_a + wins_b, 0.5).pvalue < 0.05:
            clear_right += hit
            n_clear += 1
    assert got["log_likelihood"] == pytest.approx(log_lik / n, rel=1e-9, abs=1e-12)
    assert got["brier"] == pytest.approx(brier / n, rel=1e-9, abs=1e-12)
    assert got["n_trials"] == n and got["n_pairs"] == n_major and got["n_clear"] == n_clear
    if n_major:
        assert got["accuracy"] == pytest.approx(right / n_major)
    if n_clear:
        assert got["accuracy_clear"] == pytest.approx(clear_right / n_clear)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 40), st.integers(0, 40))
def test_sign_test_is_binomtest(wins, losses):
    n = wins + losses
    expected = binomtest(wins, n, 0.5).pvalue if n else 1.0
    assert sign_test_p(np.array([wins]), np.array([n]))[0] == pytest.approx(expected)


@settings(max_examples=50, deadline=None)
@given(pair_rows)
def test_calibration_bins_count_every_trial_twice(rows):
    pairs, p = _pairs(rows)
    bins = calibration_bins(pairs, p, bins=5)
    assert bins["n_trials"].sum() == pytest.approx(2 * pairs["n_trials"].sum())
    # symmetric by construction: the lower half mirrors the upper (P = 1/2 sits on the edge)
    full = calibration_bins(pairs, np.where(p == 0.5, 0.6, p), bins=2)
    if len(full) == 2:
        assert full["observed"].iloc[0] == pytest.approx(1 - full["observed"].iloc[1])
    for row in bins.itertuples(index=False):
        assert row.bin_low - 1e-12 <= row.predicted <= row.bin_high + 1e-12


def test_calibration_of_a_hand_made_case(tmp_path):
    pairs = pd.DataFrame({"n_trials": [10.0, 4.0], "n_ties": [0.0, 2.0], "wins_A": [8.0, 1.0]})
    bins = calibration_bins(pairs, np.array([0.85, 0.2]), bins=10)
    # P 0.85 -> bin 8 (A side) with 8/10, bin 1 (B side) with 2/10; P 0.2 -> bin 2 with 1/4,
    # and its mirror 0.8 -> bin 8 with 3/4
    by_bin = {round(r.bin_low, 1): r for r in bins.itertuples(index=False)}
    assert by_bin[0.8].n_trials == 14 and by_bin[0.8].observed == pytest.approx(11 / 14)
    assert by_bin[0.8].predicted == pytest.approx((0.85 * 10 + 0.8 * 4) / 14)
    assert by_bin[0.1].observed == pytest.approx(0.2) and by_bin[0.2].observed == 0.25
    path = plot_calibration({"model": bins}, tmp_path / "calibration.png")
    assert path.stat().st_size > 1000


def test_model_probabilities_and_errors(tmp_path):
    pairs = pd.DataFrame(
        {
            "attribute": ["noise", "noise"],
            "image_A": [str(tmp_path / "a.png"), str(tmp_path / "b.png")],
            "image_B": [str(tmp_path / "b.png"), str(tmp_path / "c.png")],
        }
    )
    scores = pd.DataFrame(
        {
            "image_path": [str(tmp_path / n) for n in ("a.png", "b.png", "c.png")],
            "attribute": "noise",
            "jod_pred": [1.0, 0.0, -2.0],
        }
    )
    assert score_model_probability(pairs, scores) == pytest.approx(
        norm.cdf(np.array([1.0, 2.0]) / 1.4826)
    )
    with pytest.raises(InputError, match=r"no score prediction for image .*c\.png"):
        score_model_probability(pairs, scores.iloc[:2])
    # the comparator predicted (a, b) in both orders and (c, b) only reversed
    predictions = pd.DataFrame(
        {
            "image_A": [pairs.image_A[0], pairs.image_B[0], pairs.image_B[1]],
            "image_B": [pairs.image_B[0], pairs.image_A[0], pairs.image_A[1]],
            "attribute": "noise",
            "p_a_better": [0.9, 0.3, 0.25],
        }
    )
    assert comparator_probability(pairs, predictions) == pytest.approx([0.8, 0.75])
    with pytest.raises(
        InputError, match=r"no comparator prediction for the pair .*b.png / .*c.png"
    ):
        comparator_probability(pairs, predictions.iloc[:2])


def _study(seed=0):
    truth = make_true_scores(6, n_scenes=4, attribute="noise", seed=seed)
    trials = scaling.simulate_trials(truth, n_observers=10, seed=seed)
    return truth, read_pair_trials([trials])


def test_table_orders_ceiling_model_and_chance():
    truth, trials = _study()
    pairs = pair_table(trials, truth)
    rng = np.random.default_rng(0)
    noisy = pairs["p_thurstone"].to_numpy() * 0.6 + 0.4 * rng.uniform(size=len(pairs))
    table, curves = evaluate_pairwise(
        pairs, {"human scale": pairs["p_thurstone"].to_numpy(), "noisy": noisy}
    )
    rows = table.set_index("model")
    assert list(rows.index) == ["human scale", "noisy", "chance (P = 1/2)"]
    ll = rows["log_likelihood"]
    assert ll["human scale"] > ll["noisy"] > ll["chance (P = 1/2)"] == pytest.approx(math.log(0.5))
    assert rows.loc["chance (P = 1/2)", "accuracy"] == 0.5
    assert rows.loc["human scale", "accuracy_clear"] > 0.95
    assert set(curves) == {"human scale", "noisy"}


def test_target_holdout_prefers_the_scale_on_log_likelihood():
    _, trials = _study(seed=1)
    table = target_holdout(trials, folds=5).set_index("target")
    assert set(table.index) == {"proportion", "thurstone", "blend 0.25", "blend 0.5", "blend 0.75"}
    assert table.loc["thurstone", "log_likelihood"] > table.loc["proportion", "log_likelihood"]
    assert (table["n_trials"] == len(trials)).all()


def test_evaluation_files_end_to_end(tmp_path):
    from training.pairwise_data import attach_images, pair_splits, read_image_index
    from training.pairwise_eval import evaluate_pairwise_files

    truth, trials = _study(seed=2)
    rows = []
    for scene, condition in truth[["scene", "condition"]].itertuples(index=False):
        (tmp_path / scene).mkdir(exist_ok=True)
        (tmp_path / scene / f"{condition}.png").write_bytes(b"")  # the index needs files only
        rows.append((scene, condition, f"{scene}/{condition}.png"))
    index = pd.DataFrame(rows, columns=["scene", "condition", "image_path"])
    index.to_csv(tmp_path / "index.csv", index=False)
    pairs = attach_images(pair_table(trials, truth), read_image_index(tmp_path / "index.csv"))
    pairs["split"] = pair_splits(pairs, 0.0, 0.5, seed=0)
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    rng = np.random.default_rng(0)
    comparator = pairs[["image_A", "image_B", "attribute"]].assign(
        p_a_better=np.clip(pairs["p_thurstone"] + rng.normal(0, 0.1, len(pairs)), 0.01, 0.99)
    )
    comparator.to_csv(tmp_path / "comparator.csv", index=False)
    paths = dict(
        zip(zip(index["scene"], index["condition"], strict=True), index["image_path"], strict=True)
    )
    score = truth.assign(
        image_path=[
            str((tmp_path / paths[(s, c)]).resolve())
            for s, c in zip(truth["scene"], truth["condition"], strict=True)
        ],
        jod_pred=truth["jod"] + rng.normal(0, 0.5, len(truth)),
    )
    score.to_csv(tmp_path / "score.csv", index=False)
    truth.to_csv(tmp_path / "scale.csv", index=False)
    table = evaluate_pairwise_files(
        tmp_path / "comparator.csv",
        tmp_path / "pairs.csv",
        tmp_path / "eval",
        score_predictions=tmp_path / "score.csv",
        scales=tmp_path / "scale.csv",
    ).set_index("model")
    test = pairs[pairs["split"] == "test"]
    assert table.loc["comparator", "n_trials"] == test["n_trials"].sum()
    assert list(table.index) == [
        "human scale (ceiling)",
        "score model",
        "comparator",
        "chance (P = 1/2)",
    ]
    ll = table["log_likelihood"]
    assert ll["human scale (ceiling)"] > ll["chance (P = 1/2)"]
    assert ll["comparator"] > ll["chance (P = 1/2)"] and ll["score model"] > ll["chance (P = 1/2)"]
    for name in ("metrics.csv", "calibration.png", "comparator_scales.csv", "disagreement.csv"):
        assert (tmp_path / "eval" / name).is_file()
    disagreement = pd.read_csv(tmp_path / "eval" / "disagreement.csv")
    assert set(disagreement["scene"]) == set(test["scene_A"])
    assert disagreement["difference"].abs().max() < 1.0  # P off by 0.1 moves scores a little
    with pytest.raises(InputError, match="lacks columns"):
        evaluate_pairwise_files(
            tmp_path / "comparator.csv", tmp_path / "scale.csv", tmp_path / "eval2"
        )
