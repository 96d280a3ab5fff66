"""``jod align`` end to end on CSV files, through typer's test runner."""

import json

import pandas as pd
from typer.testing import CliRunner

from alignment.formats import cross_id
from jodkit.cli import app


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
    res = CliRunner().invoke(
        app, ["align", *args, "-o", str(out), "--plots", str(tmp_path / "plots")]
    )
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
        app,
        [
            "align",
            str(tmp_path / "scales.csv"),
            "--cross",
            str(tmp_path / "cross.csv"),
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 2
    assert "cross.csv" in res.output and "at least 2" in res.output
    assert not out.exists()


def test_align_command_joint_fits_the_trials(tmp_path):
    from study.panel import cross_trials, make_truth, per_scene_trials
    from study.renditions import ladder

    steps = ladder((1.0, 0.5, 0.25), (0.0, 0.05))
    manifest = pd.DataFrame(
        [{"scene": f"s{j}", "condition": f"r{k}"} | p.as_dict() for j in range(3)
         for k, p in enumerate(steps)]
    )  # fmt: skip
    truth = make_truth(manifest, seed=2)
    truth = truth[truth["attribute"] == "detail"]
    per_scene_trials(truth, n_observers=6, seed=3).to_csv(tmp_path / "st.csv", index=False)
    chosen = truth[truth["condition"].isin(["r0", "r3", "r5"])]
    cross_trials(truth, chosen, n_observers=6, seed=4).to_csv(tmp_path / "ct.csv", index=False)
    out = tmp_path / "unified.csv"
    args = ["--trials", str(tmp_path / "st.csv"), "--cross-trials", str(tmp_path / "ct.csv")]
    res = CliRunner().invoke(app, ["align", *args, "--method", "joint", "-o", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out)
    assert len(table) == 18 and table["jod_unified"].notna().all()
    meta = json.loads((tmp_path / "unified.csv.meta.json").read_text())
    assert meta["method"] == "joint" and set(meta["attributes"]["detail"]["scenes"]) == {
        "s0", "s1", "s2"
    }  # fmt: skip
    # joint needs trials, line fits need scale tables: a clear error, nothing written
    out.unlink()
    res = CliRunner().invoke(app, ["align", *args, "-o", str(out)])
    assert res.exit_code == 2 and "SCALES and --cross" in res.output and not out.exists()
    bad = pd.read_csv(tmp_path / "ct.csv")
    bad.loc[3, "is_A_selected"] = 7
    bad.to_csv(tmp_path / "ct.csv", index=False)
    res = CliRunner().invoke(app, ["align", *args, "--method", "joint", "-o", str(out)])
    assert res.exit_code == 2 and "ct.csv, row 4, field 'is_A_selected'" in res.output
    assert not out.exists()
