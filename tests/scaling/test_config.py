"""Scaling's options as one validated configuration that is also the run metadata."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scaling
from scaling.config import FixedSpec, OrderingSpec, ScaleConfig
from scaling.simulate import make_true_scores, simulate_trials


@st.composite
def configs(draw) -> ScaleConfig:
    cvxpy = draw(st.booleans())
    names = st.text("abcxyz_0123456789", min_size=1, max_size=6)
    return ScaleConfig(
        prior="none" if cvxpy else draw(st.sampled_from(["gaussian", "none"])),
        anchor=draw(st.sampled_from(["mean0", "fix0"])),
        ties=draw(st.sampled_from(["drop", "split"])),
        solver="cvxpy" if cvxpy else "exact",
        disconnected=draw(st.sampled_from(["separate", "pwcmp"])),
        orderings=tuple(
            OrderingSpec(
                tuple(draw(st.lists(names, min_size=2, max_size=4))), draw(st.floats(0, 2))
            )
            for _ in range(draw(st.integers(0, 2)) if cvxpy else 0)
        ),
        fixed=tuple(
            FixedSpec(draw(names), draw(st.floats(-5, 5)))
            for _ in range(draw(st.integers(0, 1)) if cvxpy else 0)
        ),
        bootstrap=draw(st.integers(0, 1000)),
        resample=draw(st.sampled_from(["observer", "trial"])),
        seed=draw(st.integers(0, 2**31)),
        interval=draw(st.sampled_from(["percentile", "expanded"])),
    )


@settings(max_examples=200, deadline=None)
@given(configs())
def test_metadata_reads_back_as_the_same_configuration(config: ScaleConfig) -> None:
    """Every option survives (the resampling unit is recorded only with a bootstrap)."""
    back = ScaleConfig.from_metadata(config.metadata())
    expected = config if config.bootstrap else dataclasses.replace(config, resample="observer")
    assert back == expected


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prior": "flat"}, "prior must be one of"),
        ({"anchor": "mean1"}, "anchor must be one of"),
        ({"ties": "half"}, "ties must be one of"),
        ({"solver": "bfgs"}, "solver must be one of"),
        ({"disconnected": "join"}, "disconnected must be one of"),
        ({"resample": "scene"}, "resample must be one of"),
        ({"interval": "bca"}, "interval must be one of"),
        ({"solver": "cvxpy"}, "use prior='none'"),
        ({"orderings": (OrderingSpec(("a", "b")),)}, "need solver='cvxpy'"),
        ({"fixed": (FixedSpec("a", 0.0),)}, "need solver='cvxpy'"),
        ({"bootstrap": -1}, "bootstrap must be >= 0"),
        ({"bootstrap": 2.5}, "bootstrap must be a whole number"),
        ({"seed": True}, "seed must be a whole number"),
    ],
)
def test_bad_options_are_refused_naming_the_option(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScaleConfig(**changes)
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(ScaleConfig(), **changes)


def test_a_table_written_with_its_metadata_can_be_made_again(tmp_path) -> None:
    """The metadata beside a table is its configuration: read back, it rescales the trials
    to the same table."""
    truth = make_true_scores(8, n_scenes=2, seed=1)
    trials = simulate_trials(truth, n_observers=8, seed=2)
    table = scaling.scale(trials, prior="none", ties="split", bootstrap=20, seed=7, progress=False)
    path = scaling.write_table(table, tmp_path / "scales.csv")
    metadata = scaling.read_table(path).attrs["jodkit"]
    config = ScaleConfig.from_metadata(metadata)
    assert config == ScaleConfig(prior="none", ties="split", bootstrap=20, seed=7)
    again = scaling.scale(trials, config=config, progress=False)
    pd.testing.assert_frame_equal(again, table)
    assert again.attrs["jodkit"]["bootstrap_unit"] == "observer"


def test_options_come_as_a_configuration_or_as_keywords_not_both() -> None:
    trials = simulate_trials(make_true_scores(4, seed=1), n_observers=4, seed=2)
    with pytest.raises(ValueError, match="either as config or as keywords"):
        scaling.scale(trials, prior="none", config=ScaleConfig(), progress=False)


def test_the_expanded_interval_widens_the_same_resamples() -> None:
    """Same seed, same resamples: the expanded interval contains the percentile one and is
    wider by about t / z for 8 observers; the metadata says which was used."""
    trials = simulate_trials(make_true_scores(6, seed=1), n_observers=8, seed=2)
    plain = scaling.scale(trials, bootstrap=120, seed=3, progress=False)
    expanded = scaling.scale(trials, bootstrap=120, seed=3, interval="expanded", progress=False)
    assert (expanded["ci_low"] <= plain["ci_low"]).all()
    assert (expanded["ci_high"] >= plain["ci_high"]).all()
    ratio = (expanded["ci_high"] - expanded["ci_low"]) / (plain["ci_high"] - plain["ci_low"])
    assert 1.05 < ratio.median() < 1.6
    pd.testing.assert_series_equal(expanded["jod_std"], plain["jod_std"])
    assert expanded.attrs["jodkit"]["interval"] == "expanded"
