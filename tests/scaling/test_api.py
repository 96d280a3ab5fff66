"""scaling.scale and scaling.pw_scale: what a user gets back, including the hard cases."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.io import loadmat
from scipy.stats import spearmanr

import scaling
import scaling.graph
from scaling.errors import InputError
from scaling.formats import SCALE_COLUMNS
from scaling.simulate import make_true_scores, simulate_trials


@pytest.fixture(scope="module")
def study():
    truth = make_true_scores(8, n_scenes=2, jod_range=4.0, seed=3)
    trials = simulate_trials(truth, n_observers=20, seed=4)
    return truth, trials


def test_scale_recovers_the_truth(study):
    truth, trials = study
    table = scaling.scale(trials, by=["scene", "attribute"], progress=False)
    assert list(table.columns) == ["scene", "attribute", *SCALE_COLUMNS]
    merged = table.merge(truth, on=["scene", "attribute", "condition"], suffixes=("", "_true"))
    assert len(merged) == 16
    for _, scene in merged.groupby("scene"):
        error = (scene.jod - scene.jod.mean()) - (scene.jod_true - scene.jod_true.mean())
        assert np.sqrt(np.mean(error**2)) < 0.35
        assert spearmanr(scene.jod, scene.jod_true).statistic > 0.9
    assert table["determined"].all()
    assert (table["n_comparisons"] == 20 * 7).all()  # full design, every observer once


def test_groups_are_scaled_independently(study):
    _, trials = study
    both = scaling.scale(trials, by=["scene"], progress=False)
    scene = trials["scene"].iloc[0]
    alone = scaling.scale(trials[trials.scene == scene], by=["scene"], progress=False)
    np.testing.assert_allclose(
        both[both.scene == scene]["jod"].to_numpy(), alone["jod"].to_numpy(), atol=1e-9
    )


def test_metadata_records_options(study):
    _, trials = study
    table = scaling.scale(trials, prior="none", anchor="fix0", ties="split", progress=False)
    meta = table.attrs["jodkit"]
    assert meta["prior"] == "none" and meta["anchor"] == "fix0" and meta["ties"] == "split"
    assert meta["group_by"] == ["scene", "attribute"]
    first = table.groupby("scene").head(1)
    np.testing.assert_allclose(first["jod"], 0.0, atol=1e-12)  # fix0: first condition at 0


def test_bootstrap_intervals_are_reproducible_and_contain_the_estimate(study):
    _, trials = study
    one = trials[trials.scene == trials.scene.iloc[0]]
    first = scaling.scale(one, bootstrap=64, seed=11, n_jobs=1, progress=False)
    again = scaling.scale(one, bootstrap=64, seed=11, n_jobs=1, progress=False)
    pd.testing.assert_frame_equal(first, again)
    assert (first.ci_low < first.jod).all() and (first.jod < first.ci_high).all()
    assert (first.jod_std > 0.05).all() and (first.jod_std < 1.0).all()
    assert first.attrs["jodkit"]["bootstrap_unit"] == "observer"


def test_training_trials_do_not_count(study):
    _, trials = study
    one = trials[trials.scene == trials.scene.iloc[0]].copy()
    one["is_training"] = 0
    base = scaling.scale(one, progress=False)
    flipped = one.copy()
    flipped.loc[flipped.index[:30], "is_training"] = 1
    flipped.loc[flipped.index[:30], "is_A_selected"] = (
        1 - flipped.loc[flipped.index[:30], "is_A_selected"]
    )
    without = scaling.scale(one.iloc[30:], progress=False)
    marked = scaling.scale(flipped, progress=False)
    np.testing.assert_allclose(marked.jod, without.jod, atol=1e-9)
    assert not np.allclose(marked.jod, base.jod, atol=1e-3)
    assert marked.attrs["jodkit"]["training_trials_excluded"] == 30


def test_all_training_trials_is_an_error(study):
    _, trials = study
    with pytest.raises(InputError, match="training"):
        scaling.scale(trials.assign(is_training=1), progress=False)


def test_missing_group_column_is_named(study):
    _, trials = study
    with pytest.raises(InputError, match="'scenery'"):
        scaling.scale(trials, by=["scenery"], progress=False)


def test_split_ties_make_tied_conditions_equal():
    rows = [("o1", "a", "b", np.nan, 1)] * 6 + [("o1", "a", "c", 1, 0)] * 3
    rows += [("o1", "b", "c", 1, 0)] * 3 + [("o1", "c", "a", 1, 0), ("o1", "c", "b", 1, 0)]
    trials = pd.DataFrame(
        rows, columns=["observer", "condition_A", "condition_B", "is_A_selected", "tie"]
    )
    table = scaling.scale(trials, ties="split", prior="none", progress=False).set_index("condition")
    assert table.loc["a", "jod"] == pytest.approx(table.loc["b", "jod"], abs=0.05)
    assert table.loc["a", "jod"] > table.loc["c", "jod"] + 0.3


def two_component_counts() -> np.ndarray:
    counts = np.zeros((5, 5))
    counts[0, 1], counts[1, 0] = 6, 2
    counts[1, 2], counts[2, 1] = 5, 3
    counts[0, 2], counts[2, 0] = 7, 1
    counts[3, 4], counts[4, 3] = 4, 4
    return counts


def test_disconnected_graph_warns_and_marks_components():
    with pytest.warns(scaling.DisconnectedGraphWarning, match="2 components") as caught:
        result = scaling.pw_scale(two_component_counts(), conditions=list("abcde"))
    assert "d, e" in str(caught[0].message)
    np.testing.assert_array_equal(result.component, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(result.determined, [True, True, True, False, False])
    assert np.isfinite(result.jod).all()
    assert result.jod[3] == pytest.approx(result.jod[4], abs=1e-6)  # tied 4:4 within their own


def test_never_compared_condition_has_no_score():
    counts = np.zeros((3, 3))
    counts[0, 1], counts[1, 0] = 3, 1
    with pytest.warns(scaling.DisconnectedGraphWarning):
        result = scaling.pw_scale(counts)
    assert np.isnan(result.jod[2]) and not result.determined[2]
    assert np.isfinite(result.jod[:2]).all()


def test_one_sided_and_heavy_pairs_stay_finite():
    counts = np.zeros((4, 4))
    counts[0, 1:] = 5  # condition 0 never lost
    counts[1, 2], counts[2, 1] = 9000, 3000  # compared 12,000 times
    counts[2, 3], counts[3, 2] = 4, 2
    for prior in ("gaussian", "none"):
        result = scaling.pw_scale(counts, prior)
        assert np.isfinite(result.jod).all()
        assert not result.determined[0] and result.determined[1:].all()
        assert result.jod[0] == result.jod.max() and result.jod[0] - result.jod[1] < 15
        # 75% of 12,000 answers: the distance is 1 JOD to within sampling precision
        assert result.jod[1] - result.jod[2] == pytest.approx(1.0, abs=0.02)


def test_pwcmp_linking_reproduces_pwcmp_on_a_disconnected_matrix(real_data):
    folder = real_data / "asap_sampling_data"
    counts = loadmat(folder / "D_peng.mat")["D_peng"].astype(float)
    reference = pd.read_csv(folder / "reference_pwcmp_scaling.csv")
    reference = reference[reference.group == "D_peng"].sort_values("condition_index")
    expected = reference["jod_pwcmp_noprior"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scaling.DisconnectedGraphWarning)
        linked = scaling.pw_scale(counts, "none", disconnected="pwcmp")
        separate = scaling.pw_scale(counts, "none")
    det = linked.determined
    assert det.sum() == 120
    # Raw values match pwcmp only when linking as pwcmp does; on their own, the main
    # component's offset differs (pwcmp's mean includes 54 never-compared conditions).
    assert np.abs(linked.jod[det] - expected[det]).max() < 0.005
    offset = np.mean(separate.jod[det] - expected[det])
    assert abs(offset) > 0.5
    assert np.abs(separate.jod[det] - offset - expected[det]).max() < 0.005


def test_orderings_hold_with_cvxpy():
    counts = np.array([[0, 2, 6], [6, 0, 5], [2, 3, 0]], dtype=float)  # b beats a
    names = ["a", "b", "c"]
    free = scaling.scale_counts(counts, names, prior="none", solver="cvxpy").set_index("condition")
    assert free.loc["b", "jod"] > free.loc["a", "jod"]
    ordered = scaling.scale_counts(
        counts,
        names,
        prior="none",
        solver="cvxpy",
        orderings=[scaling.OrderingSpec(("a", "b", "c"))],
        fixed=[scaling.FixedSpec("c", -1.0)],
    ).set_index("condition")
    assert ordered.loc["a", "jod"] >= ordered.loc["b", "jod"] - 1e-6
    assert ordered.loc["b", "jod"] >= ordered.loc["c", "jod"] - 1e-6
    assert ordered.loc["c", "jod"] == pytest.approx(-1.0, abs=1e-6)


def test_bootstrap_samples_obey_the_constraints_of_the_scale():
    """With cvxpy and an ordering, every bootstrap resample is solved under the ordering:
    the data favour b over a, yet a's interval never falls below b's."""
    rows = []
    for observer in range(8):
        for winner, loser, times in (("b", "a", 3), ("a", "b", 1), ("a", "c", 3), ("b", "c", 3)):
            rows += [(f"o{observer}", winner, loser, 1)] * times
    trials = pd.DataFrame(rows, columns=["observer", "condition_A", "condition_B", "is_A_selected"])
    kwargs = {"prior": "none", "solver": "cvxpy", "bootstrap": 40, "seed": 1, "progress": False}
    free = scaling.scale(trials, **kwargs).set_index("condition")
    assert free.loc["b", "ci_low"] > free.loc["a", "ci_low"]
    ordered = scaling.scale(
        trials, orderings=[scaling.OrderingSpec(("a", "b", "c"))], **kwargs
    ).set_index("condition")
    for bound in ("ci_low", "ci_high"):
        assert ordered.loc["a", bound] >= ordered.loc["b", bound] - 1e-6
        assert ordered.loc["b", bound] >= ordered.loc["c", bound] - 1e-6


def test_cvxpy_needs_the_convex_problem():
    with pytest.raises(ValueError, match="prior='none'"):
        scaling.pw_scale(two_component_counts()[:3, :3], "gaussian", solver="cvxpy")
    with pytest.raises(ValueError, match="solver='cvxpy'"):
        scaling.pw_scale(
            two_component_counts()[:3, :3], "none", constraints=[scaling.FixedScore(0, 1.0)]
        )


def test_unknown_options_are_rejected(study):
    _, trials = study
    with pytest.raises(ValueError, match="prior"):
        scaling.scale(trials, prior="bounded", progress=False)
    with pytest.raises(ValueError, match="ties"):
        scaling.scale(trials, ties="half", progress=False)
    with pytest.raises(ValueError, match="resample"):
        scaling.scale(trials, bootstrap=10, resample="scene", progress=False)


def test_groups_that_always_beat_each_other_are_not_determined():
    # two 3-cycles: every condition wins and loses, yet x, y, z always beat a, b, c
    counts = np.zeros((6, 6))
    for i, j in [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)]:
        counts[i, j] = 2
        counts[j, i] = 1
    counts[3, 0] = counts[4, 1] = 3
    np.testing.assert_array_equal(
        scaling.graph.determined_core(counts), [True, True, True, False, False, False]
    )


def test_conditions_pinned_from_one_side_only_are_not_determined():
    # d never lost; c lost only to d, so once d is set aside c never lost either.
    counts = np.zeros((4, 4))
    counts[0, 1], counts[1, 0] = 5, 3
    counts[2, 0], counts[2, 1] = 2, 3
    counts[3, 2] = 4
    core = scaling.graph.determined_core(counts)
    np.testing.assert_array_equal(core, [True, True, False, False])
    result = scaling.pw_scale(counts)
    np.testing.assert_array_equal(result.determined, [True, True, False, False])
    # placed, not thrown tens of JOD away: above their opponents, by a few JOD at most
    assert result.jod[1] < result.jod[0] < result.jod[2] < result.jod[3]
    assert result.jod[3] - result.jod[1] < 6.0


def test_placement_leaves_the_exact_core_untouched():
    rng = np.random.default_rng(2)
    truth = rng.uniform(-4, 4, 60)
    simulated = simulate_trials(
        pd.DataFrame({"condition": [f"c{k}" for k in range(60)], "jod": truth}),
        n_observers=1,
        design="random",
        n_comparisons=600,
        seed=3,
    )
    conditions = [f"c{k}" for k in range(60)]
    counts = scaling.counts_from_trials(simulated, conditions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scaling.DisconnectedGraphWarning)
        result = scaling.pw_scale(counts)
    core = result.determined
    assert 0 < (~core).sum() < 20
    raw = scaling.solve_exact(counts[np.ix_(result.component == 0, result.component == 0)])
    main = np.flatnonzero(result.component == 0)
    in_core = core[main]
    # each pair is compared once: pwcmp's prior is flat, and only the core has an optimum
    assert (result.bound[main][~in_core] != 0).all()
    core_scores = result.jod[main][in_core]
    np.testing.assert_allclose(
        core_scores - core_scores.mean(), raw.q[in_core] - raw.q[in_core].mean(), atol=1e-6
    )
    error = (result.jod - result.jod[core].mean()) - (truth - truth[core].mean())
    raw_error = (raw.q - raw.q[in_core].mean()) - (truth[main] - truth[main][in_core].mean())
    # the raw optimum throws one-sided conditions far away; placement keeps them sensible
    assert np.abs(error[main][~in_core]).max() < 0.5 * np.abs(raw_error[~in_core]).max()
    assert np.abs(error[main][~in_core]).max() < 6.0


def test_point_estimates_in_a_pool_equal_the_serial_ones(study, monkeypatch):
    """With POOL_WORK at 0 every multi-group job solves its groups in a process pool: same
    table (bootstrap included), same warnings with their group named, same errors."""
    import scaling.api

    _, trials = study
    split = trials.copy()
    lone = split.scene == split.scene.iloc[0]
    pair = {"c1", "c2"}
    cut = lone & (split.condition_A.isin(pair) != split.condition_B.isin(pair))
    split = split[~cut]  # in the first scene, c1 and c2 only ever met each other
    with pytest.warns(scaling.DisconnectedGraphWarning) as serial_warnings:
        serial = scaling.scale(split, bootstrap=24, seed=5, n_jobs=1, progress=False)
    monkeypatch.setattr(scaling.api, "POOL_WORK", 0)
    with pytest.warns(scaling.DisconnectedGraphWarning) as pooled_warnings:
        pooled = scaling.scale(split, bootstrap=24, seed=5, n_jobs=2, progress=False)
    pd.testing.assert_frame_equal(pooled, serial)
    assert [str(w.message) for w in pooled_warnings] == [str(w.message) for w in serial_warnings]
    assert any("scene=" in str(w.message) for w in pooled_warnings)
    with pytest.raises(ValueError, match="prior='none'"):
        scaling.scale(trials, solver="cvxpy", n_jobs=2, progress=False)
    with pytest.raises(ValueError, match="n_jobs must be at least 1, not 0"):
        scaling.scale(trials, n_jobs=0, progress=False)  # refused before any solving
