"""Cross-content trial tables (``scene_A``/``scene_B``) at the scaling boundary.

Images are keyed ``"<scene>/<condition>"`` (``scaling.formats``): same-named conditions of
different scenes stay apart, a table mixing per-scene and cross-content trials is refused
with a way to split it, and within-scene rows of a cross-content table join one graph.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import scaling
from jodkit.cli import app
from scaling.errors import InputError
from scaling.formats import image_key, image_keys, scene_name_problem, split_image_keys
from scaling.io import validate_trials

runner = CliRunner()
SCORES = {("s0", "r00"): 1.5, ("s0", "r01"): 0.0, ("s1", "r00"): -1.0, ("s1", "r01"): 0.5}


def cross_table(n_observers: int = 20, seed: int = 0, within: bool = False) -> pd.DataFrame:
    """Every pair of four images of two scenes that share condition names, Thurstone answers.

    ``within``: also the two within-scene pairs (scene_A == scene_B).
    """
    rng = np.random.default_rng(seed)
    images = list(SCORES)
    rows = []
    for i, (sa, ca) in enumerate(images):
        for sb, cb in images[i + 1 :]:
            if sa == sb and not within:
                continue
            p = 0.5 * (1 + np.tanh((SCORES[sa, ca] - SCORES[sb, cb]) / 1.5))
            for o in range(n_observers):
                rows.append(
                    {
                        "observer": f"o{o}",
                        "scene_A": sa,
                        "scene_B": sb,
                        "attribute": "detail",
                        "condition_A": ca,
                        "condition_B": cb,
                        "is_A_selected": int(rng.random() < p),
                    }
                )
    return pd.DataFrame(rows)


@given(
    scene=st.text(min_size=1).filter(lambda s: "/" not in s),
    condition=st.text(min_size=1),
)
def test_image_keys_split_back_into_scene_and_condition(scene, condition):
    key = image_key(scene, condition)
    assert scene_name_problem(scene) is None
    assert image_keys(pd.Series([scene]), pd.Series([condition])).tolist() == [key]
    parts = split_image_keys(pd.Series([key]))
    assert parts.iloc[0].tolist() == [scene, condition]


def test_malformed_keys_and_scene_names():
    parts = split_image_keys(pd.Series(["s/c", "nokey", "/c", "s/"]))
    assert parts["scene"].isna().tolist() == [False, True, True, True]
    assert scene_name_problem("a/b") == (
        "scene name 'a/b' contains '/', which separates scene and condition in image keys"
    )
    assert scene_name_problem("") == "scene name is empty"


def test_same_named_conditions_of_different_scenes_stay_apart():
    trials = cross_table()
    table = scaling.scale(trials, progress=False)
    assert sorted(table["condition"]) == ["s0/r00", "s0/r01", "s1/r00", "s1/r01"]
    assert (table["attribute"] == "detail").all()
    # independent route: the same trials with the conditions renamed by hand
    renamed = trials.assign(
        condition_A=trials["scene_A"] + "-" + trials["condition_A"],
        condition_B=trials["scene_B"] + "-" + trials["condition_B"],
    ).drop(columns=["scene_A", "scene_B"])
    expected = scaling.scale(renamed, progress=False)
    got = table.set_index("condition")["jod"]
    want = expected.set_index("condition")["jod"].rename(lambda c: c.replace("-", "/", 1))
    np.testing.assert_allclose(got.sort_index(), want.sort_index(), atol=1e-12)
    # the comparison that used to fail: r00 of s0 against r00 of s1 is not a self-comparison
    assert ((trials["condition_A"] == "r00") & (trials["condition_B"] == "r00")).any()


def test_within_scene_rows_join_the_one_graph():
    trials = cross_table(within=True)
    table = scaling.scale(trials, progress=False)
    assert len(table) == 4 and table["component"].eq(0).all()
    n = table.set_index("condition")["n_comparisons"]
    # s0/r00 meets the two s1 images (20 each) and s0/r01 (20, a within-scene pair)
    assert n["s0/r00"] == 60


def test_comparing_an_image_with_itself_names_the_image():
    trials = cross_table()
    trials.loc[4, ["scene_B", "condition_B"]] = trials.loc[4, ["scene_A", "condition_A"]].values
    with pytest.raises(InputError) as err:
        validate_trials(trials, source="cross.csv")
    assert str(err.value) == (
        "cross.csv, row 5, field 'condition_B': image 's0/r00' is compared with itself"
    )


@pytest.mark.parametrize(
    ("change", "by", "message"),
    [
        (
            lambda t: t.assign(scene="s0"),
            None,
            "t.csv, field 'scene': mixes per-scene trials (column 'scene') with cross-content "
            "trials ('scene_A', 'scene_B'): split it into two tables, the rows with 'scene' "
            "and the rows with 'scene_A'/'scene_B', and scale each; or, to scale all images "
            "as one graph, give each per-scene trial scene_A = scene_B = its scene and drop "
            "the 'scene' column",
        ),
        (
            lambda t: t.drop(columns="scene_B"),
            None,
            "t.csv, field 'scene_B': has 'scene_A' but no 'scene_B': cross-content trials "
            "need both",
        ),
        (
            lambda t: t,
            ["scene"],
            "t.csv, field 'scene': cross-content trials have no 'scene' to group by: their "
            "images are keyed '<scene>/<condition>' and scaled as one graph per group (e.g. "
            "by attribute)",
        ),
        (
            lambda t: t.assign(scene_A=["a/b", *t["scene_A"].iloc[1:]]),
            None,
            "t.csv, row 1, field 'scene_A': scene name 'a/b' contains '/', which separates "
            "scene and condition in image keys",
        ),
        (
            lambda t: t.assign(scene_B=[*t["scene_B"].iloc[:-1], None]),
            None,
            "t.csv, row 80, field 'scene_B': is empty",
        ),
    ],
)
def test_bad_cross_content_tables(change, by, message):
    with pytest.raises(InputError) as err:
        validate_trials(change(cross_table()), by=by or (), source="t.csv")
    assert str(err.value) == message


def test_jod_scale_on_exported_tables(tmp_path):
    cross = tmp_path / "trials_cross_content.csv"
    cross_table().to_csv(cross, index=False)
    out = tmp_path / "cross_scales.csv"
    result = runner.invoke(app, ["scale", str(cross), "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert sorted(pd.read_csv(out)["condition"]) == ["s0/r00", "s0/r01", "s1/r00", "s1/r01"]
    mixed = tmp_path / "mixed.csv"
    per_scene = cross_table().iloc[:5].drop(columns="scene_B").rename(columns={"scene_A": "scene"})
    pd.concat([per_scene, cross_table()]).to_csv(mixed, index=False)
    result = runner.invoke(app, ["scale", str(mixed), "-o", str(tmp_path / "m.csv")])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {mixed}, field 'scene': mixes per-scene trials")
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "m.csv").exists()
