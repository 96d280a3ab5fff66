"""``jod align`` end to end on CSV files, through typer's test runner."""

import json

import pandas as pd
import typer
from typer.testing import CliRunner

from alignment.cli import align_command
from alignment.formats import cross_id


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(align_command)
    return app


def _write(tmp_path):
    rows, cross = [], []
    for scene, (a, b) in {"s0": (1.0, 0.0), "s1": (0.5, 1.0)}.items():
        for i in range(6):
            x = i - 2.5
            rows.append({"scene": scene, "condition": f"c{i}", "jod": x, "jod_std": 0.2})
            if i % 2 == 0:
                cross.append(
                    {"condition": cross_id(scene, f"c{i}"), "jod": a * x + b, "jod_std": 0.3}
                )
    pd.DataFrame(rows).to_csv(tmp_path / "scales.csv", index=False)
    pd.DataFrame(cross).to_csv(tmp_path / "cross.csv", index=False)


def test_align_command_writes_table_metadata_and_plots(tmp_path):
    _write(tmp_path)
    out = tmp_path / "unified.csv"
    args = [
        str(tmp_path / "scales.csv"),
        "--cross",
        str(tmp_path / "cross.csv"),
        "--reference",
        "s0",
    ]
    res = CliRunner().invoke(_app(), [*args, "-o", str(out), "--plots", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out)
    s1 = table[table["scene"] == "s1"]
    assert (s1["jod_unified"] - (0.5 * s1["jod_scene"] + 1.0)).abs().max() < 1e-9
    meta = json.loads((tmp_path / "unified.csv.meta.json").read_text())
    assert meta["attributes"]["all"]["scenes"]["s1"]["a"] == 0.5
    assert (tmp_path / "plots" / "maps.png").exists()
    assert "s1: a = 0.500, b = +1.000" in res.output


def test_align_command_bad_input_writes_nothing(tmp_path):
    _write(tmp_path)
    pd.read_csv(tmp_path / "cross.csv").iloc[:-2].to_csv(tmp_path / "cross.csv", index=False)
    out = tmp_path / "unified.csv"
    res = CliRunner().invoke(
        _app(),
        [str(tmp_path / "scales.csv"), "--cross", str(tmp_path / "cross.csv"), "-o", str(out)],
    )
    assert res.exit_code != 0
    assert "cross.csv" in str(res.exception) and "at least 2" in str(res.exception)
    assert not out.exists()
