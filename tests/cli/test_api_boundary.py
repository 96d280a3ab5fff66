"""The Python API checks its input as ``jod scale`` does: ``pw_scale(D)``, ``scale(by=...)``,
``screen_observers(by=...)``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import scaling
from scaling.api import _pw_scale
from scaling.errors import InputError
from scaling.simulate import make_true_scores, simulate_trials


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ([[0, -1], [2, 0]], "pw_scale counts, row 1, field 'c2': count is negative: -1"),
        (
            [[0, 1e300], [2, 0]],
            "pw_scale counts, row 1, field 'c2': count is too large to be a number of "
            "judgments (over 1e+09): 1e+300",
        ),
        ([[0, np.nan], [2, 0]], "pw_scale counts, row 1, field 'c2': count is empty or not "
         "finite: nan"),
        ([[0, 1.3], [2, 0]], "pw_scale counts, row 1, field 'c2': count is not a whole count: "
         "1.3"),
        ([[1, 1], [2, 0]], "pw_scale counts, row 1, field 'c1': condition 'c1' is compared "
         "with itself (non-zero diagonal)"),
        ([[0, 1, 2]], "pw_scale counts: must be a square matrix of at least 2 conditions, not "
         "shape (1, 3)"),
        ([[0]], "pw_scale counts: must be a square matrix of at least 2 conditions, not shape "
         "(1, 1)"),
        ([["a", "b"], ["c", "d"]], "pw_scale counts: is not a numeric matrix: could not "
         "convert string to float: 'a'"),
    ],
)  # fmt: skip
def test_pw_scale_refuses_what_jod_scale_refuses(counts, message):
    with pytest.raises(InputError) as caught:
        scaling.pw_scale(counts)
    assert str(caught.value) == message


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (4, 4), elements=st.floats(-5, 5, allow_nan=False)))
def test_pw_scale_accepts_exactly_the_valid_matrices(values):
    """Any matrix with a negative or fractional off-diagonal count is refused; the rest
    scale exactly as the unchecked solver does."""
    counts = values.copy()
    np.fill_diagonal(counts, 0)
    valid = bool(np.all(counts >= 0) and np.all(counts * 2 == np.round(counts * 2)))
    if not valid:
        with pytest.raises(InputError):
            scaling.pw_scale(counts)
        return
    np.testing.assert_array_equal(scaling.pw_scale(counts).jod, _pw_scale(counts).jod)


def test_pw_scale_names_the_given_conditions():
    with pytest.raises(InputError, match="field 'b': count is negative"):
        scaling.pw_scale([[0, -2], [1, 0]], conditions=["a", "b"])


def test_scale_and_screening_refuse_a_string_or_a_misspelt_group_column():
    trials = simulate_trials(make_true_scores(4, n_scenes=2, seed=3), n_observers=4, seed=4)
    with pytest.raises(InputError) as caught:
        scaling.scale(trials, by="scene")
    assert str(caught.value) == (
        "DataFrame, field 'by': by='scene' is a string: give a list of column names, "
        "e.g. by=['scene']"
    )
    with pytest.raises(InputError, match=r"missing column\(s\) 'scnee' \(found 'scene'"):
        scaling.screen_observers(trials, by=["scnee"])
    with pytest.raises(InputError, match="by='scene' is a string"):
        scaling.screen_observers(trials, by="scene")
    grouped = scaling.screen_observers(trials, by=["scene"])
    assert sorted(grouped["observer"]) == sorted(trials["observer"].unique())
