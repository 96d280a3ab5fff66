"""The paper's alignment and its refinements on tables whose true maps are known."""

import warnings

import numpy as np
import pandas as pd
import pytest

from alignment.align import align, to_training
from alignment.fits import fit_line
from alignment.formats import AlignmentWarning, split_cross_ids
from alignment.reference import choose_reference
from scaling.errors import InputError
from scaling.formats import TRAINING_COLUMNS, image_key

MAPS = {"s0": (1.0, 0.0), "s1": (0.6, 1.5), "s2": (1.5, -2.0)}


def make_tables(noise_x=0.0, noise_y=0.0, n=12, seed=0, every=2):
    """Scene j's score x relates to the global score y by y = a_j x + b_j."""
    rng = np.random.default_rng(seed)
    rows, cross = [], []
    for scene, (a, b) in MAPS.items():
        q = np.linspace(-3, 3, n) + rng.normal(0, 0.1, n)
        for i, qi in enumerate(q):
            x = (qi - b) / a
            rows.append(
                {
                    "scene": scene,
                    "condition": f"c{i}",
                    "jod": x + rng.normal(0, noise_x) if noise_x else x,
                    "jod_std": max(noise_x, 0.05),
                }
            )
            if i % every == 0:
                y = qi + (rng.normal(0, noise_y) if noise_y else 0.0)
                cross.append(
                    {
                        "condition": image_key(scene, f"c{i}"),
                        "jod": y,
                        "jod_std": max(noise_y, 0.05),
                    }
                )
    return pd.DataFrame(rows), pd.DataFrame(cross)


@pytest.mark.parametrize("method", ["paper", "weighted", "eiv"])
def test_exact_data_recover_the_maps_and_the_reference_keeps_its_scores(method):
    scenes, cross = make_tables()
    out = align(scenes, cross, reference="s1", method=method)
    meta = out.attrs["jodkit"]["attributes"]["all"]
    for s, (a, b) in MAPS.items():
        assert meta["scenes"][s]["a"] == pytest.approx(a, abs=1e-9)
        assert meta["scenes"][s]["b"] == pytest.approx(b, abs=1e-9)
    ref = out[out["scene"] == "s1"]
    assert np.allclose(ref["jod_unified"], ref["jod_scene"])
    # every image lands on s1's scale: u = (q - b_ref) / a_ref
    q = out["jod_scene"] * out["scene"].map(lambda s: MAPS[s][0]) + out["scene"].map(
        lambda s: MAPS[s][1]
    )
    assert np.allclose(out["jod_unified"], (q - 1.5) / 0.6)
    assert meta["reference"] == "s1" and meta["reference_reason"] == "chosen by the user"


def test_eiv_removes_the_slope_attenuation_of_least_squares():
    rng = np.random.default_rng(1)
    x_true = rng.uniform(-3, 3, 400)
    x = x_true + rng.normal(0, 0.8, 400)
    y = 2.0 * x_true + 1.0 + rng.normal(0, 0.3, 400)
    sx, sy = np.full(400, 0.8), np.full(400, 0.3)
    ols = fit_line(x, y, method="paper")
    eiv = fit_line(x, y, sx, sy, method="eiv")
    assert ols.a < 1.85  # attenuated by var(x_true) / (var(x_true) + 0.64)
    assert eiv.a == pytest.approx(2.0, abs=0.1)


def test_weighted_fit_trusts_precise_points():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = np.array([0.0, 1.0, 2.0, 6.0])  # the last point is off the line and imprecise
    sy = np.array([0.1, 0.1, 0.1, 5.0])
    assert fit_line(x, y, sy=sy, method="weighted").a == pytest.approx(1.0, abs=0.01)
    assert fit_line(x, y, method="paper").a > 1.5


def test_bootstrap_cis_cover_the_truth_and_shrink_with_precision():
    scenes, cross = make_tables(noise_x=0.1, noise_y=0.3, n=20, seed=2)
    out = align(scenes, cross, reference="s0", method="eiv", bootstrap=200, seed=3)
    meta = out.attrs["jodkit"]["attributes"]["all"]["scenes"]
    for s, (a, b) in MAPS.items():
        lo, hi = meta[s]["a_ci"]
        assert lo < a < hi
        lo, hi = meta[s]["b_ci"]
        assert lo < b < hi
    assert (out["ci_low"] <= out["jod_unified"]).mean() > 0.9
    assert (out["ci_high"] >= out["jod_unified"]).mean() > 0.9
    ref = out[out["scene"] == "s0"]
    other = out[out["scene"] == "s2"]
    assert (ref["ci_high"] - ref["ci_low"]).mean() < (other["ci_high"] - other["ci_low"]).mean()


def test_bootstrap_is_reproducible():
    scenes, cross = make_tables(noise_x=0.1, noise_y=0.3)
    a = align(scenes, cross, bootstrap=20, seed=5)
    b = align(scenes, cross, bootstrap=20, seed=5)
    assert np.array_equal(a["ci_low"], b["ci_low"])


def test_auto_reference_prefers_range_size_and_connection():
    scenes, cross = make_tables()
    # s1 has a = 0.6: its own JOD range is the widest
    ref, reason = choose_reference(scenes, split_cross_ids(cross), "range")
    assert ref == "s1" and "range" in reason
    extra = pd.DataFrame(
        {"condition": [image_key("s2", f"c{i}") for i in (1, 3, 5)], "jod": [0, 1, 2]}
    )
    more = split_cross_ids(pd.concat([cross, extra]))
    assert choose_reference(scenes, more, "connected")[0] == "s2"
    out = align(scenes, cross, reference="auto")
    assert out.attrs["jodkit"]["attributes"]["all"]["reference"] == "s1"
    assert "rule 'auto'" in out.attrs["jodkit"]["attributes"]["all"]["reference_reason"]


def test_attributes_are_aligned_separately():
    s1, c1 = make_tables()
    s2, c2 = make_tables(seed=4)
    scenes = pd.concat([s1.assign(attribute="detail"), s2.assign(attribute="noise")])
    cross = pd.concat([c1.assign(attribute="detail"), c2.assign(attribute="noise")])
    out = align(scenes, cross, reference="s0")
    assert list(out.columns[:3]) == ["attribute", "scene", "condition"]
    assert set(out.attrs["jodkit"]["attributes"]) == {"detail", "noise"}
    train = to_training(out)
    assert tuple(train.columns) == TRAINING_COLUMNS and len(train) == len(scenes)
    assert np.allclose(train["jod"], out["jod_unified"])


def test_narrow_cross_set_warns():
    scenes, cross = make_tables(every=1)
    keep = split_cross_ids(cross)
    keep = keep[(keep["scene"] != "s2") | keep["condition"].isin(["c5", "c6"])]
    with pytest.warns(AlignmentWarning, match="s2"):
        out = align(scenes, keep)
    assert any("s2" in w for w in out.attrs["jodkit"]["warnings"])


# --- bad input -------------------------------------------------------------------------


def _assert_error(scenes, cross, match, field, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlignmentWarning)
        with pytest.raises(InputError, match=match) as err:
            align(scenes, cross, **kw)
    assert err.value.field == field
    return err.value


def test_missing_scene_in_cross_table():
    scenes, cross = make_tables()
    cross = split_cross_ids(cross)
    err = _assert_error(scenes, cross[cross["scene"] != "s2"], "s2.*0 cross-content", "scene")
    assert "cross-content scale table" in str(err)


def test_unknown_scene_and_condition():
    scenes, cross = make_tables()
    bad = pd.concat(
        [cross, pd.DataFrame({"condition": ["s9/c0"], "jod": [0.0]})], ignore_index=True
    )
    err = _assert_error(scenes, bad, "unknown scene", "scene")
    assert err.row == len(cross) + 1
    bad = pd.concat(
        [cross, pd.DataFrame({"condition": ["s0/c99"], "jod": [0.0]})], ignore_index=True
    )
    _assert_error(scenes, bad, "unknown condition", "condition")


def test_single_cross_image_in_a_scene():
    scenes, cross = make_tables()
    cross = split_cross_ids(cross)
    one = cross[(cross["scene"] != "s1") | (cross["condition"] == "c0")]
    _assert_error(scenes, one, "1 cross-content image", "scene")


def test_nan_scores():
    scenes, cross = make_tables()
    scenes.loc[3, "jod"] = np.nan
    err = _assert_error(scenes, cross, "finite", "jod")
    assert err.row == 4 and "per-scene scale table" in str(err)
    scenes, cross = make_tables()
    cross = cross.astype({"jod": object})
    cross.loc[0, "jod"] = "n/a"
    _assert_error(scenes, cross, "finite", "jod")


def test_missing_std_for_weighted_fit_and_bad_ids():
    scenes, cross = make_tables()
    _assert_error(scenes, cross.drop(columns="jod_std"), "jod_std", "jod_std", method="weighted")
    _assert_error(scenes, cross.assign(condition="noslash"), "<scene>/<condition>", "condition")
    _assert_error(scenes.drop(columns="jod"), cross, "missing column", "jod")
    with pytest.raises(ValueError, match="reference"):
        align(scenes, cross, reference="nope")
    with pytest.raises(ValueError, match="method"):
        align(scenes, cross, method="magic")


def test_diagnostic_plots_are_written(tmp_path):
    from PIL import Image

    from alignment.plots import plot_alignment

    scenes, cross = make_tables(noise_y=0.2)
    paths = plot_alignment(align(scenes, cross), tmp_path)
    assert sorted(p.name for p in paths) == ["maps.png", "residuals.png", "unified_by_scene.png"]
    for p in paths:
        assert Image.open(p).size[0] >= 400


def test_offset_fit_keeps_the_unit_and_averages_the_shift():
    fit = fit_line(np.array([0.0, 1.0, 3.0]), np.array([2.1, 2.9, 5.0]), method="offset")
    assert fit.a == 1.0 and fit.b == pytest.approx(2.0)
    assert fit.rmse == pytest.approx(np.sqrt((0.01 + 0.01 + 0.0) / 3))


@pytest.mark.parametrize("method", ["weighted", "eiv"])
def test_one_sided_intervals_carry_no_weight(method):
    """An infinite jod_std (a score bounded on one side only) leaves the image out of the
    weighted fits, exactly as if it were absent; too few two-sided images is an error."""
    scenes, cross = make_tables(noise_x=0.1, noise_y=0.2, seed=3)
    one_sided = cross.index[cross["condition"] == image_key("s1", "c2")]
    moved = cross.copy()
    moved.loc[one_sided, ["jod", "jod_std"]] = [25.0, np.inf]
    with_inf = align(scenes, moved, reference="s0", method=method)
    without = align(scenes, cross.drop(index=one_sided), reference="s0", method=method)
    np.testing.assert_allclose(with_inf["jod_unified"], without["jod_unified"])
    few = cross.copy()
    few.loc[few["condition"].str.startswith("s2/"), "jod_std"] = np.inf
    few.loc[few.index[few["condition"] == image_key("s2", "c0")], "jod_std"] = 0.2
    err = _assert_error(scenes, few, "two-sided", "jod_std", method=method)
    assert str(err) == (
        f"cross-content scale table, field 'jod_std': method {method!r}: scene 's2' has 1 "
        "cross-content image(s) with a two-sided interval (finite jod_std), and the fit needs "
        "2 with different scores; the others are bounded on one side only: use method "
        "'paper' or compare them more"
    )
    nan = cross.copy()
    nan.loc[3, "jod_std"] = np.nan
    _assert_error(scenes, nan, "needs a jod_std for every cross-content image", "jod_std",
                  method=method)  # fmt: skip


def test_a_cross_content_scale_in_pieces_is_refused():
    scenes, cross = make_tables()
    cross["component"] = 0
    cross.loc[cross["condition"].str.startswith("s2/"), "component"] = 1
    err = _assert_error(scenes, cross, "separate components", "component")
    first = int(np.flatnonzero(cross["condition"].str.startswith("s2/"))[0])
    assert str(err) == (
        f"cross-content scale table, row {first + 1}, field 'component': the cross-content "
        "scale has 2 separate components: their scores share no offset, so scenes cannot be "
        "aligned through them; add cross-content trials that link them"
    )
    cross["component"] = 0
    assert len(align(scenes, cross)) == len(scenes)
