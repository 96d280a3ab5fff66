"""Pair samples for the comparator: exclusions, counts, targets, images, splits, errors."""

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy.stats import norm

import scaling
from scaling.errors import InputError
from scaling.simulate import make_true_scores
from training.data import split_scenes
from training.pairwise_data import (
    MIXED,
    attach_images,
    pair_samples,
    pair_splits,
    pair_table,
    read_image_index,
    read_pair_trials,
    scene_split_of,
    soft_target,
)


def _images(root: Path, scenes: dict[str, list[str]]) -> Path:
    """<root>/<scene>/<condition>.png files and a manifest with relative paths."""
    rows = []
    for scene, conditions in scenes.items():
        (root / scene).mkdir(parents=True, exist_ok=True)
        for k, condition in enumerate(conditions):
            Image.new("RGB", (8, 8), (k * 20, 0, 0)).save(root / scene / f"{condition}.png")
            rows.append((scene, condition, f"{scene}/{condition}.png"))
    manifest = root / "manifest.csv"
    pd.DataFrame(rows, columns=["scene", "condition", "image_path"]).to_csv(manifest, index=False)
    return manifest


def _simulated(n_scenes=3, n_conditions=5, observers=6, seed=0, **kwargs) -> pd.DataFrame:
    truth = make_true_scores(n_conditions, n_scenes=n_scenes, attribute="noise", seed=seed)
    return scaling.simulate_trials(truth, n_observers=observers, seed=seed, **kwargs)


# --- image index ------------------------------------------------------------------------------


def test_index_from_table_and_folder_agree(tmp_path):
    manifest = _images(tmp_path, {"s0": ["a", "b"], "s1": ["a"]})
    from_table = read_image_index(manifest)
    from_folder = read_image_index(tmp_path)
    assert sorted(map(tuple, from_table.to_numpy())) == sorted(map(tuple, from_folder.to_numpy()))
    assert from_table["image_path"].map(lambda p: Path(p).is_absolute()).all()
    assert (tmp_path / "s1" / "a.png").resolve().as_posix() in set(from_table["image_path"])


def test_index_errors(tmp_path):
    manifest = _images(tmp_path, {"s0": ["a", "b"]})
    table = pd.read_csv(manifest)
    table.loc[1, "image_path"] = "s0/missing.png"
    table.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError) as err:
        read_image_index(tmp_path / "bad.csv")
    assert str(err.value) == (
        f"{tmp_path / 'bad.csv'}, row 2, field 'image_path': image file "
        f"{(tmp_path / 's0' / 'missing.png').resolve()} not found"
    )
    pd.concat([table.iloc[:1]] * 2).to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(InputError, match=r"row 2, field 'condition': image \(s0, a\) is listed"):
        read_image_index(tmp_path / "twice.csv")
    table.drop(columns="condition").to_csv(tmp_path / "nocol.csv", index=False)
    with pytest.raises(InputError, match="missing columns \\['condition'\\]"):
        read_image_index(tmp_path / "nocol.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images found"):
        read_image_index(tmp_path / "empty")


# --- trials and exclusions ---------------------------------------------------------------------


def test_training_gold_and_flagged_observers_are_left_out():
    trials = _simulated()
    trials["is_training"] = (np.arange(len(trials)) % 7 == 0).astype(int)
    trials["is_gold"] = (np.arange(len(trials)) % 11 == 0).astype(int)
    screening = pd.DataFrame({"observer": ["O01", "O02"], "flagged": [True, False]})
    kept = read_pair_trials([trials], screening=screening)
    expected = trials[
        (trials["is_training"] == 0) & (trials["is_gold"] == 0) & (trials["observer"] != "O01")
    ]
    assert len(kept) == len(expected)
    assert "O01" not in set(kept["observer"])
    excluded = kept.attrs["jodkit"]["excluded"]
    assert excluded["training"] == int(trials["is_training"].sum())
    assert excluded["gold"] == int((trials["is_gold"] & ~trials["is_training"]).sum())
    assert excluded["flagged_observers"] == ["O01"]
    with_gold = read_pair_trials([trials], drop_gold=False)
    assert len(with_gold) == int((trials["is_training"] == 0).sum())


def test_auto_screening_is_scalings():
    trials = _simulated(n_scenes=4, n_conditions=6, observers=12, outlier_fraction=0.2)
    kept = read_pair_trials([trials], screening="auto")
    table = scaling.screen_observers(trials, by=("scene", "attribute"))
    flagged = sorted(table.loc[table["flagged"], "observer"])
    assert kept.attrs["jodkit"]["excluded"]["flagged_observers"] == flagged
    random_observers = trials.attrs["jodkit"]["simulation"]["random_observers"]
    assert set(random_observers) <= set(flagged)  # the random answerers are caught
    assert not set(flagged) & set(kept["observer"])


def test_trial_table_errors(tmp_path):
    trials = _simulated()
    with pytest.raises(InputError, match="field 'attribute': needs an 'attribute' column"):
        read_pair_trials([trials.drop(columns="attribute")])
    with pytest.raises(InputError, match="field 'scene': needs a 'scene' column"):
        read_pair_trials([trials.drop(columns="scene")])
    bad = trials.copy()
    bad.loc[4, "condition_B"] = bad.loc[4, "condition_A"]
    path = tmp_path / "trials.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(InputError, match=rf"{path}, row 5, field 'condition_B': .*itself"):
        read_pair_trials([path])
    with pytest.raises(InputError, match="field 'flagged'"):
        read_pair_trials([trials], screening=pd.DataFrame({"observer": ["O01"]}))


# --- pair counts and targets -------------------------------------------------------------------


def _independent_counts(trials: pd.DataFrame) -> dict:
    """(attribute, image, image) sorted -> [n, ties, wins of the first], by a plain loop."""
    out = defaultdict(lambda: [0, 0, 0.0])
    for row in trials.itertuples(index=False):
        a = (row.scene_A, row.condition_A)
        b = (row.scene_B, row.condition_B)
        first, second = sorted([a, b], key=lambda k: f"{k[0]}/{k[1]}")
        entry = out[(row.attribute, first, second)]
        entry[0] += 1
        if row.tie:
            entry[1] += 1
            entry[2] += 0.5
        elif (row.is_A_selected == 1) == (a == first):
            entry[2] += 1
    return out


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),  # scene
            st.integers(0, 3),  # condition A
            st.integers(0, 3),  # condition B
            st.booleans(),  # A selected
            st.booleans(),  # tie
            st.sampled_from(["noise", "detail"]),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_pair_counts_match_a_plain_count(rows):
    rows = [r for r in rows if r[1] != r[2]]
    if not rows:
        return
    trials = pd.DataFrame(
        [
            (f"O{k % 3}", f"s{s}", att, f"c{a}", f"c{b}", int(sel), int(tie))
            for k, (s, a, b, sel, tie, att) in enumerate(rows)
        ],
        columns=[
            *("observer", "scene", "attribute", "condition_A", "condition_B"),
            *("is_A_selected", "tie"),
        ],
    )
    pairs = pair_table(read_pair_trials([trials]))
    expected = _independent_counts(read_pair_trials([trials]))
    assert len(pairs) == len(expected)
    for row in pairs.itertuples(index=False):
        key = (row.attribute, (row.scene_A, row.condition_A), (row.scene_B, row.condition_B))
        assert [row.n_trials, row.n_ties, row.wins_A] == pytest.approx(expected[key])
        assert row.p_observed == pytest.approx(expected[key][2] / expected[key][0])


def test_cross_content_pairs_keep_their_scenes_apart():
    cross = pd.DataFrame(
        {
            "observer": ["O1", "O1", "O2", "O2"],
            "attribute": "noise",
            "scene_A": ["s0", "s1", "s0", "s0"],
            "scene_B": ["s1", "s0", "s1", "s1"],
            "condition_A": ["r0", "r0", "r0", "r1"],
            "condition_B": ["r0", "r0", "r0", "r0"],
            "is_A_selected": [1, 1, 0, 1],
        }
    )
    pairs = pair_table(read_pair_trials([cross]))
    # (s0, r0) vs (s1, r0): 3 trials, s0/r0 chosen once; (s0, r1) vs (s1, r0): one trial
    by_pair = {
        tuple(r[:4]): r[4:]
        for r in pairs[
            ["scene_A", "condition_A", "scene_B", "condition_B", "n_trials", "wins_A"]
        ].itertuples(index=False)
    }
    assert by_pair[("s0", "r0", "s1", "r0")] == (3, 1)
    assert by_pair[("s0", "r1", "s1", "r0")] == (1, 1)
    assert set(pairs["task"]) == {"cross_content"}


def test_thurstone_target_against_scipy():
    truth = make_true_scores(5, n_scenes=2, attribute="noise", seed=3)
    trials = scaling.simulate_trials(truth, n_observers=4, seed=3)
    pairs = pair_table(read_pair_trials([trials]), scene_scales=truth)
    jod = {(s, c): j for s, c, j in truth[["scene", "condition", "jod"]].itertuples(index=False)}
    diff = [
        jod[(s, a)] - jod[(s, b)]
        for s, a, b in pairs[["scene_A", "condition_A", "condition_B"]].itertuples(index=False)
    ]
    assert pairs["p_thurstone"].to_numpy() == pytest.approx(norm.cdf(np.array(diff) / 1.4826))
    assert soft_target(pairs, "thurstone") == pytest.approx(pairs["p_thurstone"].to_numpy())
    assert soft_target(pairs, "proportion") == pytest.approx(pairs["p_observed"].to_numpy())
    blend = 0.3 * pairs["p_observed"] + 0.7 * pairs["p_thurstone"]
    assert soft_target(pairs, "blend", 0.3) == pytest.approx(blend.to_numpy())
    with pytest.raises(InputError, match=r"image \(s01, c4\) of attribute 'noise' has no score"):
        pair_table(read_pair_trials([trials]), scene_scales=truth.iloc[:-1])
    with pytest.raises(InputError, match="needs the scale tables"):
        soft_target(pair_table(read_pair_trials([trials])), "thurstone")


def test_cross_scale_with_image_keys():
    cross = pd.DataFrame(
        {
            "observer": ["O1", "O2"],
            "attribute": "noise",
            "scene_A": ["s0", "s1"],
            "scene_B": ["s1", "s0"],
            "condition_A": ["r0", "r1"],
            "condition_B": ["r1", "r0"],
            "is_A_selected": [1, 0],
        }
    )
    scales = pd.DataFrame(
        {"attribute": "noise", "condition": ["s0/r0", "s1/r1"], "jod": [1.0, -0.5]}
    )
    pairs = pair_table(read_pair_trials([cross]), cross_scales=scales)
    assert pairs["p_thurstone"].to_numpy() == pytest.approx([norm.cdf(1.5 / 1.4826)])
    assert pairs["wins_A"].tolist() == [2.0]


# --- images, samples and splits ---------------------------------------------------------------


def test_samples_have_both_orders_and_images(tmp_path):
    manifest = _images(tmp_path, {f"s{k:02d}": [f"c{c}" for c in range(5)] for k in range(3)})
    trials = read_pair_trials([_simulated()])
    truth = make_true_scores(5, n_scenes=3, attribute="noise", seed=0)
    pairs = attach_images(pair_table(trials, truth), read_image_index(manifest))
    samples = pair_samples(pairs, soft_target(pairs))
    assert len(samples) == 2 * len(pairs)
    forward, backward = samples[samples["order"] == 0], samples[samples["order"] == 1]
    assert (forward["image_first"].to_numpy() == backward["image_second"].to_numpy()).all()
    assert forward["target"].to_numpy() + backward["target"].to_numpy() == pytest.approx(1.0)
    first = forward.iloc[0]
    assert first["image_first"] == str(
        (tmp_path / first["scene_A"] / f"{first['condition_A']}.png").resolve()
    )


def test_image_errors(tmp_path):
    manifest = _images(tmp_path, {"s00": ["c0", "c1"]})
    trials = pd.DataFrame(
        {
            "observer": ["O1", "O1"],
            "scene": "s00",
            "attribute": "noise",
            "condition_A": ["c0", "c0"],
            "condition_B": ["c1", "c2"],
            "is_A_selected": [1, 0],
        }
    )
    pairs = pair_table(read_pair_trials([trials]))
    with pytest.raises(InputError) as err:
        attach_images(pairs, read_image_index(manifest))
    assert str(err.value) == (
        "field 'condition_B': image (s00, c2) is judged in the trials but not in the image index"
    )
    index = read_image_index(manifest)
    index = pd.concat(
        [index, index.iloc[[0]].assign(condition="c2")], ignore_index=True
    )  # c2 is the same file as c0
    with pytest.raises(InputError, match=r"\(s00, c0\) and \(s00, c2\) are the same image file"):
        attach_images(pairs, index)


def test_split_is_the_score_models():
    trials = read_pair_trials([_simulated(n_scenes=10, n_conditions=3)])
    pairs = pair_table(trials)
    split = pair_splits(pairs, 0.2, 0.3, seed=4)
    training_table = pd.DataFrame({"scene": np.repeat(sorted(set(pairs["scene_A"])), 3)})
    score_split = dict(
        zip(training_table["scene"], split_scenes(training_table, 0.2, 0.3, 4), strict=True)
    )
    assert split.tolist() == pairs["scene_A"].map(score_split).tolist()
    assert set(split) == {"train", "val", "test"}
    # read from a score model's split.csv instead
    table = pd.DataFrame({"scene": list(score_split), "split": list(score_split.values())})
    assert pair_splits(pairs, 0, 0, 0, split_table=table).tolist() == split.tolist()
    with pytest.raises(InputError, match=r"scenes \['s09'\] have no split"):
        pair_splits(pairs, 0, 0, 0, split_table=table[table["scene"] != "s09"])
    both = pd.concat(
        [
            table,
            table.iloc[[0]].assign(split="test" if table.iloc[0]["split"] != "test" else "train"),
        ]
    )
    with pytest.raises(InputError, match="is in several splits"):
        scene_split_of(both)


def test_cross_pairs_across_splits_are_mixed():
    pairs = pd.DataFrame({"scene_A": ["a", "a", "b"], "scene_B": ["b", "a", "b"]})
    table = pd.DataFrame({"scene": ["a", "b"], "split": ["train", "test"]})
    assert pair_splits(pairs, 0, 0, 0, split_table=table).tolist() == [MIXED, "train", "test"]
