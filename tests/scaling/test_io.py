"""Reading and validating trials and count matrices; tables with metadata."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.io import savemat

from scaling.errors import InputError
from scaling.io import (
    counts_from_trials,
    read_count_matrix,
    read_table,
    read_trials,
    write_table,
)


def trials(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "observer": ["o1", "o1", "o2", "o2"],
            "scene": ["s", "s", "s", "s"],
            "condition_A": ["a", "b", "a", "c"],
            "condition_B": ["b", "c", "c", "b"],
            "is_A_selected": [1, 0, 1, 1],
        }
    )
    for column, values in overrides.items():
        frame[column] = values
    return frame


def test_counts_follow_the_answers():
    frame = read_trials(trials())
    counts = counts_from_trials(frame, ["a", "b", "c"])
    # a>b, c>b, a>c, c>b
    expected = np.array([[0, 1, 1], [0, 0, 0], [0, 2, 0]], dtype=float)
    np.testing.assert_array_equal(counts, expected)


def test_tie_policies_drop_or_split():
    frame = read_trials(trials(tie=[0, 1, 0, 0], is_A_selected=[1, np.nan, 1, 1]))
    dropped = counts_from_trials(frame, ["a", "b", "c"], ties="drop")
    split = counts_from_trials(frame, ["a", "b", "c"], ties="split")
    assert dropped.sum() == 3
    assert split.sum() == 4
    assert split[1, 2] == 0.5 and split[2, 1] == 1.5


def test_missing_column_names_the_misspelling(tmp_path):
    path = tmp_path / "trials.csv"
    trials().rename(columns={"is_A_selected": "is_a_selected"}).to_csv(path, index=False)
    with pytest.raises(InputError) as err:
        read_trials(path)
    message = str(err.value)
    assert str(path) in message
    assert "'is_A_selected'" in message and "is_a_selected" in message and "misspelt" in message
    assert err.value.field == "is_A_selected"


def test_self_comparison_names_the_row():
    with pytest.raises(InputError, match="compared with itself") as err:
        read_trials(trials(condition_B=["b", "a", "a", "b"]))
    assert err.value.row == 3
    assert err.value.field == "condition_B"


def test_missing_answer_without_tie_is_rejected():
    with pytest.raises(InputError, match="NaN") as err:
        read_trials(trials(is_A_selected=[1, 0, np.nan, 1]))
    assert err.value.row == 3


@pytest.mark.parametrize("bad", [2, "yes"])
def test_answer_must_be_binary(bad):
    with pytest.raises(InputError, match="0 or 1") as err:
        read_trials(trials(is_A_selected=[1, bad, 0, 1]))
    assert err.value.row == 2 and err.value.field == "is_A_selected"


def test_empty_trial_table_is_rejected():
    with pytest.raises(InputError, match="no trials"):
        read_trials(trials().iloc[:0])


def test_empty_condition_is_rejected():
    with pytest.raises(InputError, match="empty") as err:
        read_trials(trials(condition_A=["a", None, "a", "c"]))
    assert err.value.row == 2 and err.value.field == "condition_A"


def write_matrix(path, counts, names, col_names=None):
    frame = pd.DataFrame(counts, index=names, columns=col_names or names)
    frame.to_csv(path)
    return path


def test_count_matrix_csv_round_trip(tmp_path):
    counts = np.array([[0, 3, 1], [2, 0, 4], [0, 1, 0]], dtype=float)
    path = write_matrix(tmp_path / "m.csv", counts, ["x", "y", "z"])
    read, names = read_count_matrix(path)
    np.testing.assert_array_equal(read, counts)
    assert names == ["x", "y", "z"]


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        ([[0, -1], [2, 0]], "negative"),
        ([[0, 2.3], [2, 0]], "not a whole count"),
        ([[0, np.nan], [2, 0]], "not finite"),
        ([[1, 2], [2, 0]], "compared with itself"),
    ],
)
def test_bad_counts_are_located(tmp_path, counts, match):
    path = write_matrix(tmp_path / "m.csv", np.array(counts, dtype=float), ["x", "y"])
    with pytest.raises(InputError, match=match) as err:
        read_count_matrix(path)
    assert str(path) in str(err.value)
    assert err.value.row == 1


def test_matrix_labels_must_match(tmp_path):
    path = write_matrix(tmp_path / "m.csv", np.zeros((2, 2)), ["x", "y"], ["x", "w"])
    with pytest.raises(InputError, match="does not match") as err:
        read_count_matrix(path)
    assert err.value.row == 2 and err.value.field == "w"


def test_non_square_matrix_is_rejected(tmp_path):
    path = tmp_path / "m.csv"
    pd.DataFrame([[0, 1, 2], [1, 0, 2]], index=["x", "y"], columns=["x", "y", "z"]).to_csv(path)
    with pytest.raises(InputError, match="not square"):
        read_count_matrix(path)


def test_mat_file_needs_a_variable_when_ambiguous(tmp_path):
    path = tmp_path / "m.mat"
    savemat(path, {"first": np.array([[0, 1], [2, 0]]), "second": np.array([[0, 3], [1, 0]])})
    with pytest.raises(InputError, match="first, second"):
        read_count_matrix(path)
    counts, names = read_count_matrix(path, variable="second")
    np.testing.assert_array_equal(counts, [[0, 3], [1, 0]])
    assert names == ["c1", "c2"]
    with pytest.raises(InputError, match="no matrix named 'third'"):
        read_count_matrix(path, variable="third")


def test_real_mat_file_reads(real_data):
    path = real_data / "motion_quality_20" / "pairwise_comparison_matrices.mat"
    counts, names = read_count_matrix(path, variable="pwc_mat_15degps_ET_target")
    assert counts.shape == (24, 24) and len(names) == 24
    assert 600 < counts.sum() < 720  # the README: about 660 comparisons per matrix


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tables_keep_their_metadata(tmp_path, suffix):
    table = pd.DataFrame({"condition": ["a", "b"], "jod": [0.5, -0.5]})
    table.attrs["jodkit"] = {"prior": "gaussian", "seed": 7}
    path = write_table(table, tmp_path / f"scales{suffix}")
    back = read_table(path)
    pd.testing.assert_frame_equal(back, table)
    assert back.attrs["jodkit"] == {"prior": "gaussian", "seed": 7}


def test_unknown_table_type_is_rejected(tmp_path):
    path = tmp_path / "scales.xlsx"
    path.write_text("x")
    with pytest.raises(InputError, match="unknown table type"):
        read_trials(path)
