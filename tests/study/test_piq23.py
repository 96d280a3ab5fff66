"""PIQ23 score files: layout, backslash paths, round trip, bad input."""

import numpy as np
import pandas as pd
import pytest

from scaling.errors import InputError
from study.piq23 import PIQ23_COLUMNS, read_piq23, write_piq23


def _table():
    return pd.DataFrame(
        {
            "image_path": ["Portrait/s0/a.jpg", "Portrait/s0/b.jpg", "Portrait/s1/c.jpg"],
            "scene": ["s0", "s0", "s1"],
            "attribute": "Details",
            "jod": [0.5, -0.5, 1.25],
            "jod_std": [0.3, 0.4, 0.5],
        }
    )


def test_write_then_read_round_trip(tmp_path):
    path = tmp_path / "scores.csv"
    write_piq23(_table(), path)
    raw = pd.read_csv(path)
    assert tuple(raw.columns) == PIQ23_COLUMNS
    assert raw["IMAGE PATH"][0] == "Portrait\\s0\\a.jpg"
    assert raw["CI LOW"][2] == pytest.approx(1.25 - 1.96 * 0.5)
    assert raw["CI RANGE"][0] == pytest.approx(2 * 1.96 * 0.3)
    assert list(raw["SCENE IDX"]) == [0, 0, 1]
    back = read_piq23(path)
    assert list(back["image_path"]) == list(_table()["image_path"])
    assert list(back["condition"]) == ["a.jpg", "b.jpg", "c.jpg"]
    assert np.allclose(back["jod"], _table()["jod"])


def test_bad_piq23_files(tmp_path):
    path = tmp_path / "scores.csv"
    write_piq23(_table(), path)
    raw = pd.read_csv(path)
    raw.loc[1, "JOD"] = np.nan
    raw.to_csv(path, index=False)
    with pytest.raises(InputError, match="finite") as err:
        read_piq23(path)
    assert err.value.row == 2 and err.value.field == "JOD" and str(path) in str(err.value)
    raw.drop(columns="SCENE").to_csv(path, index=False)
    with pytest.raises(InputError, match="SCENE"):
        read_piq23(path)
    with pytest.raises(InputError, match="jod_std"):
        write_piq23(_table().drop(columns="jod_std"), tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()
